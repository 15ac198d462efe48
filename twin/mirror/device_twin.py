"""The twin of one device, and the ordering rules each contract message goes through.

:func:`order` is the rule book, as a pure function ``(twin, message, received_at) -> Ordering``:

* **Sessions.** A device's messages carry ``(session, seq)``. A birth of a newer session opens it;
  a message of an older session is *stale*: it never changes the twin (newer facts exist), but it
  is still history (its points are written) and the alarm event or command result it carries is
  passed on, since those are facts that never go stale (they are deduplicated by their own ids).
* **Sequence numbers are identities, not a high-water mark.** MQTT orders messages per topic and
  QoS only: a QoS 0 telemetry sample overtakes a QoS 1 alarm that waits in the broker's queue.
  So within a session the twin remembers *which* of the last :data:`SEQ_WINDOW` numbers it has
  seen (a bit mask under the highest). A number seen before is a duplicate; a lower number not
  seen before is a *late* message: applied if it is the newest of its channel (a state older than
  the reported one only becomes history), and its alarm event or result is always passed on.
  Numbers that leave the window unseen are the messages really lost: counted as missing, and
  answered with one rebirth request (simulated devices only, at most every
  :data:`REBIRTH_BACKOFF`).
* **Implausible jumps.** A sequence number more than :data:`MAX_SEQ_JUMP` above the highest, or a
  session more than :data:`MAX_SESSION_JUMP` ahead, is not believed (a forged ``seq`` near 2^31
  would otherwise mute the device): it moves nothing, its events are still passed on, and a
  rebirth is asked for.
* **Identity is pinned.** The first accepted birth fixes the device's model and ``simulated``
  flag (the site is part of the device's key). A later birth that contradicts them is *refused*:
  the twin keeps its identity, the refused session's messages change nothing (their alarm events
  still pass), and the caller raises a security alarm. A pump born real can never be made
  simulated, and so never be sent a fault, by a message.
* **Presence.** ``status`` messages are ordered by session only: online or offline for the
  current (or a newer) session; a late last will from an older session is ignored.
* **Clock.** Devices keep their own clock (a simulated pump's may run 3,600 times faster than
  the wall). The twin estimates each device's clock rate from consecutive reports and the
  device-time interval between its telemetry samples; a simulated site's clock message, when
  there is one, is better still (see :mod:`twin.mirror.clock`).

Nothing here reads the clock or does I/O; ``received_at`` is the twin's wall time at receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, NamedTuple

from twin.contract.messages import (
    AlarmEvent,
    Birth,
    CommandResult,
    DeviceMessage,
    DeviceStatus,
    State,
    StatusState,
    Telemetry,
)

REBIRTH_BACKOFF: Final = timedelta(seconds=30)
"""At most one rebirth request per device in this (wall) time: a device that keeps skipping
numbers must not be flooded with requests."""

SEQ_WINDOW: Final = 1024
"""How many sequence numbers below the highest the twin remembers as seen or not. A message that
comes later than this many newer ones is still passed on for its events (their own ids
deduplicate them) but can no longer be told from a repeat. 1,024 covers the deepest reordering
MQTT makes in practice: QoS 0 samples overtaking the QoS 1 messages a broker queues for a busy
consumer (Mosquitto's ``max_inflight_messages`` is 20 by default; ``max_queued_messages`` 1,000)."""

MAX_SEQ_JUMP: Final = 1_000_000
"""A jump this far above the highest number seen is not believed. A device that publishes ten
messages a second for a day while the twin is away makes about 864,000 numbers; a forged seq
near 2^31 makes two billion."""

MAX_SESSION_JUMP: Final = 100_000
"""A session this far ahead of the current one is not believed (a device opens a session per
connection: a few a day, a hundred thousand is centuries of reconnects)."""

CLOCK_RATE_SMOOTHING: Final = 0.3
"""Weight of the newest observation in the device clock-rate estimate (exponential average)."""

MIN_WALL_FOR_RATE_S: Final = 0.5
"""Two reports closer than this in wall time say too little about the clock rate to use them."""

INTERVAL_SMOOTHING: Final = 0.2
"""Weight of the newest telemetry interval in the reporting-interval estimate."""

_FULL: Final = (1 << SEQ_WINDOW) - 1

SILENT: Final = "silent"
"""The presence reason of a device the twin marked offline because it went unheard too long."""
HEARD: Final = "heard"
"""The presence reason of a device back online because a message in order came after a silence."""


class Presence(StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


class Counters(NamedTuple):
    applied: int = 0
    duplicates: int = 0
    missing: int = 0
    stale: int = 0
    late: int = 0
    implausible: int = 0
    refused: int = 0

    @property
    def gaps(self) -> int:
        """Messages lost (numbers that left the window unseen); the old name of :attr:`missing`."""
        return self.missing


class DeviceTwin(NamedTuple):
    """Everything the twin knows about one device. Immutable: :func:`order` returns a new one.

    A ``NamedTuple`` rather than a frozen dataclass for speed on the ingest path: ``_replace``
    makes the next version about five times faster than ``dataclasses.replace`` (1.1 µs against
    5.0 µs with eight changes, measured here), and every message makes one.

    ``high_seq``/``seen``: the highest sequence number of the session and a bit mask of the
    :data:`SEQ_WINDOW` numbers up to it (bit ``i`` is ``high_seq - i``). ``state_seq`` and
    ``telemetry_seq`` are the numbers of the reported state and of the latest sample: a late
    message of a channel is applied only if it is newer than these.
    """

    site: str
    device_id: str
    birth: Birth | None = None
    reported: State | None = None
    telemetry: Telemetry | None = None
    presence: Presence = Presence.UNKNOWN
    presence_reason: str | None = None
    presence_since: datetime | None = None
    session: int | None = None
    high_seq: int = -1
    seen: int = 0
    state_seq: int = -1
    telemetry_seq: int = -1
    birth_seq: int = -1
    refused_session: int | None = None
    last_seen_at: datetime | None = None
    last_device_time: datetime | None = None
    clock_rate: float = 1.0
    report_interval_s: float | None = None
    version: int = 0
    counters: Counters = Counters()
    rebirth_requested_at: datetime | None = None
    reported_at: datetime | None = None  # wall time the current `reported` state arrived

    @property
    def key(self) -> tuple[str, str]:
        return (self.site, self.device_id)

    @property
    def simulated(self) -> bool | None:
        return self.birth.simulated if self.birth is not None else None

    @property
    def last_seq(self) -> int | None:
        return self.high_seq if self.session is not None else None

    def device_now(self, now: datetime) -> datetime | None:
        """What the device's clock reads at wall time ``now`` (estimated from its reports), or None
        if never heard. :func:`twin.mirror.clock.device_time` prefers a site clock when there is one.

        A real pump's clock is a real clock, read at interrogations weeks apart: its time now is ``now``
        (an estimate from two read-outs imported minutes apart would be meaningless)."""
        if self.last_device_time is None or self.last_seen_at is None:
            return None
        if self.birth is not None and not self.birth.simulated:
            return now
        elapsed = max(0.0, (now - self.last_seen_at).total_seconds())
        return self.last_device_time + timedelta(seconds=elapsed * self.clock_rate)


class Verdict(StrEnum):
    """What the ordering rules made of one message."""

    APPLIED = "applied"  # the newest of its channel: the twin changed
    HISTORY = "history"  # first seen, but older than what the twin holds: recorded, twin unchanged
    DUPLICATE = "duplicate"  # seen before: nothing to do
    STALE = "stale"  # of an older session: history only
    IMPLAUSIBLE = "implausible"  # a sequence or session jump not believed: nothing moves
    REFUSED = "refused"  # a birth (or its session) that contradicts the pinned identity


RECORDED: Final = frozenset({Verdict.APPLIED, Verdict.HISTORY, Verdict.STALE})
"""Verdicts whose message is part of the device's history (points are written)."""


@dataclass(frozen=True, slots=True)
class IdentityConflict:
    """A birth that contradicts the pinned identity: what it said against what was pinned."""

    field: str
    pinned: str
    claimed: str


class Ordering(NamedTuple):
    """The outcome of :func:`order` for one message."""

    twin: DeviceTwin
    verdict: Verdict
    new_session: bool = False
    missing: int = 0  # numbers that left the window unseen because of this message
    rebirth: str | None = None  # why a rebirth should be asked for (already rate-limited)
    presence_changed: bool = False
    passes_on: AlarmEvent | CommandResult | None = None
    conflict: IdentityConflict | None = None


def _estimate_rate(twin: DeviceTwin, message: DeviceMessage, received_at: datetime) -> float:
    if twin.last_device_time is None or twin.last_seen_at is None:
        return twin.clock_rate
    wall = (received_at - twin.last_seen_at).total_seconds()
    dev = (message.device_time - twin.last_device_time).total_seconds()
    if wall < MIN_WALL_FOR_RATE_S or dev <= 0:
        return twin.clock_rate
    observed = dev / wall
    return (1 - CLOCK_RATE_SMOOTHING) * twin.clock_rate + CLOCK_RATE_SMOOTHING * observed


def _want_rebirth(twin: DeviceTwin, received_at: datetime) -> bool:
    if twin.birth is not None and not twin.birth.simulated:
        return False  # never send anything to a real device: read-only mirror
    last = twin.rebirth_requested_at
    return last is None or received_at - last >= REBIRTH_BACKOFF


def identity_conflict(pinned: Birth, birth: Birth) -> IdentityConflict | None:
    """How ``birth`` contradicts the identity ``pinned`` by the first birth, if it does."""
    if birth.simulated != pinned.simulated:
        return IdentityConflict("simulated", str(pinned.simulated).lower(), str(birth.simulated).lower())
    if birth.model != pinned.model:
        return IdentityConflict("model", pinned.model, birth.model)
    return None


def order(twin: DeviceTwin, message: DeviceMessage, received_at: datetime) -> Ordering:
    """Apply one decoded device message of ``twin``'s device (see the module docstring)."""
    if (
        type(message) is Telemetry
        and message.session == twin.session
        and message.seq == twin.high_seq + 1
        and twin.telemetry is not None
        and twin.telemetry.session == message.session
        and twin.presence_reason != SILENT  # heard again: the general path ends the silence
    ):
        return _next_sample(twin, message, received_at)
    return order_in_general(twin, message, received_at)


def order_in_general(twin: DeviceTwin, message: DeviceMessage, received_at: datetime) -> Ordering:
    """:func:`order` without its fast path for the next sample in order (the tests compare the two)."""
    if isinstance(message, DeviceStatus):
        return _order_status(twin, message, received_at)
    passes_on = message if isinstance(message, AlarmEvent | CommandResult) else None
    session, seq = message.session, message.seq
    current = twin.session
    c = twin.counters

    if isinstance(message, Birth) and twin.birth is not None:
        conflict = identity_conflict(twin.birth, message)
        if conflict is not None:
            counters = c._replace(refused=c.refused + 1)
            return Ordering(
                twin._replace(counters=counters, refused_session=session),
                Verdict.REFUSED,
                passes_on=None,
                conflict=conflict,
            )
    if twin.refused_session is not None and session == twin.refused_session:
        return Ordering(twin._replace(counters=c._replace(refused=c.refused + 1)), Verdict.REFUSED, passes_on=passes_on)

    if current is not None and session < current:
        return Ordering(twin._replace(counters=c._replace(stale=c.stale + 1)), Verdict.STALE, passes_on=passes_on)

    if current is not None and session > current + MAX_SESSION_JUMP:
        return _implausible(twin, received_at, f"session {session} is implausibly far ahead of {current}", passes_on)

    new_session = current is None or session > current
    missing = 0
    if new_session:
        # numbers below 0 do not exist (their bits count as seen); those from 0 to seq - 1 may
        # still come (a QoS 0 sample can overtake the session's birth) or be counted missing
        high, seen = seq, ((_FULL ^ ((1 << (seq + 1)) - 1)) | 1) if seq < SEQ_WINDOW else 1
        rebirth = None if isinstance(message, Birth) else "no birth for this session"
        newest = True
    else:
        if seq > twin.high_seq + MAX_SEQ_JUMP:
            return _implausible(twin, received_at, f"seq {seq} is implausibly far above {twin.high_seq}", passes_on)
        if seq > twin.high_seq:
            shift = seq - twin.high_seq
            if shift >= SEQ_WINDOW:
                missing = SEQ_WINDOW - twin.seen.bit_count() + (shift - SEQ_WINDOW)
                seen = 1
            else:
                leaving = twin.seen >> (SEQ_WINDOW - shift)  # the bits shifted out of the window
                missing = shift - leaving.bit_count()
                seen = ((twin.seen << shift) | 1) & _FULL
            # (the numbers between the old high and seq are not lost yet: they are still in the window)
            high = seq
            newest = True
        else:
            offset = twin.high_seq - seq
            if offset >= SEQ_WINDOW:
                # too old to tell from a repeat: its own id decides for events; nothing else moves
                counters = c._replace(late=c.late + 1)
                return Ordering(twin._replace(counters=counters), Verdict.HISTORY, passes_on=passes_on)
            bit = 1 << offset
            if twin.seen & bit:
                counters = c._replace(duplicates=c.duplicates + 1)
                return Ordering(twin._replace(counters=counters), Verdict.DUPLICATE)
            high, seen = twin.high_seq, twin.seen | bit
            newest = False
        rebirth = f"{missing} message(s) of session {session} lost" if missing else None

    changes: dict[str, object] = {"session": session, "high_seq": high, "seen": seen}
    applied = True
    if isinstance(message, Birth):
        applied = new_session or seq > twin.birth_seq
        if applied:
            changes["birth"] = message
            changes["birth_seq"] = seq
    elif isinstance(message, State):
        applied = new_session or seq > twin.state_seq
        if applied:
            changes["reported"] = message
            changes["state_seq"] = seq
            changes["reported_at"] = received_at
    elif isinstance(message, Telemetry):
        applied = new_session or seq > twin.telemetry_seq
        if applied:
            changes["telemetry"] = message
            changes["telemetry_seq"] = seq
            previous = twin.telemetry
            if previous is not None and previous.session == session and message.device_time > previous.device_time:
                gap = (message.device_time - previous.device_time).total_seconds()
                old = twin.report_interval_s
                changes["report_interval_s"] = (
                    gap if old is None else (1 - INTERVAL_SMOOTHING) * old + (INTERVAL_SMOOTHING * gap)
                )
    if new_session:
        changes["state_seq"] = seq if isinstance(message, State) else -1
        changes["telemetry_seq"] = seq if isinstance(message, Telemetry) else -1
        if not isinstance(message, Birth):
            changes["birth_seq"] = -1
    if newest:
        rate = twin.clock_rate if new_session else _estimate_rate(twin, message, received_at)
        changes["last_seen_at"] = received_at
        changes["last_device_time"] = message.device_time
        changes["clock_rate"] = rate
    elif twin.last_seen_at is not None:
        changes["last_seen_at"] = received_at  # heard from, even if late
    changed = applied and not isinstance(message, AlarmEvent | CommandResult)
    presence_changed = False
    if isinstance(message, Birth) and new_session and twin.presence is not Presence.ONLINE:
        changes["presence"] = Presence.ONLINE
        changes["presence_reason"] = "birth"
        changes["presence_since"] = received_at
        presence_changed = True
    elif newest and twin.presence is Presence.OFFLINE and twin.presence_reason == SILENT:
        # heard from again: the twin's own inference ends with it (an offline that a status
        # message said, the pump's or its broker's last will, waits for the next status or birth)
        changes["presence"] = Presence.ONLINE
        changes["presence_reason"] = HEARD
        changes["presence_since"] = received_at
        presence_changed = True
    if changed or presence_changed:
        changes["version"] = twin.version + 1
    ask = None
    if rebirth is not None and _want_rebirth(twin, received_at):
        ask = rebirth
        changes["rebirth_requested_at"] = received_at
    changes["counters"] = c._replace(
        applied=c.applied + (1 if applied else 0),
        late=c.late + (0 if newest else 1),
        missing=c.missing + missing,
    )
    verdict = Verdict.APPLIED if applied else Verdict.HISTORY
    return Ordering(
        twin._replace(**changes),  # type: ignore[arg-type]
        verdict,
        new_session=new_session,
        missing=missing,
        rebirth=ask,
        presence_changed=presence_changed,
        passes_on=passes_on,
    )


def _new_twin(fields: tuple[object, ...]) -> DeviceTwin:
    return tuple.__new__(DeviceTwin, fields)


def _new_counters(fields: tuple[int, ...]) -> Counters:
    return tuple.__new__(Counters, fields)


def _next_sample(twin: DeviceTwin, t: Telemetry, received_at: datetime) -> Ordering:
    """The common case, most of all traffic: the next sample of the session, in order. The same
    rules as :func:`order` (a property test checks they agree), without the general bookkeeping."""
    missing = 1 - (twin.seen >> (SEQ_WINDOW - 1))  # the number leaving the window, if it never came
    previous = twin.telemetry
    assert previous is not None
    interval = twin.report_interval_s
    if t.device_time > previous.device_time:
        gap = (t.device_time - previous.device_time).total_seconds()
        interval = gap if interval is None else (1 - INTERVAL_SMOOTHING) * interval + INTERVAL_SMOOTHING * gap
    c = twin.counters
    ask = None
    rebirth_at = twin.rebirth_requested_at
    if missing and _want_rebirth(twin, received_at):
        ask = f"{missing} message(s) of session {t.session} lost"
        rebirth_at = received_at
    # the next twin field by field, in DeviceTwin's order (what ``twin._replace(...)`` makes, without
    # its walk over every field: this is most of all traffic; tests/core/test_mirror.py compares)
    new = _new_twin(
        (
            twin.site,
            twin.device_id,
            twin.birth,
            twin.reported,
            t,  # telemetry
            twin.presence,
            twin.presence_reason,
            twin.presence_since,
            twin.session,
            t.seq,  # high_seq
            ((twin.seen << 1) | 1) & _FULL,  # seen
            twin.state_seq,
            t.seq,  # telemetry_seq
            twin.birth_seq,
            twin.refused_session,
            received_at,  # last_seen_at
            t.device_time,  # last_device_time
            _estimate_rate(twin, t, received_at),  # clock_rate
            interval,  # report_interval_s
            twin.version + 1,
            _new_counters(
                (c.applied + 1, c.duplicates, c.missing + missing, c.stale, c.late, c.implausible, c.refused)
            ),
            rebirth_at,  # rebirth_requested_at
            twin.reported_at,
        )
    )
    return Ordering(new, Verdict.APPLIED, missing=missing, rebirth=ask)


def _implausible(
    twin: DeviceTwin, received_at: datetime, why: str, passes_on: AlarmEvent | CommandResult | None
) -> Ordering:
    c = twin.counters
    changes: dict[str, object] = {"counters": c._replace(implausible=c.implausible + 1)}
    ask = None
    if _want_rebirth(twin, received_at):
        ask = why
        changes["rebirth_requested_at"] = received_at
    return Ordering(twin._replace(**changes), Verdict.IMPLAUSIBLE, rebirth=ask, passes_on=passes_on)  # type: ignore[arg-type]


def _order_status(twin: DeviceTwin, status: DeviceStatus, received_at: datetime) -> Ordering:
    current = twin.session
    if current is not None and status.session < current:
        return Ordering(twin._replace(counters=twin.counters._replace(stale=twin.counters.stale + 1)), Verdict.STALE)
    if twin.refused_session is not None and status.session == twin.refused_session:
        return Ordering(twin, Verdict.REFUSED)
    if current is not None and status.session > current + MAX_SESSION_JUMP:
        return Ordering(twin, Verdict.IMPLAUSIBLE)
    presence = Presence.ONLINE if status.state is StatusState.ONLINE else Presence.OFFLINE
    if presence is twin.presence and twin.presence_reason == status.reason.value:
        return Ordering(twin, Verdict.DUPLICATE)
    twin = twin._replace(
        presence=presence,
        presence_reason=status.reason.value,
        presence_since=received_at,
        version=twin.version + 1,
    )
    return Ordering(twin, Verdict.APPLIED, presence_changed=True)


def mark_silent(twin: DeviceTwin, now: datetime) -> DeviceTwin:
    """A device the twin has not heard from for too long is offline (reason ``silent``) until
    its next message in order (reason ``heard``, :func:`order`)."""
    if twin.presence is Presence.OFFLINE:
        return twin
    return twin._replace(
        presence=Presence.OFFLINE,
        presence_reason=SILENT,
        presence_since=now,
        version=twin.version + 1,
    )
