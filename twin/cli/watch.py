"""``pumptwin watch`` and ``pumptwin version``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from twin import __version__
from twin.cli.app import app


@app.command()
def version() -> None:
    """Print the PumpTwin version and the contract version."""
    from twin.contract import CONTRACT_VERSION

    typer.echo(f"pumptwin {__version__} (contract {CONTRACT_VERSION})")


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
