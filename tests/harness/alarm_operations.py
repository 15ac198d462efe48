"""Random sequences of alarm operations (hypothesis) and a driver that runs them through the lifecycle.

Shared by the lifecycle property tests (``tests/core``) and the journal tests (``tests/shell``), so
that the journal is tested on exactly the sequences the lifecycle is.

A sequence is a list of :class:`Operation`; :func:`run` applies one at a time to a dict of alarms
(key -> Alarm) at increasing times (each operation waits ``wait`` after the previous one; a wait of
zero makes two operations simultaneous) and returns the new dict, the transitions made, and the
:class:`AlarmError` if the lifecycle refused the operation (then nothing changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from hypothesis import strategies as st

from twin.alarms import lifecycle as lc
from twin.contract.alarms import AlarmCode, Priority

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
"""Time of the first operation of every sequence (before its wait)."""


@dataclass(frozen=True, slots=True)
class AlarmPoint:
    """One alarm point the sequences play with."""

    device_id: str
    site: str
    code: str
    source: Literal["device", "twin"]
    priority: Priority
    latching: bool | None  # None: the lifecycle's default

    @property
    def key(self) -> str:
        return lc.alarm_key(self.site, self.device_id, self.code)


POINTS: tuple[AlarmPoint, ...] = (
    AlarmPoint("pump-1", "clinic-a", AlarmCode.MOTOR_STALL, "device", Priority.HIGH, None),  # latches
    AlarmPoint("pump-1", "clinic-a", AlarmCode.RESERVOIR_LOW, "device", Priority.MEDIUM, None),  # does not
    AlarmPoint("pump-2", "clinic-b", "report_overdue", "twin", Priority.LOW, True),  # latching on request
)

Kind = Literal[
    "raise", "clear", "acknowledge", "silence", "shelve", "unshelve", "expire", "remove", "restore", "at_expiry"
]


@dataclass(frozen=True, slots=True)
class Operation:
    """One step: ``kind`` on ``POINTS[point]`` after waiting ``wait``; ``at`` is shown in ``zone``."""

    kind: Kind
    point: int
    wait: timedelta
    silence_for: timedelta
    shelve_for: timedelta
    comment: str
    actor: str
    zone: timezone


_short = st.builds(timedelta, seconds=st.integers(1, 90))
_medium = st.builds(timedelta, seconds=st.integers(90, 3600), microseconds=st.integers(0, 999_999))
_waits = st.one_of(
    st.just(timedelta(0)),
    _short,
    _short,
    _short,
    _medium,
    _medium,
    st.builds(timedelta, hours=st.integers(1, 4)),
    st.builds(timedelta, hours=st.integers(4, 30)),
)
"""Mostly seconds to minutes (shelves and pauses meet operations), sometimes hours (they expire)."""
_invalid = st.sampled_from([timedelta(0), -timedelta(seconds=1)])
_silence_for = st.one_of(
    st.builds(timedelta, seconds=st.integers(1, 600)),
    st.builds(timedelta, seconds=st.integers(1, 600)),
    st.builds(timedelta, seconds=st.integers(1, 600)),
    st.just(lc.MAX_SILENCE_DURATION),
    st.just(lc.MAX_SILENCE_DURATION + timedelta(microseconds=1)),
    _invalid,
)
_shelve_for = st.one_of(
    st.builds(timedelta, minutes=st.integers(1, 12 * 60)),
    st.builds(timedelta, minutes=st.integers(1, 12 * 60)),
    st.builds(timedelta, minutes=st.integers(1, 12 * 60)),
    st.just(lc.MAX_SHELVE_DURATION),
    st.just(lc.MAX_SHELVE_DURATION + timedelta(microseconds=1)),
    _invalid,
)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])

operations = st.builds(
    Operation,
    kind=st.sampled_from(
        [
            "raise",
            "raise",
            "clear",
            "clear",
            "acknowledge",
            "silence",
            "shelve",
            "unshelve",
            "expire",
            "remove",
            "restore",
            "at_expiry",
        ]
    ),
    point=st.sampled_from([0, 0, 1, 2]),  # the latching point most often
    wait=_waits,
    silence_for=_silence_for,
    shelve_for=_shelve_for,
    comment=st.sampled_from(["", "  ", "nuisance while the pump is refilled", "sensor under repair", "MRI", "x"]),
    actor=st.sampled_from(["nurse:ana", "dr:bo", "scenario:mri"]),
    zone=_zones,
)
"""One random operation. ``at_expiry`` jumps to the alarm's next expiry (if any) and calls ``expire``
there, so sequences reach deadlines exactly as well as by waiting past them."""

sequences = st.lists(operations, max_size=10) | st.lists(operations, min_size=30, max_size=120)
"""Short sequences shrink well; long ones reach deep states (hypothesis keeps lists short otherwise)."""


def run(
    alarms: dict[str, lc.Alarm], op: Operation, now: datetime
) -> tuple[datetime, dict[str, lc.Alarm], list[lc.Transition], lc.AlarmError | None]:
    """Apply ``op`` after ``now``; return the operation's time, the alarms after it, the transitions
    it made and the refusal, if any. Operations on a key that has no alarm yet do nothing."""
    spec = POINTS[op.point]
    at = (now + op.wait).astimezone(op.zone)
    alarm = alarms.get(spec.key)
    if op.kind == "at_expiry" and alarm is not None:
        deadline = lc.next_expiry(alarm)
        if deadline is not None and deadline > at:
            at = deadline.astimezone(op.zone)
    try:
        if alarm is None:
            if op.kind != "raise":
                return at, alarms, [], None
            after, made = lc.raise_alarm(
                spec.key,
                spec.device_id,
                spec.site,
                spec.code,
                spec.source,
                spec.priority,
                f"{spec.code} on {spec.device_id}",
                at,
                latching=spec.latching,
            )
        elif op.kind == "raise":
            after, made = lc.condition_returned(alarm, at, message=f"{spec.code} again at {at.isoformat()}")
        elif op.kind == "clear":
            after, made = lc.condition_cleared(alarm, at)
        elif op.kind == "acknowledge":
            after, made = lc.acknowledge(alarm, op.actor, at, op.comment or None)
        elif op.kind == "silence":
            after, made = lc.silence(alarm, op.actor, at, op.silence_for, op.comment or None)
        elif op.kind == "shelve":
            after, made = lc.shelve(alarm, op.actor, at, op.shelve_for, op.comment)
        elif op.kind == "unshelve":
            after, made = lc.unshelve(alarm, op.actor, at, op.comment or None)
        elif op.kind == "remove":
            after, made = lc.remove_from_service(alarm, op.actor, at, op.comment)
        elif op.kind == "restore":
            after, made = lc.return_to_service(alarm, op.actor, at, op.comment or None)
        else:  # expire, at_expiry
            after, made = lc.expire(alarm, at)
    except lc.AlarmError as error:
        return at, alarms, [], error
    return at, {**alarms, spec.key: after}, made, None
