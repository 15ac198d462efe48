"""The twin service: every device's twin, its alarms and commands, kept from the MQTT contract.

This is the imperative shell around the pure mirror (:mod:`twin.mirror`) and alarm lifecycle
(:mod:`twin.alarms`). One :class:`TwinService` per process:

* :meth:`handle` takes one raw MQTT message (topic, payload, receipt time) and never raises:
  bad input is refused with a reason, counted and logged without flooding; good input is applied
  to the device's twin and its effects are carried out — alarm transitions journaled (SQLite,
  append-only) before they are streamed, points submitted to InfluxDB, rebirths and resent
  commands queued for MQTT, changes pushed to live-stream subscribers;
* :meth:`tick` runs the clock-driven work (shelve/silence expiries, silent devices, twin alerts,
  command timeouts, snapshots);
* staff actions (:meth:`alarm_action`, :meth:`send_command`, :meth:`respond`) come from the HTTP API.

A restarted service rebuilds itself from its journal: alarms by folding the journal, device
twins from their last snapshots, pending commands from the command log; together with the
broker's persistent session (QoS 1 messages are kept for the twin while it is down) and the
devices' sequence numbers, no alarm is lost or duplicated across a restart.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from twin.alarms.device_events import DeviceEventKey, dedupe_key
from twin.alarms.lifecycle import Alarm, AlarmError, Transition, alarm_key
from twin.alarms.responses import AlarmResponse
from twin.contract.codec import CHANNELS, ContractError, decode_device_message, encode
from twin.contract.messages import (
    Action,
    Birth,
    Command,
    RebirthAction,
    State,
    Telemetry,
)
from twin.contract.topics import Channel, TopicAddress, TopicError, build_topic, parse_topic
from twin.mirror import commands as desk
from twin.mirror import interrogation
from twin.mirror.alarm_board import AlarmBoard
from twin.mirror.alerts import AlertPolicy, TwinAlertCode, dose_deviates, evaluate
from twin.mirror.commands import CommandRecord, CommandRefused, CommandState, TrackedCommand
from twin.mirror.device_twin import (
    AlarmSeen,
    Applied,
    DeviceTwin,
    GapSeen,
    Presence,
    PresenceChanged,
    RequestRebirth,
    ResultSeen,
    Skipped,
    apply,
    mark_silent,
)
from twin.mirror.prediction import Forecast, Prediction, forecast, predict
from twin.service.bus import EventBus
from twin.service.metrics import ServiceMetrics
from twin.store.journal import Journal
from twin.timeseries.points import (
    AlarmTransitionPoint,
    CommandOutcome,
    CommandOutcomePoint,
    DeviceTags,
    alarm_transition_point,
    command_point,
    device_points,
)

log = logging.getLogger(__name__)

HISTORY_SAMPLES: Final = 720
"""Telemetry samples kept in memory per device for the device page (two hours at 10 s)."""

PROCESSING_SAMPLE: Final = 16
"""One message in this many is timed for the processing-time histogram: timing every one costs a
tenth of the ingest path, and a 1-in-16 sample of thousands of messages a second describes it as well."""

REJECT_LOG_EVERY: Final = 60.0
"""Seconds between summary lines for a reject reason after its first few are logged in full."""

REJECT_LOG_FIRST: Final = 5


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message for the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


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
            log.warning("rejected message on %s (%s): %s", topic, reason, detail[:300])
            self._last_summary[reason] = self._clock()
            return
        self._since_summary[reason] = self._since_summary.get(reason, 0) + 1
        now = self._clock()
        if now - self._last_summary.get(reason, 0.0) >= REJECT_LOG_EVERY:
            log.warning(
                "%d more messages rejected (%s) in the last minute; latest on %s",
                self._since_summary[reason],
                reason,
                topic,
            )
            self._since_summary[reason] = 0
            self._last_summary[reason] = now


@dataclass
class DeviceHistory:
    samples: deque[Telemetry] = field(default_factory=lambda: deque(maxlen=HISTORY_SAMPLES))


def utc_now() -> datetime:
    return datetime.now(UTC)


class TwinService:
    def __init__(
        self,
        journal: Journal,
        *,
        writer: Any | None = None,
        policy: AlertPolicy | None = None,
        command_timeout: timedelta = desk.DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
        name: str = "twin",
    ) -> None:
        self.journal = journal
        self.writer = writer
        self.policy = policy or AlertPolicy()
        self.command_timeout = command_timeout
        self.clock = clock
        self.name = name
        self.metrics = ServiceMetrics()
        self._messages_in = {ch: self.metrics.messages_in.labels(ch.value) for ch in Channel}
        self._handled = 0
        self.bus = EventBus()
        self.rejects = RejectLog()
        self.twins: dict[str, DeviceTwin] = {}
        self.history: dict[str, DeviceHistory] = {}
        self.commands: dict[str, TrackedCommand] = {}
        self.outbound: deque[Outbound] = deque()
        self.on_outbound: Callable[[], None] = lambda: None
        self._dirty: set[str] = set()
        self._predictions: dict[str, tuple[int, datetime, Prediction | None]] = {}
        self._forecasts: dict[str, tuple[tuple[int, int], Forecast | None]] = {}
        self._dose_flags: dict[str, bool] = {}
        self.visits: dict[str, interrogation.Visits] = {}  # real pumps: refill checks of consecutive read-outs
        self.reject_counts: dict[str, int] = {}
        self.transition_listeners: list[Callable[[Transition], None]] = []
        self.response_listeners: list[Callable[[AlarmResponse], None]] = []
        self.started_at = clock()
        self._restore()

    # ----------------------------------------------------------------------------- restore

    def _restore(self) -> None:
        self.board = AlarmBoard(self.journal.alarms())
        for device_id, payload in self.journal.load_snapshots().items():
            twin = snapshot_to_twin(payload)
            if twin is not None:
                self.twins[device_id] = twin
        for record in self.journal.commands():  # in log order: the last status of a command wins
            tracked = tracked_from_log(record)
            if tracked is not None:
                self.commands[tracked.command_id] = tracked
        # shelves and audio pauses that ran out while the twin was down
        self._record(self.board.expire(self.clock()))
        self._update_gauges()

    # ------------------------------------------------------------------------------ ingest

    def handle(self, topic: str, payload: bytes, received_at: datetime | None = None) -> None:
        """Process one MQTT message. Never raises for anything a sender can do."""
        self._handled += 1
        timed = self._handled % PROCESSING_SAMPLE == 0
        started = time.perf_counter() if timed else 0.0
        received_at = received_at or self.clock()
        try:
            address = parse_topic(topic)
        except TopicError as exc:
            self._reject(exc.reason, topic, str(exc))
            return
        if address.channel is Channel.CMD:
            return  # our own commands, echoed by a wildcard subscription
        try:
            message = decode_device_message(address, payload)
        except ContractError as exc:
            self._reject(exc.reason, topic, str(exc))
            return
        self._messages_in[address.channel].inc()
        try:
            self._apply(address, message, received_at)
        except Exception:  # a bug must cost one message, not the service
            log.exception("internal error applying %s", topic)
            self._reject("internal_error", topic, "see the log")
        if timed:
            self.metrics.processing.observe(time.perf_counter() - started)

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.metrics.rejects.labels(reason).inc()
        self.reject_counts[reason] = self.reject_counts.get(reason, 0) + 1
        self.rejects.note(reason, topic, detail)

    def _apply(self, address: TopicAddress, message: Any, received_at: datetime) -> None:
        device_id = address.device_id
        before = self.twins.get(device_id)
        twin, effects = apply(before, address, message, received_at)
        self.twins[device_id] = twin
        if isinstance(message, State) and twin.reported is message and interrogation.is_readout(twin):
            self.visits[device_id] = interrogation.record(self.visits.get(device_id), before, twin, self.policy)
        transitions: list[Transition] = []
        changed = False
        for effect in effects:
            match effect:
                case Applied(new_session=new_session):
                    changed = True
                    if new_session:
                        self._resend_pending(twin, received_at)
                case Skipped(reason=reason):
                    self.metrics.dropped.labels(reason.value).inc()
                case GapSeen():
                    self.metrics.gaps.inc()
                case RequestRebirth(reason=why):
                    self._rebirth(twin, why, received_at)
                case AlarmSeen(event=event):
                    mark = dedupe_key(event)
                    if not self.journal.has_device_event(mark.device_id, mark.alarm_id, mark.event):
                        applied = self.board.on_device_event(address.site, event, received_at)
                        self._record(applied, device_event=mark)
                case ResultSeen(result=result):
                    self._command_answered(result, received_at)
                case PresenceChanged(presence=presence):
                    self._presence_changed(twin, presence, received_at)
        if not changed:
            self._record(transitions)
            return
        if isinstance(message, Telemetry):
            self.history.setdefault(device_id, DeviceHistory()).samples.append(message)
        if (
            isinstance(message, State)
            and _first_state_of_session(before, message)
            and twin.birth is not None
            and twin.birth.audible_alarms
        ):
            transitions += self.board.reconcile(address.site, device_id, message.active_alarms, received_at)
        if not isinstance(message, Telemetry) or twin.version % 10 == 0:
            self._dirty.add(device_id)
        if not isinstance(message, Telemetry) or self._telemetry_moves_alerts(twin, message):
            transitions += self._evaluate_alerts(twin, received_at)
        self._record(transitions)
        self._write_points(twin, message)
        if self.bus.subscribers:
            self.bus.publish("device", self.summary(twin, received_at), coalesce_key=device_id)

    def _write_points(self, twin: DeviceTwin, message: Any) -> None:
        if self.writer is None or twin.birth is None:
            return
        tags = self.tags(twin)
        try:
            self.writer.submit(device_points(tags, message))
        except Exception:  # the time series must never take the twin down
            log.exception("could not submit points for %s", twin.device_id)

    def tags(self, twin: DeviceTwin) -> DeviceTags:
        birth = twin.birth
        drug = twin.reported.drug if twin.reported is not None else None
        return DeviceTags(
            site=twin.site,
            device=twin.device_id,
            model=birth.model if birth else "unknown",
            drug=drug,
            simulated=birth.simulated if birth else True,
        )

    # --------------------------------------------------------------------------- prediction

    def prediction(self, twin: DeviceTwin, now: datetime) -> Prediction | None:
        """The twin's prediction at wall time ``now`` (cached per version and second)."""
        if twin.reported is None:
            return None
        at = twin.device_now(now)
        if at is None:
            return None
        cached = self._predictions.get(twin.device_id)
        if cached is not None and cached[0] == twin.version and abs((cached[1] - at).total_seconds()) < 1.0:
            return cached[2]
        try:
            result = predict(twin.birth, twin.reported, twin.telemetry, at)
        except ValueError as exc:
            log.warning("cannot predict %s: %s", twin.device_id, exc)
            result = None
        self._predictions[twin.device_id] = (twin.version, at, result)
        return result

    def forecast(self, twin: DeviceTwin) -> Forecast | None:
        """The dates the device's latest state implies (cached until the next state)."""
        state = twin.reported
        if state is None:
            return None
        key = (state.session, state.seq)
        cached = self._forecasts.get(twin.device_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            result: Forecast | None = forecast(twin.birth, state)
        except ValueError as exc:
            log.warning("cannot forecast %s: %s", twin.device_id, exc)
            result = None
        self._forecasts[twin.device_id] = (key, result)
        return result

    def _telemetry_moves_alerts(self, twin: DeviceTwin, sample: Telemetry) -> bool:
        """Can this telemetry sample change the twin's alerts? Only through the delivered dose (the
        forecast comes from state reports; time-driven alerts are evaluated by :meth:`tick`), or by
        ending a silence. Skipping the rest keeps ingest cheap: telemetry is most of the traffic."""
        deviates = dose_deviates(sample, self.policy)
        before = self._dose_flags.get(twin.device_id)
        self._dose_flags[twin.device_id] = deviates
        if before is None or before != deviates:
            return True
        silent = self.board.alarms.get(alarm_key(twin.device_id, TwinAlertCode.DEVICE_SILENT.value))
        return silent is not None and silent.condition_active

    def _evaluate_alerts(self, twin: DeviceTwin, now: datetime) -> list[Transition]:
        if twin.birth is None:
            return []
        conditions = evaluate(twin, self.forecast(twin), now, self.policy)
        conditions = interrogation.refill_conditions(twin, conditions, self.visits.get(twin.device_id))
        return self.board.on_conditions(twin.site, twin.device_id, conditions, now)

    # ------------------------------------------------------------------------------ alarms

    def _record(self, transitions: list[Transition], *, device_event: DeviceEventKey | None = None) -> None:
        if not transitions and device_event is None:
            return
        self.journal.record(transitions, device_event=device_event)
        for t in transitions:
            self.metrics.alarm_transitions.labels(t.event).inc()
            self.bus.publish("alarm", transition_json(t, self.board.alarms.get(t.key)))
            for listener in self.transition_listeners:
                listener(t)
            twin = self.twins.get(t.device_id)
            if self.writer is not None and twin is not None and twin.birth is not None:
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
                try:
                    self.writer.submit([alarm_transition_point(self.tags(twin), point)])
                except Exception:
                    log.exception("could not submit an alarm transition point")
        self._update_gauges()

    def alarm_action(
        self, key: str, verb: str, actor: str, *, duration: timedelta | None = None, comment: str | None = None
    ) -> Alarm:
        """A staff action on an alarm; raises :class:`AlarmError` with a reason."""
        alarm, transitions = self.board.act(key, verb, actor, self.clock(), duration=duration, comment=comment)
        self._record(transitions)
        return alarm

    # ----------------------------------------------------------------------------- commands

    def send_command(self, device_id: str, action: Action, actor: str) -> TrackedCommand:
        """Accept and send a command; raises :class:`CommandRefused` (unknown or real device)."""
        now = self.clock()
        twin = self.twins.get(device_id)
        command = Command(
            command_id=f"c-{uuid.uuid4().hex[:20]}",
            device_id=device_id,
            issued_at=twin.device_now(now) if twin and twin.device_now(now) else now,
            actor=actor,
            action=action,
        )
        tracked = desk.track(twin, command, now)
        self._log_command(tracked)
        self._publish_command(tracked, now)
        return self.commands[tracked.command_id]

    def respond(
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
        pump, send its ``command`` first: a refused command (real or unknown device) raises
        :class:`CommandRefused` and nothing is recorded, because nothing was done. Raises
        :class:`AlarmError` ``unknown_alarm``. The response is journaled, then streamed (``response``).
        Should the journal write fail after the command went out, the command log still holds the
        command with its actor: the act is never lost, only its tie to the alarm."""
        alarm = self.board.alarms.get(key)
        if alarm is None:
            raise AlarmError("unknown_alarm", f"no alarm {key!r}")
        tracked = self.send_command(alarm.device_id, command, actor) if command is not None else None
        response = AlarmResponse(
            response_id=f"r-{uuid.uuid4().hex[:20]}",
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
            at=self.clock(),
            command_id=tracked.command_id if tracked is not None else None,
            detail=detail or {},
        )
        self.journal.record_response(response)
        self.bus.publish("response", response_json(response))
        for listener in list(self.response_listeners):
            listener(response)
        return response, tracked

    def _publish_command(self, tracked: TrackedCommand, now: datetime) -> None:
        topic = build_topic(tracked.site, tracked.device_id, Channel.CMD)
        self.outbound.append(Outbound(topic, encode(tracked.command), CHANNELS[Channel.CMD].qos))
        self.commands[tracked.command_id] = desk.sent(tracked, now)
        self.on_outbound()

    def _log_command(self, tracked: TrackedCommand) -> None:
        self.commands[tracked.command_id] = tracked
        self.journal.log_command(
            command_id=tracked.command_id,
            device_id=tracked.device_id,
            site=tracked.site,
            status=tracked.state.value,
            actor=tracked.command.actor,
            at=tracked.answered_at or tracked.created_at,
            detail={
                "command": tracked.command.model_dump(mode="json"),
                "reason": tracked.reason,
                "replay": tracked.replay,
                "details": tracked.details,
                "created_at": tracked.created_at.isoformat(),
            },
        )
        self.metrics.commands.labels(tracked.state.value).inc()
        self.bus.publish("command", command_json(tracked))
        twin = self.twins.get(tracked.device_id)
        if self.writer is not None and twin is not None and twin.birth is not None:
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
            try:
                self.writer.submit([command_point(self.tags(twin), outcome)])
            except Exception:
                log.exception("could not submit a command point")

    def _command_answered(self, result: Any, now: datetime) -> None:
        tracked = self.commands.get(result.command_id)
        if tracked is None:
            self.metrics.dropped.labels("unsolicited_result").inc()
            return
        new = desk.answered(tracked, result, now)
        if new is not tracked:
            self._log_command(new)

    def _resend_pending(self, twin: DeviceTwin, now: datetime) -> None:
        for tracked in list(self.commands.values()):
            if tracked.device_id == twin.device_id and tracked.state is CommandState.PENDING and tracked.sends > 0:
                self._publish_command(desk.device_online(tracked, now), now)

    def _presence_changed(self, twin: DeviceTwin, presence: Presence, now: datetime) -> None:
        for cid, tracked in list(self.commands.items()):
            if tracked.device_id != twin.device_id:
                continue
            self.commands[cid] = (
                desk.device_online(tracked, now) if presence is Presence.ONLINE else desk.device_offline(tracked)
            )

    def _rebirth(self, twin: DeviceTwin, why: str, now: datetime) -> None:
        if twin.birth is None or not twin.birth.simulated:
            return
        self.metrics.rebirths.inc()
        log.info("asking %s for a rebirth: %s", twin.device_id, why)
        command = Command(
            command_id=f"rebirth-{uuid.uuid4().hex[:16]}",
            device_id=twin.device_id,
            issued_at=twin.device_now(now) or now,
            actor="twin",
            action=RebirthAction(),
        )
        topic = build_topic(twin.site, twin.device_id, Channel.CMD)
        self.outbound.append(Outbound(topic, encode(command), 1))
        self.on_outbound()

    # -------------------------------------------------------------------------------- clock

    def tick(self, now: datetime | None = None) -> None:
        """Clock-driven work; call every second or so."""
        now = now or self.clock()
        transitions = self.board.expire(now)
        for device_id, twin in list(self.twins.items()):
            if twin.last_seen_at is None:
                continue
            limit = self.policy.silent_after_simulated if twin.simulated is not False else self.policy.silent_after_real
            if twin.presence is Presence.ONLINE and now - twin.last_seen_at > limit:
                twin = mark_silent(twin, now)
                self.twins[device_id] = twin
                self._presence_changed(twin, Presence.OFFLINE, now)
                self._dirty.add(device_id)
                if self.bus.subscribers:
                    self.bus.publish("device", self.summary(twin, now), coalesce_key=device_id)
            transitions += self._evaluate_alerts(twin, now)
        self._record(transitions)
        for tracked in list(self.commands.values()):
            new = desk.expire(tracked, now, self.command_timeout)
            if new is not tracked:
                self._log_command(new)
        self.flush_snapshots()
        self._update_gauges()

    def flush_snapshots(self, *, everything: bool = False) -> None:
        """Save the twins changed since the last flush (``everything``: all of them, at shutdown,
        so that a restarted twin resumes at the exact sequence numbers and sees no false gaps)."""
        if everything:
            self._dirty.update(self.twins)
        for device_id in list(self._dirty):
            twin = self.twins.get(device_id)
            if twin is not None:
                self.journal.save_snapshot(device_id, twin.site, twin.version, twin_to_snapshot(twin))
        self._dirty.clear()

    def _update_gauges(self) -> None:
        by_priority = {"high": 0, "medium": 0, "low": 0}
        for alarm in self.board.open():
            by_priority[alarm.priority.value] = by_priority.get(alarm.priority.value, 0) + 1
        for priority, n in by_priority.items():
            self.metrics.active_alarms.labels(priority).set(n)
        by_presence = {p.value: 0 for p in Presence}
        for twin in self.twins.values():
            by_presence[twin.presence.value] += 1
        for presence, n in by_presence.items():
            self.metrics.devices.labels(presence).set(n)
        self.metrics.stream_subscribers.set(self.bus.subscribers)
        stats = getattr(self.writer, "stats", None)
        if stats is not None:
            for kind in ("accepted", "written", "spooled", "dead_lettered", "shed"):
                value = getattr(stats, kind, None)
                if isinstance(value, int | float):
                    self.metrics.influx_points.labels(kind).set(value)

    # -------------------------------------------------------------------------------- views

    def summary(self, twin: DeviceTwin, now: datetime) -> dict[str, Any]:
        """A device as the fleet view shows it (JSON-ready)."""
        alarms = self.board.of_device(twin.device_id)
        highest: str | None = None
        for a in alarms:
            if highest is None or _RANK[a.priority.value] > _RANK[highest]:
                highest = a.priority.value
        state = twin.reported
        tele = twin.telemetry
        reservoir = (
            tele.reservoir_ml
            if tele is not None and (state is None or tele.device_time >= state.device_time)
            else (state.reservoir_ml if state else None)
        )
        return {
            "device_id": twin.device_id,
            "site": twin.site,
            "model": twin.birth.model if twin.birth else None,
            "simulated": twin.simulated,
            "presence": twin.presence.value,
            "presence_reason": twin.presence_reason,
            "drug": state.drug.value if state else None,
            "reservoir_ml": reservoir,
            "capacity_ml": twin.birth.reservoir_capacity_ml if twin.birth else None,
            "battery_percent": (tele.battery_percent if tele else state.battery_percent if state else None),
            "infusing": state.infusing if state else None,
            "active_alarms": len([a for a in alarms if a.condition_active]),
            "highest_priority": highest,
            "last_seen_at": twin.last_seen_at.isoformat() if twin.last_seen_at else None,
            "device_time": twin.last_device_time.isoformat() if twin.last_device_time else None,
            "version": twin.version,
        }


_RANK = {"low": 1, "medium": 2, "high": 3}


def _first_state_of_session(before: DeviceTwin | None, state: State) -> bool:
    return before is None or before.reported is None or before.reported.session != state.session


def transition_json(t: Transition, alarm: Alarm | None) -> dict[str, Any]:
    return {
        "key": t.key,
        "device_id": t.device_id,
        "site": t.site,
        "code": t.code,
        "priority": t.priority.value,
        "event": t.event.value,
        "version": t.version,
        "from_state": t.from_state.value if t.from_state else None,
        "to_state": t.to_state.value,
        "actor": t.actor,
        "at": t.at.isoformat(),
        "comment": t.comment,
        "time_to_ack_s": t.time_to_ack_s,
        "alarm": alarm_json(alarm) if alarm is not None else None,
    }


def alarm_json(a: Alarm) -> dict[str, Any]:
    return {
        "key": a.key,
        "device_id": a.device_id,
        "site": a.site,
        "code": a.code,
        "source": a.source,
        "priority": a.priority.value,
        "latching": a.latching,
        "message": a.message,
        "state": a.state.value,
        "condition_active": a.condition_active,
        "raised_at": a.raised_at.isoformat(),
        "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
        "silenced_until": a.silenced_until.isoformat() if a.silenced_until else None,
        "shelved_until": a.shelved_until.isoformat() if a.shelved_until else None,
        "shelved_by": a.shelved_by,
        "version": a.version,
        "unacknowledged_since": a.unacknowledged_since.isoformat() if a.unacknowledged_since else None,
    }


def response_json(r: AlarmResponse) -> dict[str, Any]:
    return {
        "response_id": r.response_id,
        "key": r.key,
        "device_id": r.device_id,
        "site": r.site,
        "code": r.code,
        "priority": r.priority,
        "alarm_version": r.alarm_version,
        "alarm_state": r.alarm_state,
        "action": r.action,
        "note": r.note,
        "actor": r.actor,
        "role": r.role,
        "at": r.at.isoformat(),
        "command_id": r.command_id,
        "detail": r.detail,
    }


def command_json(t: TrackedCommand) -> dict[str, Any]:
    return {
        "command_id": t.command_id,
        "device_id": t.device_id,
        "site": t.site,
        "action": t.command.action.model_dump(mode="json"),
        "actor": t.command.actor,
        "state": t.state.value,
        "created_at": t.created_at.isoformat(),
        "answered_at": t.answered_at.isoformat() if t.answered_at else None,
        "sends": t.sends,
        "reason": t.reason,
        "replay": t.replay,
        "details": t.details,
        "latency_s": t.latency_s,
    }


# ------------------------------------------------------------------------------------ snapshots


def twin_to_snapshot(twin: DeviceTwin) -> dict[str, Any]:
    return {
        "site": twin.site,
        "device_id": twin.device_id,
        "birth": twin.birth.model_dump(mode="json") if twin.birth else None,
        "reported": twin.reported.model_dump(mode="json") if twin.reported else None,
        "telemetry": twin.telemetry.model_dump(mode="json") if twin.telemetry else None,
        "presence": twin.presence.value,
        "presence_reason": twin.presence_reason,
        "presence_since": twin.presence_since.isoformat() if twin.presence_since else None,
        "session": twin.session,
        "last_seq": twin.last_seq,
        "last_seen_at": twin.last_seen_at.isoformat() if twin.last_seen_at else None,
        "last_device_time": twin.last_device_time.isoformat() if twin.last_device_time else None,
        "clock_rate": twin.clock_rate,
        "version": twin.version,
        "reported_at": twin.reported_at.isoformat() if twin.reported_at else None,
    }


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def snapshot_to_twin(payload: dict[str, Any]) -> DeviceTwin | None:
    try:
        return DeviceTwin(
            site=payload["site"],
            device_id=payload["device_id"],
            birth=Birth.model_validate(payload["birth"]) if payload.get("birth") else None,
            reported=State.model_validate(payload["reported"]) if payload.get("reported") else None,
            telemetry=Telemetry.model_validate(payload["telemetry"]) if payload.get("telemetry") else None,
            presence=Presence(payload.get("presence", "unknown")),
            presence_reason=payload.get("presence_reason"),
            presence_since=_dt(payload.get("presence_since")),
            session=payload.get("session"),
            last_seq=payload.get("last_seq"),
            last_seen_at=_dt(payload.get("last_seen_at")),
            last_device_time=_dt(payload.get("last_device_time")),
            clock_rate=float(payload.get("clock_rate", 1.0)),
            version=int(payload.get("version", 0)),
            reported_at=_dt(payload.get("reported_at")),
        )
    except (KeyError, ValueError) as exc:
        log.warning("ignoring an unreadable snapshot: %s", exc)
        return None


def tracked_from_log(record: CommandRecord) -> TrackedCommand | None:
    """A command as one of its log records left it."""
    try:
        detail = record.detail
        command = Command.model_validate(detail["command"])
        at_dt = record.at
        created = datetime.fromisoformat(detail["created_at"]) if detail.get("created_at") else at_dt
        state = CommandState(record.status)
        site = record.site
        return TrackedCommand(
            command=command,
            site=site,
            state=state,
            created_at=created,
            sends=1,
            answered_at=at_dt if state in (CommandState.APPLIED, CommandState.REJECTED) else None,
            reason=detail.get("reason"),
            replay=bool(detail.get("replay")),
            details=detail.get("details"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("ignoring an unreadable command log entry: %s", exc)
        return None


__all__ = ["AlarmError", "CommandRefused", "Outbound", "TwinService"]
