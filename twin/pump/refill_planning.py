"""When a pump needs its next refill, counting every patient bolus it allows.

A clinic books the next refill from the pump's calculated volume and its program, the way a
clinician programmer computes it: volume ÷ rate, with the patient-activated boluses added at the
most the settings allow (the Prometra Patient Therapy Controller computes its "date of next refill"
as the day the reservoir reaches 3.0 mL *assuming every allowed bolus is used*, [V-S20]). The
simulated clinic and the twin's forecast share these functions, so the clinic books exactly what the
twin would predict.

Time is seconds of simulation time; rates are mL/day in programs and mL/s in flows. Pure.
"""

from __future__ import annotations

import math
from typing import Final

from twin.contract.messages import MAX_RATE_ML_PER_DAY, FlexStep, InfusionMode, PatientBolusSettings, Program
from twin.pump.flow import Flow

PROMETRA_REFILL_TARGET_ML: Final = 3.0
"""Volume the Prometra PTC plans the next refill at ([V-S20], DOMAIN-RESEARCH §1.6 and §7)."""

MINUTES_PER_DAY: Final = 1440.0


def patient_boluses_per_day(settings: PatientBolusSettings) -> int:
    """The most activations a day the settings accept: the daily maximum, or fewer when the
    lockout allows fewer in 24 h (activations at 0, L, 2L, ... below 1440 minutes)."""
    if settings.lockout_minutes <= 0:
        return settings.max_per_day
    return min(settings.max_per_day, math.ceil(MINUTES_PER_DAY / settings.lockout_minutes))


def worst_case_bolus_ml_per_day(program: Program) -> float:
    """Extra volume a day when the patient uses every bolus the program allows (0 without boluses)."""
    settings = program.patient_bolus
    if settings is None or program.mode in (InfusionMode.STOPPED, InfusionMode.MINIMUM_RATE):
        return 0.0
    return patient_boluses_per_day(settings) * settings.volume_ml


def worst_case_program(program: Program) -> Program:
    """``program`` with the worst-case patient boluses spread over the day as extra flow (the same
    volume a day; the dates it implies are exact to within a bolus). Unchanged without boluses."""
    extra = worst_case_bolus_ml_per_day(program)
    if extra <= 0:
        return program
    if program.mode is InfusionMode.CONTINUOUS:
        assert program.rate_ml_per_day is not None
        rate = min(MAX_RATE_ML_PER_DAY, program.rate_ml_per_day + extra)
        return program.model_copy(update={"rate_ml_per_day": rate})
    steps = [
        FlexStep(start_minute=s.start_minute, rate_ml_per_day=min(MAX_RATE_ML_PER_DAY, s.rate_ml_per_day + extra))
        for s in program.steps
    ]
    return program.model_copy(update={"steps": steps})


def seconds_until_volume(flow: Flow, t: float, reservoir_ml: float, target_ml: float) -> float:
    """Seconds from ``t`` until ``flow`` (mL/s) has taken ``reservoir_ml`` down to ``target_ml``;
    0 when it is there already, ``inf`` when it never gets there."""
    if reservoir_ml <= target_ml:
        return 0.0
    return flow.time_to_accumulate(t, reservoir_ml - target_ml) - t
