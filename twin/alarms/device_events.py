"""The identity of a device's alarm event, by which a redelivered event is recognised. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from twin.contract.messages import AlarmEvent


@dataclass(frozen=True, slots=True)
class DeviceEventKey:
    """Identity of a device alarm event: the same device (site and id), alarm id (one per raise)
    and event (``raised``/``cleared``) is the same event, however often it is delivered. ``code``
    is the alarm's code: fixed by the alarm id, kept so that the event's alarm point is known."""

    site: str
    device_id: str
    alarm_id: str
    event: str
    code: str


def dedupe_key(site: str, message: AlarmEvent) -> DeviceEventKey:
    """The identity of a device's alarm message at ``site`` (see :class:`DeviceEventKey`)."""
    return DeviceEventKey(site, message.device_id, message.alarm_id, message.event.value, message.code.value)
