"""``pumptwin contract``: generate and check the AsyncAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.app import app

contract_app = typer.Typer(help="The MQTT contract: generate and check docs/asyncapi.yaml.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")


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
