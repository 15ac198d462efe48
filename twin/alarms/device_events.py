"""The identity of a device's alarm event, by which a redelivered event is recognised. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from twin.contract.messages import AlarmEvent


@dataclass(frozen=True, slots=True)
class DeviceEventKey:
    """Identity of a device alarm event: the same device, alarm id (one per raise) and event
    (``raised``/``cleared``) is the same event, however often it is delivered."""

    device_id: str
    alarm_id: str
    event: str


def dedupe_key(message: AlarmEvent) -> DeviceEventKey:
    """The identity of a device's alarm message (see :class:`DeviceEventKey`)."""
    return DeviceEventKey(message.device_id, message.alarm_id, message.event.value)
