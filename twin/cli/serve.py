"""``pumptwin serve``: the twin service (mirror, alarms, HTTP API)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from twin.cli.app import app
from twin.cli.options import setup_logging


@app.command()
def serve(
    mqtt: Annotated[
        str | None, typer.Option(envvar="PUMPTWIN_MQTT__URL", help="Broker URL; default: an embedded broker.")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="HTTP address (default from PUMPTWIN_HTTP__HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from PUMPTWIN_HTTP__PORT or 8080).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Journal database and spool (default ./var).")] = None,
    influx_url: Annotated[
        str | None, typer.Option(help="InfluxDB URL (v1 API); default from PUMPTWIN_INFLUX__URL; unset: spool only.")
    ] = None,
    sites: Annotated[str | None, typer.Option(help="Comma-separated sites this twin owns; default all.")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL shared by twin replicas (default from PUMPTWIN_DATABASE__URL); "
            "unset: SQLite files in the data directory."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the twin service: mirror every device, run its alarms, serve the HTTP API.

    Exits with status 1 when a part of the twin fails for good (the log says which task, and why)."""
    from pydantic import SecretStr, ValidationError

    from twin.app.serve import serve_forever
    from twin.settings import DatabaseSettings, Settings

    setup_logging(verbose)
    settings = Settings()
    if database_url is not None:
        try:
            settings.database = DatabaseSettings.model_validate(
                {**settings.database.model_dump(), "url": SecretStr(database_url)}
            )
        except ValidationError as error:
            raise typer.BadParameter(error.errors()[0]["msg"], param_hint="--database-url") from error
    if host is not None:
        settings.http.host = host
    if port is not None:
        settings.http.port = port
    if data_dir is not None:
        settings.data_dir = data_dir
    if influx_url is not None:
        settings.influx.url = influx_url
    if sites:
        settings.mqtt.sites = [x.strip() for x in sites.split(",") if x.strip()]
    try:
        asyncio.run(serve_forever(settings, mqtt or settings.mqtt.url))
    except KeyboardInterrupt:
        typer.echo("stopped")
    except BaseExceptionGroup as group:
        causes = "; ".join(f"{type(e).__name__}: {e}" for e in group.exceptions)
        typer.echo(f"the twin stopped because a task failed: {causes}", err=True)
        raise typer.Exit(1) from None
