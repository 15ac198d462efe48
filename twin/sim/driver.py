"""The simulator's shell: steps the SimPy fleet against the wall clock and speaks MQTT.

* **Clock.** Simulation time follows the wall clock times a speed factor (1x for training, 60x,
  3600x, ...) or runs as fast as possible (``speed=None``). The driver runs the SimPy
  environment up to "now" in slices and sleeps until the next event is due; it never blocks the
  event loop (SimPy's ``RealtimeEnvironment`` would). It can be paused and resumed.
* **Links.** One MQTT connection per device, so each device has its own last will (status
  offline, retained, QoS 1) carrying the session it opens. On every (re)connection the link
  first publishes what is still queued from before (in order), then opens a new session: birth,
  full state, status online. It subscribes to its ``cmd`` topic with a persistent session, so the
  broker keeps commands for it while it is away; the device answers repeats idempotently.
* **Stage for scenarios.** A live scenario run hands the driver its cues (:meth:`SimDriver.at`):
  the clock stops exactly at a cue's simulated second, the cue is played (its commands go through
  the twin and back over MQTT, and :meth:`SimDriver.delivered` applies them as they arrive, at
  that second), and only then does the clock go on, re-anchored so that it does not jump. So a
  fault lands at the same simulated second as in the headless run of the same scenario.
* **Site clocks.** The driver publishes the simulation's clock per site
  (``pumptwin/v1/{site}/clock``, retained: time, speed, 0 when paused) on start, pause, resume,
  a change of speed and every :data:`CLOCK_EVERY_S`: the twin runs a simulated pump's time
  thresholds on it, so a pump silent for six simulated hours is silent after 36 s at 600x, and
  nothing looks silent while an instructor pauses the session.
* **Nothing lost.** A message leaves a link's queue only after the broker acknowledged it (QoS 1)
  or accepted it (QoS 0). Alarms, state and command results are never dropped, across any number
  of broker outages. Telemetry is the only thing shed, and only in real-time mode when a device's
  backlog exceeds :data:`TELEMETRY_BACKLOG` (a stale sample is worth less than a fresh one); every
  shed sample is counted. As fast as possible, the clock waits for the links instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import aiomqtt

from twin.contract.codec import ContractError, decode_command, encode
from twin.contract.messages import Command, SimClock
from twin.contract.topics import Channel, build_topic, parse_topic, site_topic
from twin.mqtt_endpoint import NO_DELAY, MqttEndpoint
from twin.service.mqtt_link import raise_if_cancelling
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.simulation import FleetSimulation

log = logging.getLogger(__name__)

TELEMETRY_BACKLOG: Final = 30
"""Telemetry samples a device may have waiting in real-time mode before the oldest is shed
(5 minutes of samples at the default 10 s interval)."""

HIGH_WATER: Final = 20_000
"""Messages waiting across all links at which an as-fast-as-possible run pauses the clock."""

LOW_WATER: Final = 5_000
"""...and the backlog under which it resumes."""

EVENTS_PER_SLICE: Final = 2_000
"""SimPy events run between yields to the event loop when running as fast as possible."""

RECONNECT_DELAYS_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Back-off between reconnection attempts; the last value repeats."""

MAX_SLEEP_S: Final = 0.5
"""Longest the real-time clock sleeps before re-checking the wall clock (keeps pause/stop prompt)."""

CLOCK_EVERY_S: Final = 1.0
"""Wall seconds between two site-clock messages while the clock runs (a retained message per site:
a twin that joins late, or restarts, knows the simulation's time at once)."""

DELIVERY_TIMEOUT_S: Final = 10.0
"""Longest a cue waits for its commands to come back from the twin over MQTT before the clock goes
on anyway (logged): a twin that refuses or is away must not freeze the simulation."""


@dataclass
class DriverStats:
    """What the driver did; read by the CLI, the benchmarks and the tests."""

    published: Counter[str] = field(default_factory=Counter)
    telemetry_shed: int = 0
    connections: int = 0
    connection_losses: int = 0
    commands_received: int = 0
    commands_undecodable: int = 0
    lag_s: list[float] = field(default_factory=list)  # publish wall time - due wall time, telemetry only
    lag_due_s: list[float] = field(default_factory=list)  # when each of those was due, seconds after the start

    def lag_percentile(self, q: float, *, after_s: float = 0.0) -> float:
        """The ``q`` quantile of telemetry lag, over samples due ``after_s`` or later after the clock started."""
        lags = [lag for lag, due in zip(self.lag_s, self.lag_due_s, strict=True) if due >= after_s]
        if not lags:
            return 0.0
        ordered = sorted(lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class _Queued:
    outgoing: Outgoing
    due_wall: float


class DeviceLink:
    """One device's MQTT connection and outbound queue."""

    def __init__(self, driver: SimDriver, device: SimulatedDevice, site: str) -> None:
        self.driver = driver
        self.device = device
        self.site = site
        self.outbox: deque[_Queued] = deque()
        self._telemetry_waiting = 0
        self._pending = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.connected = asyncio.Event()
        self.sessions_opened = 0

    def enqueue(self, outgoing: Outgoing, due_wall: float) -> None:
        is_telemetry = outgoing.channel is Channel.TELEMETRY
        if is_telemetry and self.driver.sheds_telemetry and self._telemetry_waiting >= TELEMETRY_BACKLOG:
            for i, queued in enumerate(self.outbox):
                if queued.outgoing.channel is Channel.TELEMETRY:
                    del self.outbox[i]
                    self._telemetry_waiting -= 1
                    self.driver.stats.telemetry_shed += 1
                    break
        self.outbox.append(_Queued(outgoing, due_wall))
        self._empty.clear()
        if is_telemetry:
            self._telemetry_waiting += 1
        self.driver.backlog += 1
        self._pending.set()

    async def run(self, stop: asyncio.Event) -> None:
        endpoint = self.driver.endpoint
        ident = self.device.identity
        attempt = 0
        while not stop.is_set():
            return_now = False
            lost: BaseException | None = None
            session = self.driver.next_session(self.device)
            will = self.device.will(session, self.driver.sim.now)
            try:
                async with aiomqtt.Client(
                    endpoint.host,
                    endpoint.port,
                    username=endpoint.username,
                    password=endpoint.password,
                    identifier=f"pumptwin-sim-{ident.site}-{ident.device_id}",
                    clean_session=False,
                    keepalive=30,
                    will=aiomqtt.Will(
                        build_topic(self.site, ident.device_id, Channel.STATUS), encode(will), qos=1, retain=True
                    ),
                    tls_context=endpoint.tls_context(),
                    timeout=10,
                    socket_options=NO_DELAY,
                ) as client:
                    attempt = 0
                    self.driver.stats.connections += 1
                    await client.subscribe(build_topic(self.site, ident.device_id, Channel.CMD), qos=1)
                    # what was queued before this connection goes first, then the new session opens
                    self.driver.open_session(self, session)
                    self.sessions_opened += 1
                    self.connected.set()
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(self._publish(client, stop), name=f"publish-{ident.device_id}")
                        tasks.create_task(self._receive(client), name=f"receive-{ident.device_id}")
                        tasks.create_task(self._stop_when(stop, client), name=f"stop-{ident.device_id}")
            except* aiomqtt.MqttError as group:
                self.connected.clear()
                lost = group.exceptions[0]
            except* _Stopped:
                self.connected.clear()
                return_now = True
            else:
                lost = None
            if stop.is_set() or return_now:
                return
            self.driver.stats.connection_losses += 1
            log.debug("device %s lost the broker: %s", ident.device_id, lost)
            await asyncio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
            attempt += 1

    async def _stop_when(self, stop: asyncio.Event, client: aiomqtt.Client) -> None:
        await stop.wait()
        await self.drain(timeout_s=10.0)
        status = self.device.close_session(self.driver.sim.now)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                build_topic(self.site, self.device.device_id, Channel.STATUS),
                encode(status.message),
                qos=1,
                retain=True,
            )
        raise _Stopped

    async def drain(self, timeout_s: float) -> None:
        """Wait until the outbox is empty (or ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._empty.wait()

    async def _publish(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        ident = self.device.identity
        while True:
            if not self.outbox:
                self._empty.set()
                self._pending.clear()
                await self._pending.wait()
                continue
            queued = self.outbox[0]
            out = queued.outgoing
            await client.publish(
                build_topic(self.site, ident.device_id, out.channel),
                encode(out.message),
                qos=out.qos,
                retain=out.retain,
            )
            # acknowledged (QoS 1) or handed to the socket (QoS 0): only now does it leave the queue
            self.outbox.popleft()
            raise_if_cancelling()
            if not self.outbox:
                self._empty.set()
            self.driver.backlog -= 1
            self.driver.stats.published[out.channel.value] += 1
            if out.channel is Channel.TELEMETRY:
                self._telemetry_waiting -= 1
                if self.driver.speed is not None:
                    self.driver.stats.lag_s.append(max(0.0, time.monotonic() - queued.due_wall))
                    self.driver.stats.lag_due_s.append(queued.due_wall - self.driver.started_wall)
            if self.driver.backlog < LOW_WATER:
                self.driver.backlog_ok.set()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                command = decode_command(parse_topic(str(message.topic)), payload)
            except (ContractError, ValueError) as exc:
                self.driver.stats.commands_undecodable += 1
                log.warning("device %s ignored an undecodable command: %s", self.device.device_id, exc)
                continue
            self.driver.stats.commands_received += 1
            self.driver.submit(self.device.device_id, command)


class _Stopped(Exception):
    """Raised inside a link's task group to end it after a clean shutdown."""


class SimDriver:
    """Runs a :class:`FleetSimulation` in real time (or faster) and publishes it over MQTT."""

    def __init__(
        self,
        sim: FleetSimulation,
        endpoint: MqttEndpoint,
        *,
        speed: float | None,
        end_s: float | None = None,
        session_base: int | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")
        self.sim = sim
        self.endpoint = endpoint
        self.speed = speed
        self.end_s = end_s
        self.stats = DriverStats()
        self.backlog = 0
        self.backlog_ok = asyncio.Event()
        self.backlog_ok.set()
        self.links = {dev_id: DeviceLink(self, dev, sim.sites[dev_id]) for dev_id, dev in sim.devices.items()}
        self._session_base = session_base if session_base is not None else int(time.time())
        self._commands: deque[tuple[str, Command]] = deque()
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._paused = False
        self._anchor_wall = time.monotonic()
        self._anchor_sim = sim.now
        self.finished = asyncio.Event()
        self.started_wall = time.monotonic()
        self._due: list[tuple[float, int, Callable[[], Awaitable[None]]]] = []
        self._order = itertools.count()
        self._applied: set[str] = set()
        self._clock_changed = asyncio.Event()
        self._clock_seq = 0
        self._run_id = f"run-{uuid.uuid4().hex[:12]}"
        self._holding = False
        sim.sink = self._sink

    # ---------------------------------------------------------------------------- plumbing

    @property
    def sheds_telemetry(self) -> bool:
        return self.speed is not None

    def _due_wall(self, t: float) -> float:
        if self.speed is None:
            return time.monotonic()
        return self._anchor_wall + (t - self._anchor_sim) / self.speed

    def _sink(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        self.links[device.device_id].enqueue(outgoing, self._due_wall(t))

    def next_session(self, device: SimulatedDevice) -> int:
        return max(device.session + 1, self._session_base)

    def open_session(self, link: DeviceLink, session: int) -> None:
        self.sim.open_session(link.device.device_id, session)

    def submit(self, device_id: str, command: Command) -> None:
        """Queue a command received from the broker; the clock loop applies it at the current time."""
        self._commands.append((device_id, command))
        self._wakeup.set()

    def _apply_commands(self) -> None:
        while self._commands:
            device_id, command = self._commands.popleft()
            self.sim.command(device_id, command)
            self._applied.add(command.command_id)

    # --------------------------------------------------------------------------------- stage

    def at(self, sim_s: float, handler: Callable[[], Awaitable[None]]) -> None:
        """Call ``handler`` when the simulation reaches ``sim_s``; the clock stands still until it returns."""
        heapq.heappush(self._due, (sim_s, next(self._order), handler))
        self._wakeup.set()

    async def delivered(self, command_ids: Sequence[str]) -> None:
        """Apply commands as they arrive from the broker until these have been (at the current
        simulated time: the clock is held), or :data:`DELIVERY_TIMEOUT_S` passed (logged)."""
        waiting = set(command_ids) - self._applied
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                while waiting:
                    self._apply_commands()
                    waiting -= self._applied
                    if waiting:
                        self._wakeup.clear()
                        await self._wakeup.wait()
        except TimeoutError:
            log.warning("commands %s did not come back from the twin within %g s", sorted(waiting), DELIVERY_TIMEOUT_S)
        self._applied.difference_update(command_ids)

    def _next_due(self) -> float:
        return self._due[0][0] if self._due else float("inf")

    async def _play_due(self) -> None:
        """Play every handler due by now, holding the clock, then re-anchor it."""
        if not self._due or self._due[0][0] > self.sim.now:
            return
        self._holding = True
        self._clock_changed.set()
        try:
            while self._due and self._due[0][0] <= self.sim.now:
                _, _, handler = heapq.heappop(self._due)
                await handler()
                self._apply_commands()
        finally:
            self._holding = False
            self._anchor_wall = time.monotonic()
            self._anchor_sim = self.sim.now
            self._clock_changed.set()

    # --------------------------------------------------------------------------------- clock

    def clock_message(self, site: str) -> SimClock:
        """The clock of ``site`` as it stands (speed 0 while paused or holding for a cue)."""
        moving = self.speed is not None and not self._paused and not self._holding
        now = self.sim.now  # what has been simulated (and published): never ahead of the pumps' messages
        self._clock_seq += 1
        return SimClock(
            site=site,
            sim_time=self.sim.at(now),
            speed=(self.speed if moving else 0.0) if self.speed is not None else None,
            seq=self._clock_seq,
            run=self._run_id,
        )

    async def _publish_clocks(self, stop: asyncio.Event) -> None:
        """One connection for the whole simulation: every site's clock, retained."""
        endpoint = self.endpoint
        sites = sorted(set(self.sim.sites.values()))
        attempt = 0
        while not stop.is_set():
            try:
                async with aiomqtt.Client(
                    endpoint.host,
                    endpoint.port,
                    username=endpoint.username,
                    password=endpoint.password,
                    identifier=f"pumptwin-sim-clock-{self._run_id}",
                    keepalive=30,
                    tls_context=endpoint.tls_context(),
                    timeout=10,
                    socket_options=NO_DELAY,
                ) as client:
                    attempt = 0
                    while not stop.is_set():
                        for site in sites:
                            message = self.clock_message(site)
                            await client.publish(site_topic(site), encode(message), qos=1, retain=True)
                        self._clock_changed.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(CLOCK_EVERY_S):
                                await self._clock_changed.wait()
                    for site in sites:  # the simulation is over: its clock stands still
                        self._holding = True
                        await client.publish(site_topic(site), encode(self.clock_message(site)), qos=1, retain=True)
                    return
            except aiomqtt.MqttError as exc:
                log.debug("the simulation clock lost the broker: %s", exc)
                await asyncio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
                attempt += 1

    def sim_target(self) -> float:
        """Simulation time the wall clock says it is now."""
        if self.speed is None or self._paused:
            return self.sim.now
        return self._anchor_sim + (time.monotonic() - self._anchor_wall) * self.speed

    def pause(self) -> None:
        if not self._paused:
            self._anchor_sim = self.sim_target()
            self._paused = True
            self._wakeup.set()
            self._clock_changed.set()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._anchor_wall = time.monotonic()
            self._anchor_sim = self.sim.now
            self._wakeup.set()
            self._clock_changed.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def set_speed(self, speed: float) -> None:
        """Run at ``speed`` x real time from now on; the clock re-anchors, so simulation time does
        not jump. Raises ``ValueError`` for a speed that is not positive or for a driver running as
        fast as possible (its loop has no wall clock to follow)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        if self.speed is None:
            raise ValueError("a driver running as fast as possible cannot change to a speed")
        self._anchor_sim = self.sim_target()
        self._anchor_wall = time.monotonic()
        self.speed = speed
        self._wakeup.set()
        self._clock_changed.set()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()

    # ------------------------------------------------------------------------------- running

    async def wait_connected(self, timeout_s: float = 30.0) -> bool:
        """Wait until every link has connected once; False if some had not within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                for link in self.links.values():
                    await link.connected.wait()
        except TimeoutError:
            return False
        return True

    async def run(self, on_progress: Callable[[float], None] | None = None) -> None:
        """Connect every device, run the clock until ``end_s`` (or :meth:`stop`), drain, disconnect."""
        async with asyncio.TaskGroup() as tasks:
            for link in self.links.values():
                tasks.create_task(link.run(self._stop), name=f"link-{link.device.device_id}")
            tasks.create_task(self._publish_clocks(self._stop), name="sim-clock")
            if not await self.wait_connected():
                log.warning("not every device reached the broker within 30 s; running anyway")
            self._anchor_wall, self._anchor_sim = time.monotonic(), self.sim.now
            self.started_wall = self._anchor_wall
            try:
                if self.speed is None:
                    await self._run_flat_out(on_progress)
                else:
                    await self._run_real_time(on_progress)
            finally:
                self.finished.set()
                self._stop.set()

    async def _run_real_time(self, on_progress: Callable[[float], None] | None) -> None:
        assert self.speed is not None
        end = self.end_s
        while not self._stop.is_set():
            target = min(self.sim_target(), self._next_due())
            if end is not None:
                target = min(target, end)
            if target > self.sim.now:
                self.sim.run(target)
            self._apply_commands()
            await self._play_due()
            if on_progress:
                on_progress(self.sim.now)
            if end is not None and self.sim.now >= end:
                return
            self._wakeup.clear()
            if self._paused:
                await self._wakeup.wait()
                continue
            nxt = min(self.sim.peek(), self._next_due())
            if end is not None:
                nxt = min(nxt, end)
            wait = (nxt - self.sim_target()) / self.speed
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wait, MAX_SLEEP_S)):
                        await self._wakeup.wait()
            else:
                await asyncio.sleep(0)  # an event is due: run it next turn, but let the links publish first

    async def _run_flat_out(self, on_progress: Callable[[float], None] | None) -> None:
        env = self.sim.env
        end = self.end_s if self.end_s is not None else float("inf")
        while not self._stop.is_set():
            self._apply_commands()
            await self._play_due()
            due = self._next_due()
            stepped = 0
            while stepped < EVENTS_PER_SLICE:
                nxt = env.peek()
                if nxt > end or nxt == float("inf") or nxt > due:
                    break
                env.step()
                stepped += 1
            if stepped == EVENTS_PER_SLICE:  # more to run: let the links publish first
                if on_progress:
                    on_progress(self.sim.now)
                await self._yield_to_links()
                continue
            if due <= end and due != float("inf"):  # a cue comes before the next event: stop there
                self.sim.run(due)
                continue
            # nothing left before the end: finish exactly at the end
            if end != float("inf"):
                self.sim.run(end)
            if on_progress:
                on_progress(self.sim.now)
            break
        for link in self.links.values():
            await link.drain(timeout_s=600.0)

    async def _yield_to_links(self) -> None:
        if self.backlog >= HIGH_WATER:
            self.backlog_ok.clear()
            await self.backlog_ok.wait()
        else:
            await asyncio.sleep(0)
