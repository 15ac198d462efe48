"""The twin of a real pump from sparse read-outs: outlook between visits, refill checks of consecutive
read-outs with DOMAIN.md's tolerance, and the alert they raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin.contract.topics import Channel, TopicAddress
from twin.gateway.publication import birth_of, state_of
from twin.gateway.readout import Interrogation
from twin.gateway.readout_file import load_readout
from twin.mirror import interrogation
from twin.mirror.alerts import AlertCondition, AlertPolicy, TwinAlertCode
from twin.mirror.device_twin import DeviceTwin, apply

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
SERIES = [load_readout(p) for p in sorted(EXAMPLES.glob("itb-0412-*.interrogation.yaml"))]
POLICY = AlertPolicy()


def _twin_after(readouts: list[Interrogation]) -> tuple[DeviceTwin, interrogation.Visits]:
    twin: DeviceTwin | None = None
    visits = interrogation.Visits()
    for readout in readouts:
        received = readout.interrogated_at + timedelta(hours=1)
        address = TopicAddress(readout.site, readout.device_id, Channel.BIRTH)
        before = twin
        twin, _ = apply(twin, address, birth_of(readout), received)
        twin, _ = apply(twin, TopicAddress(readout.site, readout.device_id, Channel.STATE), state_of(readout), received)
        visits = interrogation.record(visits, before, twin, POLICY)
    assert twin is not None
    return twin, visits


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
    _twin, visits = _twin_after(SERIES)
    assert [c.refill_at for c in visits.checks] == [r.last_refill.at for r in SERIES[1:]]  # type: ignore[union-attr]
    for check, readout in zip(visits.checks, SERIES[1:], strict=True):
        refill = readout.last_refill
        assert refill is not None
        assert check.measured_residual_ml == refill.measured_residual_ml
        assert check.predicted_residual_ml == pytest.approx(refill.calculated_residual_ml, abs=0.01)
        assert check.exceeded == (abs(refill.measured_residual_ml - check.predicted_residual_ml) > 1.0)  # type: ignore[operator]
    exceeded = [c for c in visits.checks if c.exceeded]
    assert [c.refill_at.date().isoformat() for c in exceeded] == ["2026-06-29"]
    assert exceeded[0].difference_ml == pytest.approx(2.4, abs=0.05)  # measured read to 0.1 mL


def test_repeating_a_read_out_or_seeing_the_first_one_checks_nothing() -> None:
    _twin, visits = _twin_after(SERIES[:1])
    assert visits.checks == ()
    _again, more = _twin_after([SERIES[0], SERIES[1], SERIES[1]])
    assert len(more.checks) == 1


def test_the_twin_s_check_replaces_the_pump_calculated_one_for_a_real_pump() -> None:
    twin, visits = _twin_after(SERIES[:4])  # the discrepant visit is the 4th
    pump_says = AlertCondition(TwinAlertCode.REFILL_DISCREPANCY, "x", "pump-calculated")
    other = AlertCondition(TwinAlertCode.EMPTY_BEFORE_REFILL, "planned", "empty")
    out = interrogation.refill_conditions(twin, [pump_says, other], visits)
    assert [c.code for c in out] == [TwinAlertCode.EMPTY_BEFORE_REFILL, TwinAlertCode.REFILL_DISCREPANCY]
    [mine] = [c for c in out if c.code is TwinAlertCode.REFILL_DISCREPANCY]
    assert "twin predicted 7.18" in mine.message
    assert "measured 9.60" in mine.message
    assert "under-infusion" in mine.message
    calm, calm_visits = _twin_after(SERIES[:5])
    assert interrogation.refill_conditions(calm, [pump_says], calm_visits) == []
    first, none = _twin_after(SERIES[:1])
    assert interrogation.refill_conditions(first, [pump_says], none) == [pump_says]  # no check: the pump's stays


def test_between_visits_the_outlook_says_what_has_passed() -> None:
    twin, _ = _twin_after(SERIES[:2])
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
    twin, _ = _twin_after(SERIES[:1])
    now = datetime(2027, 6, 1, tzinfo=UTC)
    assert twin.device_now(now) == now
    view = interrogation.view(twin, None, now)
    assert view is not None
    assert view["predicted"]["empty"]["passed"] is True
    assert view["age_s"] == pytest.approx((now - SERIES[0].interrogated_at).total_seconds())
