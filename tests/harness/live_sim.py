"""A live twin and the scenario runner in one process, as ``pumptwin demo`` runs them, on a real
Mosquitto (and, when given, a real InfluxDB): the setup every live scenario and training test
shares. Each run owns its pumps (its own simulation and driver), as in the demo."""

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
from twin.scenarios.model import Scenario
from twin.scenarios.runner import ScenarioRun, ScenarioRunner
from twin.settings import EscalationSettings, Settings
from twin.sim.driver import SimDriver
from twin.sim.simulation import FleetSimulation

EPOCH = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass
class LiveSim:
    twin: RunningTwin
    runner: ScenarioRunner
    endpoint: MqttEndpoint

    def driver(self, run: ScenarioRun | str) -> SimDriver:
        """The simulation driver a live run owns."""
        stage = self.runner.stage_of(self.runner.get(run) if isinstance(run, str) else run)
        assert isinstance(stage, SimDriver)
        return stage

    def sim(self, run: ScenarioRun | str) -> FleetSimulation:
        return self.driver(run).sim

    async def begun(self, run: ScenarioRun | str) -> ScenarioRun:
        """Wait until ``run``'s timeline has begun (the twin mirrors its pumps)."""
        found = self.runner.get(run) if isinstance(run, str) else run
        await until(lambda: found._began or found.status.final, what=f"run {found.run_id} begins")
        return found


@contextlib.asynccontextmanager
async def live_sim(
    mosquitto: Mosquitto,
    data_dir: Path,
    scenario: Scenario | Sequence[Scenario],
    *,
    client_id: str,
    influxd: Influxd | None = None,
    database: str = "pumptwin",
    prepare: Callable[[], Awaitable[None]] | None = None,
    escalation: EscalationSettings | None = None,
    max_live_runs: int | None = None,
) -> AsyncIterator[LiveSim]:
    """Run the twin (HTTP on a free port, InfluxDB at ``influxd`` or none) with a runner offering
    ``scenario`` (or several), attached as ``pumptwin demo`` attaches it: each run gets its own
    :class:`SimDriver` on ``mosquitto``. ``prepare`` is awaited once the twin is connected (a
    test publishes its real pumps there). Yields with one account per role added. Stops it all
    on exit (every run's simulation too)."""
    scenarios = [scenario] if isinstance(scenario, Scenario) else list(scenario)
    endpoint = MqttEndpoint.parse(mosquitto.url)
    runner = ScenarioRunner(
        {s.name: s for s in scenarios}, **({"max_live_runs": max_live_runs} if max_live_runs else {})
    )
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
        runner.attach(twin.service, lambda sim, speed: SimDriver(sim, endpoint, speed=speed, session_base=1))
        try:
            if prepare is not None:
                await prepare()
            assert twin.users is not None
            add_accounts(twin.users)
            yield LiveSim(twin, runner, endpoint)
        finally:
            await runner.close()
