"""The twin of a real pump between visits: what its sparse read-outs say, and what the twin predicts.

A real pump is heard from only when a clinician programmer interrogates it (every 1–3 months, DOMAIN.md);
its gateway publishes each read-out as one contract session with ``simulated: false``
(:mod:`twin.gateway.publication`). Between visits the twin's prediction is what the clinic has:

* :func:`outlook` — the last interrogation and its age, the predicted reservoir now, and the dates since then
  of low reservoir, empty, ERI and end of service (each with whether it has already passed), predicted with
  :func:`twin.mirror.prediction.predict` from the read-out;
* :func:`refill_check` — at the next visit's refill, the residual the twin predicted from the *previous*
  read-out against the one the clinician measured, with DOMAIN.md's tolerance (1 mL for pumps up to 20 mL,
  2 mL for larger ones, or beyond 20 % of the expected residual when that is at least 2 mL; the figures are
  :class:`~twin.mirror.alerts.AlertPolicy` settings);
* :func:`record` keeps the checks of consecutive read-outs per device (:class:`Visits`), and
  :func:`refill_conditions` lets the twin's own check raise the ``refill_discrepancy`` alert of a real pump.

Where the twin's prediction and the pump's own calculated residual disagree, the pump delivered something
the twin could not see between visits: patient boluses (the twin's forecast does not count them, and the
contract carries no event log), or a change made outside an interrogation. Both figures are kept.

A real pump's clock is a real clock: "now" is the wall time, not the device time advanced from the last
message (see :meth:`twin.mirror.device_twin.DeviceTwin.device_now`).

Pure: the time is an argument; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from twin.contract.messages import Birth, RefillRecord, State
from twin.mirror.alerts import AlertCondition, AlertPolicy, TwinAlertCode
from twin.mirror.device_twin import DeviceTwin
from twin.mirror.prediction import predict

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

    Raises ``ValueError`` from the pump model for a state it cannot start from (the service logs it)."""
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


# ----------------------------------------------------------------------------------- refill check


@dataclass(frozen=True, slots=True)
class RefillCheck:
    """One refill of a real pump, checked against the twin's prediction from the read-out before it."""

    refill_at: datetime
    basis_at: datetime  # the previous read-out's interrogation: what the prediction started from
    interrogated_at: datetime  # the read-out that reported this refill
    predicted_residual_ml: float  # the twin's prediction at the refill, from the previous read-out
    calculated_residual_ml: float  # the pump's own calculated residual (it counts the boluses it gave)
    measured_residual_ml: float | None  # withdrawn and measured; None when it was not measured
    capacity_ml: float
    tolerance_ml: float
    exceeded: bool

    @property
    def difference_ml(self) -> float | None:
        """Measured minus predicted: positive, more left than predicted (under-infusion: occlusion, stall);
        negative, less (over-infusion, a leak, a pocket fill)."""
        if self.measured_residual_ml is None:
            return None
        return self.measured_residual_ml - self.predicted_residual_ml

    @property
    def unexplained_ml(self) -> float:
        """Predicted minus the pump's calculated residual: what the pump delivered that the twin did not foresee
        (patient boluses between visits, a change outside an interrogation)."""
        return self.predicted_residual_ml - self.calculated_residual_ml

    @property
    def instance(self) -> str:
        """One alert occurrence per refill (the same instance :func:`twin.mirror.alerts.evaluate` uses)."""
        return self.refill_at.strftime("%Y%m%dT%H%M%S")


def refill_check(birth: Birth | None, previous: State, state: State, policy: AlertPolicy) -> RefillCheck | None:
    """The check of ``state``'s last refill against the prediction from ``previous`` (an earlier read-out),
    or None when there is nothing to check: no refill, or a refill the previous read-out already reported
    (or one from before it). Raises ``ValueError`` from the pump model for a state it cannot start from."""
    refill = state.last_refill
    if refill is None or refill.at < previous.device_time:
        return None
    if previous.last_refill is not None and previous.last_refill.at >= refill.at:
        return None
    predicted = predict(birth, previous, None, refill.at).reservoir_ml
    capacity = birth.reservoir_capacity_ml if birth is not None else SMALL_PUMP_MAX_ML
    measured = refill.measured_residual_ml
    exceeded = measured is not None and beyond_tolerance(predicted, measured, capacity, policy)
    return RefillCheck(
        refill_at=refill.at,
        basis_at=previous.device_time,
        interrogated_at=state.device_time,
        predicted_residual_ml=round(predicted, 4),
        calculated_residual_ml=refill.expected_residual_ml,
        measured_residual_ml=measured,
        capacity_ml=capacity,
        tolerance_ml=tolerance_ml(capacity, policy),
        exceeded=exceeded,
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


def record(visits: Visits | None, before: DeviceTwin | None, after: DeviceTwin, policy: AlertPolicy) -> Visits:
    """The visits of ``after``'s pump once a new read-out's state is applied (``before``: the twin just before).

    Only a state of a newer session than the previous read-out's is checked (a repeat changes nothing);
    a state the pump model cannot start from is skipped (raises nothing)."""
    visits = visits or Visits()
    state = after.reported
    previous = before.reported if before is not None else None
    if not is_readout(after) or state is None or previous is None or state.session <= previous.session:
        return visits
    try:
        check = refill_check(after.birth, previous, state, policy)
    except ValueError:
        return visits
    if check is None or visits.check_of(state.last_refill) is not None:
        return visits
    return replace(visits, checks=(*visits.checks, check)[-VISITS_KEPT:])


def discrepancy_condition(check: RefillCheck) -> AlertCondition | None:
    """The ``refill_discrepancy`` alert a check raises, if it is beyond the tolerance."""
    difference = check.difference_ml
    if not check.exceeded or difference is None:
        return None
    direction = (
        "more left than predicted: under-infusion (catheter occlusion? motor stall?)"
        if difference > 0
        else "less left than predicted: over-infusion, a leak or a pocket fill?"
    )
    return AlertCondition(
        TwinAlertCode.REFILL_DISCREPANCY,
        check.instance,
        f"Refill discrepancy {difference:+.2f} mL (twin predicted {check.predicted_residual_ml:.2f} from the read-out "
        f"of {check.basis_at:%Y-%m-%d}, pump calculated {check.calculated_residual_ml:.2f}, measured "
        f"{check.measured_residual_ml:.2f}; tolerance {check.tolerance_ml:g} mL): {direction}",
    )


def refill_conditions(
    twin: DeviceTwin, conditions: list[AlertCondition], visits: Visits | None
) -> list[AlertCondition]:
    """``conditions`` (from :func:`twin.mirror.alerts.evaluate`) with the twin's own refill check in place of
    the pump-calculated one, for a real pump whose last refill the twin checked. Without a check (the first
    read-out the twin sees, or after a restart) the pump-calculated comparison stays."""
    state = twin.reported
    check = visits.check_of(state.last_refill) if visits is not None and state is not None else None
    if not is_readout(twin) or check is None:
        return conditions
    kept = [c for c in conditions if c.code is not TwinAlertCode.REFILL_DISCREPANCY]
    condition = discrepancy_condition(check)
    return [*kept, condition] if condition is not None else kept


# ------------------------------------------------------------------------------------------- views


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check_json(check: RefillCheck) -> dict[str, Any]:
    return {
        "refill_at": check.refill_at.isoformat(),
        "basis_at": check.basis_at.isoformat(),
        "interrogated_at": check.interrogated_at.isoformat(),
        "predicted_residual_ml": check.predicted_residual_ml,
        "calculated_residual_ml": check.calculated_residual_ml,
        "measured_residual_ml": check.measured_residual_ml,
        "difference_ml": check.difference_ml,
        "unexplained_ml": check.unexplained_ml,
        "tolerance_ml": check.tolerance_ml,
        "exceeded": check.exceeded,
    }


def view(twin: DeviceTwin, visits: Visits | None, now: datetime) -> dict[str, Any] | None:
    """The JSON-ready ``interrogation`` block of a real pump's device view (None for a simulated pump or before
    its first read-out): the outlook at wall time ``now`` and every refill check kept."""
    state = twin.reported
    if not is_readout(twin) or state is None:
        return None
    try:
        seen: Outlook | None = outlook(twin.birth, state, now)
    except ValueError:
        seen = None
    checks = visits.checks if visits is not None else ()
    last = visits.check_of(state.last_refill) if visits is not None else None
    out: dict[str, Any] = {
        "last_interrogation_at": state.device_time.isoformat(),
        "age_s": max(0.0, (now - state.device_time).total_seconds()),
        "reported_reservoir_ml": state.reservoir_ml,
        "next_refill_at": _iso(state.refill_reminder_at),
        "last_refill_check": check_json(last) if last is not None else None,
        "refill_checks": [check_json(c) for c in checks],
    }
    if seen is not None:
        out["predicted"] = {
            "at": seen.at.isoformat(),
            "reservoir_ml": seen.predicted_reservoir_ml,
            "battery_percent": seen.predicted_battery_percent,
            **{
                name: {"at": _iso(moment), "passed": seen.passed(moment)}
                for name, moment in (
                    ("low_reservoir", seen.low_reservoir_at),
                    ("empty", seen.empty_at),
                    ("eri", seen.eri_at),
                    ("eos", seen.eos_at),
                )
            },
        }
    else:
        out["predicted"] = None
    return out
