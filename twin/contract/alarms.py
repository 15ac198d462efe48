"""The device alarm catalogue: what each pump alarm means, its class and its IEC 60601-1-8 priority.

The pump knows two alarm sounds: a two-tone *critical* alarm and a single-tone *non-critical*
one (DOMAIN.md). The twin maps them onto IEC 60601-1-8 priorities: critical -> high,
non-critical -> medium, reminders -> low. The mapping travels on the wire (``priority`` in every
alarm event) so a consumer never needs this table to sort alarms, but the table is the one
place that decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Priority(StrEnum):
    """IEC 60601-1-8 alarm priority, by the urgency of the response it asks for."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


PRIORITY_RANK: Final[dict[Priority, int]] = {Priority.HIGH: 3, Priority.MEDIUM: 2, Priority.LOW: 1}
"""Higher is more urgent; for sorting and for 'highest active alarm' colouring."""


class DeviceAlarmClass(StrEnum):
    """How the pump itself signals the alarm."""

    CRITICAL = "critical"  # two-tone, about 3 s
    NON_CRITICAL = "non_critical"  # single tone, about 1 s
    REMINDER = "reminder"  # alarm clock / refill reminder


class AlarmCode(StrEnum):
    """Alarms a pump raises itself (device-side). Derived alerts of the twin have their own codes."""

    RESERVOIR_LOW = "reservoir_low"
    RESERVOIR_EMPTY = "reservoir_empty"
    MOTOR_STALL = "motor_stall"
    MEMORY_ERROR = "memory_error"
    BATTERY_ERI = "battery_eri"
    BATTERY_EOS = "battery_eos"
    LOW_BATTERY_RESET = "low_battery_reset"
    REFILL_REMINDER = "refill_reminder"


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One row of the catalogue."""

    code: AlarmCode
    device_class: DeviceAlarmClass
    title: str
    trigger: str
    staff_response: str

    @property
    def priority(self) -> Priority:
        return CLASS_PRIORITY[self.device_class]


CLASS_PRIORITY: Final[dict[DeviceAlarmClass, Priority]] = {
    DeviceAlarmClass.CRITICAL: Priority.HIGH,
    DeviceAlarmClass.NON_CRITICAL: Priority.MEDIUM,
    DeviceAlarmClass.REMINDER: Priority.LOW,
}

ALARM_CATALOGUE: Final[dict[AlarmCode, AlarmSpec]] = {
    spec.code: spec
    for spec in (
        AlarmSpec(
            AlarmCode.RESERVOIR_EMPTY,
            DeviceAlarmClass.CRITICAL,
            "Reservoir empty",
            "calculated reservoir volume reaches the unusable residual",
            "Urgent refill; assess for withdrawal (baclofen, clonidine, opioids); confirm the needle is in the "
            "reservoir (pocket-fill risk when empty).",
        ),
        AlarmSpec(
            AlarmCode.RESERVOIR_LOW,
            DeviceAlarmClass.NON_CRITICAL,
            "Low reservoir",
            "calculated reservoir volume at or below the programmed low-reservoir threshold",
            "Schedule a refill before the predicted empty date.",
        ),
        AlarmSpec(
            AlarmCode.MOTOR_STALL,
            DeviceAlarmClass.CRITICAL,
            "Motor stall",
            "rotor does not turn (wear, corrosion, particle, MRI)",
            "Interrogate; read the event log; rotor study under fluoroscopy; bridge therapy; replace the pump "
            "if the stall is permanent; manage withdrawal.",
        ),
        AlarmSpec(
            AlarmCode.MEMORY_ERROR,
            DeviceAlarmClass.CRITICAL,
            "Pump memory error",
            "internal self-check fails; the pump stops infusing",
            "Interrogate; contact the manufacturer; plan replacement; bridge therapy.",
        ),
        AlarmSpec(
            AlarmCode.BATTERY_ERI,
            DeviceAlarmClass.NON_CRITICAL,
            "Elective replacement indicator",
            "battery reaches the elective replacement point; end of service follows in 90 days",
            "Schedule replacement surgery within about 90 days.",
        ),
        AlarmSpec(
            AlarmCode.BATTERY_EOS,
            DeviceAlarmClass.CRITICAL,
            "End of service",
            "battery exhausted; the pump stops infusing",
            "Immediate replacement; withdrawal management.",
        ),
        AlarmSpec(
            AlarmCode.LOW_BATTERY_RESET,
            DeviceAlarmClass.CRITICAL,
            "Low battery reset",
            "sudden battery voltage drop; settings reset, minimum rate",
            "Re-program if possible; urgent replacement; watch for withdrawal.",
        ),
        AlarmSpec(
            AlarmCode.REFILL_REMINDER,
            DeviceAlarmClass.REMINDER,
            "Refill reminder",
            "programmed refill date reached (alarm clock)",
            "Confirm the refill appointment.",
        ),
    )
}
