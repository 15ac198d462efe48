"""Alerts the twin raises itself, from what it mirrors and predicts.

A pump sees only its own belief; the twin sees the whole record and can say more, but only from
what a real pump, gateway or clinic reports: the birth, the reported state (with the pump's event
log), the forecast the twin computes from it, and the patient reports the clinic records. The
simulator's ground truth (``sim_truth``) never reaches this module: a real twin never has it.

Connection and reporting:

* ``device_offline`` — the connection was lost (last will).
* ``device_silent`` — a *simulated* pump has been quiet for longer than expected, on the
  simulation's clock (:mod:`twin.mirror.clock`: the latest device time heard from its site), so a
  live run at 600x and a headless run agree.
* ``interrogation_overdue`` — a *real* pump is read only at clinic visits: no read-out since the
  planned refill date plus a grace period means the visit was missed (replaces a fixed silence
  limit, which cannot fit refill intervals of 1 to 6 months).

What the refill and the program say:

* ``refill_discrepancy`` — at a refill the measured residual differs from the pump's expected
  residual by more than the tolerance (DOMAIN.md: 1 mL for a 20 mL pump, 2 mL for a 40 mL pump,
  or 20 % of the expected residual, [V-S55, S76]). More left than expected points to
  under-infusion (stall, occlusion); less, to over-infusion, a leak, a pocket fill or an
  incomplete withdrawal. Holds for a week after the refill.
* ``empty_before_refill`` — with every allowed patient bolus used, the reservoir is predicted to run
  empty before the planned refill (the refill reminder), or within a week when none is planned.
* ``concentration_changed`` — the latest programming session (a refill or a reprogram) changed the
  programmed concentration: the programming-consistency check of DOMAIN-RESEARCH §8 [A]. Someone
  should check the syringe label against the prescription: a concentration entered wrong changes
  the dose by the ratio of the concentrations, silently.
* ``dose_escalation`` — an opioid's programmed dose rose by more than half within six months: the
  early data sign of a catheter-tip granuloma ([V-S53], [A] thresholds).
* ``infusion_stopped`` — a pump left in "stopped" for longer than a programming session takes (an
  incomplete session), or a pump without audible alarms that stopped for a fault.

For pumps without audible alarms (Prometra, [U] DOMAIN-RESEARCH §3.2), the twin's own cover for the
alarms they cannot sound: ``reservoir_low_predicted``, ``reservoir_empty_predicted``,
``battery_eri_predicted``, ``battery_eos_predicted`` (and ``infusion_stopped``).

And ``patient_report``: a patient's report the clinic recorded (a call, a visit): what staff
learn first about catheter faults, overdoses and withdrawal. ``identity_conflict`` is raised by an
event (a birth that contradicts the device's pinned identity), not by :func:`evaluate`
(:data:`EVENT_ALERTS`).

**Priorities** (:data:`ALERT_PRIORITY`) are raised to high where the drug makes the consequence
dangerous: when delivery may stop or fall for a baclofen or clonidine patient (withdrawal,
:data:`WITHDRAWAL_ESCALATED`, [V-S40, S34, S74]; DOMAIN-RESEARCH §3.3's suggested mapping).

:func:`evaluate` is pure: it returns the conditions that hold now; the service compares them with
the alerts already raised and raises or clears them through the alarm lifecycle.

**Clocks.** Every time threshold of a *simulated* pump runs on the device's clock (``device_now``,
the simulation's time at its site), patient reports included; a real pump's silence and its patient
reports run on the twin's wall clock (its programming and refill rules on the times the pump
reported, as for every pump). :func:`next_change` says, for the same inputs, at which device time
the result of :func:`evaluate` can next change, so that the twin re-evaluates a simulated pump
exactly when the simulation's clock passes that time (however fast the simulation runs) instead of
on the wall clock's ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from twin.contract.alarms import Priority
from twin.contract.messages import BatteryStatus, DeviceLogKind, InfusionMode, State, StopReason
from twin.mirror.device_twin import DeviceTwin, Presence
from twin.mirror.prediction import Forecast
from twin.pump.drugs import DRUGS


class TwinAlertCode(StrEnum):
    DEVICE_OFFLINE = "device_offline"
    DEVICE_SILENT = "device_silent"
    INTERROGATION_OVERDUE = "interrogation_overdue"
    REFILL_DISCREPANCY = "refill_discrepancy"
    EMPTY_BEFORE_REFILL = "empty_before_refill"
    CONCENTRATION_CHANGED = "concentration_changed"
    DOSE_ESCALATION = "dose_escalation"
    INFUSION_STOPPED = "infusion_stopped"
    RESERVOIR_LOW_PREDICTED = "reservoir_low_predicted"
    RESERVOIR_EMPTY_PREDICTED = "reservoir_empty_predicted"
    BATTERY_ERI_PREDICTED = "battery_eri_predicted"
    BATTERY_EOS_PREDICTED = "battery_eos_predicted"
    PATIENT_REPORT = "patient_report"
    IDENTITY_CONFLICT = "identity_conflict"


EVENT_ALERTS: frozenset[TwinAlertCode] = frozenset({TwinAlertCode.IDENTITY_CONFLICT})
"""Twin alerts raised by an event (not a condition :func:`evaluate` re-checks): they latch until
staff acknowledge them, and re-evaluation never clears them."""


ALERT_PRIORITY: Final[dict[TwinAlertCode, Priority]] = {
    TwinAlertCode.DEVICE_OFFLINE: Priority.LOW,
    TwinAlertCode.DEVICE_SILENT: Priority.LOW,
    TwinAlertCode.INTERROGATION_OVERDUE: Priority.MEDIUM,
    TwinAlertCode.REFILL_DISCREPANCY: Priority.MEDIUM,
    TwinAlertCode.EMPTY_BEFORE_REFILL: Priority.MEDIUM,
    TwinAlertCode.CONCENTRATION_CHANGED: Priority.MEDIUM,
    TwinAlertCode.DOSE_ESCALATION: Priority.MEDIUM,
    TwinAlertCode.INFUSION_STOPPED: Priority.MEDIUM,
    TwinAlertCode.RESERVOIR_LOW_PREDICTED: Priority.MEDIUM,
    TwinAlertCode.RESERVOIR_EMPTY_PREDICTED: Priority.HIGH,
    TwinAlertCode.BATTERY_ERI_PREDICTED: Priority.MEDIUM,
    TwinAlertCode.BATTERY_EOS_PREDICTED: Priority.HIGH,
    TwinAlertCode.PATIENT_REPORT: Priority.MEDIUM,
    TwinAlertCode.IDENTITY_CONFLICT: Priority.MEDIUM,
}
"""IEC 60601-1-8 priority of each twin alert (a patient report's comes with it). What a pump would
sound itself maps as the pump's alarm does: empty and end of service are critical (high), low
reservoir and ERI non-critical (medium). Refill, program and reporting matters leave hours to days
to act: medium. A simulated device not reporting is an infrastructure matter: low."""

WITHDRAWAL_ESCALATED: Final = frozenset(
    {
        TwinAlertCode.INTERROGATION_OVERDUE,
        TwinAlertCode.EMPTY_BEFORE_REFILL,
        TwinAlertCode.CONCENTRATION_CHANGED,
        TwinAlertCode.INFUSION_STOPPED,
    }
)
"""Alerts whose consequence is delivery stopping or falling: high for a drug whose withdrawal is an
emergency (baclofen, clonidine: :attr:`twin.pump.drugs.DrugProfile.dangerous_withdrawal`)."""


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Thresholds of the twin's alerts; every one a setting."""

    silent_after_simulated: timedelta = timedelta(hours=6)
    """*Simulated* time without a message before a simulated pump counts as silent (on the
    simulation's clock, :mod:`twin.mirror.clock`, so that a live run at 600x and a headless run of
    the same scenario agree), and at least :data:`SILENT_AFTER_INTERVALS` of its reporting interval."""
    silent_after_real: timedelta = timedelta(days=35)
    """When the *presence* of a real pump is marked silent (the service's connection view); the
    alert for a real pump is ``interrogation_overdue``, from its planned refill date."""
    interrogation_grace: timedelta = timedelta(days=7)
    """A real pump's read-out may come this long after its planned refill date before the visit
    counts as missed. [A] a week: clinics move appointments by days."""
    discrepancy_ml_small: float = 1.0
    """Refill discrepancy tolerance for pumps up to 20 mL (DOMAIN.md, [V-S55])."""
    discrepancy_ml_large: float = 2.0
    """...and for larger (40 mL) pumps."""
    discrepancy_fraction: float = 0.20
    """Or this share of the expected residual ([V-S76]), when the expected residual is large
    enough for a share to mean something (at least 2 mL)."""
    discrepancy_active_for: timedelta = timedelta(days=7)
    """A refill discrepancy is news for this long after the refill (device time). [A] long enough
    for the work-up to start; it does not stay an active alarm for the whole refill interval."""
    empty_warning: timedelta = timedelta(days=7)
    """Without a planned refill: warn when the reservoir is predicted empty within this time."""
    stopped_grace: timedelta = timedelta(minutes=30)
    """A programmed stop longer than this is no longer part of a programming session. [A]"""
    concentration_check_for: timedelta = timedelta(hours=24)
    """How long after a concentration change the check stays up (device time). [A]"""
    concentration_change_fraction: float = 0.01
    """A concentration that moved by less than this share is a rounding, not a change."""
    escalation_window: timedelta = timedelta(days=180)
    """The window a dose-escalation trend is measured over. [A] after [V-S53]'s yearly increase."""
    escalation_fraction: float = 0.5
    """An opioid dose that rose by more than this share within the window is a trend. [A]"""
    patient_report_for: timedelta = timedelta(hours=24)
    """A patient report stays an active alert this long (twin clock). [A] a day: the next shift."""


SILENT_AFTER_INTERVALS = 3
"""A pump that reports every ``T`` (device time) is silent only after missing this many reports."""


@dataclass(frozen=True, slots=True)
class PatientReport:
    """A patient's report about their pump that the clinic recorded: when (the twin's clock), what,
    and the priority its severity calls for."""

    at: datetime
    text: str
    priority: Priority


@dataclass(frozen=True, slots=True)
class AlertCondition:
    """One twin alert that holds now. ``instance`` separates occurrences (e.g. one per refill);
    ``raised_priority`` overrides the code's priority (a dangerous drug, a patient report)."""

    code: TwinAlertCode
    instance: str
    message: str
    raised_priority: Priority | None = None

    @property
    def priority(self) -> Priority:
        return self.raised_priority or ALERT_PRIORITY[self.code]


_PROGRAMMING: Final = frozenset({DeviceLogKind.REFILL, DeviceLogKind.REPROGRAM})


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
    reports: Sequence[PatientReport] = (),
) -> list[AlertCondition]:
    """The twin alerts that hold for ``twin`` at wall time ``now``, given the forecast of its
    latest state (``outlook``), what the device's clock reads now (``device_now``, from
    :func:`twin.mirror.clock.device_time`; the twin's own estimate when not given) and the patient
    reports recorded for it (any order; timed on the device's clock for a simulated pump, on the
    wall clock for a real one)."""
    out: list[AlertCondition] = []
    if device_now is None:
        device_now = twin.device_now(now)
    simulated = twin.simulated is not False
    if twin.presence is Presence.OFFLINE and twin.presence_reason == "will":
        out.append(AlertCondition(TwinAlertCode.DEVICE_OFFLINE, "connection", "Connection lost (last will)"))
    if simulated and twin.last_seen_at is not None and twin.presence_reason not in ("will", "shutdown"):
        unheard = silent_for(twin, now, device_now)
        if unheard is not None and unheard > silence_limit(twin, policy):
            minutes = unheard.total_seconds() / 60
            out.append(
                AlertCondition(TwinAlertCode.DEVICE_SILENT, "silence", f"No report for {minutes:.0f} simulated min")
            )
    out += _patient_report(reports, report_clock(twin, now, device_now), policy)
    state = twin.reported
    if state is None:
        return out
    clock_now = device_now or now
    dangerous = DRUGS[state.drug].dangerous_withdrawal
    found: list[AlertCondition] = []
    if not simulated:
        found += _interrogation_overdue(state, outlook, clock_now, policy)
    found += _refill_discrepancy(twin, state, clock_now, policy)
    found += _empty_before_refill(state, outlook, clock_now, policy)
    found += _concentration_changed(state, clock_now, policy)
    found += _dose_escalation(state, clock_now, policy)
    silent_pump = twin.birth is not None and not twin.birth.audible_alarms
    found += _infusion_stopped(state, clock_now, policy, silent_pump=silent_pump)
    if silent_pump:
        found += _silent_pump_cover(state, outlook, clock_now)
    for condition in found:
        if dangerous and condition.code in WITHDRAWAL_ESCALATED and condition.raised_priority is None:
            drug = state.drug.value
            condition = AlertCondition(
                condition.code, condition.instance, f"{condition.message} ({drug}: withdrawal risk)", Priority.HIGH
            )
        out.append(condition)
    return out


def report_clock(twin: DeviceTwin, now: datetime, device_now: datetime | None) -> datetime:
    """The clock patient reports about ``twin`` are timed on: the device's for a simulated pump
    (a scenario's symptom happens at a simulated time), the twin's wall clock for a real one."""
    if twin.simulated is not False and device_now is not None:
        return device_now
    return now


_TICK: Final = timedelta(microseconds=1)
"""The resolution of ``datetime``: a rule that holds when ``t > d`` first holds at ``d + _TICK``."""


def next_change(
    twin: DeviceTwin,
    outlook: Forecast | None,
    now: datetime,
    policy: AlertPolicy = AlertPolicy(),
    *,
    device_now: datetime | None = None,
    reports: Sequence[PatientReport] = (),
) -> datetime | None:
    """The earliest device time after ``device_now`` at which :func:`evaluate` (same arguments,
    only the device's clock moved on) may return other conditions (codes, instances, priorities),
    or ``None`` if no time alone changes them. Never late: for every device time ``t`` with
    ``device_now <= t < next_change(...)`` the conditions are those at ``device_now``. It may be
    early (a deadline at which nothing visible changes); the caller then asks again.

    For a simulated pump the wall clock does not matter (its rules all run on the device's clock);
    for a real pump the twin's wall-clock rules (presence, patient reports) are left to its ticks,
    and only its device-clock deadlines are given."""
    if device_now is None:
        device_now = twin.device_now(now)
    if device_now is None:
        return None
    simulated = twin.simulated is not False
    found: list[datetime] = []
    heard = twin.last_device_time
    if (
        simulated
        and twin.last_seen_at is not None
        and heard is not None
        and twin.presence_reason not in ("will", "shutdown")
    ):
        found.append(heard + silence_limit(twin, policy) + _TICK)
    if simulated:
        for r in reports:
            found += [r.at, r.at + policy.patient_report_for]
    state = twin.reported
    if state is not None and twin.birth is not None:
        found += _state_deadlines(twin, state, outlook, policy, simulated=simulated)
    later = [t for t in found if t > device_now]
    return min(later) if later else None


def _state_deadlines(
    twin: DeviceTwin, state: State, outlook: Forecast | None, policy: AlertPolicy, *, simulated: bool
) -> list[datetime]:
    """Every device time at which a rule on the reported state may change its mind (see
    :func:`next_change`): the boundaries of each rule's comparisons with the device's clock."""
    out: list[datetime] = []
    if not simulated:
        due, _ = next_visit(state, outlook)
        out.append(due + policy.interrogation_grace + _TICK)
    refill = state.last_refill
    if refill is not None and refill.measured_residual_ml is not None:
        out.append(refill.at + policy.discrepancy_active_for)
    if outlook is not None and state.refill_reminder_at is None:
        empty_at = outlook.worst_empty_at or outlook.empty_at
        if empty_at is not None:
            out.append(empty_at - policy.empty_warning + _TICK)
    for e in state.event_log:
        if e.kind in _PROGRAMMING:
            out.append(e.at + policy.concentration_check_for)
            out.append(e.at + policy.escalation_window + _TICK)
    if state.program.mode is InfusionMode.STOPPED:
        since = state.program_changed_at or state.device_time
        out.append(since + policy.stopped_grace + _TICK)
    if not twin.birth or twin.birth.audible_alarms:
        return out
    if outlook is not None:
        for t in (outlook.worst_low_reservoir_at, outlook.low_reservoir_at, outlook.empty_at, outlook.eri_at):
            if t is not None:
                out.append(t)
        if outlook.eos_at is not None:
            out.append(outlook.eos_at)
    for t in (state.eri_at, state.eos_at):
        if t is not None:
            out.append(t)
    return out


# ------------------------------------------------------------------------------------- rules


def _patient_report(reports: Sequence[PatientReport], now: datetime, policy: AlertPolicy) -> list[AlertCondition]:
    recent = [r for r in reports if r.at <= now and now - r.at < policy.patient_report_for]
    if not recent:
        return []
    latest = max(recent, key=lambda r: r.at)
    return [
        AlertCondition(
            TwinAlertCode.PATIENT_REPORT,
            latest.at.strftime("%Y%m%dT%H%M%S"),
            f"Patient: {latest.text}",
            latest.priority,
        )
    ]


def _interrogation_overdue(
    state: State, outlook: Forecast | None, device_now: datetime, policy: AlertPolicy
) -> list[AlertCondition]:
    due, basis = next_visit(state, outlook)
    if device_now <= due + policy.interrogation_grace:
        return []
    late = (device_now - due).days
    return [
        AlertCondition(
            TwinAlertCode.INTERROGATION_OVERDUE,
            due.strftime("%Y%m%d"),
            f"No read-out since {state.device_time:%Y-%m-%d}; the {basis} of {due:%Y-%m-%d} is {late} days past",
        )
    ]


def next_visit(state: State, outlook: Forecast | None) -> tuple[datetime, str]:
    """When the pump should next have been read: the planned refill, else the forecast's
    worst-case low-reservoir date, else the drug's stability limit from the report."""
    if state.refill_reminder_at is not None:
        return state.refill_reminder_at, "planned refill"
    if outlook is not None:
        due = outlook.worst_low_reservoir_at or outlook.low_reservoir_at
        if due is not None:
            return due, "predicted low-reservoir date"
    return state.device_time + timedelta(days=DRUGS[state.drug].stability_days), "drug's stability limit"


def _refill_discrepancy(
    twin: DeviceTwin, state: State, device_now: datetime, policy: AlertPolicy
) -> list[AlertCondition]:
    refill = state.last_refill
    if refill is None or refill.measured_residual_ml is None:
        return []
    if device_now - refill.at >= policy.discrepancy_active_for:
        return []
    capacity = twin.birth.reservoir_capacity_ml if twin.birth else 20.0
    tolerance = policy.discrepancy_ml_small if capacity <= 20.0 else policy.discrepancy_ml_large
    difference = refill.measured_residual_ml - refill.expected_residual_ml
    relative = abs(difference) / refill.expected_residual_ml if refill.expected_residual_ml >= 2.0 else 0.0
    if not (abs(difference) > tolerance or relative > policy.discrepancy_fraction):
        return []
    direction = (
        "more left than expected: under-infusion (stall? occlusion?)"
        if difference > 0
        else "less left than expected: over-infusion, leak, pocket fill or incomplete withdrawal?"
    )
    return [
        AlertCondition(
            TwinAlertCode.REFILL_DISCREPANCY,
            refill.at.strftime("%Y%m%dT%H%M%S"),
            f"Refill discrepancy {difference:+.2f} mL (expected {refill.expected_residual_ml:.2f}, "
            f"measured {refill.measured_residual_ml:.2f}): {direction}",
        )
    ]


def _empty_before_refill(
    state: State, outlook: Forecast | None, device_now: datetime, policy: AlertPolicy
) -> list[AlertCondition]:
    if outlook is None or state.program.mode is InfusionMode.STOPPED:
        return []
    empty_at = outlook.worst_empty_at or outlook.empty_at
    if empty_at is None:
        return []
    boluses = " with every patient bolus used" if outlook.worst_empty_at not in (None, outlook.empty_at) else ""
    planned = state.refill_reminder_at
    if planned is not None and empty_at < planned:
        return [
            AlertCondition(
                TwinAlertCode.EMPTY_BEFORE_REFILL,
                "planned",
                f"Predicted empty {empty_at:%Y-%m-%d %H:%M}{boluses}, before the planned refill {planned:%Y-%m-%d}",
            )
        ]
    if planned is None and empty_at - device_now < policy.empty_warning:
        return [
            AlertCondition(
                TwinAlertCode.EMPTY_BEFORE_REFILL,
                "unplanned",
                f"Predicted empty {empty_at:%Y-%m-%d %H:%M}{boluses} and no refill planned",
            )
        ]
    return []


def _concentration_changed(state: State, device_now: datetime, policy: AlertPolicy) -> list[AlertCondition]:
    """The latest programming session in the check window that changed the concentration (a later
    session that only sets the rate, as a programmer does after a new strength, keeps the check up)."""
    recent = [
        e for e in state.event_log if e.kind in _PROGRAMMING and device_now - e.at < policy.concentration_check_for
    ]
    changed = [
        e
        for e in recent
        if e.concentration_before_mg_per_ml is not None
        and e.concentration_after_mg_per_ml is not None
        and abs(e.concentration_after_mg_per_ml - e.concentration_before_mg_per_ml)
        > policy.concentration_change_fraction * e.concentration_before_mg_per_ml
    ]
    if not changed:
        return []
    entry, latest = changed[-1], recent[-1]
    before, after = entry.concentration_before_mg_per_ml, entry.concentration_after_mg_per_ml
    assert before is not None
    assert after is not None
    session = "refill" if entry.kind is DeviceLogKind.REFILL else "reprogramming"
    dose_before, dose_now = entry.dose_before_mg_per_day, latest.dose_after_mg_per_day
    dose = ""
    rose = False
    if dose_before is not None and dose_now is not None:
        dose = f"; programmed dose {dose_before:.3g} -> {dose_now:.3g} mg/day"
        rose = dose_now > 1.5 * dose_before
    return [
        AlertCondition(
            TwinAlertCode.CONCENTRATION_CHANGED,
            entry.at.strftime("%Y%m%dT%H%M%S"),
            f"Concentration changed {before:g} -> {after:g} mg/mL at the {session} of {entry.at:%Y-%m-%d %H:%M}{dose}. "
            f"Check the syringe label: if it holds {before:g} mg/mL the patient receives {before / after:.2g} x "
            "the programmed dose",
            Priority.HIGH if rose else None,
        )
    ]


def _dose_escalation(state: State, device_now: datetime, policy: AlertPolicy) -> list[AlertCondition]:
    if not DRUGS[state.drug].opioid:
        return []
    since = device_now - policy.escalation_window
    window = [
        e
        for e in state.event_log
        if e.kind in _PROGRAMMING and e.at >= since and e.dose_before_mg_per_day and e.dose_after_mg_per_day
    ]
    if not window:
        return []
    first, last = window[0].dose_before_mg_per_day, window[-1].dose_after_mg_per_day
    assert first is not None
    assert last is not None
    if last <= first * (1.0 + policy.escalation_fraction):
        return []
    days = max(1, (window[-1].at - window[0].at).days)
    return [
        AlertCondition(
            TwinAlertCode.DOSE_ESCALATION,
            "trend",
            f"Programmed {state.drug.value} dose rose {first:.3g} -> {last:.3g} mg/day (+{last / first - 1:.0%}) "
            f"in {days} days: consider a catheter-tip granuloma (MRI with contrast at the tip)",
        )
    ]


def _infusion_stopped(
    state: State, device_now: datetime, policy: AlertPolicy, *, silent_pump: bool
) -> list[AlertCondition]:
    if state.program.mode is InfusionMode.STOPPED:
        since = state.program_changed_at or state.device_time
        if device_now - since > policy.stopped_grace:
            return [
                AlertCondition(
                    TwinAlertCode.INFUSION_STOPPED,
                    since.strftime("%Y%m%dT%H%M%S"),
                    f"Pump programmed to stop since {since:%Y-%m-%d %H:%M}: no drug is delivered",
                )
            ]
        return []
    if silent_pump and state.stop_reason in (StopReason.MEMORY_ERROR, StopReason.MOTOR_STALL):
        return [
            AlertCondition(
                TwinAlertCode.INFUSION_STOPPED,
                state.stop_reason.value,
                f"Pump stopped ({state.stop_reason.value.replace('_', ' ')}); it has no audible alarm",
            )
        ]
    return []


def _silent_pump_cover(state: State, outlook: Forecast | None, device_now: datetime) -> list[AlertCondition]:
    """The alarms a pump without audible alarms cannot sound, from the reported and predicted state."""
    out: list[AlertCondition] = []
    low_at = outlook.worst_low_reservoir_at or outlook.low_reservoir_at if outlook is not None else None
    empty_at = outlook.empty_at if outlook is not None else None
    if empty_at is not None and empty_at <= device_now:
        out.append(
            AlertCondition(
                TwinAlertCode.RESERVOIR_EMPTY_PREDICTED,
                "calculated",
                f"Reservoir calculated empty since {empty_at:%Y-%m-%d %H:%M}; this pump has no audible alarm",
            )
        )
    elif low_at is not None and low_at <= device_now:
        out.append(
            AlertCondition(
                TwinAlertCode.RESERVOIR_LOW_PREDICTED,
                "calculated",
                f"Reservoir at or below {state.low_reservoir_threshold_ml:g} mL since {low_at:%Y-%m-%d %H:%M} "
                "(calculated, every patient bolus counted); this pump has no audible alarm",
            )
        )
    eos_at = state.eos_at if state.battery is BatteryStatus.EOS else (outlook.eos_at if outlook else None)
    eri_at = state.eri_at if state.battery is not BatteryStatus.OK else (outlook.eri_at if outlook else None)
    if state.battery is BatteryStatus.EOS or (eos_at is not None and eos_at <= device_now):
        out.append(
            AlertCondition(
                TwinAlertCode.BATTERY_EOS_PREDICTED,
                "battery",
                "End of service: the pump has stopped infusing; it has no audible alarm",
            )
        )
    elif state.battery is BatteryStatus.ERI or (eri_at is not None and eri_at <= device_now):
        when = f" (end of service {eos_at:%Y-%m-%d})" if eos_at is not None else ""
        out.append(
            AlertCondition(
                TwinAlertCode.BATTERY_ERI_PREDICTED,
                "battery",
                f"Elective replacement indicator{when}: schedule replacement; this pump has no audible alarm",
            )
        )
    return out
