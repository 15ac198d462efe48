"""Property tests of the pure pump model: conservation, non-negative volumes, alarms that follow
their causes exactly, agreement with a naive stepping model, determinism."""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.contract.alarms import AlarmCode
from twin.contract.messages import (
    BatteryDepletionFault,
    BatteryStatus,
    CatheterAccessPortInjectionFault,
    CatheterLeakFault,
    CatheterOcclusionFault,
    ClearFaultAction,
    ClinicianBolusAction,
    Drug,
    FlexStep,
    FlowErrorFault,
    IncompleteWithdrawalFault,
    InfusionMode,
    LowBatteryResetFault,
    MemoryErrorFault,
    MotorStallFault,
    MriValveOpeningFault,
    PatientBolusAction,
    PatientBolusSettings,
    PocketFillFault,
    Program,
    RefillAction,
    ReprogramAction,
    TelemetryLossFault,
    WrongConcentrationFault,
)
from twin.pump.flow import SECONDS_PER_DAY, DailySchedule, Flow
from twin.pump.model import AlarmChange, Effect, EventKind, Pump, PumpConfig, PumpStart
from twin.sim.reference import SteppedPump

TOL = 1e-6

rates = st.floats(min_value=0.048, max_value=3.0)
patient_bolus = st.none() | st.builds(
    PatientBolusSettings,
    volume_ml=st.floats(min_value=0.005, max_value=0.2),
    duration_minutes=st.floats(min_value=1, max_value=60),
    lockout_minutes=st.floats(min_value=0, max_value=240),
    max_per_day=st.integers(min_value=1, max_value=8),
)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    mode = draw(
        st.sampled_from(
            [InfusionMode.CONTINUOUS, InfusionMode.FLEXIBLE, InfusionMode.MINIMUM_RATE, InfusionMode.STOPPED]
        )
    )
    pb = draw(patient_bolus)
    if mode is InfusionMode.CONTINUOUS:
        return Program(mode=mode, rate_ml_per_day=draw(rates), patient_bolus=pb)
    if mode is InfusionMode.FLEXIBLE:
        starts = sorted(draw(st.sets(st.integers(min_value=0, max_value=1439), min_size=1, max_size=6)))
        steps = [FlexStep(start_minute=m, rate_ml_per_day=draw(rates)) for m in starts]
        return Program(mode=mode, steps=steps, patient_bolus=pb)
    return Program(mode=mode, patient_bolus=pb)


faults = st.one_of(
    st.builds(CatheterOcclusionFault, fraction=st.floats(min_value=0.01, max_value=1.0)),
    st.builds(CatheterLeakFault, fraction=st.floats(min_value=0.01, max_value=1.0)),
    st.builds(FlowErrorFault, bias=st.floats(min_value=-0.5, max_value=0.5)),
    st.builds(MotorStallFault, recover_after_s=st.none() | st.floats(min_value=0, max_value=5 * SECONDS_PER_DAY)),
    st.just(MemoryErrorFault()),
    st.just(LowBatteryResetFault()),
    st.builds(BatteryDepletionFault, eos_after_days=st.floats(min_value=0, max_value=120)),
    st.builds(PocketFillFault, fraction=st.floats(min_value=0.01, max_value=1.0)),
    st.builds(WrongConcentrationFault, actual_concentration_mg_per_ml=st.floats(min_value=0.1, max_value=30)),
    st.builds(TelemetryLossFault, duration_s=st.floats(min_value=1, max_value=3 * SECONDS_PER_DAY)),
    st.builds(IncompleteWithdrawalFault, withdrawn_fraction=st.floats(min_value=0.0, max_value=0.99)),
    st.just(CatheterAccessPortInjectionFault()),
    st.just(MriValveOpeningFault()),
)
fault_kinds = st.sampled_from(
    [
        "all",
        "catheter_occlusion",
        "catheter_leak",
        "motor_stall",
        "memory_error",
        "low_battery_reset",
        "battery_depletion",
        "pocket_fill",
        "wrong_concentration",
        "flow_error",
        "telemetry_loss",
        "incomplete_withdrawal",
        "catheter_access_port_injection",
        "mri_valve_opening",
    ]
)
operations = st.one_of(
    st.tuples(st.just("refill"), st.floats(min_value=0.5, max_value=20.0), st.floats(min_value=0.5, max_value=20.0)),
    st.tuples(st.just("reprogram"), programs(), st.floats(min_value=0.5, max_value=5.0)),
    st.tuples(
        st.just("clinician_bolus"), st.floats(min_value=0.01, max_value=1.0), st.floats(min_value=1, max_value=600)
    ),
    st.tuples(st.just("patient_bolus")),
    st.tuples(st.just("fault"), faults),
    st.tuples(st.just("clear"), fault_kinds),
    st.tuples(st.just("interrogate")),
    st.tuples(st.just("wait")),
)
steps = st.lists(st.tuples(st.floats(min_value=0, max_value=40 * SECONDS_PER_DAY), operations), max_size=25)


@dataclass
class Run:
    pump: Pump
    effects: list[Effect]


def _start(program: Program, reservoir: float, threshold: float, battery: float) -> PumpStart:
    return PumpStart(
        drug=Drug.BACLOFEN,
        concentration_mg_per_ml=2.0,
        program=program,
        reservoir_ml=reservoir,
        low_reservoir_threshold_ml=threshold,
        battery_percent=battery,
    )


def _apply(pump: Pump, t: float, op: tuple[object, ...]) -> list[Effect]:
    kind = op[0]
    if kind == "refill":
        volume, conc = float(op[1]), float(op[2])  # type: ignore[arg-type]
        return pump.refill(t, RefillAction(volume_ml=volume, drug=Drug.BACLOFEN, concentration_mg_per_ml=conc)).effects
    if kind == "reprogram":
        program, threshold = op[1], float(op[2])  # type: ignore[arg-type]
        assert isinstance(program, Program)
        return pump.reprogram(t, ReprogramAction(program=program, low_reservoir_threshold_ml=threshold)).effects
    if kind == "clinician_bolus":
        action = ClinicianBolusAction(volume_ml=float(op[1]), duration_minutes=float(op[2]))  # type: ignore[arg-type]
        return pump.clinician_bolus(t, action).effects
    if kind == "patient_bolus":
        return pump.patient_bolus(t, PatientBolusAction()).effects
    if kind == "fault":
        return pump.inject_fault(t, op[1]).effects  # type: ignore[arg-type]
    if kind == "clear":
        return pump.clear_fault(t, ClearFaultAction(fault=op[1])).effects  # type: ignore[arg-type]
    if kind == "interrogate":
        return pump.interrogate(t).effects
    return []


def _check_invariants(pump: Pump) -> None:
    cfg = pump.config
    # drug is conserved: filled = reservoir + patient + leaked + pocket + withdrawn
    assert abs(pump.conservation_error_ml()) <= TOL * max(1.0, pump.filled_ml)
    # no volume is ever negative, and the reservoir never overflows
    for v in (
        pump.reservoir_ml,
        pump.true_reservoir_ml,
        pump.to_patient_ml,
        pump.leaked_ml,
        pump.pocket_ml,
        pump.withdrawn_ml,
        pump.delivered_ml_total,
    ):
        assert v >= -TOL
    assert pump.reservoir_ml <= cfg.reservoir_capacity_ml + TOL
    assert pump.true_reservoir_ml <= cfg.reservoir_capacity_ml + TOL
    # alarms are active exactly while their cause is
    low = AlarmCode.RESERVOIR_LOW in pump.alarms
    if pump.reservoir_ml < pump.low_threshold_ml - TOL:
        assert low
    if pump.reservoir_ml > pump.low_threshold_ml + TOL:
        assert not low
    empty = AlarmCode.RESERVOIR_EMPTY in pump.alarms
    assert empty == (pump.reservoir_ml <= cfg.unusable_residual_ml + TOL)
    assert (AlarmCode.BATTERY_ERI in pump.alarms) == (pump.battery_status is not BatteryStatus.OK)
    assert (AlarmCode.BATTERY_EOS in pump.alarms) == (pump.battery_status is BatteryStatus.EOS)
    assert (AlarmCode.MOTOR_STALL in pump.alarms) == pump.motor_stalled
    assert (AlarmCode.MEMORY_ERROR in pump.alarms) == pump.memory_error
    if AlarmCode.REFILL_REMINDER in pump.alarms:
        assert pump.refill_reminder_at is not None
        assert pump.refill_reminder_at <= pump.t + TOL
    if pump.battery_status is BatteryStatus.OK:
        assert pump.battery_percent >= cfg.battery.eri_percent - TOL


def _run(program: Program, reservoir: float, threshold: float, battery: float, ops: list, seed: int) -> Run:
    pump = Pump(PumpConfig(), _start(program, reservoir, threshold, battery), rng=random.Random(seed))
    effects: list[Effect] = []
    t = 0.0
    for dt, op in ops:
        t += dt
        effects += pump.process_due(t)
        _check_invariants(pump)
        effects += _apply(pump, t, op)
        _check_invariants(pump)
    effects += pump.process_due(t + 30 * SECONDS_PER_DAY)
    _check_invariants(pump)
    return Run(pump, effects)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=programs(),
    reservoir=st.floats(min_value=0.0, max_value=20.0),
    threshold=st.floats(min_value=0.5, max_value=5.0),
    battery=st.floats(min_value=10.5, max_value=100.0),
    ops=steps,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_conservation_non_negative_volumes_and_alarm_consistency(
    program: Program, reservoir: float, threshold: float, battery: float, ops: list, seed: int
) -> None:
    run = _run(program, reservoir, threshold, battery, ops, seed)
    # every raise is followed by at most one clear of the same alarm id, never the other way round
    state: dict[str, bool] = {}
    for e in run.effects:
        if isinstance(e, AlarmChange):
            assert state.get(e.alarm_id, False) != e.raised, f"{e.alarm_id} {'raised' if e.raised else 'cleared'} twice"
            state[e.alarm_id] = e.raised
            assert e.raised or e.at >= e.raised_at


@settings(max_examples=50, deadline=None)
@given(program=programs(), ops=steps, seed=st.integers(min_value=0, max_value=2**32))
def test_same_seed_same_event_log(program: Program, ops: list, seed: int) -> None:
    first = _run(program, 15.0, 2.0, 80.0, ops, seed)
    second = _run(program, 15.0, 2.0, 80.0, ops, seed)
    assert first.effects == second.effects
    assert first.pump.true_reservoir_ml == second.pump.true_reservoir_ml


@settings(max_examples=40, deadline=None)
@given(
    program=programs().filter(lambda p: p.mode is not InfusionMode.STOPPED),
    reservoir=st.floats(min_value=3.0, max_value=20.0),
    threshold=st.floats(min_value=0.5, max_value=2.5),
    battery=st.floats(min_value=10.5, max_value=11.5),
    day_origin_min=st.integers(min_value=-1439, max_value=0),
)
def test_crossing_times_agree_with_a_naive_one_minute_stepper(
    program: Program, reservoir: float, threshold: float, battery: float, day_origin_min: int
) -> None:
    """Low reservoir, empty and ERI are raised when a one-minute stepping model sees them, to within a step."""
    origin = day_origin_min * 60.0
    pump = Pump(PumpConfig(), _start(program, reservoir, threshold, battery), rng=random.Random(1), day_origin_s=origin)
    horizon = 45 * SECONDS_PER_DAY
    raised = {e.code.value: e.at for e in pump.process_due(horizon) if isinstance(e, AlarmChange) and e.raised}
    naive = SteppedPump(program, reservoir, threshold, pump.config.unusable_residual_ml, battery, day_origin_s=origin)
    step, t = 60.0, 0.0
    while t < horizon:
        naive.step(t, step)
        t += step
    expected = {kind: when for when, kind in naive.log}
    for code in ("reservoir_low", "reservoir_empty", "battery_eri"):
        if code in expected and expected[code] < horizon - step:
            assert code in raised, f"{code} seen by the stepper at {expected[code]} but never raised"
            assert expected[code] - step - 1e-6 <= raised[code] <= expected[code] + 1e-6, (
                code,
                raised[code],
                expected[code],
            )
        elif code in raised and raised[code] < horizon - step:
            raise AssertionError(f"{code} raised at {raised[code]} but the stepper never saw it")


def test_occlusion_leaves_more_residual_than_expected_and_leak_less_reaches_patient() -> None:
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.5)
    exact = PumpConfig(flow_bias_sd=0.0, residual_reading_sd_fraction=0.0)
    occluded = Pump(exact, _start(program, 20.0, 2.0, 90.0), rng=random.Random(0))
    occluded.inject_fault(0.0, CatheterOcclusionFault(fraction=1.0))
    occluded.process_due(20 * SECONDS_PER_DAY)
    outcome = occluded.refill(
        20 * SECONDS_PER_DAY, RefillAction(volume_ml=20, drug=Drug.BACLOFEN, concentration_mg_per_ml=2)
    )
    assert outcome.details["expected_residual_ml"] == 10.0
    assert outcome.details["measured_residual_ml"] == 20.0  # nothing left the pump
    assert occluded.to_patient_ml == 0.0

    leaking = Pump(
        PumpConfig(flow_bias_sd=0.0, inherent_flow_bias=0.0), _start(program, 20.0, 2.0, 90.0), rng=random.Random(0)
    )
    leaking.inject_fault(0.0, CatheterLeakFault(fraction=1.0))
    leaking.process_due(10 * SECONDS_PER_DAY)
    assert math.isclose(leaking.leaked_ml, 5.0)
    assert leaking.to_patient_ml == 0.0
    assert math.isclose(leaking.reservoir_ml, leaking.true_reservoir_ml)  # the pump cannot tell


def test_pocket_fill_under_fills_and_empties_early() -> None:
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=1.0)
    pump = Pump(
        PumpConfig(flow_bias_sd=0.0, inherent_flow_bias=0.0), _start(program, 2.5, 2.0, 90.0), rng=random.Random(0)
    )
    pump.inject_fault(0.0, PocketFillFault(fraction=0.5))
    pump.refill(0.0, RefillAction(volume_ml=20, drug=Drug.MORPHINE, concentration_mg_per_ml=10))
    assert pump.pocket_ml == 10.0
    assert pump.reservoir_ml == 20.0  # the pump believes the entered volume
    effects = pump.process_due(15 * SECONDS_PER_DAY)
    stopped = [e for e in effects if getattr(e, "kind", None) == "delivery_stopped"]
    assert stopped, "the truth runs dry long before the pump's calculated empty date"
    assert stopped[0].at < 10 * SECONDS_PER_DAY
    assert AlarmCode.RESERVOIR_EMPTY not in pump.alarms


def test_patient_bolus_lockout_and_daily_maximum() -> None:
    settings_ = PatientBolusSettings(volume_ml=0.01, duration_minutes=10, lockout_minutes=60, max_per_day=2)
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.5, patient_bolus=settings_)
    pump = Pump(PumpConfig(), _start(program, 20.0, 2.0, 90.0), rng=random.Random(0))
    assert pump.patient_bolus(0.0, PatientBolusAction()).applied
    pump.process_due(1800.0)
    refused = pump.patient_bolus(1800.0, PatientBolusAction())
    assert not refused.applied
    assert "lockout" in (refused.reason or "")
    pump.process_due(3700.0)
    assert pump.patient_bolus(3700.0, PatientBolusAction()).applied
    pump.process_due(8000.0)
    capped = pump.patient_bolus(8000.0, PatientBolusAction())
    assert "daily maximum" in (capped.reason or "")
    pump.process_due(SECONDS_PER_DAY + 1.0)
    assert pump.patient_bolus(SECONDS_PER_DAY + 1.0, PatientBolusAction()).applied
    assert pump.patient_bolus_refused == 2


def test_motor_stall_stops_delivery_and_recovers_while_the_pump_keeps_counting() -> None:
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=1.0)
    exact = PumpConfig(flow_bias_sd=0.0, inherent_flow_bias=0.0, residual_reading_sd_fraction=0.0)
    pump = Pump(exact, _start(program, 20.0, 2.0, 90.0), rng=random.Random(0))
    pump.inject_fault(0.0, MotorStallFault(cause="mri", recover_after_s=6 * 3600))
    assert AlarmCode.MOTOR_STALL in pump.alarms
    assert not pump.infusing
    assert pump.next_event()[0] == 6 * 3600
    effects = pump.process_due(7 * 3600)
    assert [e.raised for e in effects if isinstance(e, AlarmChange)] == [False]
    # the calculation follows the program through the stall; only the hour after recovery really left
    assert math.isclose(pump.reservoir_ml, 20.0 - 7.0 / 24.0)
    assert math.isclose(pump.true_reservoir_ml, 20.0 - 1.0 / 24.0)
    outcome = pump.refill(7 * 3600, RefillAction(volume_ml=20, drug=Drug.BACLOFEN, concentration_mg_per_ml=2))
    # 6 h at 1 mL/day more left than expected, read to the syringe's 0.1 mL graduation
    assert abs(float(outcome.details["discrepancy_ml"]) - 0.25) <= 0.05 + 1e-9
    assert [e.kind for e in pump.log][:2] == ["motor_stall", "motor_stall_recovery"]

    counted_only_when_turning = Pump(
        PumpConfig(counts_during_stall=False), _start(program, 20.0, 2.0, 90.0), rng=random.Random(0)
    )
    counted_only_when_turning.inject_fault(0.0, MotorStallFault(cause="mri", recover_after_s=6 * 3600))
    counted_only_when_turning.process_due(7 * 3600)
    assert counted_only_when_turning.reservoir_ml == 20.0 - 1.0 * 3600 / SECONDS_PER_DAY


def test_eri_then_end_of_service_after_90_days() -> None:
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.3)
    pump = Pump(PumpConfig(), _start(program, 20.0, 2.0, 10.2), rng=random.Random(0))
    effects = pump.process_due(200 * SECONDS_PER_DAY)
    raised = {e.code: e.at for e in effects if isinstance(e, AlarmChange) and e.raised}
    days_to_eri = pump.config.battery.days_to_eri(10.2, 0.3)
    assert math.isclose(raised[AlarmCode.BATTERY_ERI], days_to_eri * SECONDS_PER_DAY, rel_tol=1e-9)
    assert math.isclose(raised[AlarmCode.BATTERY_EOS] - raised[AlarmCode.BATTERY_ERI], 90 * SECONDS_PER_DAY)
    assert not pump.infusing


def test_battery_life_matches_the_domain_figures() -> None:
    from twin.pump.model import BatteryModel

    model = BatteryModel()
    assert 5.5 <= model.days_to_eri(100, 0.3) / 365 <= 6.5  # about 6 years at a typical rate
    assert 4.0 <= model.days_to_eri(100, 1.0) / 365 <= 5.0  # faster at high flow
    assert model.days_to_eri(100, 0.048) / 365 <= 7.0  # never more than about 7 years


class _DirectPump(Pump):
    """The pump with every memo bypassed: next events, flows and cumulative amounts computed each time."""

    def next_event(self) -> tuple[float, EventKind]:
        return self.next_event_direct()

    def motor_flow(self) -> Flow | None:
        self._motor_flow = None
        return super().motor_flow()

    def _battery_flow(self, motor: Flow | None) -> Flow:
        self._battery_flows, self._idle_battery_flow = None, None
        return super()._battery_flow(motor)


class _RecordingPump(Pump):
    """Records the instance attributes read while ``record`` is set (methods and properties are
    class attributes: what they read of the instance is recorded instead)."""

    def __getattribute__(self, name: str) -> object:
        attributes = object.__getattribute__(self, "__dict__")
        record = attributes.get("record")
        if record is not None and name in attributes:
            record.add(name)
        return object.__getattribute__(self, name)


_MEMOS = {"_motor_flow", "_battery_flows", "_idle_battery_flow", "_battery_schedule", "_next_event_memo"}


def _reads(pump: Pump, what: Callable[[], object]) -> set[str]:
    pump.__dict__["record"] = reads = set()
    try:
        what()
    finally:
        del pump.__dict__["record"]
    return reads - _MEMOS


def _snapshot(pump: Pump) -> tuple[object, ...]:
    """Everything that moves in a pump, exactly."""
    return (
        pump.t,
        pump.reservoir_ml,
        pump.delivered_ml_total,
        pump.true_reservoir_ml,
        pump.to_patient_ml,
        pump.leaked_ml,
        pump.to_patient_mg,
        pump.battery_percent,
        pump.battery_status,
        pump.eri_at,
        pump.eos_at,
        pump.catheter_contents.segments,
        sorted(pump.alarms),
        list(pump.log),
        pump.last_refill,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=programs(),
    reservoir=st.floats(min_value=0.0, max_value=20.0),
    threshold=st.floats(min_value=0.5, max_value=5.0),
    battery=st.floats(min_value=10.5, max_value=100.0),
    ops=steps,
    seed=st.integers(min_value=0, max_value=2**32),
    origin_min=st.integers(min_value=-1439, max_value=0),
)
def test_memoised_next_events_and_amounts_equal_the_direct_computation(
    program: Program, reservoir: float, threshold: float, battery: float, ops: list, seed: int, origin_min: int
) -> None:
    """The memos (next event, flows, cumulative amounts) answer exactly what computing gives, after
    every kind of change; a pump run with every memo bypassed ends in exactly the same state."""
    start = _start(program, reservoir, threshold, battery)
    origin = origin_min * 60.0
    memo = _RecordingPump(PumpConfig(), start, rng=random.Random(seed), day_origin_s=origin)
    effects: list[Effect] = []
    t = 0.0
    for dt, op in ops:
        t += dt
        assert memo.next_event() == memo.next_event_direct()
        effects += memo.process_due(t)
        assert memo.next_event() == memo.next_event_direct()
        effects += _apply(memo, t, op)
        assert memo.next_event() == memo.next_event_direct()
        # the memo's key covers everything the computation reads of the pump (the alarms and the
        # catheter as the computation asks them: two alarm codes, the volume to the next change)
        assert _reads(memo, memo.next_event_direct) <= _reads(memo, memo._next_event_key)
        for flow in (memo.motor_flow(), memo.belief_flow(), memo._battery_flow(memo.motor_flow())):
            if flow is not None:
                for when in (memo.t, memo.t + dt, memo.next_event()[0]):
                    if math.isfinite(when):
                        assert flow.base.cumulative(when) == flow.base.cumulative_direct(when)
    effects += memo.process_due(t + 30 * SECONDS_PER_DAY)

    with patch.object(DailySchedule, "cumulative", DailySchedule.cumulative_direct):
        direct = _DirectPump(PumpConfig(), start, rng=random.Random(seed), day_origin_s=origin)
        direct_effects: list[Effect] = []
        t = 0.0
        for dt, op in ops:
            t += dt
            direct_effects += direct.process_due(t)
            direct_effects += _apply(direct, t, op)
        direct_effects += direct.process_due(t + 30 * SECONDS_PER_DAY)
    assert effects == direct_effects
    assert _snapshot(memo) == _snapshot(direct)


@given(rate=st.floats(min_value=0.0, max_value=1e3) | st.just(0.0))
def test_a_constant_schedules_segments_are_the_general_computations(rate: float) -> None:
    from twin.pump.flow import _constant_segments, _segments

    assert _constant_segments(rate) == _segments((0.0,), (rate,))


def _reported_of_sample(pump: Pump, t: float) -> tuple[object, ...]:
    s = pump.sample(t)
    return (s.reservoir_ml, s.delivered_ml_total, s.current_rate_ml_per_day, s.battery_percent, s.motor, s.infusing)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=programs(),
    reservoir=st.floats(min_value=0.0, max_value=20.0),
    threshold=st.floats(min_value=0.5, max_value=5.0),
    battery=st.floats(min_value=10.5, max_value=100.0),
    ops=steps,
    seed=st.integers(min_value=0, max_value=2**32),
    ahead=st.floats(min_value=0.0, max_value=1.0),
)
def test_what_a_state_reports_is_the_samples(
    program: Program, reservoir: float, threshold: float, battery: float, ops: list, seed: int, ahead: float
) -> None:
    """:meth:`Pump.reported` (what a state carries) is, value for value, what :meth:`Pump.sample`
    gives, at the clock and before the next event, after every kind of change."""
    pump = Pump(PumpConfig(), _start(program, reservoir, threshold, battery), rng=random.Random(seed))
    t = 0.0

    def check() -> None:
        nxt = pump.next_event()[0]
        for when in (pump.t, pump.t - 1.0, pump.t + ahead * (min(nxt, pump.t + SECONDS_PER_DAY) - pump.t)):
            assert pump.reported(when) == _reported_of_sample(pump, when)

    for dt, op in ops:
        t += dt
        pump.process_due(t)
        check()
        _apply(pump, t, op)
        check()


def _time_to_accumulate_before(schedule: DailySchedule, t0: float, amount: float) -> float:
    """DailySchedule.time_to_accumulate as it was before its one-segment shortcut (206b748)."""
    if amount <= 0:
        return t0
    if schedule._day_total <= 0:
        return math.inf
    target = schedule.cumulative_direct(t0) + amount
    days = math.floor(target / schedule._day_total)
    rem = target - days * schedule._day_total
    i = bisect.bisect_left(schedule._cum, rem) - 1
    i = max(0, min(i, len(schedule._bounds) - 2))
    while schedule._seg_rates[i] == 0.0 and i + 1 < len(schedule._bounds) - 1 and schedule._cum[i + 1] <= rem:
        i += 1
    rate = schedule._seg_rates[i]
    offset = (rem - schedule._cum[i]) / rate if rate > 0 else 0.0
    t = schedule.day_origin_s + days * SECONDS_PER_DAY + schedule._bounds[i] + offset
    return max(t, t0)


@settings(max_examples=300, deadline=None)
@given(
    program=programs(),
    origin_min=st.integers(min_value=-1439, max_value=0),
    t0=st.floats(min_value=-1e6, max_value=1e9),
    amount=st.floats(min_value=-1.0, max_value=50.0) | st.just(0.0),
)
def test_time_to_accumulate_is_the_computation_it_was(
    program: Program, origin_min: int, t0: float, amount: float
) -> None:
    from twin.pump.model import schedule_of

    schedule = schedule_of(program, origin_min * 60.0)
    got = schedule.time_to_accumulate(t0, amount)
    want = _time_to_accumulate_before(schedule, t0, amount)
    assert got == want or (math.isnan(got) and math.isnan(want))
    assert math.copysign(1.0, got) == math.copysign(1.0, want)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.tuples(
            st.floats(allow_nan=False) | st.integers(-5, 50) | st.sampled_from([0.0, -0.0, 20.0, 20]),
            st.sampled_from(list(Drug)),
            st.floats(allow_nan=False) | st.integers(-5, 50) | st.sampled_from([0.0, -0.0, 2.0, 2]),
        ),
        max_size=20,
    )
)
def test_the_remembered_refill_texts_are_the_formatted_ones(values: list[tuple[float, Drug, float]]) -> None:
    from twin.pump.model import _refill_details

    for volume, drug, concentration in values + values:  # each asked twice: the second is remembered
        assert _refill_details(volume, drug, concentration) == (
            f"{volume:g} mL {drug.value} {concentration:g} mg/mL",
            f"{volume:g} mL {drug.value}",
        )
