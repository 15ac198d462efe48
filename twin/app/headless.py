"""Headless: a simulated fleet wired straight into a twin service, in one process, without a broker.

For runs that must be fast and deterministic rather than networked: fault scenarios played as a
regression suite (``pumptwin scenario run``), backfilling months of history into InfluxDB, tests.
Every message a pump publishes goes through the same encoding and validation the broker path uses
(:meth:`TwinService.ingest` on the encoded payload, in the batches the broker path would make),
and every command the twin sends (a refill, a fault, a rebirth) goes back to the simulated pump
exactly as over MQTT.

The twin's clock is the simulation's clock (device time), so alarm times, time to acknowledge and
time-series timestamps all line up with the simulated history.

:class:`HeadlessStage` owns the simulation clock (a :class:`twin.scenarios.runner.Stage`): it runs
the simulation in slices up to the next cue, tick or end, feeds the twin what the pumps published,
and routes the twin's commands back, so a cue lands exactly on its simulated second.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from twin.contract.codec import decode_command, encode
from twin.contract.topics import build_topic, parse_topic
from twin.mirror.fleet import FleetConfig
from twin.scenarios.evaluation import ScenarioReport
from twin.scenarios.fleet import resolve_fleet, scenario_simulation
from twin.scenarios.model import Scenario
from twin.scenarios.runner import Handler, ScenarioRun
from twin.scenarios.timeline import expand
from twin.service.twin_service import PointSink, QueueOutbox, Received, TwinService
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.simulation import FleetSimulation
from twin.store.local import LocalJournalStore

PROGRESS_SLICES: Final = 200
"""A headless run reports progress (and, when paced, sleeps) this many times over its duration."""


@dataclass(order=True, slots=True)
class _Due:
    at_s: float
    order: int
    handler: Handler


class HeadlessStage:
    """The simulation ``sim`` feeding ``service`` directly; :meth:`run` advances both."""

    def __init__(self, sim: FleetSimulation, service: TwinService, *, tick_every_s: float = 300.0) -> None:
        self.sim_ = sim
        self.service = service
        self.tick_every_s = tick_every_s
        outbox = service.outbox
        if not isinstance(outbox, QueueOutbox):
            raise TypeError("a headless twin routes its commands from a QueueOutbox")
        self.outbox = outbox
        self._received: list[Received] = []
        self._due: list[_Due] = []
        self._order = itertools.count()
        self._last_tick = sim.now
        sim.sink = self._publish

    @property
    def sim(self) -> FleetSimulation:
        return self.sim_

    def now(self) -> datetime:
        return self.sim_.epoch + timedelta(seconds=self.sim_.now)

    def _publish(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        topic = build_topic(device.identity.site, device.device_id, outgoing.channel)
        self._received.append(
            Received(topic, encode(outgoing.message), self.sim_.epoch + timedelta(seconds=t), outgoing.qos)
        )

    # ----------------------------------------------------------------------------------- Stage

    def at(self, sim_s: float, handler: Handler) -> None:
        heapq.heappush(self._due, _Due(sim_s, next(self._order), handler))

    async def delivered(self, command_ids: Sequence[str]) -> None:
        await self.settle()

    # --------------------------------------------------------------------------------- running

    async def settle(self) -> None:
        """Feed the twin what the pumps published and route what the twin sent back, until quiet."""
        while self._received or self.outbox.queue:
            if self._received:
                batch, self._received = self._received, []
                await self.service.ingest(batch)
            while self.outbox.queue:
                out = self.outbox.queue.popleft()
                address = parse_topic(out.topic)
                self.sim_.command(address.device_id, decode_command(address, out.payload))

    async def open_sessions(self, session: int = 1) -> None:
        self.sim_.open_sessions(session)
        await self.settle()

    async def run(self, until_s: float) -> None:
        """Advance to simulation second ``until_s``, playing what is due, ticking the twin and
        routing its commands on the way."""
        sim = self.sim_
        while True:
            next_due = self._due[0].at_s if self._due else float("inf")
            next_tick = self._last_tick + self.tick_every_s
            target = min(until_s, next_due, next_tick)
            if target > sim.now:
                sim.run(target)
            await self.settle()
            while self._due and self._due[0].at_s <= sim.now:
                await heapq.heappop(self._due).handler()
                await self.settle()
            if sim.now - self._last_tick >= self.tick_every_s or sim.now >= until_s:
                await self.service.tick(self.now())
                self._last_tick = sim.now
                await self.settle()
            if sim.now >= until_s and not (self._due and self._due[0].at_s <= sim.now):
                return


def headless_service(
    *,
    path: Path | None = None,
    points: PointSink | None = None,
    clock: Callable[[], datetime],
    config: FleetConfig | None = None,
) -> TwinService:
    """A twin service for a headless run: its journal in ``path`` (None: in memory), its clock the
    simulation's (so simulated time thresholds run on ``now`` directly)."""
    return TwinService(
        LocalJournalStore(path),
        points=points,
        config=config or FleetConfig(twin_clock_is_device_clock=True),
        clock=clock,
        outbox=QueueOutbox(),
    )


class HeadlessRun:
    """A headless scenario run's parts (fleet, simulation, twin, run); the twin's journal is in
    memory. Raises :class:`~twin.scenarios.model.ScenarioInvalid` for a scenario whose meaning is
    wrong."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, abort_conditions: bool = True) -> None:
        self.scenario = scenario
        self.fleet = resolve_fleet(scenario, seed=seed)
        self.timeline = expand(scenario, self.fleet.members, self.fleet.epoch)
        telemetry_s = scenario.telemetry_every.total_seconds()
        self.sim = scenario_simulation(scenario, self.fleet)  # its sink: the stage's
        epoch = self.fleet.epoch
        self.service = headless_service(clock=lambda: epoch + timedelta(seconds=self.sim.now))
        # the twin re-evaluates its alerts on every report; its tick adds silence and expiries
        self.stage = HeadlessStage(self.sim, self.service, tick_every_s=telemetry_s)
        self.run = ScenarioRun(
            "headless",
            scenario,
            self.timeline,
            stage=self.stage,
            service=self.service,
            mode="headless",
            seed=self.fleet.seed,
            started_by="headless",
            transition_time=lambda t: (t.at - epoch).total_seconds(),
            abort_conditions=abort_conditions,
        )

    async def play(
        self, *, speed: float | None = None, on_progress: Callable[[float, float], None] | None = None
    ) -> ScenarioReport:
        """Run to the end (or the abort); ``speed`` paces it at that many times real time (default:
        as fast as possible); ``on_progress(elapsed_s, duration_s)`` is called a few hundred times."""
        run, sim = self.run, self.sim
        await self.service.restore()
        run.begin()
        await self.stage.open_sessions(1)
        end = self.timeline.duration_s
        slice_s = max(end / PROGRESS_SLICES, self.scenario.telemetry_every.total_seconds())
        wall_start = time.monotonic()
        while not run.status.final and sim.now < end:
            await self.stage.run(min(end, sim.now + slice_s))
            if on_progress is not None:
                on_progress(min(sim.now, end), end)
            if speed is not None:
                lag = wall_start + sim.now / speed - time.monotonic()
                if lag > 0:
                    await asyncio.sleep(lag)
        if not run.status.final:
            await self.stage.run(end)  # what is due exactly at the end (the timeline's completion)
        return run.report()

    async def close(self) -> None:
        await self.service.store.close()


async def play_headless(
    scenario: Scenario,
    *,
    seed: int | None = None,
    speed: float | None = None,
    abort_conditions: bool = True,
    on_progress: Callable[[float, float], None] | None = None,
) -> ScenarioReport:
    """Play ``scenario`` against its own fleet, simulation and twin in this process and return the
    final report (see :class:`HeadlessRun`). ``seed`` replaces the scenario's seed."""
    headless = HeadlessRun(scenario, seed=seed, abort_conditions=abort_conditions)
    try:
        return await headless.play(speed=speed, on_progress=on_progress)
    finally:
        await headless.close()


def run_headless(
    scenario: Scenario,
    *,
    seed: int | None = None,
    speed: float | None = None,
    abort_conditions: bool = True,
    on_progress: Callable[[float, float], None] | None = None,
) -> ScenarioReport:
    """:func:`play_headless` in a fresh event loop (for the CLI and synchronous callers)."""
    return asyncio.run(
        play_headless(scenario, seed=seed, speed=speed, abort_conditions=abort_conditions, on_progress=on_progress)
    )
