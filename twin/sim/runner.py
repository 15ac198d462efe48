"""``pumptwin sim``: put a fleet, its simulation and its MQTT driver together and run them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from twin.embedded_broker import embedded_broker
from twin.mqtt_endpoint import MqttEndpoint
from twin.sim.driver import SimDriver
from twin.sim.fleet import PumpSpec, generate_fleet
from twin.sim.fleet_file import load_fleet_file
from twin.sim.simulation import FleetSimulation

WALL_TELEMETRY_INTERVAL_S: Final = 10.0
"""Default telemetry interval in wall-clock seconds: each pump samples every 10 s of real time,
whatever the speed (so 60x samples every 10 simulated minutes)."""

FLAT_OUT_TELEMETRY_INTERVAL_S: Final = 600.0
"""Default simulated interval when running as fast as possible (backfill): 10 minutes."""


@dataclass(frozen=True)
class SimPlan:
    """Everything a simulator run needs, decided before anything starts."""

    specs: list[PumpSpec]
    seed: int
    epoch: datetime
    speed: float | None
    duration_s: float | None
    telemetry_every_s: float
    random_faults: bool
    clinic: bool

    @classmethod
    def build(
        cls,
        *,
        pumps: int,
        fleet_file: Path | None,
        sites: list[str] | None = None,
        seed: int,
        speed: float | None,
        duration_s: float | None,
        start: datetime | None,
        telemetry_every_s: float | None,
        random_faults: bool,
        clinic: bool,
        now: datetime | None = None,
    ) -> SimPlan:
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        fleet = load_fleet_file(fleet_file) if fleet_file else None
        if start is None and fleet is not None and fleet.start is not None:
            start = fleet.start
        if start is None:
            start = now - timedelta(seconds=duration_s) if (speed is None and duration_s) else now
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        specs = fleet.pumps if fleet is not None else generate_fleet(pumps, seed=seed, start=start, sites=sites)
        if telemetry_every_s is None:
            telemetry_every_s = FLAT_OUT_TELEMETRY_INTERVAL_S if speed is None else WALL_TELEMETRY_INTERVAL_S * speed
        return cls(specs, seed, start, speed, duration_s, telemetry_every_s, random_faults, clinic)

    def simulation(self) -> FleetSimulation:
        return FleetSimulation(
            self.specs,
            epoch=self.epoch,
            seed=self.seed,
            sink=lambda device, outgoing, t: None,  # replaced by the driver
            telemetry_interval_s=self.telemetry_every_s,
            clinic_refills=self.clinic,
            random_faults=self.random_faults,
        )


@contextlib.asynccontextmanager
async def broker_endpoint(endpoint: MqttEndpoint | None, console: Console) -> AsyncIterator[MqttEndpoint]:
    """The given broker, or an embedded one for as long as the block runs."""
    if endpoint is not None:
        yield endpoint
        return
    async with embedded_broker() as url:
        console.print(f"[bold]embedded MQTT broker[/] at {url} (pass --mqtt to use your own)")
        yield MqttEndpoint.parse(url)


async def run_simulator(plan: SimPlan, endpoint: MqttEndpoint | None, console: Console | None = None) -> SimDriver:
    console = console or Console(stderr=True)
    async with broker_endpoint(endpoint, console) as endpoint:
        sim = plan.simulation()
        driver = SimDriver(sim, endpoint, speed=plan.speed, end_s=plan.duration_s)
        speed_text = "as fast as possible" if plan.speed is None else f"{plan.speed:g}x"
        console.print(
            f"simulating {len(plan.specs)} pumps at {len({s.site for s in plan.specs})} sites, {speed_text}, "
            f"from {plan.epoch.isoformat()}, telemetry every {plan.telemetry_every_s:g} s (simulated), "
            f"publishing to {endpoint.url}"
        )
        if plan.duration_s:
            await _run_with_progress(driver, plan.duration_s, console)
        else:
            await _run_with_status(driver, console)
        stats = driver.stats
        console.print(
            f"published {sum(stats.published.values())} messages {dict(stats.published)}; "
            f"telemetry shed {stats.telemetry_shed}; refills by the clinic {sim.refills_done}"
        )
        return driver


def simulated_span(seconds: float) -> str:
    """Simulated time for a progress line, at most two units: ``1d 02h``, ``2h 05m``, ``45m``, ``30s``."""
    left = max(0, round(seconds))
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def simulated_progress(console: Console) -> Progress:
    """A progress bar over simulated *seconds* (tasks get ``total`` in seconds), written as
    "2h 05m of 1d 00h simulated": right for a one-hour run and for a year (a count of whole days
    read "0/0" for anything under a day)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[simulated]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def simulated_text(done_s: float, total_s: float) -> str:
    return f"{simulated_span(min(done_s, total_s))} of {simulated_span(total_s)} simulated"


async def _run_with_progress(driver: SimDriver, duration_s: float, console: Console) -> None:
    with simulated_progress(console) as progress:
        task = progress.add_task("simulating", total=duration_s, simulated=simulated_text(0.0, duration_s))

        def update(sim_now: float) -> None:
            done = min(sim_now, duration_s)
            progress.update(task, completed=done, simulated=simulated_text(done, duration_s))

        await driver.run(on_progress=update)
        progress.update(
            task, description="published", completed=duration_s, simulated=simulated_text(duration_s, duration_s)
        )


async def _run_with_status(driver: SimDriver, console: Console) -> None:
    async def report() -> None:
        while True:
            await asyncio.sleep(10)
            stats = driver.stats
            console.print(
                f"sim time {driver.sim.at(driver.sim.now).isoformat()}  "
                f"published {sum(stats.published.values())}  backlog {driver.backlog}  "
                f"lag p99 {stats.lag_percentile(0.99):.2f} s"
            )

    reporter = asyncio.create_task(report())
    try:
        await driver.run()
    finally:
        reporter.cancel()
