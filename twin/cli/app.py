"""The ``pumptwin`` root command: the Typer app every command group module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pumptwin",
    help="PumpTwin: virtual intrathecal pumps, a digital twin of every pump, and alarm training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
