"""Predicted state between reports, with the same pure pump model the simulator runs.

Real pumps are read a few times a year; between read-outs the twin advances the last report with
:class:`twin.pump.model.Pump` (the pump's *belief* side: programmed flow, no faults, no flow
error, since that is what the pump itself will report) and says when the low-reservoir
threshold, empty, ERI and end of service will come. Reported, predicted and the age of the report
sit side by side in the API.

Two sets of reservoir dates: ``low_reservoir_at``/``empty_at`` follow the program and any bolus in
progress at the report (what the pump will calculate if the patient asks for nothing more);
``worst_low_reservoir_at``/``worst_empty_at`` add every patient bolus the settings allow
(:mod:`twin.pump.refill_planning`, as a Prometra PTC plans its refill date, [V-S20]). Alerts a
clinic relies on use the worst case: a patient who uses every bolus empties the pump first.

Pure: the time to predict to is an argument.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from twin.contract.alarms import AlarmCode
from twin.contract.messages import BatteryStatus, Birth, MotorState, Program, State, Telemetry
from twin.pump.model import AlarmChange, Bolus, Pump, PumpConfig, PumpStart
from twin.pump.refill_planning import worst_case_program

HORIZON: Final = timedelta(days=3 * 365)
"""How far ahead dates are predicted (a pump's battery rarely has more than a few years left)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """The device as the twin predicts it at ``at`` (device time)."""

    at: datetime
    basis_at: datetime  # device time of the report the prediction starts from
    basis: str  # "state" or "telemetry"
    report_age_s: float  # device seconds between the basis and `at`
    reservoir_ml: float
    delivered_ml_total: float
    battery_percent: float
    infusing: bool
    reservoir_low_now: bool
    low_reservoir_at: datetime | None  # when the threshold is (or was, since the report) crossed; None: never
    empty_at: datetime | None
    eri_at: datetime | None
    eos_at: datetime | None
    worst_low_reservoir_at: datetime | None = None  # every allowed patient bolus used
    worst_empty_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Forecast:
    """The dates a state report implies (device time). They depend only on the report: the pump's
    calculated volume follows its program exactly, so a later telemetry sample cannot move them;
    only a new state (refill, reprogram, stall, battery status) does. Cheap to keep per device."""

    basis_at: datetime
    low_reservoir_at: datetime | None
    empty_at: datetime | None
    eri_at: datetime | None
    eos_at: datetime | None
    worst_low_reservoir_at: datetime | None = None
    worst_empty_at: datetime | None = None


def forecast(birth: Birth | None, state: State) -> Forecast:
    """The forecast of a state report (see :class:`Forecast`)."""
    p = predict(birth, state, None, state.device_time)
    return Forecast(
        p.basis_at, p.low_reservoir_at, p.empty_at, p.eri_at, p.eos_at, p.worst_low_reservoir_at, p.worst_empty_at
    )


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def predict(birth: Birth | None, state: State, telemetry: Telemetry | None, at: datetime) -> Prediction:
    """Advance the latest report (state, or a newer telemetry sample) to ``at``."""
    basis_time = state.device_time
    reservoir, battery, delivered, basis = (
        state.reservoir_ml,
        state.battery_percent,
        state.delivered_ml_total,
        "state",
    )
    if telemetry is not None and telemetry.device_time > state.device_time and telemetry.session == state.session:
        basis_time = telemetry.device_time
        reservoir, battery, delivered, basis = (
            telemetry.reservoir_ml,
            telemetry.battery_percent,
            telemetry.delivered_ml_total,
            "telemetry",
        )
    config = PumpConfig(
        reservoir_capacity_ml=birth.reservoir_capacity_ml if birth else max(40.0, reservoir),
        unusable_residual_ml=state.unusable_residual_ml,
        inherent_flow_bias=0.0,
        flow_bias_sd=0.0,
        catheter_volume_ml=0.0,
    )
    horizon = max(_seconds(at, basis_time), 0.0)
    pump = _belief(config, state, basis_time, reservoir, battery, delivered, state.program)
    crossed = _crossings(pump, horizon)
    sample = pump.sample(horizon)
    _crossings(pump, horizon + HORIZON.total_seconds(), crossed)
    worst = crossed
    if (program := worst_case_program(state.program)) is not state.program:
        worst = _crossings(
            _belief(config, state, basis_time, reservoir, battery, delivered, program), HORIZON.total_seconds()
        )

    def when(code: AlarmCode, found: dict[AlarmCode, float]) -> datetime | None:
        t = found.get(code)
        return basis_time + timedelta(seconds=t) if t is not None else None

    eri = state.eri_at or when(AlarmCode.BATTERY_ERI, crossed)
    eos = state.eos_at or when(AlarmCode.BATTERY_EOS, crossed)
    if eri is not None and eos is None:
        eos = eri + timedelta(days=config.battery.eri_to_eos_days)
    return Prediction(
        at=basis_time + timedelta(seconds=horizon),
        basis_at=basis_time,
        basis=basis,
        report_age_s=horizon,
        reservoir_ml=sample.reservoir_ml,
        delivered_ml_total=sample.delivered_ml_total,
        battery_percent=sample.battery_percent,
        infusing=sample.infusing,
        reservoir_low_now=sample.reservoir_ml <= state.low_reservoir_threshold_ml + 1e-9,
        low_reservoir_at=when(AlarmCode.RESERVOIR_LOW, crossed),
        empty_at=when(AlarmCode.RESERVOIR_EMPTY, crossed),
        eri_at=eri,
        eos_at=eos,
        worst_low_reservoir_at=when(AlarmCode.RESERVOIR_LOW, worst),
        worst_empty_at=when(AlarmCode.RESERVOIR_EMPTY, worst),
    )


def _belief(
    config: PumpConfig,
    state: State,
    basis_time: datetime,
    reservoir: float,
    battery: float,
    delivered: float,
    program: Program,
) -> Pump:
    """The pump model started from a report (seconds from ``basis_time``), running ``program``."""
    midnight = basis_time.replace(hour=0, minute=0, second=0, microsecond=0)
    eri_at = _seconds(state.eri_at, basis_time) if state.eri_at else None
    eos_at = _seconds(state.eos_at, basis_time) if state.eos_at else None
    status = state.battery
    if status is BatteryStatus.ERI and eos_at is None:
        status = BatteryStatus.EOS  # a report past ERI without its end-of-service date: assume the worst
    bolus = None
    if state.bolus is not None and state.bolus.ends_at > basis_time:
        b = state.bolus
        bolus = Bolus(b.source, b.volume_ml, _seconds(b.started_at, basis_time), _seconds(b.ends_at, basis_time))
    start = PumpStart(
        drug=state.drug,
        concentration_mg_per_ml=state.concentration_mg_per_ml,
        program=program,
        reservoir_ml=min(reservoir, config.reservoir_capacity_ml),
        low_reservoir_threshold_ml=state.low_reservoir_threshold_ml,
        battery_percent=battery if status is BatteryStatus.OK else 0.0,
        delivered_ml_total=delivered,
        battery_status=status,
        eri_at=eri_at,
        eos_at=eos_at,
        motor_stalled=state.motor is MotorState.STALLED,
        memory_error=state.stop_reason is not None and state.stop_reason.value == "memory_error",
        bolus=bolus if state.motor is MotorState.RUNNING else None,
    )
    if start.battery_status is BatteryStatus.OK and start.battery_percent <= config.battery.eri_percent:
        # rounding put an OK battery at the ERI line: it crosses it at once
        start = dataclasses.replace(start, battery_percent=config.battery.eri_percent + 1e-6)
    return Pump(config, start, rng=random.Random(0), day_origin_s=-_seconds(basis_time, midnight))


def _crossings(pump: Pump, until: float, into: dict[AlarmCode, float] | None = None) -> dict[AlarmCode, float]:
    """Run ``pump`` to ``until``; the first time each alarm was raised (seconds), added to ``into``."""
    crossed = {} if into is None else into
    for effect in pump.process_due(until):
        if isinstance(effect, AlarmChange) and effect.raised:
            crossed.setdefault(effect.code, effect.at)
    return crossed
