"""The twin of one device, and how each contract message changes it.

:func:`apply` is the whole rule book, as a pure function ``(twin, address, message, received_at)
-> (twin, effects)``:

* **Order.** Messages are ordered by ``(session, seq)``. In the current session the next ``seq``
  is applied; a repeat is a *duplicate* (dropped); a jump is a *gap* (counted, applied, and a
  rebirth is requested so the full state is sent again). A message of an older session is
  *stale*: state and telemetry are dropped (newer facts exist), but alarm events and command
  results are still passed on, since they are facts that never go stale and are deduplicated by
  their own ids downstream. A message of a newer session without its birth is applied and
  answered with a rebirth request.
* **Presence.** ``status`` messages are ordered by session only: online or offline for the
  current (or a newer) session; a late last will from an older session is ignored.
* **Clock.** Devices keep their own clock (a simulated pump's may run 3,600 times faster than
  the wall). The twin estimates each device's clock rate from consecutive reports, so that it can
  say what the device's clock reads *now* and predict its state to that time.

Nothing here reads the clock or does I/O; ``received_at`` is the twin's wall time at receipt.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

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
from twin.contract.topics import TopicAddress

REBIRTH_BACKOFF: Final = timedelta(seconds=30)
"""At most one rebirth request per device in this (wall) time: a device that keeps skipping
numbers must not be flooded with requests."""

CLOCK_RATE_SMOOTHING: Final = 0.3
"""Weight of the newest observation in the device clock-rate estimate (exponential average)."""

MIN_WALL_FOR_RATE_S: Final = 0.5
"""Two reports closer than this in wall time say too little about the clock rate to use them."""


class Presence(StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Counters:
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    stale: int = 0


@dataclass(frozen=True, slots=True)
class DeviceTwin:
    """Everything the twin knows about one device. Immutable: :func:`apply` returns a new one."""

    site: str
    device_id: str
    birth: Birth | None = None
    reported: State | None = None
    telemetry: Telemetry | None = None
    presence: Presence = Presence.UNKNOWN
    presence_reason: str | None = None
    presence_since: datetime | None = None
    session: int | None = None
    last_seq: int | None = None
    last_seen_at: datetime | None = None
    last_device_time: datetime | None = None
    clock_rate: float = 1.0
    version: int = 0
    counters: Counters = field(default_factory=Counters)
    rebirth_requested_at: datetime | None = None
    reported_at: datetime | None = None  # wall time the current `reported` state arrived

    @property
    def simulated(self) -> bool | None:
        return self.birth.simulated if self.birth is not None else None

    def device_now(self, now: datetime) -> datetime | None:
        """What the device's clock reads at wall time ``now`` (estimated), or None if never heard.

        A real pump's clock is a real clock, read at interrogations weeks apart: its time now is ``now``."""
        if self.last_device_time is None or self.last_seen_at is None:
            return None
        if self.birth is not None and not self.birth.simulated:
            return now
        elapsed = max(0.0, (now - self.last_seen_at).total_seconds())
        return self.last_device_time + timedelta(seconds=elapsed * self.clock_rate)


class Dropped(StrEnum):
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Applied:
    """The twin changed (to ``version``) because of a message on ``channel``."""

    channel: str
    version: int
    new_session: bool = False


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: Dropped


@dataclass(frozen=True, slots=True)
class GapSeen:
    expected_seq: int
    got_seq: int


@dataclass(frozen=True, slots=True)
class RequestRebirth:
    reason: str


@dataclass(frozen=True, slots=True)
class AlarmSeen:
    event: AlarmEvent


@dataclass(frozen=True, slots=True)
class ResultSeen:
    result: CommandResult


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    presence: Presence
    reason: str


Effect = Applied | Skipped | GapSeen | RequestRebirth | AlarmSeen | ResultSeen | PresenceChanged


def _estimate_rate(twin: DeviceTwin, message: DeviceMessage, received_at: datetime) -> float:
    if twin.last_device_time is None or twin.last_seen_at is None:
        return twin.clock_rate
    wall = (received_at - twin.last_seen_at).total_seconds()
    dev = (message.device_time - twin.last_device_time).total_seconds()
    if wall < MIN_WALL_FOR_RATE_S or dev <= 0:
        return twin.clock_rate
    observed = dev / wall
    return (1 - CLOCK_RATE_SMOOTHING) * twin.clock_rate + CLOCK_RATE_SMOOTHING * observed


def _want_rebirth(twin: DeviceTwin, received_at: datetime, reason: str) -> tuple[DeviceTwin, list[Effect]]:
    if twin.birth is not None and not twin.birth.simulated:
        return twin, []  # never send anything to a real device: read-only mirror
    last = twin.rebirth_requested_at
    if last is not None and received_at - last < REBIRTH_BACKOFF:
        return twin, []
    return replace(twin, rebirth_requested_at=received_at), [RequestRebirth(reason)]


def apply(
    twin: DeviceTwin | None, address: TopicAddress, message: DeviceMessage, received_at: datetime
) -> tuple[DeviceTwin, list[Effect]]:
    """Apply one decoded device message (see the module docstring for the rules)."""
    if twin is None:
        twin = DeviceTwin(site=address.site, device_id=address.device_id)
    if isinstance(message, DeviceStatus):
        return _apply_status(twin, message, received_at)

    effects: list[Effect] = []
    session, seq = message.session, message.seq
    current = twin.session
    passes_on: list[Effect] = []
    if isinstance(message, AlarmEvent):
        passes_on = [AlarmSeen(message)]
    elif isinstance(message, CommandResult):
        passes_on = [ResultSeen(message)]

    if current is not None and session < current:
        counters = replace(twin.counters, stale=twin.counters.stale + 1)
        return replace(twin, counters=counters), [Skipped(Dropped.STALE), *passes_on]

    new_session = current is None or session > current
    if new_session:
        if not isinstance(message, Birth):
            twin, asked = _want_rebirth(twin, received_at, "no birth for this session")
            effects += asked
    else:
        assert twin.last_seq is not None
        if seq <= twin.last_seq:
            counters = replace(twin.counters, duplicates=twin.counters.duplicates + 1)
            return replace(twin, counters=counters), [Skipped(Dropped.DUPLICATE)]
        expected = twin.last_seq + 1
        if seq > expected and not isinstance(message, Birth):
            effects.append(GapSeen(expected, seq))
            twin = replace(twin, counters=replace(twin.counters, gaps=twin.counters.gaps + 1))
            twin, asked = _want_rebirth(twin, received_at, f"gap: expected seq {expected}, got {seq}")
            effects += asked

    rate = _estimate_rate(twin, message, received_at) if not new_session else twin.clock_rate
    c = twin.counters
    changes: dict[str, object] = {
        "session": session,
        "last_seq": seq,
        "last_seen_at": received_at,
        "last_device_time": message.device_time,
        "clock_rate": rate,
        "version": twin.version + 1,
        "counters": Counters(c.applied + 1, c.duplicates, c.gaps, c.stale),
    }
    if isinstance(message, Birth):
        changes["birth"] = message
        if new_session and twin.presence is not Presence.ONLINE:
            changes["presence"] = Presence.ONLINE
            changes["presence_reason"] = "birth"
            changes["presence_since"] = received_at
            effects.append(PresenceChanged(Presence.ONLINE, "birth"))
    elif isinstance(message, State):
        changes["reported"] = message
        changes["reported_at"] = received_at
    elif isinstance(message, Telemetry):
        changes["telemetry"] = message
    twin = replace(twin, **changes)  # type: ignore[arg-type]
    effects.insert(0, Applied(address.channel.value, twin.version, new_session=new_session))
    return twin, effects + passes_on


def _apply_status(twin: DeviceTwin, status: DeviceStatus, received_at: datetime) -> tuple[DeviceTwin, list[Effect]]:
    current = twin.session
    if current is not None and status.session < current:
        counters = replace(twin.counters, stale=twin.counters.stale + 1)
        return replace(twin, counters=counters), [Skipped(Dropped.STALE)]
    presence = Presence.ONLINE if status.state is StatusState.ONLINE else Presence.OFFLINE
    if presence is twin.presence and twin.presence_reason == status.reason.value:
        return twin, []
    twin = replace(
        twin,
        presence=presence,
        presence_reason=status.reason.value,
        presence_since=received_at,
        version=twin.version + 1,
    )
    return twin, [Applied("status", twin.version), PresenceChanged(presence, status.reason.value)]


def mark_silent(twin: DeviceTwin, now: datetime) -> DeviceTwin:
    """A device the twin has not heard from for too long is offline (reason ``silent``)."""
    if twin.presence is Presence.OFFLINE:
        return twin
    return replace(
        twin,
        presence=Presence.OFFLINE,
        presence_reason="silent",
        presence_since=now,
        version=twin.version + 1,
    )
