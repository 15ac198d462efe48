"""The twin's whole state as one value, and every change to it as one pure step.

:class:`Fleet` holds every device twin, the alarm board, the commands, the simulation clocks,
the forecasts, the patient reports and the real pumps' refill checks, in persistent maps
(``immutables.Map``): a step makes a new fleet in O(log n) and shares the rest with the old one.
Every change is a function ``(fleet, ...) -> (fleet, effects)``:

* :func:`apply` — one MQTT message as received (topic, payload bytes, the arrival stamp);
* :func:`tick` — the clock: shelve and audio-pause expiries, silent devices, time-driven twin
  alerts, command timeouts;
* :func:`act_on_alarm`, :func:`send_command`, :func:`record_response` — what staff do;
  :func:`record_patient_report` — what a patient tells the clinic.

None of them does I/O, reads a clock or draws a random number. The effects say what must happen
outside (:mod:`twin.mirror.effects`): what to journal, which points to write, what to publish to
the broker, what changed for the live stream. The service (``twin.service``) applies a run of
messages, journals their effects, and only then acknowledges the messages and adopts the new
fleet; if the journal cannot be written it keeps the old fleet, so the in-memory board never
gets ahead of what is durable.

Ordering, deduplication and identity are :mod:`twin.mirror.device_twin`'s; the alarm rules are
:mod:`twin.mirror.alarm_board`'s; the twin's own alerts :mod:`twin.mirror.alerts`'; commands
:mod:`twin.mirror.commands`'. This module is the rule book that puts them together.

Limits (a written policy, :class:`Limits`): a site accepts at most ``devices_per_site`` devices
and the fleet at most ``sites`` sites; a message from a device beyond them is refused
(``device_limit``), so 50,000 made-up births cannot become 50,000 twins and 50,000 alarms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from immutables import Map

from twin.alarms import lifecycle
from twin.alarms.device_events import DeviceEventKey, dedupe_key
from twin.alarms.lifecycle import Alarm, AlarmError, alarm_key
from twin.alarms.responses import AlarmResponse
from twin.contract.codec import CHANNELS, ContractError, decode_clock, decode_device_message, encode
from twin.contract.messages import (
    Action,
    AlarmEvent,
    Birth,
    Command,
    CommandResult,
    DeviceMessage,
    RebirthAction,
    State,
    Telemetry,
)
from twin.contract.topics import Channel, TopicError, build_topic, parse_topic
from twin.mirror import alarm_board as boards
from twin.mirror import commands as desk
from twin.mirror import interrogation
from twin.mirror.alarm_board import Board, DeviceKey
from twin.mirror.alerts import (
    ALERT_PRIORITY,
    AlertPolicy,
    PatientReport,
    TwinAlertCode,
    evaluate,
    next_change,
    silence_limit,
    silent_for,
)
from twin.mirror.clock import SiteClock, advance, device_rate, device_time, newer, site_clock, threshold_time
from twin.mirror.commands import CommandState, TrackedCommand
from twin.mirror.device_twin import RECORDED, DeviceTwin, Presence, Verdict, mark_silent, order
from twin.mirror.effects import (
    AlarmTransitions,
    ClockChanged,
    CommandChanged,
    Counted,
    DeviceChanged,
    Effect,
    Publish,
    Recorded,
    Rejected,
    ResponseRecorded,
)
from twin.mirror.prediction import Forecast, forecast

__all__ = [
    "DeviceKey",
    "Fleet",
    "FleetConfig",
    "Limits",
    "act_on_alarm",
    "apply",
    "record_patient_report",
    "record_response",
    "send_command",
    "tick",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """What the twin accepts from the network before it refuses (reason ``device_limit``)."""

    devices_per_site: int = 20_000
    """Devices one site may have. A large hospital group's clinic follows a few hundred pumps;
    a training centre's simulated ward a few thousand. 20,000 keeps a runaway or hostile
    publisher from growing one site without bound."""
    sites: int = 10_000
    """Sites one twin may mirror."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    limits: Limits = field(default_factory=Limits)
    command_timeout: timedelta = desk.DEFAULT_TIMEOUT
    twin_clock_is_device_clock: bool = False
    """True in-process (headless scenarios, backfill): the twin's clock *is* the simulation's, so
    no site clock is needed and simulated time thresholds run on ``now`` directly."""


_EMPTY: Final[Map[Any, Any]] = Map()

SNAPSHOT_EVERY: Final = 10
"""A device changed by telemetry only is snapshotted every this many versions (telemetry changes
nothing a restart cannot rebuild from the next sample)."""


class Fleet(NamedTuple):
    """Everything the twin knows, as one immutable value (see the module docstring)."""

    devices: Map[DeviceKey, DeviceTwin] = _EMPTY
    board: Board = Board()
    commands: Map[str, TrackedCommand] = _EMPTY
    clocks: Map[str, SiteClock] = _EMPTY
    forecasts: Map[DeviceKey, tuple[tuple[int, int], Forecast | None]] = _EMPTY
    sites: Map[str, int] = _EMPTY
    config: FleetConfig = FleetConfig()
    reports: Map[DeviceKey, tuple[PatientReport, ...]] = _EMPTY
    """Patient reports the clinic recorded, per device, while they are recent enough to be an alert."""
    visits: Map[DeviceKey, interrogation.Visits] = _EMPTY
    """Real pumps: the refill checks of consecutive read-outs (:mod:`twin.mirror.interrogation`), which
    replace the pump-calculated refill comparison. In the fleet value, so a commit that fails keeps the
    old checks with the old fleet; saved with the device's snapshot, so a restart keeps them."""
    watermarks: Map[str, datetime] = _EMPTY
    """Per site, the latest simulated time heard from it (clock messages and its pumps' device
    times): the clock simulated pumps' time thresholds run on (:mod:`twin.mirror.clock`)."""
    due: Map[str, datetime] = _EMPTY
    """Per site, the earliest watermark at which one of its simulated pumps' alerts may change
    (:func:`twin.mirror.alerts.next_change`; possibly early): passing it re-evaluates the site."""

    # -------------------------------------------------------------------------------- views

    def twin(self, key: DeviceKey) -> DeviceTwin | None:
        return self.devices.get(key)

    def by_id(self, device_id: str) -> list[DeviceTwin]:
        """Every device with this id (one per site that has one)."""
        return [t for (site, d), t in self.devices.items() if d == device_id]

    def clock_of(self, twin: DeviceTwin) -> SiteClock | None:
        return self.clocks.get(twin.site)

    def device_now(self, twin: DeviceTwin, now: datetime) -> datetime | None:
        """What ``twin``'s clock reads at wall time ``now`` (see :mod:`twin.mirror.clock`)."""
        if self.config.twin_clock_is_device_clock and twin.simulated is not False:
            return now
        return device_time(twin, self.clocks.get(twin.site), now)

    def alert_now(self, twin: DeviceTwin, now: datetime) -> datetime | None:
        """The device time ``twin``'s time thresholds are evaluated at (wall time ``now``): its
        site's watermark for a simulated pump (:func:`twin.mirror.clock.threshold_time`)."""
        if self.config.twin_clock_is_device_clock and twin.simulated is not False:
            return now
        return threshold_time(twin, self.watermarks.get(twin.site), now)

    def clock_rate(self, twin: DeviceTwin) -> float:
        """Device seconds per wall second of :meth:`device_now` (1 when the twin's clock is the
        device's)."""
        if self.config.twin_clock_is_device_clock and twin.simulated is not False:
            return 1.0
        return device_rate(twin, self.clocks.get(twin.site))

    def forecast(self, twin: DeviceTwin) -> Forecast | None:
        """The dates the device's latest state implies (cached per state)."""
        state = twin.reported
        if state is None:
            return None
        cached = self.forecasts.get(twin.key)
        if cached is not None and cached[0] == (state.session, state.seq):
            return cached[1]
        return _forecast(twin.birth, state)

    def pending_commands(self, key: DeviceKey) -> Iterator[TrackedCommand]:
        return (c for c in self.commands.values() if (c.site, c.device_id) == key)


def _forecast(birth: Birth | None, state: State) -> Forecast | None:
    try:
        return forecast(birth, state)
    except (ValueError, OverflowError):
        return None


# ------------------------------------------------------------------------------------------ ingest


def apply(fleet: Fleet, topic: str, payload: bytes, received_at: datetime) -> tuple[Fleet, list[Effect]]:
    """One MQTT message, as received (``received_at``: the arrival stamp). Never raises for
    anything a sender can do: a message that cannot be used is one :class:`Rejected` effect."""
    try:
        address = parse_topic(topic)
    except TopicError as exc:
        return fleet, [Rejected(exc.reason, topic, str(exc))]
    channel = address.channel
    if channel is Channel.CMD:
        return fleet, []  # our own commands, echoed by a wildcard subscription
    try:
        if channel is Channel.CLOCK:
            clock = decode_clock(address, payload)
            current = fleet.clocks.get(address.site)
            if not newer(current, clock):
                return fleet, [Counted("dropped", "duplicate")]
            fleet = fleet._replace(clocks=fleet.clocks.set(address.site, site_clock(clock, received_at)))
            if current is not None and current.run != clock.run:  # a new simulation: its time starts afresh
                fleet = fleet._replace(watermarks=fleet.watermarks.set(address.site, clock.sim_time))
            fleet, made = _heard(fleet, address.site, clock.sim_time, received_at)
            return fleet, [ClockChanged(address.site), Counted("messages_in", channel.value), *made]
        message = decode_device_message(address, payload)
    except ContractError as exc:
        return fleet, [Rejected(exc.reason, topic, str(exc))]
    key: DeviceKey = (address.site, address.device_id)
    before = fleet.devices.get(key)
    if before is None:
        refusal = _over_limits(fleet, address.site)
        if refusal is not None:
            return fleet, [Rejected("device_limit", topic, refusal)]
        before = DeviceTwin(site=address.site, device_id=address.device_id)
    return _apply_message(fleet, key, before, message, received_at, channel)


def _over_limits(fleet: Fleet, site: str) -> str | None:
    limits = fleet.config.limits
    count = fleet.sites.get(site)
    if count is None and len(fleet.sites) >= limits.sites:
        return f"the twin already mirrors {limits.sites} sites (Limits.sites)"
    if count is not None and count >= limits.devices_per_site:
        return f"site {site} already has {limits.devices_per_site} devices (Limits.devices_per_site)"
    return None


def _apply_message(
    fleet: Fleet,
    key: DeviceKey,
    before: DeviceTwin,
    message: DeviceMessage,
    received_at: datetime,
    channel: Channel,
) -> tuple[Fleet, list[Effect]]:
    outcome = order(before, message, received_at)
    twin = outcome.twin
    verdict = outcome.verdict
    if (
        type(message) is Telemetry
        and verdict is Verdict.APPLIED
        and not outcome.new_session
        and not outcome.missing
        and outcome.rebirth is None
        and twin.presence is before.presence
        and twin.birth is not None
        and key in fleet.devices
    ):
        fast = _next_telemetry(fleet, key, twin, message, received_at)
        if fast is not None:
            return fast
    effects: list[Effect] = [Counted("messages_in", channel.value)]
    if key in fleet.devices:
        fleet = fleet._replace(devices=fleet.devices.set(key, twin))
    else:
        sites = fleet.sites
        fleet = fleet._replace(devices=fleet.devices.set(key, twin), sites=sites.set(key[0], sites.get(key[0], 0) + 1))
    if verdict is not Verdict.APPLIED:
        effects.append(Counted("dropped", verdict.value))
    if outcome.missing:
        effects.append(Counted("gaps", "missing", outcome.missing))
    if outcome.rebirth is not None:
        effects += _rebirth(twin, outcome.rebirth)
    if outcome.conflict is not None:
        conflict = outcome.conflict
        fleet, raised = _identity_alarm(
            fleet,
            twin,
            f"A birth claimed {conflict.field} = {conflict.claimed}, but this device is pinned to "
            f"{conflict.pinned} (first birth); the birth was refused",
            received_at,
        )
        effects += raised
        effects.append(Rejected("identity_conflict", build_topic(key[0], key[1], channel), conflict.field))
    if verdict in RECORDED and twin.birth is not None and not isinstance(message, CommandResult):
        effects.append(Recorded(key, message))
    passes_on = outcome.passes_on
    if isinstance(passes_on, AlarmEvent):
        fleet, made = _device_alarm(fleet, key, passes_on, received_at)
        effects += made
    elif isinstance(passes_on, CommandResult):
        fleet, made = _command_answered(fleet, passes_on, received_at)
        effects += made
    if outcome.presence_changed:
        fleet = _presence_changed(fleet, twin, received_at)
    if verdict is Verdict.APPLIED:
        if outcome.new_session and isinstance(message, Birth):
            fleet, resent = _resend_pending(fleet, twin, received_at)
            effects += resent
        if isinstance(message, State):
            fleet, made = _on_state(fleet, before, twin, message, received_at)
            effects += made
        elif isinstance(message, Telemetry):
            fleet, made = _on_telemetry(fleet, before, twin, received_at)
            effects += made
        else:
            fleet, made = _evaluate(fleet, twin, received_at)
            effects += made
        effects.append(
            DeviceChanged(key, snapshot=not isinstance(message, Telemetry) or twin.version % SNAPSHOT_EVERY == 0)
        )
    elif outcome.presence_changed:
        effects.append(DeviceChanged(key))
    if twin.simulated is not False and twin.last_device_time is not None:
        # what this message made happened at its own device time (the watermark may be ahead of it:
        # the site's clock and other pumps' messages come on other connections)
        stamp = message.device_time
        effects = [replace(e, device_time=stamp) if type(e) is AlarmTransitions else e for e in effects]
        fleet, made = _heard(fleet, key[0], twin.last_device_time, received_at)
        effects += made
    return fleet, effects


_TELEMETRY_IN: Final = Counted("messages_in", Channel.TELEMETRY.value)


def _next_telemetry(
    fleet: Fleet, key: DeviceKey, twin: DeviceTwin, message: Telemetry, received_at: datetime
) -> tuple[Fleet, list[Effect]] | None:
    """:func:`_apply_message` for most of all traffic: the next sample, in order, of a known pump
    with nothing more to it (no gap, no rebirth, no presence change, no silence to end and no
    site deadline passed). The same fleet and effects as the general path, one new fleet value
    instead of two (tests/core/test_fleet_step.py compares them); None: take the general path."""
    site = key[0]
    silent = fleet.board.alarms.get(alarm_key(site, key[1], TwinAlertCode.DEVICE_SILENT.value))
    if silent is not None and silent.condition_active:
        return None  # the sample ends a silence: the alert rules run (_on_telemetry)
    effects: list[Effect] = [
        _TELEMETRY_IN,
        Recorded(key, message),
        DeviceChanged(key, snapshot=twin.version % SNAPSHOT_EVERY == 0),
    ]
    watermarks = fleet.watermarks
    heard = twin.last_device_time
    if twin.simulated is not False and heard is not None:
        watermark = watermarks.get(site)
        if watermark is None or heard > watermark:  # advance() moves the watermark on
            due = fleet.due.get(site)
            if due is not None and due <= heard:
                return None  # the site's deadline passes: its pumps are looked at again (_heard)
            watermarks = watermarks.set(site, heard)
    # the next fleet value field by field, in Fleet's order (``_replace`` walks every field)
    return _new_fleet(
        (
            fleet.devices.set(key, twin),
            fleet.board,
            fleet.commands,
            fleet.clocks,
            fleet.forecasts,
            fleet.sites,
            fleet.config,
            fleet.reports,
            fleet.visits,
            watermarks,
            fleet.due,
        )
    ), effects


def _new_fleet(fields: tuple[object, ...]) -> Fleet:
    return tuple.__new__(Fleet, fields)


def _heard(fleet: Fleet, site: str, heard: datetime, at: datetime) -> tuple[Fleet, list[Effect]]:
    """``site``'s simulation was heard at ``heard`` (device time; wall time ``at``): its watermark
    moves on, and if that passes the site's next deadline its simulated pumps are re-evaluated,
    the transitions made by this step."""
    watermark = fleet.watermarks.get(site)
    moved = advance(watermark, heard)
    if moved is watermark:
        return fleet, []
    fleet = fleet._replace(watermarks=fleet.watermarks.set(site, moved))
    due = fleet.due.get(site)
    if due is None or due > moved:
        return fleet, []
    fleet = fleet._replace(due=fleet.due.delete(site))
    effects: list[Effect] = []
    for key, twin in list(fleet.devices.items()):
        if key[0] == site and twin.simulated is not False and twin.last_seen_at is not None:
            fleet, made = _tick_device(fleet, key, twin, at)
            effects += made
    return fleet, effects


def _on_state(
    fleet: Fleet, before: DeviceTwin, twin: DeviceTwin, state: State, at: datetime
) -> tuple[Fleet, list[Effect]]:
    effects: list[Effect] = []
    outlook = _forecast(twin.birth, state)
    fleet = fleet._replace(forecasts=fleet.forecasts.set(twin.key, ((state.session, state.seq), outlook)))
    if twin.simulated is False:  # a real pump's read-out: check its refill against the read-out before
        held = fleet.visits.get(twin.key)
        visits = interrogation.record(held, before, twin, fleet.config.policy)
        if visits is not held and visits is not None:
            fleet = fleet._replace(visits=fleet.visits.set(twin.key, visits))
    if twin.birth is not None and twin.birth.audible_alarms:
        board, transitions = boards.reconcile(fleet.board, twin.site, twin.device_id, state.active_alarms, at)
        if transitions:
            fleet = fleet._replace(board=board)
            effects.append(AlarmTransitions(tuple(transitions)))
    fleet, made = _evaluate(fleet, twin, at)
    return fleet, effects + made


def _on_telemetry(fleet: Fleet, before: DeviceTwin, twin: DeviceTwin, at: datetime) -> tuple[Fleet, list[Effect]]:
    """Telemetry is most of the traffic: it can change the twin's alerts only by ending a silence
    (the forecast comes from state reports; time-driven alerts are the clock's), so the alert
    rules run only then."""
    silent = fleet.board.alarms.get(alarm_key(twin.site, twin.device_id, TwinAlertCode.DEVICE_SILENT.value))
    if (silent is not None and silent.condition_active) or before.presence is not twin.presence:
        return _evaluate(fleet, twin, at)
    return fleet, []


def _evaluate(fleet: Fleet, twin: DeviceTwin, now: datetime) -> tuple[Fleet, list[Effect]]:
    if twin.birth is None:
        return fleet, []
    outlook = fleet.forecast(twin)
    device_now = fleet.alert_now(twin, now)
    reports = fleet.reports.get(twin.key, ())
    conditions = evaluate(twin, outlook, now, fleet.config.policy, device_now=device_now, reports=reports)
    if twin.simulated is not False:  # when the site's clock must pass for this pump to be looked at again
        deadline = next_change(twin, outlook, now, fleet.config.policy, device_now=device_now, reports=reports)
        due = fleet.due.get(twin.site)
        if deadline is not None and (due is None or deadline < due):
            fleet = fleet._replace(due=fleet.due.set(twin.site, deadline))
    if twin.simulated is False:
        conditions = interrogation.refill_conditions(
            twin, conditions, fleet.visits.get(twin.key), now, fleet.config.policy
        )
    board, transitions = boards.on_conditions(fleet.board, twin.site, twin.device_id, conditions, now)
    if not transitions:
        return fleet, []
    stamp = device_now if twin.simulated is not False else None
    return fleet._replace(board=board), [AlarmTransitions(tuple(transitions), device_time=stamp)]


def _identity_alarm(fleet: Fleet, twin: DeviceTwin, message: str, at: datetime) -> tuple[Fleet, list[Effect]]:
    """A security alarm: raised and at once cleared, so that it latches until acknowledged."""
    code = TwinAlertCode.IDENTITY_CONFLICT
    key = alarm_key(twin.site, twin.device_id, code.value)
    current = fleet.board.alarms.get(key)
    if current is None:
        alarm, made = lifecycle.raise_alarm(
            key,
            twin.device_id,
            twin.site,
            code.value,
            "twin",
            ALERT_PRIORITY[code],
            message,
            at,
            latching=True,
            actor=lifecycle.TWIN_ACTOR,
        )
    else:
        alarm, made = lifecycle.condition_returned(current, at, lifecycle.TWIN_ACTOR, message=message)
    alarm, cleared = lifecycle.condition_cleared(alarm, at, lifecycle.TWIN_ACTOR)
    board = boards._put(fleet.board, alarm)
    transitions = made + cleared
    return fleet._replace(board=board), ([AlarmTransitions(tuple(transitions))] if transitions else [])


def _device_alarm(fleet: Fleet, key: DeviceKey, event: AlarmEvent, at: datetime) -> tuple[Fleet, list[Effect]]:
    mark = dedupe_key(key[0], event)
    if mark in fleet.board.marks.get(alarm_key(key[0], key[1], event.code.value), ()):
        return fleet, [Counted("dropped", "duplicate_alarm_event")]
    board, transitions = boards.on_device_event(fleet.board, key[0], event, at)
    return fleet._replace(board=board), [AlarmTransitions(tuple(transitions), device_event=mark)]


def _rebirth(twin: DeviceTwin, why: str) -> list[Effect]:
    if twin.birth is not None and not twin.birth.simulated:
        return []
    issued = twin.last_device_time
    if issued is None:
        return []
    command = Command(
        command_id=f"rebirth-{twin.session}-{twin.high_seq}",
        device_id=twin.device_id,
        issued_at=issued,
        actor="twin",
        action=RebirthAction(),
    )
    topic = build_topic(twin.site, twin.device_id, Channel.CMD)
    return [
        Publish(topic, encode(command), CHANNELS[Channel.CMD].qos),
        Counted("rebirths", why.split(":")[0][:40]),
    ]


# ---------------------------------------------------------------------------------------- commands


def _command_answered(fleet: Fleet, result: CommandResult, at: datetime) -> tuple[Fleet, list[Effect]]:
    tracked = fleet.commands.get(result.command_id)
    if tracked is None:
        return fleet, [Counted("dropped", "unsolicited_result")]
    new = desk.answered(tracked, result, at)
    if new is tracked:
        return fleet, [Counted("dropped", "duplicate_result")]
    return fleet._replace(commands=fleet.commands.set(new.command_id, new)), [CommandChanged(new, logged=True)]


def _resend_pending(fleet: Fleet, twin: DeviceTwin, now: datetime) -> tuple[Fleet, list[Effect]]:
    effects: list[Effect] = []
    commands = fleet.commands
    for tracked in list(fleet.pending_commands(twin.key)):
        if tracked.state is CommandState.PENDING and tracked.sends > 0:
            sent = desk.sent(desk.device_online(tracked, now), now)
            commands = commands.set(sent.command_id, sent)
            effects.append(_publish_command(sent))
    return fleet._replace(commands=commands), effects


def _presence_changed(fleet: Fleet, twin: DeviceTwin, now: datetime) -> Fleet:
    commands = fleet.commands
    for tracked in list(fleet.pending_commands(twin.key)):
        moved = desk.device_online(tracked, now) if twin.presence is Presence.ONLINE else desk.device_offline(tracked)
        if moved is not tracked:
            commands = commands.set(moved.command_id, moved)
    return fleet._replace(commands=commands) if commands is not fleet.commands else fleet


def _publish_command(tracked: TrackedCommand) -> Publish:
    topic = build_topic(tracked.site, tracked.device_id, Channel.CMD)
    return Publish(topic, encode(tracked.command), CHANNELS[Channel.CMD].qos)


def send_command(
    fleet: Fleet, key: DeviceKey, action: Action, actor: str, now: datetime, command_id: str
) -> tuple[Fleet, TrackedCommand, list[Effect]]:
    """Accept a command for ``key``'s device and send it; raises :class:`CommandRefused` (unknown
    device, or a real one: read-only)."""
    twin = fleet.devices.get(key)
    issued = fleet.device_now(twin, now) if twin is not None else None
    command = Command(
        command_id=command_id,
        device_id=key[1],
        issued_at=issued or now,
        actor=actor,
        action=action,
    )
    tracked = desk.track(twin, command, now)
    sent = desk.sent(tracked, now)
    fleet = fleet._replace(commands=fleet.commands.set(sent.command_id, sent))
    return fleet, sent, [CommandChanged(sent, logged=True), _publish_command(sent)]


# ------------------------------------------------------------------------------------ staff actions


def act_on_alarm(
    fleet: Fleet,
    key: str,
    verb: str,
    actor: str,
    now: datetime,
    *,
    duration: timedelta | None = None,
    comment: str | None = None,
) -> tuple[Fleet, Alarm, list[Effect]]:
    """A staff action on an alarm; raises :class:`AlarmError` with a reason."""
    board, alarm, transitions = boards.act(fleet.board, key, verb, actor, now, duration=duration, comment=comment)
    effects: list[Effect] = [AlarmTransitions(tuple(transitions))] if transitions else []
    return fleet._replace(board=board), alarm, effects


def record_patient_report(
    fleet: Fleet, key: DeviceKey, report: PatientReport, now: datetime | None = None
) -> tuple[Fleet, list[Effect]]:
    """A patient's report the clinic recorded about ``key``'s pump: a ``patient_report`` alert
    (:mod:`twin.mirror.alerts`) raised at wall time ``now`` (default: the report's time). The
    report is timed on the pump's clock: the simulation's for a simulated pump (a scenario's
    symptom), the wall clock for a real one. Reports older than the alert's window are
    forgotten. An unknown device changes nothing."""
    twin = fleet.devices.get(key)
    if twin is None:
        return fleet, []
    keep = fleet.config.policy.patient_report_for
    kept = tuple(r for r in fleet.reports.get(key, ()) if report.at - r.at < keep)
    fleet = fleet._replace(reports=fleet.reports.set(key, (*kept, report)))
    effects: list[Effect] = []
    if twin.simulated is not False:  # the simulation says it is this late at the pump's site
        fleet, effects = _heard(fleet, key[0], report.at, now or report.at)
    fleet, made = _evaluate(fleet, fleet.devices.get(key, twin), now or report.at)
    return fleet, effects + made


def record_response(fleet: Fleet, response: AlarmResponse) -> tuple[Fleet, list[Effect]]:
    """A staff response to an alarm (the alarm must exist: :class:`AlarmError` ``unknown_alarm``)."""
    if response.key not in fleet.board.alarms:
        raise AlarmError("unknown_alarm", f"no alarm {response.key!r}")
    return fleet, [ResponseRecorded(response)]


# ------------------------------------------------------------------------------------------- clock


def tick(fleet: Fleet, now: datetime) -> tuple[Fleet, list[Effect]]:
    """Clock-driven work at wall time ``now``: expiries, silent devices, time-driven alerts,
    command timeouts. Each device is handled on its own: a device whose rules fail (a bug, or
    dates no forecast can hold) is skipped and counted, never the whole tick."""
    effects: list[Effect] = []
    board, transitions = boards.expire(fleet.board, now)
    if transitions:
        fleet = fleet._replace(board=board)
        effects.append(AlarmTransitions(tuple(transitions)))
    # A simulated pump's time rules run on its site's clock (the watermark, moved by messages:
    # _heard), never on the wall, so evaluating it at wall time changes nothing; skipping them
    # keeps the clock loop's cost to the real pumps (300 simulated pumps took 5 ms a second of
    # the loop that carries every alarm). When the twin's clock is the simulation's (headless),
    # ``now`` is device time and every device is ticked.
    wall_clock = not fleet.config.twin_clock_is_device_clock
    for key, twin in list(fleet.devices.items()):
        if twin.last_seen_at is None or (wall_clock and twin.simulated is not False):
            continue
        fleet, made = _tick_device(fleet, key, twin, now)
        effects += made
    commands = fleet.commands
    for tracked in list(commands.values()):
        new = desk.expire(tracked, now, fleet.config.command_timeout)
        if new is not tracked:
            commands = commands.set(new.command_id, new)
            effects.append(CommandChanged(new, logged=True))
    if commands is not fleet.commands:
        fleet = fleet._replace(commands=commands)
    return fleet, effects


def _tick_device(fleet: Fleet, key: DeviceKey, twin: DeviceTwin, now: datetime) -> tuple[Fleet, list[Effect]]:
    """One device's time-driven rules at wall time ``now`` (its presence, its alerts). A device
    whose rules fail (a bug, or dates no forecast can hold) is skipped and counted."""
    effects: list[Effect] = []
    try:
        if twin.presence is Presence.ONLINE:
            unheard = _unheard(fleet, twin, now)
            if unheard is not None and unheard > silence_limit(twin, fleet.config.policy):
                silent = mark_silent(twin, now)
                fleet = fleet._replace(devices=fleet.devices.set(key, silent))
                fleet = _presence_changed(fleet, silent, now)
                effects.append(DeviceChanged(key))
                twin = silent
        fleet, made = _evaluate(fleet, twin, now)
        effects += made
    except (ArithmeticError, ValueError, AlarmError) as exc:
        effects.append(Counted("tick_errors", type(exc).__name__))
    return fleet, effects


def _unheard(fleet: Fleet, twin: DeviceTwin, now: datetime) -> timedelta | None:
    return silent_for(twin, now, fleet.alert_now(twin, now))


# ------------------------------------------------------------------------------------------ restore


def restored(
    *,
    devices: Map[DeviceKey, DeviceTwin],
    board: Board,
    commands: Map[str, TrackedCommand],
    config: FleetConfig,
    visits: Map[DeviceKey, interrogation.Visits] = _EMPTY,
) -> Fleet:
    """A fleet from what a store restored (snapshots with the real pumps' refill checks, the folded
    journal, the command log)."""
    sites: dict[str, int] = {}
    for site, _ in devices:
        sites[site] = sites.get(site, 0) + 1
    return Fleet(devices=devices, board=board, commands=commands, sites=Map(sites), config=config, visits=visits)


def device_event_marks(fleet: Fleet) -> list[DeviceEventKey]:
    """Every device-event mark the board remembers (for a snapshot of the fleet)."""
    return [mark for marks in fleet.board.marks.values() for mark in marks]
