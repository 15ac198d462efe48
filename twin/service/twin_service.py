"""The twin service: the imperative shell around the pure fleet step (:mod:`twin.mirror.fleet`).

One :class:`TwinService` holds the fleet (an immutable value), and every change goes the same
way, under one lock so that changes are serialised in the order the twin decides them:

1. the pure step makes a new fleet and its effects (:mod:`twin.mirror.effects`): for a run of
   MQTT messages (:meth:`TwinService.ingest`), a clock tick (:meth:`TwinService.tick`), or a staff
   action (:meth:`alarm_action`, :meth:`send_command`, :meth:`respond`);
2. the durable effects go to their sinks: points into the InfluxDB spool
   (:class:`PointSink`), then the journal, alarm transitions with the device events they apply,
   command statuses, responses and snapshots in **one** transaction (:class:`JournalStore`);
3. only then is the new fleet adopted, and the rest carried out: broker messages queued
   (:class:`Outbox`), the live stream and in-process observers told (:class:`EventHub`),
   metrics counted.

If step 2 fails (the disk is full or read-only, the database is gone), nothing is adopted: the
in-memory board stays what the journal says, the caller (the MQTT link) does not acknowledge the
messages, ``/healthz`` says degraded, and the same messages are tried again until the store takes
them; the step is deterministic, so the retry makes the same transitions, and the store's
idempotent commit turns a retry of a batch that did land into a no-op. Points are written before
the journal because they are idempotent (a point written twice overwrites itself in InfluxDB);
the journal is last because it is the one that must not run ahead of the fleet.

A message whose step raises (a bug) is rejected and counted on its own: ingest goes on. A batch
the journal refuses for a reason a retry cannot cure (a conflict, a value it cannot store) is
committed message by message, and only the message that cannot be stored is rejected.

A restarted service rebuilds itself from its store (:meth:`restore`): alarms by folding the
journal, device twins from their snapshots, commands from the command log, and the device-event
marks of the last days; with the broker's persistent session (QoS 1 messages are kept for the
twin while it is down), the devices' retained births and states, and the sequence rules, no alarm
is lost or duplicated across a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, Protocol

from immutables import Map

from twin.alarms.lifecycle import Alarm, AlarmError, Transition
from twin.alarms.responses import AlarmResponse
from twin.contract.messages import Action, DeviceMessage, Telemetry
from twin.mirror import fleet as steps
from twin.mirror.alarm_board import DeviceKey, restored
from twin.mirror.alerts import PatientReport
from twin.mirror.commands import CommandRecord, CommandRefused, TrackedCommand
from twin.mirror.effects import (
    AlarmTransitions,
    CommandChanged,
    Counted,
    DeviceChanged,
    Effect,
    Publish,
    Recorded,
    Rejected,
    ResponseRecorded,
)
from twin.mirror.fleet import Fleet, FleetConfig
from twin.mirror.interrogation import Visits
from twin.service.events import AlarmTransitioned, CommandUpdated, DeviceUpdated, EventHub, ResponseMade
from twin.service.health import Health, Status
from twin.service.metrics import ServiceMetrics
from twin.store.journal import JournalConflict, JournalError
from twin.store.protocol import Batch, JournalStore, Snapshot, StoreUnavailable
from twin.store.snapshots import SnapshotEncoder, snapshot_to_twin, snapshot_visits
from twin.timeseries.lines import device_lines, telemetry_lines
from twin.timeseries.points import (
    AlarmTransitionPoint,
    CommandOutcome,
    CommandOutcomePoint,
    DeviceTags,
    alarm_transition_point,
    command_point,
)

log = logging.getLogger(__name__)

HISTORY_SAMPLES: Final = 720
"""Telemetry samples kept in memory per device for the device page (two hours at 10 s)."""


class HistorySample(NamedTuple):
    """One telemetry sample as the device page plots it: the pump's own figures only (never the
    simulator's truth). Kept as a plain tuple of atomic values in the same order (see
    :meth:`TwinService.history_of`): CPython's collector stops tracking an exact tuple of untracked
    values, not a named-tuple subclass, nor a pydantic model. Kept as models, 720 samples a device
    were ~3 tracked objects each (10,000 pumps: over 20 million), every one walked by each full
    collection (36-150 ms pauses of the event loop seen at 1,000 msg/s in
    ``benchmarks/alarm_latency.py``)."""

    device_time: datetime
    reservoir_ml: float
    current_rate_ml_per_day: float
    dose_mg_per_day: float
    battery_percent: float
    infusing: bool
    session: int
    seq: int


REJECT_LOG_EVERY: Final = 60.0
"""Seconds between summary lines for a reject reason after its first few are logged in full."""

REJECT_LOG_FIRST: Final = 5


class PointSink(Protocol):
    """Where points go before a message is acknowledged (the InfluxDB writer's spool)."""

    def persist(self, entries: Sequence[tuple[bytes, bool]]) -> None:
        """Make ``(line, sheddable)`` entries survive a crash of the process, or raise ``OSError``."""
        ...


class Outbox(Protocol):
    """Where messages for the broker go (the MQTT link, or a simulation in-process)."""

    def put(self, message: Publish) -> None: ...


class QueueOutbox:
    """An outbox that keeps messages until someone takes them (the MQTT link's publisher, or a
    headless run's router); ``wake`` tells the taker there is something to take."""

    def __init__(self) -> None:
        self.queue: deque[Publish] = deque()
        self.wake: Callable[[], None] = lambda: None

    def put(self, message: Publish) -> None:
        self.queue.append(message)
        self.wake()


@dataclass(frozen=True, slots=True)
class Received:
    """One MQTT message as the link received it: ``received_at`` is the arrival stamp."""

    topic: str
    payload: bytes
    received_at: datetime
    qos: int = 0
    mid: int = 0


class RejectLog:
    """Logs the first few rejects of each reason in full, then one summary line a minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._since_summary: dict[str, int] = {}
        self._last_summary: dict[str, float] = {}

    def note(self, reason: str, topic: str, detail: str) -> None:
        n = self._counts.get(reason, 0) + 1
        self._counts[reason] = n
        if n <= REJECT_LOG_FIRST:
            log.warning("rejected message on %s (%s): %s", topic[:200], reason, detail[:300])
            self._last_summary[reason] = self._clock()
            return
        self._since_summary[reason] = self._since_summary.get(reason, 0) + 1
        now = self._clock()
        if now - self._last_summary.get(reason, 0.0) >= REJECT_LOG_EVERY:
            log.warning(
                "%d more messages rejected (%s) in the last minute; latest on %s",
                self._since_summary[reason],
                reason,
                topic[:200],
            )
            self._since_summary[reason] = 0
            self._last_summary[reason] = now


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


class TwinService:
    """See the module docstring. ``clock`` is the twin's wall clock (the simulation's in-process)."""

    def __init__(
        self,
        store: JournalStore,
        *,
        points: PointSink | None = None,
        config: FleetConfig | None = None,
        clock: Callable[[], datetime] = utc_now,
        outbox: Outbox | None = None,
        hub: EventHub | None = None,
        name: str = "twin",
    ) -> None:
        self.store = store
        self.points = points
        self.clock = clock
        self.name = name
        self.fleet = Fleet(config=config or FleetConfig())
        self.outbox: Outbox = outbox if outbox is not None else QueueOutbox()
        self.hub = hub if hub is not None else EventHub()
        self.metrics = ServiceMetrics()
        self.health = Health(clock)
        self.rejects = RejectLog()
        self.reject_counts: dict[str, int] = {}
        self.history: dict[DeviceKey, deque[tuple[Any, ...]]] = {}
        self._lock = asyncio.Lock()
        self._tags: dict[DeviceKey, DeviceTags] = {}
        self._encoder = SnapshotEncoder()  # snapshot payloads, each model encoded once (twin.store.snapshots)
        self._counters: dict[tuple[str, str], Any] = {}
        self.started_at = clock()
        self.health.ok("journal")

    # ------------------------------------------------------------------------------- restore

    async def restore(self, *, sites: Iterable[str] | None = None) -> None:
        """Load what the store holds (see the module docstring); expiries that ran out while the
        twin was down are applied and journaled."""
        found = await self.store.restore(sites=list(sites) if sites is not None else None)
        devices: dict[DeviceKey, Any] = {}
        visits: dict[DeviceKey, Visits] = {}
        for snapshot in found.snapshots:
            payload = dict(snapshot.payload)
            twin = snapshot_to_twin(payload)
            if twin is not None:
                devices[twin.key] = twin
                checks = snapshot_visits(payload)
                if checks is not None:
                    visits[twin.key] = checks
        commands = {}
        for record in found.commands:  # in log order: the last status of a command wins
            tracked = tracked_from_log(record)
            if tracked is not None:
                commands[tracked.command_id] = tracked
        board = restored(found.alarms.values(), found.device_events)
        fleet = steps.restored(
            devices=Map(devices), board=board, commands=Map(commands), config=self.fleet.config, visits=Map(visits)
        )
        async with self._lock:
            self.fleet = fleet
            fleet, effects = steps.tick(fleet, self.clock())
            await self._commit(fleet, effects)
        self._update_gauges()

    # -------------------------------------------------------------------------------- ingest

    async def ingest(self, messages: Sequence[Received]) -> None:
        """Apply a run of messages and make what they carry durable; then (and only then) they
        may be acknowledged. Raises :class:`StoreUnavailable` when the store cannot take them:
        nothing was adopted, and the caller tries the same messages again later."""
        started = time.perf_counter()
        async with self._lock:
            fleet = self.fleet
            effects: list[Effect] = []
            for m in messages:
                fleet, made = self._apply_one(fleet, m)
                effects += made
            try:
                await self._commit(fleet, effects)
            except (JournalConflict, JournalError, ValueError, TypeError) as exc:
                log.error(
                    "a batch of %d messages could not be journaled (%s): one message at a time", len(messages), exc
                )
                await self._commit_one_by_one(messages)
        if messages:
            self.metrics.processing.observe((time.perf_counter() - started) / len(messages))

    def _apply_one(self, fleet: Fleet, m: Received) -> tuple[Fleet, list[Effect]]:
        try:
            return steps.apply(fleet, m.topic, m.payload, m.received_at)
        except Exception as exc:  # a bug must cost one message, never the service
            log.exception("internal error applying a message on %s", m.topic[:200])
            return fleet, [Rejected("internal_error", m.topic, type(exc).__name__)]

    async def _commit_one_by_one(self, messages: Sequence[Received]) -> None:
        for m in messages:
            fleet, effects = self._apply_one(self.fleet, m)
            try:
                await self._commit(fleet, effects)
            except (JournalConflict, JournalError, ValueError, TypeError) as exc:
                log.exception("a message on %s could not be journaled", m.topic[:200])
                self._reject("internal_error", m.topic, f"journal refused it: {type(exc).__name__}")

    async def _commit(self, fleet: Fleet, effects: list[Effect]) -> None:
        """Steps 2 and 3 of the module docstring. Must be called under the lock."""
        batch, lines = self._durable(fleet, effects)
        snapshots = self._snapshots(fleet, effects)
        if snapshots:
            batch = replace(batch, snapshots=snapshots)
        wrote = False
        try:
            if lines and self.points is not None:
                self.points.persist(lines)
                wrote = True
            if not batch.empty:
                await self.store.commit(batch)
                wrote = True
        except (StoreUnavailable, OSError) as exc:
            if self.health.report("journal", Status.DEGRADED, str(exc)[:300]):
                log.error("the journal cannot be written: %s; messages are not acknowledged until it can", exc)
            raise StoreUnavailable(str(exc)) from exc
        # only a write that succeeded says the journal takes writes again (a tick with nothing to write does not)
        if wrote and self.health.parts["journal"].status is not Status.OK:
            log.info("the journal takes writes again")
            self.health.ok("journal")
        self.fleet = fleet
        self._carry_out(fleet, effects)

    def _snapshots(self, fleet: Fleet, effects: list[Effect]) -> list[Snapshot]:
        """The snapshots of the devices ``effects`` changed (those a restart could not rebuild from
        the next message), for the same transaction as the rest of the batch: a twin killed after
        the commit must restart with the ordering state (sequence window, reported state) that goes
        with its journal, or a redelivered state older than an alarm's journaled clear would be
        taken as news and raise the alarm again (the twin-kill drill: 40 alarms re-raised)."""
        keys = {effect.key for effect in effects if type(effect) is DeviceChanged and effect.snapshot}
        out = []
        for key in keys:
            twin = fleet.devices.get(key)
            if twin is not None:
                out.append(
                    Snapshot(twin.site, twin.device_id, twin.version, self._encoder.encode(twin, fleet.visits.get(key)))
                )
        return out

    def _durable(self, fleet: Fleet, effects: list[Effect]) -> tuple[Batch, list[tuple[bytes, bool]]]:
        """The journal batch and the time-series lines of ``effects`` (one pass, dispatched by type:
        this runs for every message, and a chain of ``isinstance`` tests cost more than the rest)."""
        transitions: list[Transition] = []
        marks = []
        commands: list[CommandRecord] = []
        responses: list[AlarmResponse] = []
        lines: list[tuple[bytes, bool]] = []
        points = self.points is not None
        for effect in effects:
            kind = type(effect)
            if kind is Recorded:
                if points:
                    assert isinstance(effect, Recorded)
                    message = effect.message
                    tags = self._device_tags(fleet, effect.key, message)
                    if tags is not None:
                        if type(message) is Telemetry:
                            telemetry, truth = telemetry_lines(tags, message)
                            lines.append((telemetry, True))
                            if truth is not None:  # a simulated pump's ground truth: its own measurement
                                lines.append((truth, True))
                        else:
                            lines += [(line, False) for line in device_lines(tags, message)]
            elif kind is AlarmTransitions:
                assert isinstance(effect, AlarmTransitions)
                transitions += effect.transitions
                if effect.device_event is not None:
                    marks.append(effect.device_event)
                if points:
                    lines += self._transition_lines(fleet, effect.transitions)
            elif kind is CommandChanged:
                assert isinstance(effect, CommandChanged)
                if effect.logged:
                    commands.append(command_record(effect.tracked))
                    if points:
                        lines += self._command_lines(fleet, effect.tracked)
            elif kind is ResponseRecorded:
                assert isinstance(effect, ResponseRecorded)
                responses.append(effect.response)
        return Batch(transitions, marks, commands, responses), lines

    def _carry_out(self, fleet: Fleet, effects: list[Effect]) -> None:
        hub = self.hub
        history = self.history
        counts: dict[tuple[str, str], int] = {}
        changed: dict[DeviceKey, None] = {}
        for effect in effects:
            kind = type(effect)
            if kind is Counted:
                assert isinstance(effect, Counted)
                key = (effect.what, effect.label)
                counts[key] = counts.get(key, 0) + effect.n
            elif kind is Recorded:
                assert isinstance(effect, Recorded)
                message = effect.message
                if type(message) is Telemetry:
                    samples = history.get(effect.key)
                    if samples is None:
                        samples = history[effect.key] = deque(maxlen=HISTORY_SAMPLES)
                    assert isinstance(message, Telemetry)
                    samples.append(
                        (  # a HistorySample's fields, as an exact tuple (see HistorySample)
                            message.device_time,
                            message.reservoir_ml,
                            message.current_rate_ml_per_day,
                            message.dose_mg_per_day,
                            message.battery_percent,
                            message.infusing,
                            message.session,
                            message.seq,
                        )
                    )
            elif kind is DeviceChanged:
                assert isinstance(effect, DeviceChanged)
                changed[effect.key] = None
            elif kind is AlarmTransitions:
                assert isinstance(effect, AlarmTransitions)
                for t in effect.transitions:
                    self.metrics.alarm_transitions.labels(t.event.value).inc()
                    hub.publish(AlarmTransitioned(t, fleet.board.alarms.get(t.key), effect.device_time))
            elif kind is CommandChanged:
                assert isinstance(effect, CommandChanged)
                self.metrics.commands.labels(effect.tracked.state.value).inc()
                hub.publish(CommandUpdated(effect.tracked))
            elif kind is ResponseRecorded:
                assert isinstance(effect, ResponseRecorded)
                hub.publish(ResponseMade(effect.response))
            elif kind is Publish:
                assert isinstance(effect, Publish)
                self.outbox.put(effect)
            elif kind is Rejected:
                assert isinstance(effect, Rejected)
                self._reject(effect.reason, effect.topic, effect.detail)
        for (what, label), n in counts.items():
            self._count(Counted(what, label, n))
        # once per device and batch, after the batch's alarms: an observer reads the device as it
        # is now (the event names it, nothing more), so one notice says all that several would
        for key in changed:
            hub.publish(DeviceUpdated(key))

    def _count(self, effect: Counted) -> None:
        key = (effect.what, effect.label)
        counter = self._counters.get(key)
        if counter is None:
            m = self.metrics
            if effect.what == "gaps":
                counter = m.gaps
            elif effect.what == "rebirths":
                counter = m.rebirths
            elif effect.what in ("messages_in", "dropped", "tick_errors"):
                counter = {"messages_in": m.messages_in, "dropped": m.dropped, "tick_errors": m.tick_errors}[
                    effect.what
                ].labels(effect.label)
            else:
                log.debug("no metric for %s", effect.what)
                return
            self._counters[key] = counter
        counter.inc(effect.n)

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.metrics.rejects.labels(reason).inc()
        self.reject_counts[reason] = self.reject_counts.get(reason, 0) + 1
        self.rejects.note(reason, topic, detail)

    # --------------------------------------------------------------------------- time series

    def _device_tags(self, fleet: Fleet, key: DeviceKey, message: DeviceMessage | None = None) -> DeviceTags | None:
        twin = fleet.devices.get(key)
        if twin is None or twin.birth is None:
            return None
        drug = twin.reported.drug if twin.reported is not None else None
        cached = self._tags.get(key)
        if cached is not None and cached.drug == drug and cached.model == twin.birth.model:
            return cached
        tags = DeviceTags(site=key[0], device=key[1], model=twin.birth.model, drug=drug, simulated=twin.birth.simulated)
        self._tags[key] = tags
        return tags

    def _transition_lines(self, fleet: Fleet, transitions: Iterable[Transition]) -> list[tuple[bytes, bool]]:
        out = []
        for t in transitions:
            tags = self._device_tags(fleet, (t.site, t.device_id))
            if tags is None:
                continue
            point = AlarmTransitionPoint(
                alarm_id=t.key,
                device_id=t.device_id,
                site=t.site,
                code=t.code,
                priority=t.priority,
                from_state=t.from_state.value if t.from_state else "normal",
                to_state=t.to_state.value,
                actor=t.actor,
                comment=t.comment,
                at=t.at,
                time_to_ack_s=t.time_to_ack_s,
                transition=t.event.value,
                version=t.version,
            )
            out.append((alarm_transition_point(tags, point).line_protocol().encode(), False))
        return out

    def _command_lines(self, fleet: Fleet, tracked: TrackedCommand) -> list[tuple[bytes, bool]]:
        tags = self._device_tags(fleet, (tracked.site, tracked.device_id))
        if tags is None:
            return []
        outcome = CommandOutcomePoint(
            command_id=tracked.command_id,
            device_id=tracked.device_id,
            site=tracked.site,
            action=tracked.action_type,
            status=CommandOutcome(tracked.state.value),
            actor=tracked.command.actor,
            at=tracked.answered_at or tracked.created_at,
            latency_s=tracked.latency_s,
            reason=tracked.reason,
            replay=tracked.replay,
        )
        return [(command_point(tags, outcome).line_protocol().encode(), False)]

    # ---------------------------------------------------------------------------- staff actions

    async def alarm_action(
        self, key: str, verb: str, actor: str, *, duration: timedelta | None = None, comment: str | None = None
    ) -> Alarm:
        """A staff action on an alarm; raises :class:`AlarmError` with a reason, or
        :class:`StoreUnavailable` (nothing changed)."""
        async with self._lock:
            fleet, alarm, effects = steps.act_on_alarm(
                self.fleet, key, verb, actor, self.clock(), duration=duration, comment=comment
            )
            await self._commit(fleet, effects)
            return alarm

    async def send_command(self, key: DeviceKey, action: Action, actor: str) -> TrackedCommand:
        """Accept and send a command; raises :class:`CommandRefused` (unknown or real device) or
        :class:`StoreUnavailable`."""
        async with self._lock:
            fleet, tracked, effects = steps.send_command(self.fleet, key, action, actor, self.clock(), new_id("c"))
            await self._commit(fleet, effects)
            return self.fleet.commands[tracked.command_id]

    async def respond(
        self,
        key: str,
        action: str,
        actor: str,
        role: str,
        *,
        note: str | None = None,
        command: Action | None = None,
        detail: dict[str, Any] | None = None,
    ) -> tuple[AlarmResponse, TrackedCommand | None]:
        """Record a staff response to an alarm (``twin.alarms.responses``) and, if it changes the
        pump, send its ``command`` with it, in one journal transaction: a refused command (a real
        or unknown device) raises :class:`CommandRefused` and nothing is recorded, because
        nothing was done. Raises :class:`AlarmError` ``unknown_alarm``."""
        async with self._lock:
            fleet = self.fleet
            alarm = fleet.board.alarms.get(key)
            if alarm is None:
                raise AlarmError("unknown_alarm", f"no alarm {key!r}")
            now = self.clock()
            effects: list[Effect] = []
            tracked: TrackedCommand | None = None
            if command is not None:
                fleet, tracked, effects = steps.send_command(
                    fleet, (alarm.site, alarm.device_id), command, actor, now, new_id("c")
                )
            response = AlarmResponse(
                response_id=new_id("r"),
                key=alarm.key,
                device_id=alarm.device_id,
                site=alarm.site,
                code=alarm.code,
                priority=alarm.priority.value,
                alarm_version=alarm.version,
                alarm_state=alarm.state.value,
                action=action,
                note=note,
                actor=actor,
                role=role,
                at=now,
                command_id=tracked.command_id if tracked is not None else None,
                detail=detail or {},
            )
            fleet, recorded = steps.record_response(fleet, response)
            await self._commit(fleet, effects + recorded)
            return response, tracked

    async def patient_report(self, key: DeviceKey, report: PatientReport) -> None:
        """Record a patient's report about a pump (a call the clinic logged, a scenario's symptom):
        a ``patient_report`` alert on the pump for :attr:`AlertPolicy.patient_report_for`, raised
        now; ``report.at`` is on the pump's clock (the simulation's for a simulated pump). An
        unknown device is ignored (nothing to attach the report to)."""
        async with self._lock:
            fleet, effects = steps.record_patient_report(self.fleet, key, report, self.clock())
            await self._commit(fleet, effects)

    # --------------------------------------------------------------------------------- clock

    async def tick(self, now: datetime | None = None) -> None:
        """Clock-driven work (call every second or so). Snapshots are not its work: each batch
        carries those of the devices it changed in ways a restart could not rebuild
        (:meth:`_snapshots`), and a device changed by telemetry alone every
        :data:`~twin.mirror.fleet.SNAPSHOT_EVERY` versions; :meth:`flush_snapshots` saves every device at a clean stop."""
        now = now or self.clock()
        async with self._lock:
            fleet, effects = steps.tick(self.fleet, now)
            await self._commit(fleet, effects)
        self._update_gauges()

    async def flush_snapshots(self) -> None:
        """Save every twin's snapshot (at a clean stop), so that a restarted twin resumes at the
        exact sequence numbers, telemetry included, and sees no false gaps."""
        async with self._lock:
            fleet = self.fleet
            snapshots = [
                Snapshot(twin.site, twin.device_id, twin.version, self._encoder.encode(twin, fleet.visits.get(key)))
                for key, twin in fleet.devices.items()
            ]
            if snapshots:
                await self.store.commit(Batch(snapshots=snapshots))

    def refresh_gauges(self) -> None:
        """Bring the gauges (alarms by priority, devices by presence, stream, time series) up to now."""
        self._update_gauges()

    def _update_gauges(self) -> None:
        by_priority = {"high": 0, "medium": 0, "low": 0}
        for alarm in self.fleet.board.open():
            by_priority[alarm.priority.value] = by_priority.get(alarm.priority.value, 0) + 1
        for priority, n in by_priority.items():
            self.metrics.active_alarms.labels(priority).set(n)
        by_presence = {"unknown": 0, "online": 0, "offline": 0}
        for twin in self.fleet.devices.values():
            by_presence[twin.presence.value] += 1
        for presence, n in by_presence.items():
            self.metrics.devices.labels(presence).set(n)
        self.metrics.stream_subscribers.set(self.hub.subscribers)
        self.metrics.stream_dropped.set(self.hub.dropped_subscribers)
        stats = getattr(self.points, "stats", None)
        if stats is not None:
            for kind in ("accepted", "written", "spooled", "dead_lettered", "shed"):
                value = getattr(stats, kind, None)
                if isinstance(value, int | float):
                    self.metrics.influx_points.labels(kind).set(value)

    # -------------------------------------------------------------------------------- views

    def history_of(self, key: DeviceKey) -> list[HistorySample]:
        """The telemetry kept in memory for ``key`` (at most :data:`HISTORY_SAMPLES`), oldest first
        by device time."""
        return sorted(map(HistorySample._make, self.history.get(key, ())), key=lambda s: s.device_time)

    def twin_of(self, device_id: str, site: str | None = None) -> Any:
        """The twin of ``device_id`` (at ``site``), or None when unknown or ambiguous."""
        try:
            return self.device(device_id, site)
        except LookupError:
            return None

    def device(self, device_id: str, site: str | None = None) -> Any:
        """The twin of ``device_id`` (at ``site``); raises ``LookupError`` (reason in ``args``):
        ``unknown_device``, or ``ambiguous_device`` when the id is known at several sites."""
        if site is not None:
            twin = self.fleet.devices.get((site, device_id))
            if twin is None:
                raise LookupError("unknown_device", f"no device {device_id!r} at site {site!r}")
            return twin
        found = self.fleet.by_id(device_id)
        if not found:
            raise LookupError("unknown_device", f"no device {device_id!r}")
        if len(found) > 1:
            sites = ", ".join(sorted(t.site for t in found))
            raise LookupError(
                "ambiguous_device", f"device {device_id!r} is known at several sites ({sites}): give ?site="
            )
        return found[0]


def command_record(t: TrackedCommand) -> CommandRecord:
    """The command log entry of a command's status."""
    return CommandRecord(
        command_id=t.command_id,
        device_id=t.device_id,
        site=t.site,
        status=t.state.value,
        actor=t.command.actor,
        at=t.answered_at or t.created_at,
        detail={
            "command": t.command.model_dump(mode="json"),
            "reason": t.reason,
            "replay": t.replay,
            "details": t.details,
            "created_at": t.created_at.isoformat(),
            "sends": t.sends,
        },
    )


def tracked_from_log(record: CommandRecord) -> TrackedCommand | None:
    """A command as one of its log records left it."""
    from twin.contract.messages import Command
    from twin.mirror.commands import CommandState

    try:
        detail = record.detail
        command = Command.model_validate(detail["command"])
        created = datetime.fromisoformat(detail["created_at"]) if detail.get("created_at") else record.at
        state = CommandState(record.status)
        return TrackedCommand(
            command=command,
            site=record.site,
            state=state,
            created_at=created,
            sends=max(1, int(detail.get("sends") or 1)),
            answered_at=record.at if state in (CommandState.APPLIED, CommandState.REJECTED) else None,
            reason=detail.get("reason"),
            replay=bool(detail.get("replay")),
            details=detail.get("details"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("ignoring an unreadable command log entry: %s", exc)
        return None


__all__ = [
    "AlarmError",
    "CommandRefused",
    "Outbox",
    "PointSink",
    "QueueOutbox",
    "Received",
    "StoreUnavailable",
    "TwinService",
]
