"""How a pump clinic looks after its patients, and how often things go wrong: the rules and rates
the simulated fleet (:mod:`twin.sim.simulation`) plays out.

**The clinic** books every refill from the pump's calculated volume and program the way a clinician
programmer computes it (:mod:`twin.pump.refill_planning`): the day the reservoir reaches the
low-reservoir threshold with every allowed patient bolus used, less a margin, and never later than
the drug's stability limit; a valve-gated pump (Prometra) by its own refill date, at 3.0 mL left
([V-S20]). The pump's alarm clock is set for the day after the appointment, so it sounds only when
the appointment was missed. A pump past ERI is replaced within the ERI window; a stalled pump
within days; a catheter fault is worked up and revised. Only a missed appointment (drawn at
:attr:`ClinicPolicy.missed_appointment_rate`) or a scenario lets a reservoir run empty or a
battery reach end of service.

**The hazards** are those of DOMAIN-RESEARCH §7, each a named rate with its tag: motor stall per
pump-year (higher on drugs not labelled for the pump, never on a valve-gated pump), catheter
complications per patient-year weighted to the catheter's first year, granulomas on opioids,
pocket fills per refill, programming errors per reprogramming, infection per surgical procedure.

Pure: values and pure functions of a seeded :class:`random.Random`; no I/O, no clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from twin.contract.messages import Drug
from twin.pump.drugs import DRUGS
from twin.pump.flow import SECONDS_PER_DAY

SECONDS_PER_YEAR: Final = 365.25 * SECONDS_PER_DAY

Days = tuple[float, float]
"""A uniform range of delays in days (low, high)."""

# ------------------------------------------------------------------------------------- hazards

MOTOR_STALL_PER_PUMP_YEAR: Final = 0.004
"""Motor stall hazard on labelled drugs: 2.4 % at 78 months ([I] from [V-S54]: -ln(0.976)/6.5 y)."""

MOTOR_STALL_OFF_LABEL_PER_PUMP_YEAR: Final = 0.011
"""...on drugs not labelled for the pump: 7.0 % at 78 months ([I] from [V-S54]: -ln(0.93)/6.5 y)."""

CATHETER_COMPLICATION_PER_PATIENT_YEAR: Final = 0.03
"""Catheter complications (occlusion, kink, fracture, disconnection): 0.03 per patient-year, range
0.02-0.33 ([I] from [V-S49, S50, S65], DOMAIN-RESEARCH §7)."""

CATHETER_FIRST_YEAR_SHARE: Final = 0.47
"""Share of them in the first year after surgery (47 %, [V-S65])."""

CATHETER_FOLLOW_UP_YEARS: Final = 10.0
"""Follow-up over which the 0.03 mean and the 47 % share are read. [A] the ITB series of [V-S65]
spans eleven years; ten keeps the arithmetic plain."""

CATHETER_FIRST_YEAR_PER_YEAR: Final = (
    CATHETER_FIRST_YEAR_SHARE * CATHETER_COMPLICATION_PER_PATIENT_YEAR * CATHETER_FOLLOW_UP_YEARS
)
"""Hazard while the catheter is in its first year: 0.141 per year ([I] from the three above)."""

CATHETER_LATER_PER_YEAR: Final = (
    (1.0 - CATHETER_FIRST_YEAR_SHARE)
    * CATHETER_COMPLICATION_PER_PATIENT_YEAR
    * CATHETER_FOLLOW_UP_YEARS
    / (CATHETER_FOLLOW_UP_YEARS - 1.0)
)
"""Hazard after the first year: 0.0177 per year ([I]); with the first year's it averages 0.03 over
the follow-up and puts 47 % of the complications in year 1."""

CATHETER_OCCLUSION_SHARE: Final = 6 / 9
"""Of catheter complications, occlusions and kinks (the rest: fractures, disconnections, leaks):
6 of 9 in the reinforced-catheter series ([I] from [V-S49])."""

GRANULOMA_PER_OPIOID_PATIENT_YEAR: Final = 0.01
"""Catheter-tip granuloma on intrathecal opioids ([V-S53, S52]: 0.009-0.03 per patient-year)."""

POCKET_FILL_PER_REFILL: Final = 0.0005
"""Pocket fill per refill: 0.05 % ([A] DOMAIN-RESEARCH §7: no published per-refill rate)."""

PROGRAMMING_ERROR_PER_REPROGRAMMING: Final = 0.001
"""Programming or concentration-entry error per reprogramming: 0.1 % ([A] DOMAIN-RESEARCH §7)."""

INFECTION_PER_PROCEDURE: Final = 0.03
"""Infection per surgical procedure (pump replacement, catheter revision): 3 % ([V-S51, S68])."""


@dataclass(frozen=True, slots=True)
class HazardRates:
    """The fleet's fault rates (see the constants for their sources); every one a setting."""

    motor_stall_per_year: float = MOTOR_STALL_PER_PUMP_YEAR
    motor_stall_off_label_per_year: float = MOTOR_STALL_OFF_LABEL_PER_PUMP_YEAR
    catheter_first_year_per_year: float = CATHETER_FIRST_YEAR_PER_YEAR
    catheter_later_per_year: float = CATHETER_LATER_PER_YEAR
    catheter_occlusion_share: float = CATHETER_OCCLUSION_SHARE
    granuloma_per_opioid_year: float = GRANULOMA_PER_OPIOID_PATIENT_YEAR
    pocket_fill_per_refill: float = POCKET_FILL_PER_REFILL
    programming_error_per_reprogramming: float = PROGRAMMING_ERROR_PER_REPROGRAMMING
    infection_per_procedure: float = INFECTION_PER_PROCEDURE

    def motor_stall_rate(self, drug: Drug, *, valve_gated: bool) -> float:
        """Stalls per pump-year: none without a rotor; higher on a drug the pump is not labelled for."""
        if valve_gated:
            return 0.0
        return (
            self.motor_stall_per_year
            if DRUGS[drug].fda_labelled_for_synchromed
            else self.motor_stall_off_label_per_year
        )


def next_catheter_complication(rng: random.Random, catheter_age_s: float, rates: HazardRates) -> float:
    """Seconds from now (catheter ``catheter_age_s`` old) to its next complication, with the hazard
    piecewise constant: the first year's rate, then the later one (``inf`` if both are zero)."""
    year = SECONDS_PER_YEAR
    if catheter_age_s < year and rates.catheter_first_year_per_year > 0:
        draw = rng.expovariate(rates.catheter_first_year_per_year / year)
        if catheter_age_s + draw < year:
            return draw
    elif catheter_age_s < year:
        rng.random()  # keep the stream's shape the same whatever the rates
    start = max(0.0, year - catheter_age_s)
    if rates.catheter_later_per_year <= 0:
        return math.inf
    return start + rng.expovariate(rates.catheter_later_per_year / year)


# -------------------------------------------------------------------------------------- clinic

MISSED_APPOINTMENT_RATE: Final = 0.02
"""Share of appointments (refills, replacement surgery) the patient misses without notice. [A] no
published figure for pump clinics; a setting. The only way the simulated clinic lets a reservoir
run empty or a battery reach end of service."""


@dataclass(frozen=True, slots=True)
class ClinicPolicy:
    """How the simulated clinic books and acts; every figure a setting ([A] unless tagged)."""

    refill_margin_days: float = 7.0
    """Book a SynchroMed refill this long before the low-reservoir threshold (worst-case boluses). [A]"""
    prometra_margin_days: float = 0.0
    """A Prometra is booked on its own refill date (3.0 mL left, every bolus counted, [V-S20])."""
    reminder_after_appointment_days: float = 1.0
    """The pump's alarm clock is set this long after the appointment: it sounds only if it was missed. [A]"""
    soonest_appointment_days: float = 0.5
    """No appointment sooner than this (a pump that starts the simulation nearly empty). [A]"""
    missed_appointment_rate: float = MISSED_APPOINTMENT_RATE
    rebook_refill_days: Days = (1.0, 7.0)
    """A missed refill is rebooked within the week (the clinic calls the patient back). [A]"""
    low_alarm_refill_days: Days = (1.0, 7.0)
    """After a low-reservoir alarm (an appointment was missed) the refill comes within a week. [A]"""
    empty_refill_days: Days = (0.1, 1.0)
    """An empty reservoir (audible alarm) is an urgent refill: within hours. [A]"""
    eri_replacement_days: Days = (14.0, 60.0)
    """Replacement surgery after ERI, inside the 90-day window ([V-S2]: schedule it at once). [A]"""
    rebook_replacement_days: Days = (30.0, 90.0)
    """A missed replacement surgery is rebooked this much later (theatre slots are scarce). [A]"""
    eos_replacement_days: Days = (0.5, 2.0)
    """After end of service (audible), emergency replacement. [A]"""
    stall_replacement_days: Days = (1.0, 7.0)
    """A permanent motor stall or a memory error (audible): urgent replacement ([V-S13]). [A]"""
    post_mri_interrogation_days: Days = (0.04, 1.0)
    """A pump stalled by an MRI and waiting in telemetry mode is interrogated within hours to a day
    (every pump is interrogated after an MRI, [V-S11, S14]), which lets it resume. [A]"""
    catheter_workup_days: Days = (3.0, 30.0)
    """From a catheter complication to its revision: symptoms, work-up, surgery. [A]"""
    granuloma_workup_days: Days = (30.0, 180.0)
    """A granuloma grows slowly and is found late ([V-S59]: delayed recognition). [A]"""
    programming_error_found_days: Days = (0.5, 3.0)
    """From a programming error to its correction (the patient's symptoms bring it to light). [A]"""
    dose_adjustment_per_visit: float = 0.3
    """Share of refill visits with a dose adjustment (a reprogramming). [A]"""
    dose_adjustment_range: Days = (0.85, 1.15)
    """An adjustment sets the rate to the prescribed rate times a factor in this range (no drift;
    [V-S39] refill adjustments are +10-40 % or -10-20 %). [A]"""


def uniform_days(rng: random.Random, span: Days) -> float:
    """A delay drawn from ``span`` (days), in seconds."""
    return rng.uniform(*span) * SECONDS_PER_DAY
