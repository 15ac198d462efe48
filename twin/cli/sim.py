"""``pumptwin sim``: a fleet of virtual pumps publishing over MQTT, or a backfill into InfluxDB."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from twin.cli.app import app
from twin.cli.options import parse_duration, parse_speed, setup_logging


@app.command()
def sim(
    pumps: Annotated[int, typer.Option("--pumps", "-n", min=1, help="Pumps to generate (ignored with --fleet).")] = 20,
    fleet: Annotated[Path | None, typer.Option("--fleet", help="YAML fleet file instead of a generated fleet.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the fleet, the clinic and the hazards.")] = 1,
    speed: Annotated[str, typer.Option(help="Speed: a factor of real time (1, 60, 3600 ...) or 'max'.")] = "1",
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
    sites: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated site ids for a generated fleet (they must be simulation sites on a "
            "secured broker, see broker/README.md)."
        ),
    ] = None,
    random_faults: Annotated[bool, typer.Option(help="Inject faults at their published hazard rates.")] = False,
    clinic: Annotated[
        bool, typer.Option(help="Refill pumps after their low-reservoir alarm, as a clinic does.")
    ] = True,
    influx_url: Annotated[
        str | None,
        typer.Option(
            help="Backfill: with --speed max and --duration, run the twin in this process and write its "
            "history straight to this InfluxDB (v1 API) instead of publishing over MQTT."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a fleet of virtual pumps that publish over MQTT."""
    from twin.app.simulator import run_simulator
    from twin.contract.topics import TopicError, validate_id
    from twin.mqtt_endpoint import MqttEndpoint
    from twin.settings import Settings
    from twin.sim.plan import SimPlan

    setup_logging(verbose)
    speed_factor = parse_speed(speed)
    duration_s = parse_duration(duration) if duration else None
    site_list = [x.strip() for x in sites.split(",") if x.strip()] if sites else None
    for site in site_list or []:
        try:
            validate_id(site, what="site")
        except TopicError as exc:
            raise typer.BadParameter(str(exc), param_hint="--sites") from None
    plan = SimPlan.build(
        pumps=pumps,
        sites=site_list,
        fleet_file=fleet,
        seed=seed,
        speed=speed_factor,
        duration_s=duration_s,
        start=start,
        telemetry_every_s=parse_duration(telemetry_every, option="--telemetry-every") if telemetry_every else None,
        random_faults=random_faults,
        clinic=clinic,
    )
    settings = Settings()
    if influx_url:
        if speed_factor is not None or duration_s is None:
            raise typer.BadParameter(
                "a backfill runs as fast as possible for a duration: add --speed max --duration 90d"
            )
        from rich.console import Console

        from twin.app.backfill import backfill

        settings.influx.url = influx_url
        console = Console(stderr=True)
        console.print(f"backfilling {len(plan.specs)} pumps, {duration_s / 86400:g} days from {plan.epoch.isoformat()}")
        result = asyncio.run(backfill(plan, settings.influx, console=console, spool_dir=settings.data_dir / "spool"))
        console.print(
            f"{result.messages} messages -> {result.points_written} points written to InfluxDB "
            f"({result.points_accepted} accepted, {result.dead_lettered} dead-lettered) in {result.wall_s:.1f} s; "
            f"{result.alarms_open} alarms open at the end"
        )
        if not result.drained:
            console.print("[yellow]InfluxDB did not take everything yet: the rest waits in the spool[/]")
            raise typer.Exit(1)
        return
    endpoint = None
    if mqtt:
        endpoint = MqttEndpoint.parse(
            mqtt,
            username=settings.mqtt.username,
            password=settings.mqtt.password.get_secret_value() if settings.mqtt.password else None,
            ca_file=settings.mqtt.ca_file,
        )
    try:
        asyncio.run(run_simulator(plan, endpoint))
    except KeyboardInterrupt:
        typer.echo("stopped")
