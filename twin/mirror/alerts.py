"""Alerts the twin raises itself, from what it mirrors and predicts.

A pump sees only its own belief; the twin sees the whole record and can say more:

* ``device_offline`` — the connection was lost (last will); ``device_silent`` — nothing heard
  for longer than expected (a simulated pump reports every few seconds; a real pump behind a
  gateway only at its read-outs, so its limit is weeks).
* ``refill_discrepancy`` — at a refill the measured residual differs from the pump's expected
  residual by more than the tolerance (DOMAIN.md: 1 mL for a 20 mL pump, 2 mL for a 40 mL pump,
  or 20 % of the expected residual). More left than expected points to under-infusion
  (occlusion, stall); less, to over-infusion, a leak or a pocket fill.
* ``empty_before_refill`` — the reservoir is predicted to run empty before the planned refill
  (the refill reminder), or within a week when no refill is planned.
* ``dose_deviation`` — the dose reaching the patient differs from the programmed dose (from the
  simulator's ground truth; the programmed dose of a real pump is all it knows).
* ``reservoir_low_predicted`` — for pumps without audible alarms (Prometra), the twin's own
  low-reservoir alert from the mirrored calculation.

:func:`evaluate` is pure: it returns the conditions that hold now; the service compares them
with the alerts already raised and raises or clears through the alarm lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from twin.contract.alarms import Priority
from twin.contract.messages import InfusionMode, Telemetry
from twin.mirror.device_twin import DeviceTwin, Presence
from twin.mirror.prediction import Forecast


class TwinAlertCode(StrEnum):
    DEVICE_OFFLINE = "device_offline"
    DEVICE_SILENT = "device_silent"
    REFILL_DISCREPANCY = "refill_discrepancy"
    EMPTY_BEFORE_REFILL = "empty_before_refill"
    DOSE_DEVIATION = "dose_deviation"
    RESERVOIR_LOW_PREDICTED = "reservoir_low_predicted"
    IDENTITY_CONFLICT = "identity_conflict"


EVENT_ALERTS: frozenset[TwinAlertCode] = frozenset({TwinAlertCode.IDENTITY_CONFLICT})
"""Twin alerts raised by an event (not a condition :func:`evaluate` re-checks): they latch until
staff acknowledge them, and re-evaluation never clears them."""


ALERT_PRIORITY: dict[TwinAlertCode, Priority] = {
    TwinAlertCode.DEVICE_OFFLINE: Priority.LOW,
    TwinAlertCode.DEVICE_SILENT: Priority.LOW,
    TwinAlertCode.REFILL_DISCREPANCY: Priority.MEDIUM,
    TwinAlertCode.EMPTY_BEFORE_REFILL: Priority.MEDIUM,
    TwinAlertCode.DOSE_DEVIATION: Priority.HIGH,
    TwinAlertCode.RESERVOIR_LOW_PREDICTED: Priority.MEDIUM,
    TwinAlertCode.IDENTITY_CONFLICT: Priority.MEDIUM,
}
"""IEC 60601-1-8 priority of each twin alert. A dose that differs from the programmed one is a
patient-safety matter (overdose, withdrawal): high. Refill and reservoir matters leave days to
act: medium. A device not reporting is an infrastructure matter: low."""


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Thresholds of the twin's alerts; every one a setting."""

    silent_after_simulated: timedelta = timedelta(hours=6)
    """*Simulated* time without a message before a simulated pump counts as silent (on the
    simulation's clock, :mod:`twin.mirror.clock`, so that a live run at 600x and a headless run of
    the same scenario agree), and at least :data:`SILENT_AFTER_INTERVALS` of its reporting interval."""
    silent_after_real: timedelta = timedelta(days=35)
    """A real pump is read at clinic visits (monthly to quarterly refills): five weeks without a
    read-out is worth a look."""
    discrepancy_ml_small: float = 1.0
    """Refill discrepancy tolerance for pumps up to 20 mL (DOMAIN.md)."""
    discrepancy_ml_large: float = 2.0
    """...and for larger (40 mL) pumps."""
    discrepancy_fraction: float = 0.20
    """Or this share of the expected residual, when the expected residual is large enough for a
    share to mean something (at least 2 mL)."""
    empty_warning: timedelta = timedelta(days=7)
    """Without a planned refill: warn when the reservoir is predicted empty within this time."""
    dose_deviation_fraction: float = 0.25
    """Delivered dose off the programmed dose by more than this share."""


SILENT_AFTER_INTERVALS = 3
"""A pump that reports every ``T`` (device time) is silent only after missing this many reports."""


@dataclass(frozen=True, slots=True)
class AlertCondition:
    """One twin alert that holds now. ``instance`` separates occurrences (e.g. one per refill)."""

    code: TwinAlertCode
    instance: str
    message: str

    @property
    def priority(self) -> Priority:
        return ALERT_PRIORITY[self.code]


def dose_deviates(telemetry: Telemetry | None, policy: AlertPolicy = AlertPolicy()) -> bool:
    """Does this sample show the dose reaching the patient off the programmed dose (simulation truth)?"""
    if telemetry is None or telemetry.sim_truth is None:
        return False
    programmed = telemetry.dose_mg_per_day
    actual = telemetry.sim_truth.actual_dose_mg_per_day
    return programmed > 0 and abs(actual - programmed) / programmed > policy.dose_deviation_fraction


def silence_limit(twin: DeviceTwin, policy: AlertPolicy) -> timedelta:
    """How long ``twin`` may go unheard (device time for a simulated pump, wall time for a real one)."""
    if twin.simulated is False:
        return policy.silent_after_real
    interval = twin.report_interval_s
    if interval is None:
        return policy.silent_after_simulated
    return max(policy.silent_after_simulated, timedelta(seconds=SILENT_AFTER_INTERVALS * interval))


def silent_for(twin: DeviceTwin, now: datetime, device_now: datetime | None) -> timedelta | None:
    """How long ``twin`` has been unheard: in device time for a simulated pump (its last device
    time against the simulation's clock), in wall time for a real one."""
    if twin.simulated is not False:
        if device_now is None or twin.last_device_time is None:
            return None
        return device_now - twin.last_device_time
    return now - twin.last_seen_at if twin.last_seen_at is not None else None


def evaluate(
    twin: DeviceTwin,
    outlook: Forecast | None,
    now: datetime,
    policy: AlertPolicy = AlertPolicy(),
    *,
    device_now: datetime | None = None,
) -> list[AlertCondition]:
    """The twin alerts that hold for ``twin`` at wall time ``now``, given the forecast of its
    latest state (``outlook``) and what the device's clock reads now (``device_now``, from
    :func:`twin.mirror.clock.device_time`; the twin's own estimate when not given)."""
    out: list[AlertCondition] = []
    if device_now is None:
        device_now = twin.device_now(now)
    if twin.presence is Presence.OFFLINE and twin.presence_reason == "will":
        out.append(AlertCondition(TwinAlertCode.DEVICE_OFFLINE, "connection", "Connection lost (last will)"))
    if twin.last_seen_at is not None and twin.presence_reason not in ("will", "shutdown"):
        unheard = silent_for(twin, now, device_now)
        if unheard is not None and unheard > silence_limit(twin, policy):
            minutes = unheard.total_seconds() / 60
            clock = "simulated " if twin.simulated is not False else ""
            out.append(
                AlertCondition(TwinAlertCode.DEVICE_SILENT, "silence", f"No report for {minutes:.0f} {clock}min")
            )

    state = twin.reported
    if state is None:
        return out
    refill = state.last_refill
    if refill is not None and refill.measured_residual_ml is not None:
        capacity = twin.birth.reservoir_capacity_ml if twin.birth else 20.0
        tolerance = policy.discrepancy_ml_small if capacity <= 20.0 else policy.discrepancy_ml_large
        difference = refill.measured_residual_ml - refill.expected_residual_ml
        relative = abs(difference) / refill.expected_residual_ml if refill.expected_residual_ml >= 2.0 else 0.0
        if abs(difference) > tolerance or relative > policy.discrepancy_fraction:
            direction = (
                "more left than expected: under-infusion (occlusion? stall?)"
                if difference > 0
                else "less left than expected: over-infusion, leak or pocket fill?"
            )
            out.append(
                AlertCondition(
                    TwinAlertCode.REFILL_DISCREPANCY,
                    refill.at.strftime("%Y%m%dT%H%M%S"),
                    f"Refill discrepancy {difference:+.2f} mL (expected {refill.expected_residual_ml:.2f}, "
                    f"measured {refill.measured_residual_ml:.2f}): {direction}",
                )
            )
    if outlook is not None and outlook.empty_at is not None and state.program.mode is not InfusionMode.STOPPED:
        planned = state.refill_reminder_at
        if planned is not None and outlook.empty_at < planned:
            out.append(
                AlertCondition(
                    TwinAlertCode.EMPTY_BEFORE_REFILL,
                    "planned",
                    f"Predicted empty {outlook.empty_at:%Y-%m-%d %H:%M}, before the planned refill {planned:%Y-%m-%d}",
                )
            )
        elif planned is None and device_now is not None and outlook.empty_at - device_now < policy.empty_warning:
            out.append(
                AlertCondition(
                    TwinAlertCode.EMPTY_BEFORE_REFILL,
                    "unplanned",
                    f"Predicted empty {outlook.empty_at:%Y-%m-%d %H:%M} and no refill planned",
                )
            )
    telemetry = twin.telemetry
    if telemetry is not None and telemetry.session == state.session and dose_deviates(telemetry, policy):
        assert telemetry.sim_truth is not None
        programmed = telemetry.dose_mg_per_day
        actual = telemetry.sim_truth.actual_dose_mg_per_day
        out.append(
            AlertCondition(
                TwinAlertCode.DOSE_DEVIATION,
                "truth",
                f"Dose reaching the patient {actual:.3g} mg/day vs programmed {programmed:.3g} mg/day "
                f"({(actual - programmed) / programmed:+.0%}, simulator ground truth)",
            )
        )
    low_at = outlook.low_reservoir_at if outlook is not None else None
    if (
        twin.birth is not None
        and not twin.birth.audible_alarms
        and low_at is not None
        and device_now is not None
        and low_at <= device_now
    ):
        out.append(
            AlertCondition(
                TwinAlertCode.RESERVOIR_LOW_PREDICTED,
                "calculated",
                f"Reservoir at or below {state.low_reservoir_threshold_ml:g} mL since {low_at:%Y-%m-%d %H:%M} "
                "(calculated); this pump has no audible alarm",
            )
        )
    return out
