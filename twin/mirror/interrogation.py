"""The twin of a real pump between visits: what its sparse read-outs say, and what the twin predicts.

A real pump is heard from only when a clinician programmer interrogates it (every 1–3 months, DOMAIN.md);
its gateway publishes each read-out as one contract session with ``simulated: false``
(:mod:`twin.gateway.publication`), the pump's event log in the state's ``event_log``. Between visits the
twin's prediction is what the clinic has:

* :func:`outlook` — the last interrogation and its age, the predicted reservoir now, the dates since then
  of low reservoir, empty, ERI and end of service (each with whether it has already passed), predicted with
  :func:`twin.mirror.prediction.predict` from the read-out, and when the next visit is due and from when it
  is overdue — the very date the ``interrogation_overdue`` alert (:mod:`twin.mirror.alerts`) is raised on,
  so the page and the alarm list never disagree, and the outlook raises no alert of its own;
* :func:`refill_check` — at the next visit's refill, the residual the twin predicted from the *previous*
  read-out (its program, less the patient boluses the new read-out's event log shows in between) against
  the one the clinician measured, with DOMAIN.md's tolerance (1 mL for pumps up to 20 mL, 2 mL for larger
  ones, or beyond 20 % of the expected residual when that is at least 2 mL; the figures are
  :class:`~twin.mirror.alerts.AlertPolicy` settings);
* :func:`record` keeps the checks of consecutive read-outs per device (:class:`Visits`, kept in the
  :class:`~twin.mirror.fleet.Fleet` value and in the device's snapshot), and :func:`refill_conditions`
  lets the twin's own check raise the ``refill_discrepancy`` alert of a real pump in place of the
  pump-calculated comparison.

Patient boluses. A pump's own calculated residual counts every bolus it gave; the twin's forecast from the
previous read-out counts none. The new read-out's event log lists the accepted activations (the contract
carries its latest :data:`~twin.contract.messages.MAX_EVENT_LOG_ENTRIES` entries), and the check subtracts
those between the two read-outs. When the log does not reach back to the previous read-out (a busy
therapy manager fills it), the boluses counted are a lower bound: the check then compares the measured
residual with the pump's calculated one, as for a simulated pump, and says so (``compared_with``).

What remains between the twin's prediction and the pump's own calculated residual is what the pump
delivered that the twin could not see (a change made outside an interrogation, boluses the log had no
room for). Both figures are kept.

A real pump's clock is a real clock: "now" is the wall time, not the device time advanced from the last
message (see :meth:`twin.mirror.device_twin.DeviceTwin.device_now`).

Pure: the time is an argument; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from twin.contract.messages import MAX_EVENT_LOG_ENTRIES, Birth, DeviceLogKind, RefillRecord, State
from twin.mirror.alerts import AlertCondition, AlertPolicy, TwinAlertCode, next_visit
from twin.mirror.device_twin import DeviceTwin
from twin.mirror.prediction import Forecast, predict

VISITS_KEPT: Final = 24
"""Refill checks kept per real pump: two to six years of visits at one every 1–3 months."""

SMALL_PUMP_MAX_ML: Final = 20.0
"""Pumps up to this capacity get the small tolerance (DOMAIN.md: 1 mL for a 20 mL pump, 2 mL for 40 mL)."""

FRACTION_MIN_EXPECTED_ML: Final = 2.0
"""The relative tolerance applies only from this expected residual on: 20 % of half a millilitre is below
what a syringe reads."""


def is_readout(twin: DeviceTwin) -> bool:
    """Is this twin a real pump, mirrored from read-outs (its birth says ``simulated: false``)?"""
    return twin.birth is not None and not twin.birth.simulated


def tolerance_ml(capacity_ml: float, policy: AlertPolicy) -> float:
    """The absolute refill-discrepancy tolerance for a pump of ``capacity_ml``."""
    return policy.discrepancy_ml_small if capacity_ml <= SMALL_PUMP_MAX_ML else policy.discrepancy_ml_large


def beyond_tolerance(expected_ml: float, measured_ml: float, capacity_ml: float, policy: AlertPolicy) -> bool:
    """Does ``measured_ml`` differ from ``expected_ml`` by more than DOMAIN.md's tolerance?"""
    difference = abs(measured_ml - expected_ml)
    relative = difference / expected_ml if expected_ml >= FRACTION_MIN_EXPECTED_ML else 0.0
    return difference > tolerance_ml(capacity_ml, policy) + 1e-9 or relative > policy.discrepancy_fraction


# ------------------------------------------------------------------------------------------ outlook


@dataclass(frozen=True, slots=True)
class Outlook:
    """A real pump at wall time ``at``, as the twin predicts it from its last read-out."""

    interrogated_at: datetime
    at: datetime
    age_s: float
    reported_reservoir_ml: float
    predicted_reservoir_ml: float
    predicted_battery_percent: float
    low_reservoir_at: datetime | None
    empty_at: datetime | None
    eri_at: datetime | None
    eos_at: datetime | None
    next_refill_at: datetime | None

    def passed(self, moment: datetime | None) -> bool:
        return moment is not None and moment <= self.at


def outlook(birth: Birth | None, state: State, now: datetime) -> Outlook:
    """The last read-out (``state``) advanced to wall time ``now`` (never before the read-out).

    Raises ``ValueError`` or ``OverflowError`` from the pump model for a state it cannot start from."""
    p = predict(birth, state, None, max(now, state.device_time))
    return Outlook(
        interrogated_at=state.device_time,
        at=p.at,
        age_s=max(0.0, (now - state.device_time).total_seconds()),
        reported_reservoir_ml=state.reservoir_ml,
        predicted_reservoir_ml=p.reservoir_ml,
        predicted_battery_percent=p.battery_percent,
        low_reservoir_at=p.low_reservoir_at,
        empty_at=p.empty_at,
        eri_at=p.eri_at,
        eos_at=p.eos_at,
        next_refill_at=state.refill_reminder_at,
    )


@dataclass(frozen=True, slots=True)
class NextVisit:
    """When a real pump should next be read, and from when the twin calls the visit missed."""

    due_at: datetime
    basis: str  # "planned refill", "predicted low-reservoir date" or "drug's stability limit"
    overdue_from: datetime
    overdue: bool


def next_visit_of(state: State, forecast: Forecast | None, now: datetime, policy: AlertPolicy) -> NextVisit:
    """The next visit of the pump whose last read-out is ``state``, at wall time ``now``: the rule of the
    ``interrogation_overdue`` alert (:func:`twin.mirror.alerts.next_visit` and the policy's grace), so
    ``overdue`` is true exactly while that alert's condition holds."""
    due, basis = next_visit(state, forecast)
    overdue_from = due + policy.interrogation_grace
    return NextVisit(due_at=due, basis=basis, overdue_from=overdue_from, overdue=now > overdue_from)


# ----------------------------------------------------------------------------------- refill check


class Comparison(StrEnum):
    """What the measured residual of a refill check was compared with."""

    TWIN = "twin_prediction"  # the twin's prediction from the read-out before, less the logged boluses
    PUMP = "pump_calculation"  # the pump's own calculated residual (the log did not reach back)


@dataclass(frozen=True, slots=True)
class BolusTally:
    """Accepted patient boluses an event log shows after one moment and up to another."""

    count: int
    volume_ml: float
    complete: bool  # the log reaches back to the start: nothing older could have been left out


def patient_boluses(state: State, after: datetime, until: datetime) -> BolusTally:
    """The accepted patient boluses ``state``'s event log holds in ``(after, until]``. ``complete`` when the
    log holds an entry at or before ``after``, or has room left (it was not cut to its last entries)."""
    log = state.event_log
    taken = [
        e for e in log if e.kind is DeviceLogKind.PATIENT_BOLUS and after < e.at <= until and e.volume_ml is not None
    ]
    complete = len(log) < MAX_EVENT_LOG_ENTRIES or any(e.at <= after for e in log)
    return BolusTally(len(taken), round(sum(e.volume_ml or 0.0 for e in taken), 6), complete)


@dataclass(frozen=True, slots=True)
class RefillCheck:
    """One refill of a real pump, checked against the twin's prediction from the read-out before it."""

    refill_at: datetime
    basis_at: datetime  # the previous read-out's interrogation: what the prediction started from
    interrogated_at: datetime  # the read-out that reported this refill
    program_residual_ml: float  # the twin's prediction at the refill from the previous read-out's program alone
    patient_boluses: int  # accepted patient boluses the new read-out's log shows in between
    patient_bolus_ml: float  # ...and their volume
    bolus_log_complete: bool  # the log reaches back to the previous read-out
    predicted_residual_ml: float  # program_residual_ml less the boluses (never below the pump's stop)
    calculated_residual_ml: float  # the pump's own calculated residual (it counts the boluses it gave)
    measured_residual_ml: float | None  # withdrawn and measured; None when it was not measured
    capacity_ml: float
    tolerance_ml: float
    compared_with: Comparison
    exceeded: bool  # the measured residual is beyond the tolerance of what it was compared with

    @property
    def reference_ml(self) -> float:
        """The residual the measured one was compared with (see :attr:`compared_with`)."""
        return self.predicted_residual_ml if self.compared_with is Comparison.TWIN else self.calculated_residual_ml

    @property
    def difference_ml(self) -> float | None:
        """Measured minus the reference: positive, more left than predicted (under-infusion: occlusion,
        stall); negative, less (over-infusion, a leak, a pocket fill)."""
        if self.measured_residual_ml is None:
            return None
        return round(self.measured_residual_ml - self.reference_ml, 6)

    @property
    def unexplained_ml(self) -> float:
        """Predicted minus the pump's calculated residual: what the pump delivered that the twin did not foresee
        (a change outside an interrogation, boluses the log had no room for)."""
        return round(self.predicted_residual_ml - self.calculated_residual_ml, 6)

    @property
    def instance(self) -> str:
        """One alert occurrence per refill (the same instance :func:`twin.mirror.alerts.evaluate` uses)."""
        return self.refill_at.strftime("%Y%m%dT%H%M%S")


def refill_check(birth: Birth | None, previous: State, state: State, policy: AlertPolicy) -> RefillCheck | None:
    """The check of ``state``'s last refill against the prediction from ``previous`` (an earlier read-out),
    or None when there is nothing to check: no refill, or a refill the previous read-out already reported
    (or one from before it). Raises ``ValueError`` or ``OverflowError`` from the pump model for a state it
    cannot start from."""
    refill = state.last_refill
    if refill is None or refill.at < previous.device_time:
        return None
    if previous.last_refill is not None and previous.last_refill.at >= refill.at:
        return None
    program = predict(birth, previous, None, refill.at).reservoir_ml
    boluses = patient_boluses(state, previous.device_time, refill.at)
    floor = min(program, previous.unusable_residual_ml)  # a pump stops at its unusable residual
    predicted = max(program - boluses.volume_ml, floor)
    capacity = birth.reservoir_capacity_ml if birth is not None else SMALL_PUMP_MAX_ML
    compared_with = Comparison.TWIN if boluses.complete else Comparison.PUMP
    reference = predicted if compared_with is Comparison.TWIN else refill.expected_residual_ml
    measured = refill.measured_residual_ml
    return RefillCheck(
        refill_at=refill.at,
        basis_at=previous.device_time,
        interrogated_at=state.device_time,
        program_residual_ml=round(program, 4),
        patient_boluses=boluses.count,
        patient_bolus_ml=boluses.volume_ml,
        bolus_log_complete=boluses.complete,
        predicted_residual_ml=round(predicted, 4),
        calculated_residual_ml=refill.expected_residual_ml,
        measured_residual_ml=measured,
        capacity_ml=capacity,
        tolerance_ml=tolerance_ml(capacity, policy),
        compared_with=compared_with,
        exceeded=measured is not None and beyond_tolerance(reference, measured, capacity, policy),
    )


@dataclass(frozen=True, slots=True)
class Visits:
    """The refill checks of one real pump, oldest first (at most :data:`VISITS_KEPT`)."""

    checks: tuple[RefillCheck, ...] = ()

    def check_of(self, refill: RefillRecord | None) -> RefillCheck | None:
        """The check of this refill, if the twin made one (it needs the read-out before it)."""
        if refill is None:
            return None
        return next((c for c in reversed(self.checks) if c.refill_at == refill.at), None)


def record(visits: Visits | None, before: DeviceTwin | None, after: DeviceTwin, policy: AlertPolicy) -> Visits | None:
    """The visits of ``after``'s pump once a new read-out's state is applied (``before``: the twin just before).

    Only a state of a newer session than the previous read-out's is checked (a repeat changes nothing, and
    the same ``visits`` object comes back); a state the pump model cannot start from is skipped (raises
    nothing). None for a simulated pump."""
    if not is_readout(after):
        return visits
    state = after.reported
    previous = before.reported if before is not None else None
    if state is None or previous is None or state.session <= previous.session:
        return visits
    try:
        check = refill_check(after.birth, previous, state, policy)
    except (ValueError, OverflowError):
        return visits
    held = visits or Visits()
    if check is None or held.check_of(state.last_refill) is not None:
        return visits
    return replace(held, checks=(*held.checks, check)[-VISITS_KEPT:])


def discrepancy_condition(check: RefillCheck) -> AlertCondition | None:
    """The ``refill_discrepancy`` alert a check raises, if it is beyond the tolerance."""
    difference = check.difference_ml
    if not check.exceeded or difference is None or check.measured_residual_ml is None:
        return None
    direction = (
        "more left than predicted: under-infusion (catheter occlusion? motor stall?)"
        if difference > 0
        else "less left than predicted: over-infusion, a leak or a pocket fill?"
    )
    boluses = f" less {check.patient_bolus_ml:.2f} mL of {check.patient_boluses} logged patient boluses"
    if check.compared_with is Comparison.TWIN:
        basis = (
            f"twin predicted {check.predicted_residual_ml:.2f} from the read-out of {check.basis_at:%Y-%m-%d}"
            f"{boluses if check.patient_boluses else ''}, pump calculated {check.calculated_residual_ml:.2f}"
        )
    else:
        basis = (
            f"pump calculated {check.calculated_residual_ml:.2f}; the event log does not reach back to the "
            f"read-out of {check.basis_at:%Y-%m-%d}, so the twin's {check.predicted_residual_ml:.2f} "
            f"({boluses.strip()}) is not the reference"
        )
    return AlertCondition(
        TwinAlertCode.REFILL_DISCREPANCY,
        check.instance,
        f"Refill discrepancy {difference:+.2f} mL ({basis}, measured {check.measured_residual_ml:.2f}; "
        f"tolerance {check.tolerance_ml:g} mL): {direction}",
    )


def refill_conditions(
    twin: DeviceTwin,
    conditions: list[AlertCondition],
    visits: Visits | None,
    now: datetime,
    policy: AlertPolicy,
) -> list[AlertCondition]:
    """``conditions`` (from :func:`twin.mirror.alerts.evaluate` at wall time ``now``) with the twin's own refill
    check in place of the pump-calculated comparison, for a real pump whose last refill the twin checked; news
    for :attr:`~twin.mirror.alerts.AlertPolicy.discrepancy_active_for` after the refill, as that comparison is.
    Without a check (the first read-out the twin sees) the pump-calculated comparison stays."""
    state = twin.reported
    check = visits.check_of(state.last_refill) if visits is not None and state is not None else None
    if not is_readout(twin) or check is None:
        return conditions
    kept = [c for c in conditions if c.code is not TwinAlertCode.REFILL_DISCREPANCY]
    if now - check.refill_at >= policy.discrepancy_active_for:
        return kept
    condition = discrepancy_condition(check)
    return [*kept, condition] if condition is not None else kept


# ---------------------------------------------------------------------------- snapshot round trip


def _iso(value: datetime) -> str:
    return value.isoformat()


def visits_json(visits: Visits) -> list[dict[str, Any]]:
    """The checks as JSON-ready dicts (for the device snapshot, :mod:`twin.store.snapshots`)."""
    return [
        {
            "refill_at": _iso(c.refill_at),
            "basis_at": _iso(c.basis_at),
            "interrogated_at": _iso(c.interrogated_at),
            "program_residual_ml": c.program_residual_ml,
            "patient_boluses": c.patient_boluses,
            "patient_bolus_ml": c.patient_bolus_ml,
            "bolus_log_complete": c.bolus_log_complete,
            "predicted_residual_ml": c.predicted_residual_ml,
            "calculated_residual_ml": c.calculated_residual_ml,
            "measured_residual_ml": c.measured_residual_ml,
            "capacity_ml": c.capacity_ml,
            "tolerance_ml": c.tolerance_ml,
            "compared_with": c.compared_with.value,
            "exceeded": c.exceeded,
        }
        for c in visits.checks
    ]


def visits_from_json(data: Any) -> Visits:
    """:func:`visits_json` read back. Raises ``KeyError``, ``ValueError`` or ``TypeError`` for what it did not
    write (the snapshot reader logs it and keeps the twin without its checks)."""
    if not isinstance(data, list):
        raise TypeError(f"refill checks must be a list, not {type(data).__name__}")

    def when(value: Any) -> datetime:
        if not isinstance(value, str):
            raise TypeError(f"a time must be a string, not {type(value).__name__}")
        moment = datetime.fromisoformat(value)
        if moment.utcoffset() is None:
            raise ValueError(f"time {value!r} has no timezone")
        return moment

    def volume(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"a volume must be a number, not {type(value).__name__}")
        return float(value)

    checks = []
    for item in data[-VISITS_KEPT:]:
        measured = item["measured_residual_ml"]
        checks.append(
            RefillCheck(
                refill_at=when(item["refill_at"]),
                basis_at=when(item["basis_at"]),
                interrogated_at=when(item["interrogated_at"]),
                program_residual_ml=volume(item["program_residual_ml"]),
                patient_boluses=int(item["patient_boluses"]),
                patient_bolus_ml=volume(item["patient_bolus_ml"]),
                bolus_log_complete=bool(item["bolus_log_complete"]),
                predicted_residual_ml=volume(item["predicted_residual_ml"]),
                calculated_residual_ml=volume(item["calculated_residual_ml"]),
                measured_residual_ml=None if measured is None else volume(measured),
                capacity_ml=volume(item["capacity_ml"]),
                tolerance_ml=volume(item["tolerance_ml"]),
                compared_with=Comparison(item["compared_with"]),
                exceeded=bool(item["exceeded"]),
            )
        )
    return Visits(tuple(checks))
