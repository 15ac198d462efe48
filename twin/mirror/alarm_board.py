"""Every alarm point the twin tracks, device-raised and twin-raised, as one immutable value.

An alarm point is one condition on one device (key ``<site>/<device>/<code>``,
:func:`twin.alarms.lifecycle.alarm_key`); it lives through many occurrences. :class:`Board`
holds them in persistent maps (``immutables.Map``: an update makes a new board in O(log n) and
shares the rest), so a fleet step that fails to be journaled is undone by keeping the old board,
and nothing here is ever mutated. Each function returns the new board with the transitions it
caused, which the service journals, streams and writes to InfluxDB:

* a device's ``alarm`` event raises (or re-raises) or clears its point. An event is identified by
  its device, alarm id and event (:class:`~twin.alarms.device_events.DeviceEventKey`); the board
  keeps the last :data:`MARKS_PER_POINT` of them per point, so an event delivered twice (a QoS 1
  redelivery, a device replaying its queue after a reconnect) changes nothing the second time;
* the twin's own alert conditions (:mod:`twin.mirror.alerts`) raise their points and clear them
  when the condition no longer holds; a condition that holds for a new reason (a new refill's
  discrepancy) ends the old occurrence and starts a new one;
* every state that becomes the device's reported state is reconciled with the board: an
  occurrence the twin missed is raised, one that ended unseen is cleared (so a gap, a rebirth or
  a restart can never leave the board wrong for long);
* staff act on alarms by key (acknowledge, silence, shelve, ...), and time makes shelves and
  audio pauses expire (only the points with a deadline are looked at).

Pure: time is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from immutables import Map

from twin.alarms import lifecycle
from twin.alarms.device_events import DeviceEventKey
from twin.alarms.lifecycle import Alarm, AlarmError, AlarmState, Transition, alarm_key
from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode, Priority
from twin.contract.messages import AlarmEvent, AlarmEventType
from twin.mirror.alerts import AlertCondition, TwinAlertCode

DeviceKey = tuple[str, str]
"""A device's identity in the twin: ``(site, device_id)``."""

TWIN_CODES: Final = frozenset(code.value for code in TwinAlertCode)

MARKS_PER_POINT: Final = 64
"""Device events remembered per alarm point for deduplication. A repeat comes within the broker's
in-flight window (``max_inflight_messages 20`` in broker/mosquitto.conf: what a killed twin had not
acknowledged) or a device's replay of its offline queue, and a twin restarted from a snapshot a
second old has not seen their sequence numbers, so these marks are what recognise them: all 20 of a
window may be one flapping alarm's. Nothing else does (the journal writes a repeated mark as a
no-op and the transitions it caused as new ones), hence more than the window, with room for a
device's replay. 16 let a raise four events old re-raise its cleared alarm
(tests/core/test_alarm_marks.py)."""

DEFAULT_SHELVE: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Board:
    """All alarm points by key, with what the rules need to know about each."""

    alarms: Map[str, Alarm] = field(default_factory=Map)
    by_device: Map[DeviceKey, frozenset[str]] = field(default_factory=Map)
    instances: Map[str, str] = field(default_factory=Map)
    """The reason (instance) behind each active twin alert."""
    marks: Map[str, tuple[DeviceEventKey, ...]] = field(default_factory=Map)
    expiring: Map[str, datetime] = field(default_factory=Map)
    """Points with a shelve or audio-pause deadline, and the deadline."""

    # -------------------------------------------------------------------------------- views

    def get(self, key: str) -> Alarm | None:
        return self.alarms.get(key)

    def open(self) -> Iterator[Alarm]:
        """Alarms not in the normal state (what staff see)."""
        return (a for a in self.alarms.values() if a.state is not AlarmState.NORMAL)

    def of_device(self, device: DeviceKey, *, include_normal: bool = False) -> list[Alarm]:
        out = []
        for key in self.by_device.get(device, ()):
            alarm = self.alarms[key]
            if include_normal or alarm.state is not AlarmState.NORMAL:
                out.append(alarm)
        return out

    def has_mark(self, mark: DeviceEventKey, code: str) -> bool:
        return mark in self.marks.get(alarm_key(mark.site, mark.device_id, code), ())


def restored(alarms: Iterable[Alarm], marks: Iterable[DeviceEventKey] = ()) -> Board:
    """A board from a store's restore: every point, and the device-event marks it kept."""
    board = Board()
    with board.alarms.mutate() as points, board.by_device.mutate() as index, board.expiring.mutate() as due:
        for alarm in alarms:
            points[alarm.key] = alarm
            device = (alarm.site, alarm.device_id)
            index[device] = index.get(device, frozenset()) | {alarm.key}
            deadline = lifecycle.next_expiry(alarm)
            if deadline is not None:
                due[alarm.key] = deadline
        alarm_map, index_map, due_map = points.finish(), index.finish(), due.finish()
    by_point: dict[str, list[DeviceEventKey]] = {}
    for mark in marks:
        by_point.setdefault(alarm_key(mark.site, mark.device_id, mark.code), []).append(mark)
    # every mark the store restored (it keeps a bounded time, twin.store.local.MARKS_RESTORED_FOR), not the
    # last MARKS_PER_POINT: the store hands them over unordered, and "the last" of an unordered set could
    # leave out the very events a restarted twin is about to be sent again
    mark_map = Map({k: tuple(v) for k, v in by_point.items()})
    return Board(alarm_map, index_map, Map(), mark_map, due_map)


def _put(board: Board, alarm: Alarm) -> Board:
    device = (alarm.site, alarm.device_id)
    keys = board.by_device.get(device)
    by_device = (
        board.by_device
        if keys is not None and alarm.key in keys
        else board.by_device.set(device, (keys or frozenset()) | {alarm.key})
    )
    deadline = lifecycle.next_expiry(alarm)
    expiring = board.expiring
    if deadline is not None:
        if expiring.get(alarm.key) != deadline:
            expiring = expiring.set(alarm.key, deadline)
    elif alarm.key in expiring:
        expiring = expiring.delete(alarm.key)
    return Board(board.alarms.set(alarm.key, alarm), by_device, board.instances, board.marks, expiring)


def _step(board: Board, step: tuple[Alarm, list[Transition]]) -> tuple[Board, list[Transition]]:
    alarm, transitions = step
    if not transitions:
        return board, []
    return _put(board, alarm), transitions


# --------------------------------------------------------------------------------- device alarms


def on_device_event(board: Board, site: str, event: AlarmEvent, at: datetime) -> tuple[Board, list[Transition]]:
    """Apply a pump's alarm event (a repeat of a remembered event changes nothing)."""
    key = alarm_key(site, event.device_id, event.code.value)
    mark = DeviceEventKey(site, event.device_id, event.alarm_id, event.event.value, event.code.value)
    seen = board.marks.get(key, ())
    if mark in seen:
        return board, []
    board = Board(
        board.alarms,
        board.by_device,
        board.instances,
        board.marks.set(key, (*seen, mark)[-MARKS_PER_POINT:]),
        board.expiring,
    )
    current = board.alarms.get(key)
    if event.event is AlarmEventType.RAISED:
        if current is None:
            return _step(
                board,
                lifecycle.raise_alarm(
                    key, event.device_id, site, event.code.value, "device", event.priority, event.message, at
                ),
            )
        return _step(board, lifecycle.condition_returned(current, at, message=event.message))
    if current is None:
        # the raise was never seen (it happened before this twin existed): record both ends
        board, raised = _step(
            board,
            lifecycle.raise_alarm(
                key,
                event.device_id,
                site,
                event.code.value,
                "device",
                event.priority,
                f"{event.message} (its raise was not seen)",
                at,
            ),
        )
        board, cleared = _step(board, lifecycle.condition_cleared(board.alarms[key], at))
        return board, raised + cleared
    return _step(board, lifecycle.condition_cleared(current, at))


def reconcile(
    board: Board, site: str, device_id: str, active_codes: Iterable[AlarmCode], at: datetime
) -> tuple[Board, list[Transition]]:
    """Align the device's alarm points with the codes a state reports as active."""
    codes = {AlarmCode(c).value for c in active_codes}
    out: list[Transition] = []
    for code in sorted(codes):
        key = alarm_key(site, device_id, code)
        current = board.alarms.get(key)
        spec = ALARM_CATALOGUE[AlarmCode(code)]
        message = f"{spec.title} (reported active in the device's state)"
        if current is None:
            board, made = _step(
                board, lifecycle.raise_alarm(key, device_id, site, code, "device", spec.priority, message, at)
            )
        else:
            board, made = _step(board, lifecycle.condition_returned(current, at, message=message))
        out += made
    for alarm in board.of_device((site, device_id), include_normal=True):
        if alarm.source == "device" and alarm.condition_active and alarm.code not in codes:
            board, made = _step(board, lifecycle.condition_cleared(alarm, at))
            out += made
    return board, out


# ------------------------------------------------------------------------------------- twin alerts


def on_conditions(
    board: Board,
    site: str,
    device_id: str,
    conditions: Iterable[AlertCondition],
    at: datetime,
    *,
    priorities: dict[str, Priority] | None = None,
) -> tuple[Board, list[Transition]]:
    """Raise the twin alerts that hold (``conditions``) and clear those that no longer do."""
    wanted: dict[str, AlertCondition] = {}
    for condition in conditions:
        wanted[alarm_key(site, device_id, condition.code.value)] = condition
    out: list[Transition] = []
    instances = board.instances
    for key, condition in wanted.items():
        current = board.alarms.get(key)
        if current is None:
            board, made = _step(
                board,
                lifecycle.raise_alarm(
                    key,
                    device_id,
                    site,
                    condition.code.value,
                    "twin",
                    condition.priority,
                    condition.message,
                    at,
                    actor=lifecycle.TWIN_ACTOR,
                ),
            )
            out += made
        elif not current.condition_active:
            board, made = _step(
                board,
                lifecycle.condition_returned(
                    current, at, lifecycle.TWIN_ACTOR, message=condition.message, priority=condition.priority
                ),
            )
            out += made
        elif instances.get(key, condition.instance) != condition.instance:
            # the same kind of alert for a new reason: end the old occurrence, start a new one
            board, ended = _step(board, lifecycle.condition_cleared(current, at, lifecycle.TWIN_ACTOR))
            board, began = _step(
                board,
                lifecycle.condition_returned(
                    board.alarms[key], at, lifecycle.TWIN_ACTOR, message=condition.message, priority=condition.priority
                ),
            )
            out += ended + began
        if instances.get(key) != condition.instance:
            instances = instances.set(key, condition.instance)
    for alarm in board.of_device((site, device_id), include_normal=True):
        if alarm.source == "twin" and alarm.condition_active and alarm.key not in wanted:
            board, made = _step(board, lifecycle.condition_cleared(alarm, at, lifecycle.TWIN_ACTOR))
            out += made
            if alarm.key in instances:
                instances = instances.delete(alarm.key)
    if instances is not board.instances:
        board = Board(board.alarms, board.by_device, instances, board.marks, board.expiring)
    return board, out


# ---------------------------------------------------------------------------------- staff actions


def act(
    board: Board,
    key: str,
    verb: str,
    actor: str,
    at: datetime,
    *,
    duration: timedelta | None = None,
    comment: str | None = None,
) -> tuple[Board, Alarm, list[Transition]]:
    """Apply a staff action; raises :class:`AlarmError` (reason ``unknown_alarm`` and others)."""
    alarm = board.alarms.get(key)
    if alarm is None:
        raise AlarmError("unknown_alarm", f"no alarm {key!r}")
    match verb:
        case "acknowledge":
            step = lifecycle.acknowledge(alarm, actor, at, comment)
        case "silence":
            step = lifecycle.silence(alarm, actor, at, duration or lifecycle.DEFAULT_SILENCE_DURATION, comment)
        case "shelve":
            step = lifecycle.shelve(alarm, actor, at, duration or DEFAULT_SHELVE, comment or "")
        case "unshelve":
            step = lifecycle.unshelve(alarm, actor, at, comment)
        case "remove_from_service":
            step = lifecycle.remove_from_service(alarm, actor, at, comment or "")
        case "return_to_service":
            step = lifecycle.return_to_service(alarm, actor, at, comment)
        case _:
            raise AlarmError("unknown_action", f"unknown alarm action {verb!r}")
    board, transitions = _step(board, step)
    return board, step[0], transitions


def expire(board: Board, at: datetime) -> tuple[Board, list[Transition]]:
    """Apply the shelve and audio-pause expiries due at ``at``."""
    out: list[Transition] = []
    for key, deadline in list(board.expiring.items()):
        if deadline <= at:
            alarm, made = lifecycle.expire(board.alarms[key], at)
            board = _put(board, alarm)
            out += made
    return board, out


def next_deadline(board: Board) -> datetime | None:
    """The earliest shelve or audio-pause deadline on the board."""
    return min(board.expiring.values(), default=None)
