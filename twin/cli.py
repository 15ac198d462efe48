"""The ``pumptwin`` command line (Typer): one entry point, a subcommand per job."""

from __future__ import annotations

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


@app.command()
def demo() -> None:
    """Run the whole product on an embedded default (arrives with the virtual pumps)."""
    typer.echo("pumptwin demo is not built yet: the simulated fleet it runs arrives with the virtual-pump work.")
    raise typer.Exit(2)


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
