"""``pumptwin demo``: the whole product on an embedded default."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from twin.cli.app import app
from twin.cli.options import parse_duration, parse_speed, setup_logging


@app.command()
def demo(
    pumps: Annotated[int, typer.Option("--pumps", "-n", min=1)] = 12,
    speed: Annotated[
        str | None, typer.Option(help="Speed factor (default 3600: an hour a second; with --scenario, its own).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 1,
    duration: Annotated[str | None, typer.Option(help="Stop after this simulated time (default: Ctrl-C).")] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Run this catalogue scenario live on its own fleet (see `pumptwin scenario`).")
    ] = None,
    training: Annotated[
        bool,
        typer.Option(
            "--training",
            help="For training sessions: the demo fleet at 1x without random faults; an instructor starts "
            "sessions in the console, each on the scenario's own pumps at its own speed.",
        ),
    ] = False,
) -> None:
    """The whole product on an embedded default: no broker or database to install."""
    from twin.app.demo import run_demo
    from twin.scenarios.scenario_file import ScenarioFileError, find_scenario, load_scenario

    setup_logging(False)
    try:
        chosen = load_scenario(find_scenario(scenario)) if scenario else None
    except ScenarioFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    if training and chosen is not None:
        raise typer.BadParameter("--training offers every scenario; leave out --scenario", param_hint="--training")
    default_speed = chosen.speed if chosen else (1.0 if training else 3600.0)
    factor = parse_speed(speed) if speed is not None else default_speed
    try:
        asyncio.run(
            run_demo(
                pumps=pumps,
                speed=factor,
                seed=seed,
                duration_s=parse_duration(duration) if duration else None,
                scenario=chosen,
                training=training,
            )
        )
    except KeyboardInterrupt:
        typer.echo("stopped")
