"""A live twin with a simulated fleet and the scenario runner in one process, as ``pumptwin demo``
runs them, on a real Mosquitto (and, when given, a real InfluxDB): the setup every live scenario
and training test shares."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.harness.accounts import add_accounts
from tests.harness.servers import Influxd, Mosquitto
from tests.harness.waiting import until
from twin.app.serve import RunningTwin, running_twin
from twin.mqtt_endpoint import MqttEndpoint
from twin.scenarios.model import InlineFleet, Scenario
from twin.scenarios.runner import ScenarioRunner
from twin.settings import EscalationSettings, Settings
from twin.sim.driver import SimDriver
from twin.sim.simulation import FleetSimulation

EPOCH = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass
class LiveSim:
    twin: RunningTwin
    driver: SimDriver
    sim: FleetSimulation
    runner: ScenarioRunner


@contextlib.asynccontextmanager
async def live_sim(
    mosquitto: Mosquitto,
    data_dir: Path,
    scenario: Scenario,
    *,
    client_id: str,
    speed: float = 600.0,
    seed: int = 3,
    influxd: Influxd | None = None,
    database: str = "pumptwin",
    real: Sequence[str] = (),
    prepare: Callable[[], Awaitable[None]] | None = None,
    escalation: EscalationSettings | None = None,
) -> AsyncIterator[LiveSim]:
    """Simulate the pumps of ``scenario``'s inline fleet at ``speed`` (telemetry every 10
    simulated minutes, no clinic refills), run the twin (HTTP on a free port, InfluxDB at
    ``influxd`` or none) and a runner offering ``scenario``; yield once the twin mirrors every
    pump, with one account per role added. The pumps named in ``real`` are not simulated: the
    test plays them as real pumps, publishing them in ``prepare`` (awaited once the simulation
    runs). ``escalation``: the twin's escalation ladders and webhook (default: the defaults).
    Stops it all on exit."""
    assert isinstance(scenario.fleet, InlineFleet)
    sim = FleetSimulation(
        [p for p in scenario.fleet.pumps if p.device_id not in real],
        epoch=EPOCH,
        seed=seed,
        sink=lambda *_: None,
        telemetry_interval_s=600.0,
        clinic_refills=False,
    )
    endpoint = MqttEndpoint.parse(mosquitto.url)
    driver = SimDriver(sim, endpoint, speed=speed)
    runner = ScenarioRunner({scenario.name: scenario})
    settings = Settings()
    settings.data_dir = data_dir
    settings.http.port = 0
    settings.influx.url = influxd.url if influxd is not None else None
    settings.influx.database = database
    settings.influx.flush_interval_s = 0.2
    if escalation is not None:
        settings.escalation = escalation
    async with running_twin(settings, endpoint, client_id=client_id, scenarios=runner) as twin:
        async with asyncio.timeout(10):
            await twin.mqtt_connected.wait()
        runner.attach(twin.service, driver)
        driving = asyncio.create_task(driver.run())
        try:
            if prepare is not None:
                await prepare()
            everyone = [*sim.devices, *real]
            await until(
                lambda: all((t := twin.service.twin_of(d)) is not None and t.reported is not None for d in everyone),
                what="the twin mirrors every pump",
            )
            assert twin.users is not None
            add_accounts(twin.users)
            yield LiveSim(twin, driver, sim, runner)
        finally:
            driver.stop()
            await driving
