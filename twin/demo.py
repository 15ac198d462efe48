"""``pumptwin demo``: the whole product on an embedded default, with nothing to install.

An embedded MQTT broker, a simulated fleet running faster than real time, and a live view of
what the pumps publish. It grows with the product: every part that lands joins it here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from rich.console import Console

from twin.embedded_broker import embedded_broker
from twin.mqtt_endpoint import MqttEndpoint
from twin.sim.driver import SimDriver
from twin.sim.runner import SimPlan
from twin.sim.watch import watch


async def run_demo(*, pumps: int, speed: float | None, seed: int, duration_s: float | None) -> None:
    console = Console()
    async with embedded_broker() as url:
        endpoint = MqttEndpoint.parse(url)
        plan = SimPlan.build(
            pumps=pumps,
            fleet_file=None,
            seed=seed,
            speed=speed,
            duration_s=duration_s,
            start=None,
            telemetry_every_s=None,
            random_faults=True,
            clinic=True,
        )
        sim = plan.simulation()
        driver = SimDriver(sim, endpoint, speed=plan.speed, end_s=plan.duration_s)
        console.rule("[bold]PumpTwin demo")
        console.print(f"embedded MQTT broker: {url}")
        console.print(
            f"{len(plan.specs)} simulated pumps, {'as fast as possible' if speed is None else f'{speed:g}x real time'}; "
            "Ctrl-C to stop\n"
        )
        counts: Counter[str] = Counter()
        watcher = asyncio.create_task(watch(endpoint, console.print, counts=counts))
        await asyncio.sleep(0.5)  # let the watcher subscribe before the first births
        try:
            await driver.run()
        finally:
            await asyncio.sleep(0.5)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            console.print(f"\nmessages seen: {dict(counts)}")
