"""Physics a clinician would check on the pure pump model: the catheter's dead space, bedside
refill errors, a Prometra in an MRI scanner, the post-MRI telemetry-mode hold, the minimum-rate
mode after a reset, and what the pump's own event log records (and what it never can)."""

from __future__ import annotations

import math
import random

import pytest

from twin.contract.alarms import AlarmCode
from twin.contract.messages import (
    MIN_RATE_ML_PER_DAY,
    MINIMUM_RATE_MODE_ML_PER_DAY,
    CatheterAccessPortInjectionFault,
    CatheterLeakFault,
    ClinicianBolusAction,
    DeviceLogKind,
    Drug,
    IncompleteWithdrawalFault,
    InfusionMode,
    LowBatteryResetFault,
    MotorStallFault,
    MriValveOpeningFault,
    PatientBolusAction,
    PatientBolusSettings,
    PocketFillFault,
    Program,
    RefillAction,
    ReprogramAction,
    WrongConcentrationFault,
)
from twin.pump.catheter import CatheterContents
from twin.pump.flow import SECONDS_PER_DAY
from twin.pump.model import ClinicalEvent, Pump, PumpConfig, PumpStart

DAY = SECONDS_PER_DAY
EXACT = PumpConfig(flow_bias_sd=0.0, inherent_flow_bias=0.0, residual_reading_sd_fraction=0.0)


def _pump(
    rate: float = 0.1,
    reservoir: float = 18.0,
    *,
    config: PumpConfig = EXACT,
    drug: Drug = Drug.MORPHINE,
    concentration: float = 10.0,
    program: Program | None = None,
) -> Pump:
    start = PumpStart(
        drug=drug,
        concentration_mg_per_ml=concentration,
        program=program or Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=rate),
        reservoir_ml=reservoir,
    )
    return Pump(config, start, rng=random.Random(0))


def _events(effects: list[object], kind: str) -> list[ClinicalEvent]:
    return [e for e in effects if isinstance(e, ClinicalEvent) and e.kind == kind]


# ------------------------------------------------------------------------------- dead space


def test_a_new_concentration_reaches_the_tip_only_after_the_catheter_volume() -> None:
    """0.25 mL of catheter at 0.1 mL/day: the doubled strength reaches the patient 2.5 days later."""
    pump = _pump(rate=0.1, reservoir=3.0)
    pump.process_due(DAY)
    pump.refill(DAY, RefillAction(volume_ml=18, drug=Drug.MORPHINE, concentration_mg_per_ml=20.0))
    assert pump.sample(DAY).actual_dose_mg_per_day == pytest.approx(1.0)  # still the old 10 mg/mL at the tip
    when, kind = pump.next_event()
    assert kind.value == "tip_concentration"
    assert when == pytest.approx(DAY + 2.5 * DAY)
    effects = pump.process_due(DAY + 2.4 * DAY)
    assert not _events(effects, "concentration_at_tip")
    assert pump.sample(pump.t).actual_dose_mg_per_day == pytest.approx(1.0)
    effects = pump.process_due(DAY + 2.6 * DAY)
    (arrived,) = _events(effects, "concentration_at_tip")
    assert arrived.at == pytest.approx(3.5 * DAY)
    assert pump.sample(pump.t).actual_dose_mg_per_day == pytest.approx(2.0)
    # mass reaching the patient: 1 mg/day for 3.5 days, then 2 mg/day
    assert pump.to_patient_mg == pytest.approx(3.5 * 1.0 + 0.1 * 2.0, rel=1e-9)


def test_a_bridge_bolus_pushes_the_new_concentration_through_at_once() -> None:
    pump = _pump(rate=0.1, reservoir=3.0)
    pump.refill(0.0, RefillAction(volume_ml=18, drug=Drug.MORPHINE, concentration_mg_per_ml=20.0))
    pump.clinician_bolus(0.0, ClinicianBolusAction(volume_ml=0.3, duration_minutes=30))
    effects = pump.process_due(3600.0)
    (arrived,) = _events(effects, "concentration_at_tip")
    assert arrived.at < 30 * 60
    assert pump.sample(pump.t).actual_dose_mg_per_day == pytest.approx(2.0)


def test_catheter_contents_stay_full_and_keep_order() -> None:
    catheter = CatheterContents(0.25, 1.0)
    assert catheter.push(0.1, 2.0) == pytest.approx(0.1)
    assert catheter.push(0.1, 3.0) == pytest.approx(0.1)
    assert [v for v, _ in catheter.segments] == pytest.approx([0.05, 0.1, 0.1])
    assert [c for _, c in catheter.segments] == [1.0, 2.0, 3.0]
    assert catheter.push(1.0, 4.0) == pytest.approx(0.05 + 0.2 + 0.3 + 0.75 * 4.0)
    assert catheter.segments == ((0.25, 4.0),)
    assert CatheterContents(0.0, 1.0).push(0.5, 2.0) == 1.0  # no dead space: straight through


# ---------------------------------------------------------------------------- refill errors


def test_the_residual_is_read_off_a_syringe_to_its_graduation() -> None:
    readings = set()
    for seed in range(30):
        start = PumpStart(Drug.BACLOFEN, 2.0, Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.5), 20.0)
        pump = Pump(PumpConfig(), start, rng=random.Random(seed))
        pump.process_due(10 * DAY)
        truth = pump.true_reservoir_ml
        outcome = pump.refill(10 * DAY, RefillAction(volume_ml=20, drug=Drug.BACLOFEN, concentration_mg_per_ml=2))
        measured = float(outcome.details["measured_residual_ml"])  # type: ignore[arg-type]
        assert abs(measured - truth) <= 0.05 + 4 * 0.025 * truth  # graduation plus four standard deviations
        assert math.isclose(measured * 10, round(measured * 10))  # 0.1 mL marks
        readings.add(measured)
    assert len(readings) > 3, "the reading varies from refill to refill"


def test_an_incomplete_withdrawal_shows_less_then_more_than_expected() -> None:
    pump = _pump(rate=0.5, reservoir=10.0, drug=Drug.BACLOFEN, concentration=2.0)
    pump.process_due(10 * DAY)  # 5 mL left
    pump.inject_fault(10 * DAY, IncompleteWithdrawalFault(withdrawn_fraction=0.4))
    first = pump.refill(10 * DAY, RefillAction(volume_ml=14, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0))
    assert first.details["expected_residual_ml"] == pytest.approx(5.0)
    assert first.details["measured_residual_ml"] == pytest.approx(2.0)  # 3 mL stayed behind
    assert pump.reservoir_ml == 14.0
    assert pump.true_reservoir_ml == pytest.approx(17.0)
    pump.process_due(30 * DAY)
    second = pump.refill(30 * DAY, RefillAction(volume_ml=14, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0))
    assert second.details["discrepancy_ml"] == pytest.approx(3.0)  # the left-over drug, found at the next refill
    assert abs(pump.conservation_error_ml()) < 1e-9


def test_incomplete_withdrawal_mixes_the_old_drug_with_the_new() -> None:
    pump = _pump(rate=0.5, reservoir=10.0, drug=Drug.BACLOFEN, concentration=1.0)
    pump.inject_fault(0.0, IncompleteWithdrawalFault(withdrawn_fraction=0.0))
    pump.refill(0.0, RefillAction(volume_ml=10, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0))
    assert pump.actual_concentration_mg_per_ml == pytest.approx(1.5)
    overfull = _pump(rate=0.5, reservoir=10.0)
    overfull.inject_fault(0.0, IncompleteWithdrawalFault(withdrawn_fraction=0.0))
    overfull.refill(0.0, RefillAction(volume_ml=18, drug=Drug.MORPHINE, concentration_mg_per_ml=10.0))
    assert overfull.true_reservoir_ml == pytest.approx(20.0)  # the reservoir takes no more than it holds
    assert abs(overfull.conservation_error_ml()) < 1e-9


def test_a_refill_into_the_catheter_access_port_goes_to_the_patient_at_once() -> None:
    pump = _pump(rate=0.5, reservoir=3.0, concentration=10.0)
    pump.inject_fault(0.0, CatheterAccessPortInjectionFault())
    before = pump.to_patient_mg
    outcome = pump.refill(0.0, RefillAction(volume_ml=18, drug=Drug.MORPHINE, concentration_mg_per_ml=10.0))
    assert outcome.details["measured_residual_ml"] == 0.0  # nothing came back up the needle
    assert outcome.details["discrepancy_ml"] == pytest.approx(-3.0)
    assert pump.to_patient_ml == pytest.approx(18.0)
    assert pump.to_patient_mg - before == pytest.approx(180.0)
    assert pump.reservoir_ml == 18.0  # the pump believes it was refilled
    assert pump.true_reservoir_ml == pytest.approx(3.0)
    assert _events(outcome.effects, "side_port_injection")
    assert abs(pump.conservation_error_ml()) < 1e-9


def test_the_wrong_syringe_changes_the_dose_once_the_catheter_is_flushed() -> None:
    pump = _pump(rate=0.6, reservoir=3.0)
    pump.inject_fault(0.0, WrongConcentrationFault(actual_concentration_mg_per_ml=20.0))
    pump.refill(0.0, RefillAction(volume_ml=18, drug=Drug.MORPHINE, concentration_mg_per_ml=10.0))
    pump.process_due(9 * 3600)
    assert pump.sample(pump.t).actual_dose_mg_per_day == pytest.approx(6.0)
    pump.process_due(11 * 3600)  # 0.25 mL at 0.6 mL/day: 10 h
    assert pump.sample(pump.t).actual_dose_mg_per_day == pytest.approx(12.0)


# -------------------------------------------------------------------------------- Prometra


def test_a_prometra_in_an_mri_without_emptying_dumps_its_reservoir_and_cannot_stall() -> None:
    config = PumpConfig(valve_gated=True, audible_alarms=False, flow_bias_sd=0.0, residual_reading_sd_fraction=0.0)
    pump = _pump(rate=0.4, reservoir=15.0, config=config)
    assert not pump.inject_fault(0.0, MotorStallFault(cause="wear")).applied
    outcome = pump.inject_fault(3600.0 * 0, MriValveOpeningFault())
    assert outcome.applied
    assert _events(outcome.effects, "valve_dump")
    assert pump.true_reservoir_ml == pytest.approx(pump.config.unusable_residual_ml)
    assert pump.to_patient_mg == pytest.approx((15.0 - 0.3) * 10.0)
    assert pump.reservoir_ml == 15.0  # the calculation does not know
    assert not pump.alarms
    assert not _pump().inject_fault(0.0, MriValveOpeningFault()).applied  # a peristaltic pump has no valves


# ------------------------------------------------------------------------------- MRI and reset


def test_an_mri_while_the_pump_alarms_holds_it_until_an_interrogation() -> None:
    pump = _pump(rate=0.5, reservoir=1.9)  # below the 2 mL threshold: the low-reservoir alarm sounds
    pump.process_due(0.0)
    assert AlarmCode.RESERVOIR_LOW in pump.alarms
    pump.inject_fault(0.0, MotorStallFault(cause="mri", recover_after_s=60))
    pump.process_due(DAY)
    assert pump.motor_stalled, "the rotor could turn after a minute, but the pump waits in telemetry mode"
    outcome = pump.interrogate(DAY)
    assert outcome.details["resumed"] is True
    assert not pump.motor_stalled
    assert AlarmCode.MOTOR_STALL not in pump.alarms
    kinds = [e.kind for e in pump.log]
    assert kinds == [
        DeviceLogKind.MOTOR_STALL,
        DeviceLogKind.TELEMETRY_MODE_HOLD,
        DeviceLogKind.INTERROGATION,
        DeviceLogKind.MOTOR_STALL_RECOVERY,
    ]


def test_an_mri_without_an_alarm_recovers_by_itself_and_an_interrogation_changes_nothing() -> None:
    pump = _pump(rate=0.5, reservoir=15.0)
    pump.inject_fault(0.0, MotorStallFault(cause="mri", recover_after_s=3600))
    assert pump.interrogate(0.0).details["resumed"] is False
    assert pump.motor_stalled
    pump.process_due(2 * 3600)
    assert not pump.motor_stalled


def test_the_minimum_rate_mode_after_a_reset_is_far_below_the_minimum_programmable_rate() -> None:
    assert MINIMUM_RATE_MODE_ML_PER_DAY < MIN_RATE_ML_PER_DAY
    pump = _pump(rate=0.4, reservoir=15.0)
    pump.inject_fault(0.0, LowBatteryResetFault())
    assert pump.program.mode is InfusionMode.MINIMUM_RATE
    assert pump.current_rate_ml_per_day(0.0) == pytest.approx(MINIMUM_RATE_MODE_ML_PER_DAY)
    (entry,) = [e for e in pump.log if e.kind is DeviceLogKind.LOW_BATTERY_RESET]
    assert entry.dose_before_mg_per_day == pytest.approx(4.0)
    assert entry.dose_after_mg_per_day == pytest.approx(MINIMUM_RATE_MODE_ML_PER_DAY * 10.0)


# ------------------------------------------------------------------------------- event log


def test_the_event_log_holds_what_the_pump_knows_and_never_what_it_cannot() -> None:
    settings = PatientBolusSettings(volume_ml=0.02, duration_minutes=10, lockout_minutes=120, max_per_day=4)
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.4, patient_bolus=settings)
    pump = _pump(program=program, reservoir=3.0)
    pump.inject_fault(0.0, PocketFillFault(fraction=0.5))
    pump.inject_fault(0.0, CatheterLeakFault(fraction=0.3))
    pump.refill(0.0, RefillAction(volume_ml=18, drug=Drug.MORPHINE, concentration_mg_per_ml=10.0))
    pump.process_due(3600.0)
    pump.patient_bolus(3600.0, PatientBolusAction())
    pump.process_due(4000.0)
    pump.patient_bolus(4000.0, PatientBolusAction())  # lockout
    pump.process_due(DAY)
    new = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.2, patient_bolus=settings)
    pump.reprogram(DAY, ReprogramAction(program=new, concentration_mg_per_ml=20.0))
    kinds = [e.kind for e in pump.log]
    assert kinds == [
        DeviceLogKind.REFILL,
        DeviceLogKind.PATIENT_BOLUS,
        DeviceLogKind.PATIENT_BOLUS_REFUSED,
        DeviceLogKind.REPROGRAM,
    ]
    refill, _, refused, reprogram = pump.log
    assert refill.volume_ml == 18.0  # the volume entered, not the 9 mL that reached the reservoir
    assert refill.expected_residual_ml == 3.0
    assert "lockout" in refused.detail
    assert (reprogram.concentration_before_mg_per_ml, reprogram.concentration_after_mg_per_ml) == (10.0, 20.0)
    assert reprogram.dose_before_mg_per_day == pytest.approx(4.0)
    assert reprogram.dose_after_mg_per_day == pytest.approx(4.0)
    assert pump.pocket_ml == 9.0  # the truth knows; the log does not


def test_the_event_log_keeps_only_the_latest_entries() -> None:
    pump = _pump(config=PumpConfig(log_capacity=3))
    for i in range(5):
        pump.interrogate(float(i))
        pump.process_due(float(i + 1))
    assert [e.at for e in pump.log] == [2.0, 3.0, 4.0]
    assert pump.log_serial == 5
