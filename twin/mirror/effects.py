"""What a fleet step asks the world to do: the effects of :mod:`twin.mirror.fleet`, as values.

The service routes each kind to its sink (``twin.service``): the journal takes
:class:`AlarmTransitions` (with the device event they apply), :class:`CommandChanged` (when
``logged``) and :class:`ResponseRecorded`, all in one transaction per batch; the time-series
sink takes :class:`Recorded` messages and the alarm and command changes; the broker outbox takes
:class:`Publish`; the live stream and the snapshots take :class:`DeviceChanged` and the rest;
:class:`Counted` and :class:`Rejected` go to the metrics and the reject log. Only after the
durable ones are written does the service acknowledge the messages and carry out the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from twin.alarms.device_events import DeviceEventKey
from twin.alarms.lifecycle import Transition
from twin.alarms.responses import AlarmResponse
from twin.contract.messages import DeviceMessage
from twin.mirror.commands import TrackedCommand
from twin.pump.fastinit import fast_frozen_init

DeviceKey = tuple[str, str]


@fast_frozen_init  # made for (nearly) every message: see twin.pump.fastinit
@dataclass(frozen=True, slots=True)
class AlarmTransitions:
    """Alarm transitions to journal (with the device alarm event they apply, if one did).
    ``device_time``: for a simulated pump's, the simulation's time at the step that made them
    (its site's watermark then: :mod:`twin.mirror.clock`), so a scenario run times them exactly
    even when the twin takes a run of messages at once."""

    transitions: tuple[Transition, ...]
    device_event: DeviceEventKey | None = None
    device_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class CommandChanged:
    """A command's new status (``logged``: journal it; pure re-sends are not logged again)."""

    tracked: TrackedCommand
    logged: bool = True


@dataclass(frozen=True, slots=True)
class ResponseRecorded:
    response: AlarmResponse


@fast_frozen_init  # made for (nearly) every message: see twin.pump.fastinit
@dataclass(frozen=True, slots=True)
class Recorded:
    """A device message that is part of the device's history (its points are written)."""

    key: DeviceKey
    message: DeviceMessage


@dataclass(frozen=True, slots=True)
class Publish:
    """A message for the broker (commands, rebirth requests)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@fast_frozen_init  # made for (nearly) every message: see twin.pump.fastinit
@dataclass(frozen=True, slots=True)
class DeviceChanged:
    """A device twin changed (stream it; ``snapshot``: worth saving soon)."""

    key: DeviceKey
    snapshot: bool = True


@dataclass(frozen=True, slots=True)
class ClockChanged:
    site: str


@fast_frozen_init  # made for (nearly) every message: see twin.pump.fastinit
@dataclass(frozen=True, slots=True)
class Counted:
    """Count ``n`` of ``what`` (a metric) under ``label``."""

    what: str
    label: str
    n: int = 1


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message refused: ``reason`` is a stable code, ``detail`` what was wrong (no payload echo)."""

    reason: str
    topic: str
    detail: str


Effect = (
    AlarmTransitions
    | CommandChanged
    | ResponseRecorded
    | Recorded
    | Publish
    | DeviceChanged
    | ClockChanged
    | Counted
    | Rejected
)
