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


ALERT_PRIORITY: dict[TwinAlertCode, Priority] = {
    TwinAlertCode.DEVICE_OFFLINE: Priority.LOW,
    TwinAlertCode.DEVICE_SILENT: Priority.LOW,
    TwinAlertCode.REFILL_DISCREPANCY: Priority.MEDIUM,
    TwinAlertCode.EMPTY_BEFORE_REFILL: Priority.MEDIUM,
    TwinAlertCode.DOSE_DEVIATION: Priority.HIGH,
    TwinAlertCode.RESERVOIR_LOW_PREDICTED: Priority.MEDIUM,
}
"""IEC 60601-1-8 priority of each twin alert. A dose that differs from the programmed one is a
patient-safety matter (overdose, withdrawal): high. Refill and reservoir matters leave days to
act: medium. A device not reporting is an infrastructure matter: low."""


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Thresholds of the twin's alerts; every one a setting."""

    silent_after_simulated: timedelta = timedelta(minutes=2)
    """Wall time without a message before a simulated pump counts as silent (it reports every 10 s)."""
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


def evaluate(
    twin: DeviceTwin, outlook: Forecast | None, now: datetime, policy: AlertPolicy = AlertPolicy()
) -> list[AlertCondition]:
    """The twin alerts that hold for ``twin`` at wall time ``now``, given the forecast of its
    latest state (``outlook``)."""
    out: list[AlertCondition] = []
    simulated = twin.simulated is not False
    if twin.presence is Presence.OFFLINE and twin.presence_reason == "will":
        out.append(AlertCondition(TwinAlertCode.DEVICE_OFFLINE, "connection", "Connection lost (last will)"))
    if twin.last_seen_at is not None and twin.presence_reason not in ("will", "shutdown"):
        limit = policy.silent_after_simulated if simulated else policy.silent_after_real
        if now - twin.last_seen_at > limit:
            minutes = (now - twin.last_seen_at).total_seconds() / 60
            out.append(AlertCondition(TwinAlertCode.DEVICE_SILENT, "silence", f"No report for {minutes:.0f} min"))

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
    device_now = twin.device_now(now)
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
