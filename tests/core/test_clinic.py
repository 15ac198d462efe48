"""The fleet's hazard rates and how they are drawn (twin.sim.clinic), and the hazards in a fleet."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from twin.contract.messages import Drug, InfusionMode, Program
from twin.sim.clinic import (
    CATHETER_COMPLICATION_PER_PATIENT_YEAR,
    CATHETER_FIRST_YEAR_PER_YEAR,
    CATHETER_FIRST_YEAR_SHARE,
    CATHETER_FOLLOW_UP_YEARS,
    CATHETER_LATER_PER_YEAR,
    SECONDS_PER_YEAR,
    ClinicPolicy,
    HazardRates,
    next_catheter_complication,
)
from twin.sim.fleet import PumpSpec
from twin.sim.simulation import FleetSimulation

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_catheter_hazards_reproduce_the_published_mean_and_first_year_share() -> None:
    years = CATHETER_FOLLOW_UP_YEARS
    mean = (CATHETER_FIRST_YEAR_PER_YEAR + (years - 1) * CATHETER_LATER_PER_YEAR) / years
    assert mean == pytest.approx(CATHETER_COMPLICATION_PER_PATIENT_YEAR)
    share = CATHETER_FIRST_YEAR_PER_YEAR / (CATHETER_FIRST_YEAR_PER_YEAR + (years - 1) * CATHETER_LATER_PER_YEAR)
    assert share == pytest.approx(CATHETER_FIRST_YEAR_SHARE)
    assert pytest.approx(0.141) == CATHETER_FIRST_YEAR_PER_YEAR
    assert pytest.approx(0.01767, abs=1e-5) == CATHETER_LATER_PER_YEAR


def test_draws_follow_the_piecewise_hazard() -> None:
    rng = random.Random(7)
    rates = HazardRates()
    draws = [next_catheter_complication(rng, 0.0, rates) for _ in range(40_000)]
    within_first_year = sum(d < SECONDS_PER_YEAR for d in draws) / len(draws)
    assert within_first_year == pytest.approx(1 - math.exp(-rates.catheter_first_year_per_year), abs=0.006)
    later = [d - SECONDS_PER_YEAR for d in draws if d >= SECONDS_PER_YEAR]
    mean_later_years = sum(later) / len(later) / SECONDS_PER_YEAR
    assert mean_later_years == pytest.approx(1 / rates.catheter_later_per_year, rel=0.03)
    old = [next_catheter_complication(rng, 3 * SECONDS_PER_YEAR, rates) for _ in range(20_000)]
    assert sum(old) / len(old) / SECONDS_PER_YEAR == pytest.approx(1 / rates.catheter_later_per_year, rel=0.03)
    never = HazardRates(catheter_first_year_per_year=0.0, catheter_later_per_year=0.0)
    assert next_catheter_complication(rng, 0.0, never) == math.inf


def test_motor_stall_rates_by_drug_and_drive() -> None:
    rates = HazardRates()
    assert rates.motor_stall_rate(Drug.BACLOFEN, valve_gated=False) == pytest.approx(0.004)
    assert rates.motor_stall_rate(Drug.HYDROMORPHONE, valve_gated=False) == pytest.approx(0.011)
    assert rates.motor_stall_rate(Drug.MORPHINE, valve_gated=True) == 0.0
    # the published 78-month failure fractions the rates come from ([V-S54])
    assert 1 - math.exp(-0.004 * 6.5) == pytest.approx(0.024, abs=0.002)
    assert 1 - math.exp(-0.011 * 6.5) == pytest.approx(0.070, abs=0.002)


def _spec(device_id: str, *, valve_gated: bool, drug: Drug = Drug.HYDROMORPHONE) -> PumpSpec:
    return PumpSpec(
        device_id=device_id,
        site="s1",
        drug=drug,
        concentration_mg_per_ml=10.0,
        program=Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.3),
        reservoir_ml=18.0,
        audible_alarms=not valve_gated,
        valve_gated=valve_gated,
    )


def test_a_valve_gated_pump_never_stalls_and_a_stalled_pump_is_replaced() -> None:
    specs = [_spec(f"sm{i}", valve_gated=False) for i in range(10)] + [
        _spec(f"pr{i}", valve_gated=True) for i in range(10)
    ]
    hot = HazardRates(motor_stall_per_year=20.0, motor_stall_off_label_per_year=20.0)
    sim = FleetSimulation(
        specs,
        epoch=EPOCH,
        seed=3,
        sink=lambda *_: None,
        random_faults=True,
        hazards=hot,
        clinic=ClinicPolicy(missed_appointment_rate=0.0),
        record_events=True,
    )
    sim.open_sessions(1)
    sim.run(60 * 86400)
    assert sim.events is not None
    stalled = {e.device_id for e in sim.events if e.kind == "motor_stall"}
    assert stalled
    assert all(d.startswith("sm") for d in stalled)
    replaced = {e.device_id for e in sim.events if e.kind == "replacement" and e.detail == "motor_stall"}
    assert replaced == stalled or replaced < stalled  # the latest stalls may still wait for their surgery
    assert len(replaced) >= len(stalled) - 2


def test_catheter_complications_are_revised_and_the_catheter_starts_its_first_year_again() -> None:
    specs = [_spec(f"p{i}", valve_gated=False, drug=Drug.BACLOFEN) for i in range(20)]
    often = HazardRates(catheter_first_year_per_year=5.0, catheter_later_per_year=5.0, granuloma_per_opioid_year=0.0)
    sim = FleetSimulation(
        specs, epoch=EPOCH, seed=5, sink=lambda *_: None, random_faults=True, hazards=often, record_events=True
    )
    sim.open_sessions(1)
    sim.run(365 * 86400)
    assert sim.events is not None
    complications = [e for e in sim.events if e.kind == "catheter_complication"]
    revisions = [e for e in sim.events if e.kind == "catheter_revision"]
    assert len(complications) > 40
    assert len(revisions) >= len(complications) - len(specs)
    for device_id, patient in sim.patients.items():
        mine = [e for e in revisions if e.device_id == device_id]
        assert patient.catheter_starts[1:] == [e.at_s for e in mine]
        if mine:
            assert sim.devices[device_id].pump.occlusion == 0.0 or patient.catheter_faulty
