"""Fleets of simulated pumps: from a YAML fleet file, or generated from a seed.

A generated fleet has a realistic mix (DOMAIN.md): SynchroMed II 20 and 40 mL pumps and some
Prometra II (no audible alarms), drugs in their usual shares, concentrations and doses in their
typical ranges (flow = dose / concentration, kept within 0.05–1.5 mL/day), continuous and
flexible programs, patient boluses for some opioid pumps, implant ages of 0–5 years with the
battery drained accordingly, and reservoirs anywhere between just above the low threshold and
full. The same seed always gives the same fleet.

Pure: no I/O (fleet files are read by :mod:`twin.sim.fleet_file`).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from twin.contract.messages import (
    MINIMUM_RATE_MODE_ML_PER_DAY,
    DeviceId,
    Drug,
    FlexStep,
    InfusionMode,
    PatientBolusSettings,
    Program,
)
from twin.pump.drugs import DRUGS
from twin.pump.model import DEFAULT_LOW_RESERVOIR_THRESHOLD_ML, ERI_PERCENT, BatteryModel

SITE_NAMES: Final = (
    "north-general",
    "st-olaf-clinic",
    "riverside-rehab",
    "lakeview-pain",
    "mercy-spine",
    "harbor-neuro",
    "summit-oncology",
    "valley-childrens",
)

PUMPS_PER_SITE: Final = 25
"""A generated fleet gets one site per this many pumps (at most len(SITE_NAMES)): a typical
pump clinic follows tens to a few hundred patients."""


class PumpModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    reservoir_capacity_ml: float
    audible_alarms: bool
    fleet_share: float
    valve_gated: bool = False


PUMP_MODELS: Final = (
    PumpModel(name="SynchroMed II 8637-20", reservoir_capacity_ml=20.0, audible_alarms=True, fleet_share=0.55),
    PumpModel(name="SynchroMed II 8637-40", reservoir_capacity_ml=40.0, audible_alarms=True, fleet_share=0.35),
    PumpModel(
        name="Prometra II 13827", reservoir_capacity_ml=20.0, audible_alarms=False, fleet_share=0.10, valve_gated=True
    ),
)
"""The generated fleet's models ([V-S13, S19]); Prometra: no audible alarms ([U] DOMAIN-RESEARCH §3.2),
valve-gated (no rotor)."""

MIN_FLEET_RATE_ML_PER_DAY: Final = 0.05
MAX_FLEET_RATE_ML_PER_DAY: Final = 1.5


class PumpSpec(BaseModel):
    """One pump of a fleet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: DeviceId
    site: DeviceId
    model: str = "SynchroMed II 8637-20"
    serial: str | None = None
    reservoir_capacity_ml: float = Field(default=20.0, gt=0, le=100)
    catheter_volume_ml: float = Field(default=0.25, ge=0, le=2)
    audible_alarms: bool = True
    valve_gated: bool = Field(default=False, description="Prometra-class: valves, no rotor (never stalls)")
    drug: Drug
    concentration_mg_per_ml: float = Field(gt=0, le=100)
    program: Program
    reservoir_ml: float = Field(ge=0, le=100)
    low_reservoir_threshold_ml: float = Field(default=DEFAULT_LOW_RESERVOIR_THRESHOLD_ML, ge=0, le=20)
    battery_percent: float = Field(default=100.0, gt=ERI_PERCENT, le=100)
    implant_date: AwareDatetime | None = None
    delivered_ml_total: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> PumpSpec:
        if self.reservoir_ml > self.reservoir_capacity_ml:
            raise ValueError(
                f"reservoir_ml {self.reservoir_ml} exceeds reservoir_capacity_ml {self.reservoir_capacity_ml}"
            )
        return self

    @property
    def mean_rate_ml_per_day(self) -> float:
        p = self.program
        if p.mode is InfusionMode.CONTINUOUS:
            return p.rate_ml_per_day or 0.0
        if p.mode is InfusionMode.FLEXIBLE:
            starts = [s.start_minute for s in p.steps] + [p.steps[0].start_minute + 1440]
            return sum(s.rate_ml_per_day * (starts[i + 1] - starts[i]) for i, s in enumerate(p.steps)) / 1440
        if p.mode is InfusionMode.MINIMUM_RATE:
            return MINIMUM_RATE_MODE_ML_PER_DAY
        return 0.0


class FleetFile(BaseModel):
    """A fleet file: optional start time, and the pumps."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = None
    pumps: list[PumpSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> FleetFile:
        seen: set[str] = set()
        for p in self.pumps:
            if p.device_id in seen:
                raise ValueError(f"device_id {p.device_id!r} appears twice")
            seen.add(p.device_id)
        return self


def _weighted(rng: random.Random, items: list[tuple[float, object]]) -> object:
    total = sum(w for w, _ in items)
    x = rng.uniform(0, total)
    for w, item in items:
        x -= w
        if x <= 0:
            return item
    return items[-1][1]


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


REFILL_INTERVAL_DAYS: Final = (28.0, 90.0)
"""The refill interval clinics aim for (DOMAIN-RESEARCH §7: 28-90 days; one practice concentrates
drugs so that a 20 mL pump lasts about a month, [V-S37]): a generated pump gets the strength that
puts its interval there when one of its drug's strengths does."""


def _concentration_for(dose: float, shuffled: list[float], capacity_ml: float) -> float:
    """The first strength (in the shuffled order) whose flow is in the fleet's range and whose refill
    interval is in :data:`REFILL_INTERVAL_DAYS`; else the first with the flow in range; else the first."""
    in_range = [c for c in shuffled if MIN_FLEET_RATE_ML_PER_DAY <= dose / c <= MAX_FLEET_RATE_ML_PER_DAY]
    low, high = REFILL_INTERVAL_DAYS
    for c in in_range:
        if low <= capacity_ml / (dose / c) <= high:
            return c
    return in_range[0] if in_range else shuffled[0]


def _program(rng: random.Random, rate: float, drug: Drug) -> Program:
    patient_bolus = None
    if drug in (Drug.MORPHINE, Drug.HYDROMORPHONE, Drug.FENTANYL) and rng.random() < 0.3:
        patient_bolus = PatientBolusSettings(
            volume_ml=round(min(1.0, max(0.005, rate * rng.uniform(0.05, 0.15))), 4),
            duration_minutes=rng.choice([10, 15, 30]),
            lockout_minutes=rng.choice([60, 120, 180, 240]),
            max_per_day=rng.choice([2, 3, 4, 6]),
        )
    if rng.random() < 0.25:
        # flexible: a day rate and a night rate (baclofen timed to when spasticity is worst), 2-4 steps
        n = rng.choice([2, 3, 4])
        starts = sorted(rng.sample([0, 6 * 60, 8 * 60, 12 * 60, 18 * 60, 21 * 60, 22 * 60], n))
        steps = [
            FlexStep(
                start_minute=m,
                rate_ml_per_day=round(min(MAX_FLEET_RATE_ML_PER_DAY, max(0.048, rate * rng.uniform(0.7, 1.3))), 4),
            )
            for m in starts
        ]
        return Program(mode=InfusionMode.FLEXIBLE, steps=steps, patient_bolus=patient_bolus)
    return Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=round(rate, 4), patient_bolus=patient_bolus)


def generate_fleet(count: int, *, seed: int, start: datetime, sites: list[str] | None = None) -> list[PumpSpec]:
    """``count`` pumps with a realistic mix; the same seed gives the same fleet."""
    if count < 1:
        raise ValueError("a fleet needs at least one pump")
    rng = random.Random(f"fleet:{seed}")
    site_names = sites or list(SITE_NAMES[: max(1, min(len(SITE_NAMES), math.ceil(count / PUMPS_PER_SITE)))])
    battery = BatteryModel()
    specs: list[PumpSpec] = []
    width = max(4, len(str(count)))
    for i in range(count):
        model = _weighted(rng, [(m.fleet_share, m) for m in PUMP_MODELS])
        assert isinstance(model, PumpModel)
        drug = _weighted(rng, [(d.fleet_share, d.drug) for d in DRUGS.values()])
        assert isinstance(drug, Drug)
        profile = DRUGS[drug]
        dose = _log_uniform(rng, *profile.dose_mg_per_day)
        concentrations = list(profile.concentrations_mg_per_ml)
        rng.shuffle(concentrations)
        conc = _concentration_for(dose, concentrations, model.reservoir_capacity_ml)
        rate = min(MAX_FLEET_RATE_ML_PER_DAY, max(MIN_FLEET_RATE_ML_PER_DAY, dose / conc))
        program = _program(rng, rate, drug)
        age_days = rng.uniform(0, 5 * 365)
        used = battery.base_percent_per_day * age_days + battery.percent_per_ml * rate * age_days
        battery_percent = max(ERI_PERCENT + rng.uniform(0.2, 3.0), 100.0 - used)
        threshold = DEFAULT_LOW_RESERVOIR_THRESHOLD_ML if model.reservoir_capacity_ml <= 20 else 3.0
        reservoir = rng.uniform(threshold + 0.5, model.reservoir_capacity_ml)
        specs.append(
            PumpSpec(
                device_id=f"pump-{i + 1:0{width}d}",
                site=site_names[i % len(site_names)],
                model=model.name,
                serial=f"SIM{seed % 10000:04d}{i + 1:06d}",
                reservoir_capacity_ml=model.reservoir_capacity_ml,
                catheter_volume_ml=round(rng.uniform(0.16, 0.29), 3),
                audible_alarms=model.audible_alarms,
                valve_gated=model.valve_gated,
                drug=drug,
                concentration_mg_per_ml=conc,
                program=program,
                reservoir_ml=round(reservoir, 3),
                low_reservoir_threshold_ml=threshold,
                battery_percent=round(battery_percent, 3),
                implant_date=(start - timedelta(days=age_days)).replace(microsecond=0),
                delivered_ml_total=round(rate * age_days, 3),
            )
        )
    return specs


def default_epoch() -> datetime:
    """A fixed, midnight-aligned start for reproducible runs when none is given."""
    return datetime(2026, 1, 1, tzinfo=UTC)
