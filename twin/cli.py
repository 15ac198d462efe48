"""The ``pumptwin`` command line (Typer): one entry point, a subcommand per job."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from twin import __version__

app = typer.Typer(
    name="pumptwin",
    help="PumpTwin: virtual intrathecal pumps, a digital twin of every pump, and alarm training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contract_app = typer.Typer(help="The MQTT contract: generate and check docs/asyncapi.yaml.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")


@app.command()
def version() -> None:
    """Print the PumpTwin version and the contract version."""
    from twin.contract import CONTRACT_VERSION

    typer.echo(f"pumptwin {__version__} (contract {CONTRACT_VERSION})")


def parse_duration(text: str) -> float:
    """'90d', '12h', '30m', '45s', '1d12h' or plain seconds -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration like 90d, 12h, 30m, 45s or 1d12h")
    return sum(float(n) * units[u] for n, u in parts)


def parse_speed(text: str) -> float | None:
    """'1', '60', '3600', '60x' or 'max' (as fast as possible: None)."""
    text = text.strip().lower().removesuffix("x")
    if text in ("max", "fast", "asap"):
        return None
    try:
        speed = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a speed: use a factor like 1, 60, 3600 or 'max'") from None
    if speed <= 0:
        raise typer.BadParameter("speed must be positive")
    return speed


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def sim(
    pumps: Annotated[int, typer.Option("--pumps", "-n", min=1, help="Pumps to generate (ignored with --fleet).")] = 20,
    fleet: Annotated[Path | None, typer.Option("--fleet", help="YAML fleet file instead of a generated fleet.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the fleet, the clinic and the hazards.")] = 1,
    speed: Annotated[str, typer.Option(help="Speed factor: 1, 60, 3600 ... or 'max'.")] = "1",
    duration: Annotated[
        str | None, typer.Option(help="Simulated time to run (90d, 12h ...); default: until stopped.")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(help="Simulation start (UTC). Default: now, or now minus the duration at speed max (backfill)."),
    ] = None,
    telemetry_every: Annotated[
        str | None, typer.Option(help="Simulated time between telemetry samples. Default: 10 s of wall time.")
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(envvar="PUMPTWIN_MQTT__URL", help="Broker URL mqtt://host:port; default: an embedded broker."),
    ] = None,
    random_faults: Annotated[bool, typer.Option(help="Inject faults at their published hazard rates.")] = False,
    clinic: Annotated[
        bool, typer.Option(help="Refill pumps after their low-reservoir alarm, as a clinic does.")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a fleet of virtual pumps that publish over MQTT."""
    from twin.sim.runner import SimPlan, run_simulator

    _setup_logging(verbose)
    speed_factor = parse_speed(speed)
    duration_s = parse_duration(duration) if duration else None
    plan = SimPlan.build(
        pumps=pumps,
        fleet_file=fleet,
        seed=seed,
        speed=speed_factor,
        duration_s=duration_s,
        start=start,
        telemetry_every_s=parse_duration(telemetry_every) if telemetry_every else None,
        random_faults=random_faults,
        clinic=clinic,
    )
    try:
        asyncio.run(run_simulator(plan, mqtt))
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def demo(
    pumps: Annotated[int, typer.Option("--pumps", "-n", min=1)] = 12,
    speed: Annotated[str, typer.Option(help="Speed factor (3600: an hour a second).")] = "3600",
    seed: Annotated[int, typer.Option()] = 1,
    duration: Annotated[str | None, typer.Option(help="Stop after this simulated time (default: Ctrl-C).")] = None,
) -> None:
    """The whole product on an embedded default: no broker or database to install."""
    from twin.demo import run_demo

    _setup_logging(False)
    try:
        asyncio.run(
            run_demo(
                pumps=pumps,
                speed=parse_speed(speed),
                seed=seed,
                duration_s=parse_duration(duration) if duration else None,
            )
        )
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command("watch")
def watch_cmd(
    mqtt: Annotated[str, typer.Option(envvar="PUMPTWIN_MQTT__URL", help="Broker URL mqtt://host:port.")],
    telemetry: Annotated[bool, typer.Option(help="Show every telemetry sample too.")] = False,
) -> None:
    """Print what the pumps publish (births, status, alarms, command results)."""
    from twin.mqtt_endpoint import MqttEndpoint
    from twin.sim.watch import watch

    try:
        asyncio.run(watch(MqttEndpoint.parse(mqtt), typer.echo, show_telemetry=telemetry))
    except KeyboardInterrupt:
        typer.echo("stopped")


@contract_app.command("asyncapi")
def contract_asyncapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (default: docs/asyncapi.yaml).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Do not write; exit 1 if the file differs from the models.")
    ] = False,
) -> None:
    """Generate the AsyncAPI 3.0 document from the contract models."""
    from twin.contract import asyncapi

    target = output or asyncapi.DOCUMENT_PATH
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != asyncapi.render():
            typer.echo(f"{target} is out of date: run `pumptwin contract asyncapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is up to date")
        return
    asyncapi.write(target)
    typer.echo(f"wrote {target}")


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="pumptwin")
