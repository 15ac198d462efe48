"""The twin of a real pump from sparse read-outs, in the pure fleet step: outlook between visits, refill checks
of consecutive read-outs with DOMAIN.md's tolerance (less the logged patient boluses), the alert they raise,
the next visit that agrees with ``interrogation_overdue``, and the checks' round trip through a snapshot."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from immutables import Map

from twin.alarms.lifecycle import alarm_key
from twin.api.views import interrogation_view
from twin.contract.codec import encode
from twin.contract.messages import MAX_EVENT_LOG_ENTRIES, Birth, DeviceLogKind
from twin.gateway.publication import publications
from twin.gateway.readout import Interrogation, PatientBolusEvent
from twin.gateway.readout_file import load_readout
from twin.mirror import fleet as steps
from twin.mirror import interrogation
from twin.mirror.alerts import AlertCondition, AlertPolicy, TwinAlertCode
from twin.mirror.fleet import Fleet
from twin.store.snapshots import snapshot_to_twin, snapshot_visits, twin_to_snapshot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
SERIES = [load_readout(p) for p in sorted(EXAMPLES.glob("itb-0412-*.interrogation.yaml"))]
KEY = (SERIES[0].site, SERIES[0].device_id)
POLICY = AlertPolicy()


def _import(readouts: list[Interrogation], fleet: Fleet | None = None) -> Fleet:
    """Every read-out's publications through the fleet step, an hour after its interrogation, then a tick."""
    fleet = fleet or Fleet()
    for readout in readouts:
        received = readout.interrogated_at + timedelta(hours=1)
        for message in publications(readout):
            fleet, _ = steps.apply(fleet, message.topic, message.payload, received)
        fleet, _ = steps.tick(fleet, received)
    return fleet


def _checks(fleet: Fleet) -> tuple[interrogation.RefillCheck, ...]:
    visits = fleet.visits.get(KEY)
    return visits.checks if visits is not None else ()


def _active(fleet: Fleet, code: TwinAlertCode) -> bool:
    alarm = fleet.board.alarms.get(alarm_key(KEY[0], KEY[1], code.value))
    return alarm is not None and alarm.condition_active


def test_the_tolerance_is_domain_md_s() -> None:
    assert interrogation.tolerance_ml(20.0, POLICY) == 1.0
    assert interrogation.tolerance_ml(40.0, POLICY) == 2.0
    assert not interrogation.beyond_tolerance(6.0, 6.9, 20.0, POLICY)
    assert interrogation.beyond_tolerance(6.0, 7.1, 20.0, POLICY)
    assert not interrogation.beyond_tolerance(12.0, 13.9, 40.0, POLICY)  # 1.9 mL: within 2 mL and within 20 %
    assert interrogation.beyond_tolerance(12.0, 14.1, 40.0, POLICY)
    assert interrogation.beyond_tolerance(3.0, 3.9, 40.0, POLICY)  # 30 % of a 3 mL residual
    assert not interrogation.beyond_tolerance(1.5, 2.2, 20.0, POLICY)  # 47 %, but below 2 mL no share applies


def test_each_visit_is_checked_against_the_prediction_from_the_visit_before() -> None:
    fleet = _import(SERIES)
    checks = _checks(fleet)
    assert [c.refill_at for c in checks] == [r.last_refill.at for r in SERIES[1:]]  # type: ignore[union-attr]
    for check, readout in zip(checks, SERIES[1:], strict=True):
        refill = readout.last_refill
        assert refill is not None
        assert check.measured_residual_ml == refill.measured_residual_ml
        assert check.compared_with is interrogation.Comparison.TWIN  # the log reaches back to the visit before
        assert check.patient_boluses == 0
        assert check.predicted_residual_ml == check.program_residual_ml
        assert check.predicted_residual_ml == pytest.approx(refill.calculated_residual_ml, abs=0.01)
        assert check.exceeded == (abs(refill.measured_residual_ml - check.predicted_residual_ml) > 1.0)  # type: ignore[operator]
    exceeded = [c for c in checks if c.exceeded]
    assert [c.refill_at.date().isoformat() for c in exceeded] == ["2026-06-29"]
    assert exceeded[0].difference_ml == pytest.approx(2.4, abs=0.05)  # measured read to 0.1 mL


def test_repeating_a_read_out_or_seeing_the_first_one_checks_nothing() -> None:
    assert _checks(_import(SERIES[:1])) == ()
    once = _import(SERIES[:2])
    again = _import(SERIES[1:2], once)
    assert len(_checks(again)) == 1
    assert again.visits is once.visits  # a repeat leaves the map itself untouched


def test_a_simulated_pump_has_no_visits() -> None:
    fleet = Fleet()
    for readout in SERIES[:2]:
        for message in publications(readout):
            if isinstance(message.message, Birth):
                birth = message.message.model_copy(update={"simulated": True})
                message = dataclasses.replace(message, payload=encode(birth), message=birth)
            fleet, _ = steps.apply(fleet, message.topic, message.payload, readout.interrogated_at)
    assert fleet.devices[KEY].simulated is True
    assert fleet.visits.get(KEY) is None


def test_the_discrepancy_alert_is_the_twin_s_own_check_and_is_news_for_a_week() -> None:
    fleet = _import(SERIES[:4])  # the discrepant visit is the 4th
    alarm = fleet.board.alarms.get(alarm_key(KEY[0], KEY[1], TwinAlertCode.REFILL_DISCREPANCY.value))
    assert alarm is not None
    assert alarm.condition_active
    assert "twin predicted 7.18" in alarm.message
    assert "measured 9.60" in alarm.message
    assert "under-infusion" in alarm.message
    refill_at = SERIES[3].last_refill.at  # type: ignore[union-attr]
    fleet, _ = steps.tick(fleet, refill_at + POLICY.discrepancy_active_for - timedelta(minutes=1))
    assert _active(fleet, TwinAlertCode.REFILL_DISCREPANCY)
    fleet, _ = steps.tick(fleet, refill_at + POLICY.discrepancy_active_for)
    assert not _active(fleet, TwinAlertCode.REFILL_DISCREPANCY)
    calm = _import(SERIES[:5])  # the next visit is within tolerance: the alert clears
    assert not _active(calm, TwinAlertCode.REFILL_DISCREPANCY)


def test_the_twin_s_check_replaces_the_pump_calculated_one_for_a_real_pump() -> None:
    fleet = _import(SERIES[:4])
    twin = fleet.devices[KEY]
    visits = fleet.visits[KEY]
    now = SERIES[3].interrogated_at
    pump_says = AlertCondition(TwinAlertCode.REFILL_DISCREPANCY, "x", "pump-calculated")
    other = AlertCondition(TwinAlertCode.EMPTY_BEFORE_REFILL, "planned", "empty")
    out = interrogation.refill_conditions(twin, [pump_says, other], visits, now, POLICY)
    assert [c.code for c in out] == [TwinAlertCode.EMPTY_BEFORE_REFILL, TwinAlertCode.REFILL_DISCREPANCY]
    calm = _import(SERIES[:5])
    assert interrogation.refill_conditions(calm.devices[KEY], [pump_says], calm.visits[KEY], now, POLICY) == []
    first = _import(SERIES[:1])
    assert interrogation.refill_conditions(first.devices[KEY], [pump_says], None, now, POLICY) == [pump_says]


def _with_boluses(readout: Interrogation, after: datetime, count: int, volume_ml: float) -> Interrogation:
    """``readout`` with ``count`` accepted patient boluses logged every six hours from ``after`` (before its refill)."""
    refill = readout.last_refill
    assert refill is not None
    boluses = [
        PatientBolusEvent(at=after + timedelta(hours=6 * (i + 1)), volume_ml=volume_ml, accepted=True)
        for i in range(count)
    ]
    assert boluses[-1].at < refill.at
    events = sorted([*readout.events, *boluses], key=lambda e: e.at)
    return readout.model_copy(update={"events": events})


def test_logged_patient_boluses_are_subtracted_from_the_prediction() -> None:
    basis = SERIES[1]
    boluses = _with_boluses(SERIES[2], basis.interrogated_at, 10, 0.05)
    fleet = _import([basis, boluses])
    (check,) = _checks(fleet)
    assert check.patient_boluses == 10
    assert check.patient_bolus_ml == pytest.approx(0.5)
    assert check.bolus_log_complete
    assert check.compared_with is interrogation.Comparison.TWIN
    assert check.predicted_residual_ml == pytest.approx(check.program_residual_ml - 0.5, abs=1e-4)
    measured = SERIES[2].last_refill.measured_residual_ml  # type: ignore[union-attr]
    assert check.difference_ml == pytest.approx(measured - check.predicted_residual_ml, abs=1e-6)
    logged = fleet.devices[KEY].reported.event_log  # type: ignore[union-attr]
    assert sum(1 for e in logged if e.kind is DeviceLogKind.PATIENT_BOLUS) == 10


def test_a_log_that_does_not_reach_back_leaves_the_comparison_to_the_pump() -> None:
    basis = SERIES[1]
    busy = _with_boluses(SERIES[2], basis.interrogated_at, MAX_EVENT_LOG_ENTRIES + 8, 0.01)
    fleet = _import([basis, busy])
    (check,) = _checks(fleet)
    logged = fleet.devices[KEY].reported.event_log  # type: ignore[union-attr]
    assert len(logged) == MAX_EVENT_LOG_ENTRIES
    assert logged[0].at > basis.interrogated_at
    assert not check.bolus_log_complete
    assert check.compared_with is interrogation.Comparison.PUMP
    assert check.patient_boluses < MAX_EVENT_LOG_ENTRIES + 8  # a lower bound: some fell out of the log
    refill = busy.last_refill
    assert refill is not None
    assert check.difference_ml == pytest.approx(refill.measured_residual_ml - refill.calculated_residual_ml)  # type: ignore[operator]


def test_the_next_visit_is_the_overdue_alert_s_rule_and_there_is_one_alert() -> None:
    fleet = _import(SERIES[:1])
    twin = fleet.devices[KEY]
    view = interrogation_view(fleet, twin, SERIES[0].interrogated_at)
    assert view is not None
    planned = SERIES[0].reservoir.next_refill_at
    assert view.next_visit.due_at == planned
    assert view.next_visit.basis == "planned refill"
    assert view.next_visit.overdue_from == planned + POLICY.interrogation_grace  # type: ignore[operator]
    for offset in (timedelta(hours=-1), timedelta(hours=1)):
        now = view.next_visit.overdue_from + offset
        later, _ = steps.tick(fleet, now)
        seen = interrogation_view(later, later.devices[KEY], now)
        assert seen is not None
        assert seen.next_visit.overdue is (offset > timedelta(0))
        assert _active(later, TwinAlertCode.INTERROGATION_OVERDUE) is seen.next_visit.overdue
        codes = {a.code for a in later.board.of_device(KEY) if a.condition_active and a.source == "twin"}
        assert TwinAlertCode.DEVICE_SILENT.value not in codes  # a missed visit is one alert, not two


def test_between_visits_the_outlook_says_what_has_passed() -> None:
    fleet = _import(SERIES[:2])
    twin = fleet.devices[KEY]
    state = twin.reported
    assert state is not None
    soon = interrogation.outlook(twin.birth, state, state.device_time + timedelta(days=10))
    assert soon.age_s == pytest.approx(10 * 86400)
    assert soon.predicted_reservoir_ml == pytest.approx(20.0 - 0.25 * 10, abs=0.01)
    assert soon.low_reservoir_at is not None
    assert not soon.passed(soon.low_reservoir_at)
    late = interrogation.outlook(twin.birth, state, state.device_time + timedelta(days=90))
    assert late.passed(late.low_reservoir_at)
    assert late.passed(late.empty_at)
    assert late.empty_at is not None
    assert late.low_reservoir_at is not None
    assert (late.empty_at - state.device_time).days == int((20.0 - 0.3) / 0.25)  # down to the unusable residual
    assert late.predicted_reservoir_ml == pytest.approx(0.3, abs=0.01)


def test_a_real_pump_s_clock_is_the_wall_clock() -> None:
    fleet = _import(SERIES[:1])
    twin = fleet.devices[KEY]
    now = datetime(2027, 6, 1, tzinfo=UTC)
    assert twin.device_now(now) == now
    assert fleet.device_now(twin, now) == now
    view = interrogation_view(fleet, twin, now)
    assert view is not None
    assert view.predicted is not None
    assert view.predicted.empty.passed is True
    assert view.age_s == pytest.approx((now - SERIES[0].interrogated_at).total_seconds())


def test_the_checks_survive_a_snapshot_and_damaged_ones_are_dropped() -> None:
    fleet = _import(SERIES)
    twin = fleet.devices[KEY]
    visits = fleet.visits[KEY]
    payload = twin_to_snapshot(twin, visits)
    back = snapshot_to_twin(payload)
    assert back is not None
    assert back._replace(counters=twin.counters) == twin  # counters are not in a snapshot
    assert snapshot_visits(payload) == visits
    assert "visits" not in twin_to_snapshot(twin)  # a pump without checks writes the payload as before
    assert snapshot_visits(twin_to_snapshot(twin)) is None
    damaged = {**payload, "visits": [{**payload["visits"][0], "refill_at": "yesterday"}]}
    assert snapshot_visits(damaged) is None
    assert snapshot_to_twin(damaged) == back  # the twin itself is kept
    # a restarted twin (the fleet rebuilt from snapshots) checks the next visit against the last one
    running = _import(SERIES[:4])
    saved = twin_to_snapshot(running.devices[KEY], running.visits[KEY])
    back = snapshot_to_twin(saved)
    checks = snapshot_visits(saved)
    assert back is not None
    assert checks is not None
    restarted = steps.restored(
        devices=Map({KEY: back}), board=running.board, commands=Map(), config=running.config, visits=Map({KEY: checks})
    )
    assert _checks(_import(SERIES[4:5], restarted)) == _checks(_import(SERIES[4:5], running)) == visits.checks[:4]
