"""The composition root of ``pumptwin sim``: a fleet's simulation (:class:`~twin.sim.plan.SimPlan`),
its MQTT driver and a broker (the given one, or an embedded one), run with a progress line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from rich.console import Console

from twin.app.progress import simulated_progress, simulated_text
from twin.embedded_broker import embedded_broker
from twin.mqtt_endpoint import MqttEndpoint
from twin.sim.driver import SimDriver
from twin.sim.plan import SimPlan


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
