"""``pumptwin scenario``: run a scenario headless, check scenario files, print the file format's schema.

* ``run FILE`` plays the scenario against its own fleet in this process (no broker), as fast as
  possible or at ``--speed N``, with a progress bar over simulated time; prints expected against
  observed and exits 1 if any expectation was missed (2 for a file that cannot be used). ``FILE``
  may also be the name of a catalogue scenario (``scenarios/<name>.yaml``).
* ``validate FILE...`` checks files; every mistake is printed with its line and field.
* ``schema`` prints the JSON Schema, writes it (``--output``) or checks ``docs/scenario.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin.cli.app import app

if TYPE_CHECKING:  # the modules behind the commands load when a command runs: `pumptwin` starts fast
    from rich.console import Console

    from twin.scenarios.evaluation import ScenarioReport

scenario_app = typer.Typer(
    help="Fault scenarios: run one headless, validate files, print the schema.", no_args_is_help=True
)
app.add_typer(scenario_app, name="scenario")

_STATUS_STYLE = {"met": "green", "missed": "bold red", "pending": "yellow"}


@scenario_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="Scenario file, or the name of a catalogue scenario.")],
    speed: Annotated[str, typer.Option(help="'max' (as fast as possible) or a factor of real time.")] = "max",
    seed: Annotated[int | None, typer.Option(help="Seed instead of the scenario's.")] = None,
    abort_conditions: Annotated[
        bool, typer.Option(help="Stop the run when one of the scenario's abort conditions holds.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
) -> None:
    """Play a scenario headless (its own fleet, sim and twin in this process) and report."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from twin.app.headless import run_headless
    from twin.cli.options import parse_speed
    from twin.scenarios.evaluation import report_json
    from twin.scenarios.model import ScenarioInvalid, format_duration
    from twin.scenarios.scenario_file import ScenarioFileError, find_scenario, load_scenario

    console = Console()
    try:
        scenario = load_scenario(find_scenario(file))
    except ScenarioFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    factor = parse_speed(speed)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[simulated]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(scenario.name, total=scenario.duration.total_seconds(), simulated="")

        def update(elapsed_s: float, duration_s: float) -> None:
            progress.update(
                task,
                completed=elapsed_s,
                simulated=f"{format_duration(elapsed_s)} of {format_duration(duration_s)} simulated",
            )

        try:
            report = run_headless(
                scenario, seed=seed, speed=factor, abort_conditions=abort_conditions, on_progress=update
            )
        except ScenarioInvalid as exc:
            typer.echo(f"{file}: {exc}", err=True)
            raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        print_report(report, console)
    if report.missed:
        raise typer.Exit(1)


def print_report(report: ScenarioReport, console: Console) -> None:
    """Expected against observed, then what happened (steps, symptoms, clinical events)."""
    from rich.table import Table

    from twin.scenarios.model import format_duration

    header = (
        f"[bold]{report.title}[/] ({report.scenario}, seed {report.seed}): {report.status.value} after "
        f"{format_duration(report.elapsed_s)} of {format_duration(report.duration_s)} simulated"
    )
    console.print(header)
    if report.aborted_reason:
        console.print(f"[bold yellow]aborted[/] by {report.aborted_by}: {report.aborted_reason}")
    table = Table(title="Expected outcomes", show_lines=False)
    for column in ("#", "expected", "window", "observed", "result", "responses"):
        table.add_column(column)
    for r in report.expectations:
        e = r.expected
        window = f"{format_duration(e.window_start_s)} - {format_duration(e.window_end_s)}"
        observed = "-" if r.observed_at_s is None else f"at {format_duration(r.observed_at_s)}"
        style = _STATUS_STYLE[r.status]
        table.add_row(
            str(e.index + 1),
            e.description,
            window,
            f"{observed}; {r.detail}",
            f"[{style}]{r.status}[/]",
            ", ".join(x.value for x in e.responses),
        )
    console.print(table)
    steps = Table(title="Timeline")
    for column in ("at", "step", "pump", "what", "outcome"):
        steps.add_column(column)
    for s in report.steps:
        what = s.cue.symptom or ", ".join(a.type for a in s.cue.actions)
        outcome = s.status if s.reason is None else f"{s.status}: {s.reason}"
        steps.add_row(format_duration(s.cue.at_s), s.cue.step_id, s.cue.device_id, what, outcome)
    console.print(steps)
    met = sum(1 for r in report.expectations if r.status == "met")
    colour = "green" if report.all_met else "red"
    console.print(f"[{colour}]{met} of {len(report.expectations)} expectations met[/]")


@scenario_app.command("validate")
def validate(files: Annotated[list[Path], typer.Argument(help="Scenario files (or catalogue names).")]) -> None:
    """Check scenario files; print every mistake with its line and field. Exit 1 if any is bad."""
    from twin.scenarios.model import format_duration
    from twin.scenarios.scenario_file import ScenarioFileError, find_scenario, load_scenario

    bad = 0
    for file in files:
        try:
            path = find_scenario(file)
            scenario = load_scenario(path)
        except ScenarioFileError as exc:
            bad += 1
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            continue
        typer.echo(
            f"ok: {path} ({scenario.name}: {_count(len(scenario.timeline), 'step')}, {_count(len(scenario.expect), 'expectation')}, "
            f"{format_duration(scenario.duration.total_seconds())})"
        )
    if bad:
        raise typer.Exit(1)


@scenario_app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the schema here.")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if docs/scenario.schema.json (or --output) differs from the models.")
    ] = False,
) -> None:
    """Print the JSON Schema of scenario files (``--output`` writes it, ``--check`` compares)."""
    from twin.scenarios.model import SCHEMA_PATH, render_schema

    text = render_schema()
    if check:
        target = output or SCHEMA_PATH
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            typer.echo(f"{target} is out of date: run `pumptwin scenario schema -o {target}`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is up to date")
        return
    if output is not None:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
        return
    typer.echo(text, nl=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
