"""The ``pumptwin`` command line (Typer): one entry point, a module per command group.

Importing this package registers every command on :data:`app`; each module names the group it
owns. The modules behind the commands (simulation, twin, API) load only when a command runs, so
``pumptwin --help`` starts fast.
"""

from twin.cli import broker, contract, demo, gateway, scenario, serve, sim, users, watch
from twin.cli.app import app

__all__ = ["app", "broker", "contract", "demo", "gateway", "scenario", "serve", "sim", "users", "watch"]
