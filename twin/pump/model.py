"""The pure model of one implanted programmable pump (SynchroMed II class).

Two tanks run side by side:

* the pump's **belief**: its *calculated* reservoir volume, falling at the programmed rate
  while the motor turns (this is all a real pump knows and reports);
* the **truth**: the volume really in the reservoir, and where the drug really went. The true
  outflow is the motor's flow × (1 + flow bias) × (1 − catheter occlusion); of it, the share
  ``catheter leak`` goes to tissue instead of the intrathecal space. A pocket fill puts part of a
  refill into the subcutaneous pocket instead of the reservoir. What leaves the reservoir passes
  the catheter's dead space first (:mod:`twin.pump.catheter`): a new concentration reaches the tip
  only once the catheter's volume has been pushed through.

Drug is conserved exactly: ``filled_ml = reservoir_true_ml + to_patient_ml + leaked_ml +
pocket_ml + withdrawn_ml`` (volumes only move between these buckets; the catheter is always full).

What the pump itself knows goes to its **event log** (:attr:`Pump.log`: refills, programming,
boluses and refusals, stalls and recoveries, resets, interrogations), which an interrogation
reads; what only the truth knows (a pocket fill, the drug running dry, a new concentration
reaching the tip) is a :class:`ClinicalEvent` for the simulator's observers, never a log entry.

Physics a clinician would check: during a motor stall a SynchroMed-class pump keeps counting its
programmed flow (``counts_during_stall``), so the refill finds more left than expected; the
minimum-rate mode after a reset runs at :data:`~twin.contract.messages.MINIMUM_RATE_MODE_ML_PER_DAY`,
far below the minimum programmable rate; an MRI scan while the pump is alarming holds it in
telemetry mode until it is interrogated ([V-S14]); the residual withdrawn at a refill is read off
a syringe (±2.5 %, [V-S24]) to its graduation.

Between events every flow is piecewise constant, so the model computes *when* the next threshold
is crossed (low reservoir, empty, the truth running dry, the battery's ERI) instead of stepping
the clock. :meth:`Pump.next_event` says what happens next and when; :meth:`Pump.process_due`
applies everything due; commands (refill, reprogram, boluses, faults) apply at a given time.
Every method that changes the pump returns the :class:`AlarmChange` / :class:`ClinicalEvent`
effects it caused, in order.

Pure: no I/O, no clock (time is an argument, seconds of simulation time), no global RNG
(a seeded :class:`random.Random` is passed in).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, assert_never

from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode
from twin.contract.messages import (
    MAX_EVENT_LOG_ENTRIES,
    MINIMUM_RATE_MODE_ML_PER_DAY,
    BatteryDepletionFault,
    BatteryStatus,
    CatheterAccessPortInjectionFault,
    CatheterLeakFault,
    CatheterOcclusionFault,
    CatheterState,
    ClearFaultAction,
    ClinicianBolusAction,
    DeviceLogKind,
    Drug,
    FaultModel,
    FlexStep,
    FlowErrorFault,
    IncompleteWithdrawalFault,
    InfusionMode,
    LowBatteryResetFault,
    MemoryErrorFault,
    MotorStallFault,
    MotorState,
    MriValveOpeningFault,
    PatientBolusAction,
    PocketFillFault,
    Program,
    RefillAction,
    ReprogramAction,
    StopReason,
    TelemetryLossFault,
    WrongConcentrationFault,
)
from twin.pump.catheter import CatheterContents
from twin.pump.fastinit import fast_frozen_init
from twin.pump.flow import SECONDS_PER_DAY, DailySchedule, Flow, Overlay

# ------------------------------------------------------------------------------------- constants

UNUSABLE_RESIDUAL_ML: Final = 0.3
"""Volume left in the reservoir when the pump reports empty ('a few tenths of a mL', DOMAIN.md)."""

DEFAULT_LOW_RESERVOIR_THRESHOLD_ML: Final = 2.0
"""Programmable low-reservoir alarm threshold; 2 mL is the usual setting (DOMAIN.md)."""

MEAN_FLOW_BIAS: Final = 0.01
"""Pumps in clinic deliver about 1 % more than programmed (Wesemann 2014, DOMAIN-RESEARCH §7)."""

FLOW_BIAS_SD_PER_REFILL: Final = 0.025
"""Per-refill spread of the flow error, about ±2.5 % (an assumption fitted to the same study)."""

ERI_PERCENT: Final = 10.0
"""Battery percentage at which the elective replacement indicator is raised."""

ERI_TO_EOS_DAYS: Final = 90.0
"""The pump stops 90 days after ERI (Medtronic, DOMAIN-RESEARCH §1.3)."""

BATTERY_BASE_PERCENT_PER_DAY: Final = 0.0352
"""Battery drain with the motor idle. With :data:`BATTERY_PERCENT_PER_ML` this gives about 6 years
to ERI at 0.3 mL/day, 4.5 years at 1 mL/day and 6.8 years at the minimum rate (DOMAIN.md:
about 6 years, 4.5–7, higher flow drains faster)."""

BATTERY_PERCENT_PER_ML: Final = 0.01956
"""Battery drain per mL the motor pushes (boluses included)."""

PATIENT_BOLUS_WINDOW_S: Final = SECONDS_PER_DAY
"""Patient-bolus daily maximum counts activations in a rolling 24 h."""

RESIDUAL_READING_SD_FRACTION: Final = 0.025
"""Spread of the residual as read off the syringe at a refill: about ±2.5 % ([V-S24]: small
syringe differences are hard to see; DOMAIN-RESEARCH §5)."""

RESIDUAL_READING_RESOLUTION_ML: Final = 0.1
"""Graduation the withdrawn residual is read to. [A] a 20 mL syringe's 0.1 mL marks."""

_EPS_ML: Final = 1e-9


class EventKind(StrEnum):
    """What :meth:`Pump.next_event` can schedule."""

    RESERVOIR_LOW = "reservoir_low"
    RESERVOIR_EMPTY = "reservoir_empty"
    TRUTH_DRY = "truth_dry"
    BATTERY_ERI = "battery_eri"
    BATTERY_EOS = "battery_eos"
    BOLUS_END = "bolus_end"
    STALL_RECOVERY = "stall_recovery"
    TIP_CONCENTRATION = "tip_concentration"
    REFILL_REMINDER = "refill_reminder"
    RADIO_BACK = "radio_back"
    NONE = "none"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class AlarmChange:
    """A device alarm was raised or cleared at ``at`` (seconds)."""

    code: AlarmCode
    raised: bool
    alarm_id: str
    raised_at: float
    at: float
    message: str


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ClinicalEvent:
    """Something that matters to the patient but is not an alarm: what the simulator's observers
    (the scenario runner, an instructor) see. Some only the truth knows (``pocket_fill``,
    ``delivery_stopped`` when the reservoir really runs dry, ``concentration_at_tip``,
    ``side_port_injection``, ``valve_dump``); what the pump itself records is in :attr:`Pump.log`."""

    kind: str  # e.g. delivery_stopped, delivery_resumed, bolus_refused, pocket_fill, refill, reprogram
    at: float
    detail: str = ""


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the pump's own event log (seconds of simulation time; see the contract's
    :class:`~twin.contract.messages.DeviceLogEntry` for the fields)."""

    serial: int
    at: float
    kind: DeviceLogKind
    detail: str = ""
    volume_ml: float | None = None
    expected_residual_ml: float | None = None
    measured_residual_ml: float | None = None
    concentration_before_mg_per_ml: float | None = None
    concentration_after_mg_per_ml: float | None = None
    dose_before_mg_per_day: float | None = None
    dose_after_mg_per_day: float | None = None


Effect = AlarmChange | ClinicalEvent


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of a command: applied or rejected (with a reason), details and effects."""

    applied: bool
    reason: str | None = None
    details: dict[str, float | int | str | bool | None] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatteryModel:
    """Battery drain: ``base_percent_per_day`` plus ``percent_per_ml`` of what the motor pushes."""

    base_percent_per_day: float = BATTERY_BASE_PERCENT_PER_DAY
    percent_per_ml: float = BATTERY_PERCENT_PER_ML
    eri_percent: float = ERI_PERCENT
    eri_to_eos_days: float = ERI_TO_EOS_DAYS

    def days_to_eri(self, percent: float, rate_ml_per_day: float) -> float:
        """Days from ``percent`` to ERI at a constant flow."""
        drain = self.base_percent_per_day + self.percent_per_ml * rate_ml_per_day
        return max(0.0, percent - self.eri_percent) / drain


@dataclass(frozen=True, slots=True)
class PumpConfig:
    """Fixed properties of one implanted pump."""

    reservoir_capacity_ml: float = 20.0
    catheter_volume_ml: float = 0.25
    unusable_residual_ml: float = UNUSABLE_RESIDUAL_ML
    battery: BatteryModel = BatteryModel()
    inherent_flow_bias: float = MEAN_FLOW_BIAS
    flow_bias_sd: float = FLOW_BIAS_SD_PER_REFILL
    audible_alarms: bool = True
    valve_gated: bool = False
    """Prometra-class: a pressurised reservoir behind a valve pair, no rotor (no motor stall; an MRI
    without emptying opens the valves, [V-S18])."""
    counts_during_stall: bool = True
    """During a motor stall the calculated reservoir keeps falling at the programmed rate, so the
    next refill finds more left than expected (SynchroMed II, [I] DOMAIN-RESEARCH §4.1 and §8)."""
    residual_reading_sd_fraction: float = RESIDUAL_READING_SD_FRACTION
    residual_reading_resolution_ml: float = RESIDUAL_READING_RESOLUTION_ML
    log_capacity: int = MAX_EVENT_LOG_ENTRIES


@dataclass(frozen=True, slots=True)
class PumpStart:
    """Where a pump stands when the simulation starts."""

    drug: Drug
    concentration_mg_per_ml: float
    program: Program
    reservoir_ml: float
    low_reservoir_threshold_ml: float = DEFAULT_LOW_RESERVOIR_THRESHOLD_ML
    battery_percent: float = 100.0
    delivered_ml_total: float = 0.0
    refill_reminder_at: float | None = None
    # a pump resumed from a report (the twin's prediction) may already be past ERI, stalled or failed
    battery_status: BatteryStatus = BatteryStatus.OK
    eri_at: float | None = None
    eos_at: float | None = None
    motor_stalled: bool = False
    memory_error: bool = False
    bolus: Bolus | None = None
    """A bolus in progress (the twin's prediction from a report taken during one)."""


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Sample:
    """What the pump (and the truth behind it) looks like at one instant."""

    at: float
    reservoir_ml: float
    delivered_ml_total: float
    current_rate_ml_per_day: float
    dose_mg_per_day: float
    battery_percent: float
    motor: MotorState
    infusing: bool
    true_reservoir_ml: float
    to_patient_ml: float
    lost_ml: float
    actual_concentration_mg_per_ml: float
    actual_dose_mg_per_day: float
    catheter: CatheterState
    to_patient_mg: float = 0.0
    tip_concentration_mg_per_ml: float = 0.0


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class RefillLog:
    """The last refill as the pump logged it: expected (calculated) vs measured residual."""

    at: float
    expected_residual_ml: float
    measured_residual_ml: float
    volume_added_ml: float
    drug: Drug
    concentration_mg_per_ml: float


@dataclass(slots=True)
class _ActiveAlarm:
    alarm_id: str
    raised_at: float


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Bolus:
    """A bolus on top of the base program: ``volume_ml`` evenly from ``start`` to ``end`` (seconds)."""

    source: Literal["clinician", "patient"]
    volume_ml: float
    start: float
    end: float

    @property
    def rate_ml_per_s(self) -> float:
        return self.volume_ml / (self.end - self.start)


_Projection = tuple[float, float, float, float, float, float, float]
"""Where the moving quantities stand at an instant: reservoir (belief), delivered total, true
reservoir, to the patient, leaked, battery percent, and what left the reservoir into the catheter
(a plain tuple: one is made at every step)."""


def schedule_of(program: Program, day_origin_s: float) -> DailySchedule:
    """The program's flow as a daily schedule in mL per second."""
    per_s = 1.0 / SECONDS_PER_DAY
    if program.mode is InfusionMode.CONTINUOUS:
        assert program.rate_ml_per_day is not None
        return DailySchedule.constant(program.rate_ml_per_day * per_s, day_origin_s)
    if program.mode is InfusionMode.FLEXIBLE:
        return DailySchedule(
            tuple(s.start_minute * 60.0 for s in program.steps),
            tuple(s.rate_ml_per_day * per_s for s in program.steps),
            day_origin_s,
        )
    if program.mode is InfusionMode.MINIMUM_RATE:
        return DailySchedule.constant(MINIMUM_RATE_MODE_ML_PER_DAY * per_s, day_origin_s)
    return DailySchedule.constant(0.0, day_origin_s)


MINIMUM_RATE_PROGRAM: Final = Program(mode=InfusionMode.MINIMUM_RATE)


_REFILL_DETAILS: dict[tuple[type, float, Drug, type, float], tuple[str, str]] = {}
"""The refill's log and event texts by what they are made of (a pump is refilled with the same
volume, drug and concentration over and over); bounded by :data:`_REFILL_DETAILS_SIZE`."""
_REFILL_DETAILS_SIZE: Final = 4096


def _refill_details(volume_ml: float, drug: Drug, concentration_mg_per_ml: float) -> tuple[str, str]:
    """``(f"{volume:g} mL {drug} {concentration:g} mg/mL", f"{volume:g} mL {drug}")``, remembered.
    The key holds each number's type beside it, and zeros are never remembered (``-0.0 == 0.0``
    formats as ``-0``): a remembered text is always the one these values format to."""
    key = (type(volume_ml), volume_ml, drug, type(concentration_mg_per_ml), concentration_mg_per_ml)
    known = _REFILL_DETAILS.get(key)
    if known is not None:
        return known
    texts = (
        f"{volume_ml:g} mL {drug._value_} {concentration_mg_per_ml:g} mg/mL",
        f"{volume_ml:g} mL {drug._value_}",
    )
    if volume_ml and concentration_mg_per_ml:
        if len(_REFILL_DETAILS) >= _REFILL_DETAILS_SIZE:
            _REFILL_DETAILS.clear()
        _REFILL_DETAILS[key] = texts
    return texts


class Pump:
    """One pump: its belief, the truth, its alarms. See the module docstring."""

    def __init__(
        self,
        config: PumpConfig,
        start: PumpStart,
        *,
        rng: random.Random,
        t0: float = 0.0,
        day_origin_s: float = 0.0,
    ) -> None:
        if start.reservoir_ml > config.reservoir_capacity_ml:
            raise ValueError("initial reservoir volume exceeds the capacity")
        self.config = config
        self._rng = rng
        self._day_origin = day_origin_s
        self.t = t0
        # programming
        self.drug = start.drug
        self.concentration_mg_per_ml = start.concentration_mg_per_ml
        self.program = start.program
        self.low_threshold_ml = start.low_reservoir_threshold_ml
        self.program_changed_at: float | None = None
        self._schedule = schedule_of(start.program, day_origin_s)
        self._battery_schedule: tuple[DailySchedule, DailySchedule] | None = None
        # memos of values computed from the state (each checked against what it was computed from)
        self._motor_flow: tuple[DailySchedule, Bolus | None, Flow] | None = None
        self._battery_flows: tuple[Flow, Flow] | None = None
        self._idle_battery_flow: Flow | None = None
        self._next_event_memo: tuple[tuple[object, ...], tuple[float, EventKind]] | None = None
        # belief
        self.reservoir_ml = start.reservoir_ml
        self.delivered_ml_total = start.delivered_ml_total
        self._belief_empty = False
        # truth
        self.true_reservoir_ml = start.reservoir_ml
        self.actual_concentration_mg_per_ml = start.concentration_mg_per_ml
        self.filled_ml = start.reservoir_ml  # everything ever put in (initial contents included)
        self.to_patient_ml = 0.0
        self.leaked_ml = 0.0
        self.pocket_ml = 0.0
        self.withdrawn_ml = 0.0
        self.to_patient_mg = 0.0
        self.catheter_contents = CatheterContents(config.catheter_volume_ml, start.concentration_mg_per_ml)
        self._truth_dry = False
        self.flow_bias = self._draw_bias()
        # hardware
        self.battery_percent = start.battery_percent
        self.battery_status = start.battery_status
        self.eri_at: float | None = start.eri_at
        self.eos_at: float | None = start.eos_at
        if self.battery_status is BatteryStatus.ERI and self.eos_at is None:
            raise ValueError("a pump past ERI needs its end-of-service time")
        self.motor_stalled = start.motor_stalled
        self.stall_recover_at: float | None = None
        self.awaiting_interrogation = False
        self.memory_error = start.memory_error
        # faults (simulation only)
        self.occlusion = 0.0
        self.leak = 0.0
        self.fault_bias = 0.0
        self.armed_pocket_fill = 0.0
        self.armed_concentration: float | None = None
        self.armed_withdrawn_fraction: float | None = None
        self.armed_side_port = False
        self.radio_silent_until: float | None = None
        self._saved_program_before_reset: Program | None = None
        self._saved_battery_before_depletion: tuple[float, BatteryStatus, float | None, float | None] | None = None
        # boluses
        self.bolus: Bolus | None = start.bolus
        self._patient_bolus_times: deque[float] = deque()
        self.patient_bolus_refused = 0
        # refills and reminders
        self.refill_reminder_at = start.refill_reminder_at
        self.last_refill: RefillLog | None = None
        # the pump's own event log (newest last)
        self.log: deque[LogEntry] = deque(maxlen=config.log_capacity)
        self.log_serial = 0
        # alarms
        self.alarms: dict[AlarmCode, _ActiveAlarm] = {}
        self._alarm_counter = 0
        if self.battery_status is BatteryStatus.OK and self.battery_percent <= config.battery.eri_percent:
            raise ValueError("a pump cannot start at or below ERI with battery status ok; give its ERI state")
        self._initial_effects = self._sync_reservoir_alarms(t0)
        if self.battery_status is not BatteryStatus.OK:
            self.alarms[AlarmCode.BATTERY_ERI] = _ActiveAlarm("resumed-battery_eri", t0)
        if self.battery_status is BatteryStatus.EOS:
            self.alarms[AlarmCode.BATTERY_EOS] = _ActiveAlarm("resumed-battery_eos", t0)
        if self.motor_stalled:
            self.alarms[AlarmCode.MOTOR_STALL] = _ActiveAlarm("resumed-motor_stall", t0)
        if self.memory_error:
            self.alarms[AlarmCode.MEMORY_ERROR] = _ActiveAlarm("resumed-memory_error", t0)

    # ------------------------------------------------------------------------------ derived state

    @property
    def motor(self) -> MotorState:
        if self.motor_stalled:
            return MotorState.STALLED
        return MotorState.RUNNING if self._motor_commanded else MotorState.STOPPED

    @property
    def _motor_commanded(self) -> bool:
        return not (
            self.program.mode is InfusionMode.STOPPED or self.memory_error or self.battery_status is BatteryStatus.EOS
        )

    @property
    def motor_running(self) -> bool:
        return not (
            self.motor_stalled
            or self.program.mode is InfusionMode.STOPPED
            or self.memory_error
            or self.battery_status is BatteryStatus.EOS
        )

    @property
    def infusing(self) -> bool:
        """True when the pump believes it is delivering drug."""
        return self.motor_running and not self._belief_empty

    @property
    def stop_reason(self) -> StopReason | None:
        if self.battery_status is BatteryStatus.EOS:
            return StopReason.END_OF_SERVICE
        if self.memory_error:
            return StopReason.MEMORY_ERROR
        if self.motor_stalled:
            return StopReason.MOTOR_STALL
        if self.program.mode is InfusionMode.STOPPED:
            return StopReason.PROGRAMMED
        return None

    @property
    def truth_multiplier(self) -> float:
        """True reservoir outflow per mL the motor pushes."""
        return max(0.0, 1.0 + self.flow_bias + self.fault_bias) * (1.0 - self.occlusion)

    @property
    def catheter(self) -> CatheterState:
        if self.leak >= 1.0:
            return CatheterState.DISCONNECTED
        if self.leak > 0.0:
            return CatheterState.LEAKING
        if self.occlusion >= 1.0:
            return CatheterState.OCCLUDED
        if self.occlusion > 0.0:
            return CatheterState.PARTIALLY_OCCLUDED
        return CatheterState.PATENT

    def motor_flow(self) -> Flow | None:
        """What the motor pushes (mL/s) from now on, or None when it is not turning (one
        :class:`Flow` per schedule and bolus, kept while they last)."""
        if (
            self.motor_stalled
            or self.program.mode is InfusionMode.STOPPED
            or self.memory_error
            or self.battery_status is BatteryStatus.EOS
        ):
            return None  # not self.motor_running
        schedule, bolus = self._schedule, self.bolus
        memo = self._motor_flow
        if memo is not None and memo[0] is schedule and memo[1] is bolus:
            return memo[2]
        overlay = None
        if bolus is not None:
            overlay = Overlay(bolus.start, bolus.end, bolus.rate_ml_per_s)
        flow = Flow(schedule, overlay)
        self._motor_flow = (schedule, bolus, flow)
        return flow

    def belief_flow(self) -> Flow | None:
        """What the pump's calculation counts (mL/s): the motor's flow, or during a stall the
        programmed flow when the pump keeps counting (:attr:`PumpConfig.counts_during_stall`)."""
        if self.motor_running:
            return self.motor_flow()
        if self.motor_stalled and self._motor_commanded and self.config.counts_during_stall:
            return Flow(self._schedule)
        return None

    @property
    def programmed_ml_per_day(self) -> float:
        """Mean programmed flow over a day, boluses excluded (mL/day)."""
        return self._schedule.per_day

    @property
    def programmed_dose_mg_per_day(self) -> float:
        """Mean programmed daily dose: programmed concentration × mean programmed flow (mg/day)."""
        return self.concentration_mg_per_ml * self._schedule.per_day

    @property
    def tip_concentration_mg_per_ml(self) -> float:
        """Concentration now leaving the catheter tip (the truth; the reservoir's for a catheter of volume 0)."""
        tip = self.catheter_contents.tip_concentration_mg_per_ml
        return self.actual_concentration_mg_per_ml if tip is None else tip

    def _battery_flow(self, motor: Flow | None) -> Flow:
        """The battery's drain (percent/s) while the motor pushes ``motor`` (one :class:`Flow`
        per motor flow, kept while it lasts)."""
        model = self.config.battery
        base = model.base_percent_per_day / SECONDS_PER_DAY
        if motor is None:
            idle = self._idle_battery_flow
            if idle is None:
                idle = self._idle_battery_flow = Flow(DailySchedule.constant(base, self._day_origin))
            return idle
        flows = self._battery_flows
        if flows is not None and flows[0] is motor:
            return flows[1]
        k = model.percent_per_ml
        overlay = motor.overlay
        cached = self._battery_schedule
        if cached is None or cached[0] is not motor.base:
            cached = (motor.base, motor.base.scaled(k, base))  # one per program, not per call
            self._battery_schedule = cached
        flow = Flow(cached[1], Overlay(overlay.start, overlay.end, overlay.rate * k) if overlay else None)
        self._battery_flows = (motor, flow)
        return flow

    def current_rate_ml_per_day(self, t: float) -> float:
        motor = self.motor_flow()
        if motor is None or self._belief_empty:
            return 0.0
        return motor.rate_at(t) * SECONDS_PER_DAY

    def battery_percent_at(self, t: float) -> float:
        if self.battery_status is BatteryStatus.EOS:
            return 0.0
        if self.battery_status is BatteryStatus.ERI:
            assert self.eri_at is not None
            assert self.eos_at is not None
            span = self.eos_at - self.eri_at
            left = (self.eos_at - t) / span if span > 0 else 0.0
            return max(0.0, min(self.config.battery.eri_percent, self.config.battery.eri_percent * left))
        return self.battery_percent

    # --------------------------------------------------------------------------------- the clock

    def _project(self, t: float) -> _Projection:
        """Everything that moves between events, at ``t`` (no event may fall in between)."""
        dt = t - self.t
        if dt <= 0:  # nothing moves: what the computation below gives when nothing has flowed
            return (
                self.reservoir_ml,
                self.delivered_ml_total,
                self.true_reservoir_ml,
                self.to_patient_ml,
                self.leaked_ml,
                self.battery_percent,
                0.0,
            )
        t0, config = self.t, self.config
        motor = self.motor_flow()
        belief = motor if motor is not None else self.belief_flow()  # belief_flow(): the motor's while it runs
        counted = belief.amount_between(t0, t) if belief is not None else 0.0
        reservoir, delivered = self.reservoir_ml, self.delivered_ml_total
        if counted > 0 and not self._belief_empty:
            used = min(counted, max(0.0, reservoir - config.unusable_residual_ml))
            reservoir -= used
            delivered += used
        moved = motor.amount_between(t0, t) if motor is not None else 0.0
        true_res, patient, leaked, out = self.true_reservoir_ml, self.to_patient_ml, self.leaked_ml, 0.0
        if moved > 0 and not self._truth_dry:
            multiplier = max(0.0, 1.0 + self.flow_bias + self.fault_bias) * (1.0 - self.occlusion)  # truth_multiplier
            out = min(moved * multiplier, max(0.0, true_res - config.unusable_residual_ml))
            true_res -= out
            leak = self.leak
            patient += out * (1.0 - leak)
            leaked += out * leak
        battery = self.battery_percent
        if self.battery_status is BatteryStatus.OK:
            battery -= self._battery_flow(motor).amount_between(t0, t)
            battery = max(battery, config.battery.eri_percent)
        return reservoir, delivered, true_res, patient, leaked, battery, out

    def _through_catheter(self, out_ml: float) -> None:
        """``out_ml`` left the reservoir: push it through the catheter; the leak's share of what
        leaves the tip goes to tissue, the rest (and its mass) to the patient."""
        mass = self.catheter_contents.push(out_ml, self.actual_concentration_mg_per_ml)
        self.to_patient_mg += mass * (1.0 - self.leak)

    def advance_to(self, t: float) -> None:
        """Move the clock to ``t`` (no event may fall strictly between: use :meth:`process_due`)."""
        if t <= self.t:
            return
        (
            self.reservoir_ml,
            self.delivered_ml_total,
            self.true_reservoir_ml,
            self.to_patient_ml,
            self.leaked_ml,
            self.battery_percent,
            out_ml,
        ) = self._project(t)
        self._through_catheter(out_ml)
        self.t = t
        self._prune_patient_boluses(t)

    def sample(self, t: float) -> Sample:
        """The pump at ``t`` (>= its clock), without changing it."""
        t = max(t, self.t)
        reservoir, delivered, true_res, patient, leaked, battery, out = self._project(t)
        commanded = self._motor_commanded
        running = commanded and not self.motor_stalled
        motor = self.motor_flow() if running else None
        motor_rate = motor.rate_at(t) if motor is not None else 0.0  # what current_rate_ml_per_day reads
        rate = 0.0 if motor is None or self._belief_empty else motor_rate * SECONDS_PER_DAY
        tip = self.tip_concentration_mg_per_ml
        true_rate = (
            motor_rate * SECONDS_PER_DAY * self.truth_multiplier * (1.0 - self.leak)
            if motor is not None and not self._truth_dry
            else 0.0
        )
        if self.battery_status is not BatteryStatus.OK:
            battery = self.battery_percent_at(t)
        return Sample(
            t,
            reservoir,
            delivered,
            rate,
            rate * self.concentration_mg_per_ml,
            battery,
            MotorState.STALLED if self.motor_stalled else MotorState.RUNNING if commanded else MotorState.STOPPED,
            running and not self._belief_empty,
            true_res,
            patient,
            leaked + self.pocket_ml,
            self.actual_concentration_mg_per_ml,
            true_rate * tip,
            self.catheter,
            self.to_patient_mg + out * (1.0 - self.leak) * tip,
            tip,
        )

    def reported(self, t: float) -> tuple[float, float, float, float, MotorState, bool]:
        """What a state reports of :meth:`sample` (``t`` >= the clock): (reservoir, delivered total,
        current rate, battery percent, motor, infusing), each the same float or member the sample
        holds, without the truth's figures (tests/core/test_pump_properties.py holds them equal)."""
        t = max(t, self.t)
        reservoir, delivered, _, _, _, battery, _ = self._project(t)
        stalled = self.motor_stalled
        program_mode = self.program.mode
        commanded = not (
            program_mode is InfusionMode.STOPPED or self.memory_error or self.battery_status is BatteryStatus.EOS
        )
        running = commanded and not stalled
        rate = 0.0
        if running and not self._belief_empty:
            motor = self.motor_flow()
            if motor is not None:
                rate = motor.rate_at(t) * SECONDS_PER_DAY
        if self.battery_status is not BatteryStatus.OK:
            battery = self.battery_percent_at(t)
        return (
            reservoir,
            delivered,
            rate,
            battery,
            MotorState.STALLED if stalled else MotorState.RUNNING if commanded else MotorState.STOPPED,
            running and not self._belief_empty,
        )

    def next_event(self) -> tuple[float, EventKind]:
        """The earliest scheduled event after the clock, and its kind (``inf, NONE`` if none).

        Memoised: answered from the last computation while everything it was computed from is
        unchanged (:meth:`_next_event_key`), else computed (:meth:`next_event_direct`)."""
        key = self._next_event_key()
        memo = self._next_event_memo
        if memo is not None and memo[0] == key:
            return memo[1]
        value = self.next_event_direct()
        self._next_event_memo = (key, value)
        return value

    def _next_event_key(self) -> tuple[object, ...]:
        """Everything :meth:`next_event_direct` reads (the flows through what they are made of)."""
        alarms = self.alarms
        return (
            self.t,
            self.config,
            self._day_origin,
            self.program.mode,
            self.memory_error,
            self.battery_status,
            self.motor_stalled,
            self._schedule,
            self.bolus,
            self._belief_empty,
            AlarmCode.RESERVOIR_LOW in alarms,
            self.reservoir_ml,
            self.low_threshold_ml,
            self.flow_bias,
            self.fault_bias,
            self.occlusion,
            self._truth_dry,
            self.true_reservoir_ml,
            self.catheter_contents.volume_to_next_change_ml(self.actual_concentration_mg_per_ml),
            self.battery_percent,
            self.eos_at,
            self.stall_recover_at,
            self.refill_reminder_at,
            AlarmCode.REFILL_REMINDER in alarms,
            self.radio_silent_until,
        )

    def next_event_direct(self) -> tuple[float, EventKind]:
        """:meth:`next_event`, computed."""
        # each candidate in turn, as consider(when, kind) would: taken when earlier than the best so
        # far, at the clock if it is before it (max(when, t): ``when`` unless t is larger)
        t = self.t
        best_when, best_kind = math.inf, EventKind.NONE
        motor = self.motor_flow()
        belief = motor if motor is not None else self.belief_flow()  # belief_flow(): the motor's while it runs
        residual = self.config.unusable_residual_ml
        alarms = self.alarms
        if belief is not None and not self._belief_empty:
            reservoir, threshold = self.reservoir_ml, self.low_threshold_ml
            if AlarmCode.RESERVOIR_LOW not in alarms and reservoir > threshold:
                when = belief.time_to_accumulate(t, reservoir - threshold)
                if when < best_when:
                    best_when, best_kind = (t if t > when else when), EventKind.RESERVOIR_LOW
            when = belief.time_to_accumulate(t, reservoir - residual)
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.RESERVOIR_EMPTY
        if motor is not None:
            mult = max(0.0, 1.0 + self.flow_bias + self.fault_bias) * (1.0 - self.occlusion)  # truth_multiplier
            if not self._truth_dry and mult > 0:
                when = motor.time_to_accumulate(t, (self.true_reservoir_ml - residual) / mult)
                if when < best_when:
                    best_when, best_kind = (t if t > when else when), EventKind.TRUTH_DRY
                to_change = self.catheter_contents.volume_to_next_change_ml(self.actual_concentration_mg_per_ml)
                if to_change is not None:
                    when = motor.time_to_accumulate(t, to_change / mult)
                    if when < best_when:
                        best_when, best_kind = (t if t > when else when), EventKind.TIP_CONCENTRATION
        battery_status = self.battery_status
        if battery_status is BatteryStatus.OK:
            left = self.battery_percent - self.config.battery.eri_percent
            when = self._battery_flow(motor).time_to_accumulate(t, left)
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.BATTERY_ERI
        elif battery_status is BatteryStatus.ERI and self.eos_at is not None:
            when = self.eos_at
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.BATTERY_EOS
        if self.bolus is not None:
            when = self.bolus.end
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.BOLUS_END
        if self.motor_stalled and self.stall_recover_at is not None:
            when = self.stall_recover_at
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.STALL_RECOVERY
        if self.refill_reminder_at is not None and AlarmCode.REFILL_REMINDER not in alarms:
            when = self.refill_reminder_at
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.REFILL_REMINDER
        if self.radio_silent_until is not None:
            when = self.radio_silent_until
            if when < best_when:
                best_when, best_kind = (t if t > when else when), EventKind.RADIO_BACK
        return best_when, best_kind

    def process_due(self, t: float) -> list[Effect]:
        """Apply every event due at or before ``t`` in time order, then move the clock to ``t``."""
        initial = self._initial_effects
        effects: list[Effect] = []
        if initial:
            effects.extend(initial)
            self._initial_effects = []
        while True:
            when, kind = self.next_event()
            if when > t or kind is EventKind.NONE:
                break
            self.advance_to(when)
            effects.extend(self._on_event(kind, when))
        self.advance_to(t)
        return effects

    def _on_event(self, kind: EventKind, t: float) -> list[Effect]:
        cfg = self.config
        if kind is EventKind.RESERVOIR_LOW:
            # snap away float drift: the crossing time was computed for exactly this volume
            drift = self.reservoir_ml - self.low_threshold_ml
            if 0 < drift < 1e-6:
                self.reservoir_ml -= drift
                self.delivered_ml_total += drift
            return self._raise(AlarmCode.RESERVOIR_LOW, t, f"Low reservoir: {self.reservoir_ml:.2f} mL left")
        if kind is EventKind.RESERVOIR_EMPTY:
            moved = self.reservoir_ml - cfg.unusable_residual_ml
            self.delivered_ml_total += max(0.0, moved)
            self.reservoir_ml = cfg.unusable_residual_ml
            self._belief_empty = True
            effects = self._sync_reservoir_alarms(t)
            effects.append(ClinicalEvent("pump_reports_empty", t))
            return effects
        if kind is EventKind.TRUTH_DRY:
            out = max(0.0, self.true_reservoir_ml - cfg.unusable_residual_ml)
            self.true_reservoir_ml -= out
            self.to_patient_ml += out * (1.0 - self.leak)
            self.leaked_ml += out * self.leak
            self._through_catheter(out)
            self._truth_dry = True
            return [ClinicalEvent("delivery_stopped", t, "reservoir ran dry")]
        if kind is EventKind.TIP_CONCENTRATION:
            self.to_patient_mg += self.catheter_contents.drop_head() * (1.0 - self.leak)
            tip = self.tip_concentration_mg_per_ml
            return [ClinicalEvent("concentration_at_tip", t, f"{tip:g} mg/mL now leaves the catheter tip")]
        if kind is EventKind.BATTERY_ERI:
            self.battery_percent = cfg.battery.eri_percent
            self.battery_status = BatteryStatus.ERI
            self.eri_at = t
            self.eos_at = t + cfg.battery.eri_to_eos_days * SECONDS_PER_DAY
            self._log(t, DeviceLogKind.BATTERY_ERI, "elective replacement indicator")
            return self._raise(AlarmCode.BATTERY_ERI, t, "Elective replacement indicator: end of service in 90 days")
        if kind is EventKind.BATTERY_EOS:
            was_running = self.motor_running
            self.battery_status = BatteryStatus.EOS
            self.battery_percent = 0.0
            self.bolus = None
            self._log(t, DeviceLogKind.BATTERY_EOS, "end of service: infusion stopped")
            effects = self._raise(AlarmCode.BATTERY_EOS, t, "End of service: the pump has stopped")
            if was_running:
                effects.append(ClinicalEvent("delivery_stopped", t, "end of service"))
            return effects
        if kind is EventKind.BOLUS_END:
            self.bolus = None
            return [ClinicalEvent("bolus_completed", t)]
        if kind is EventKind.STALL_RECOVERY:
            return self._recover_motor(t, "the rotor turns again")
        if kind is EventKind.REFILL_REMINDER:
            return self._raise(AlarmCode.REFILL_REMINDER, t, "Refill reminder: the programmed refill date is here")
        if kind is EventKind.RADIO_BACK:
            self.radio_silent_until = None
            return [ClinicalEvent("telemetry_restored", t)]
        raise AssertionError(f"unhandled event {kind}")  # pragma: no cover

    def _recover_motor(self, t: float, why: str) -> list[Effect]:
        self.motor_stalled = False
        self.stall_recover_at = None
        self.awaiting_interrogation = False
        self._log(t, DeviceLogKind.MOTOR_STALL_RECOVERY, why)
        effects = self._clear(AlarmCode.MOTOR_STALL, t)
        effects.append(ClinicalEvent("motor_stall_recovery", t, why))
        return effects

    def _log(self, t: float, kind: DeviceLogKind, detail: str = "", **fields: float | None) -> None:
        """Append to the pump's event log (what an interrogation will show)."""
        self.log_serial += 1
        self.log.append(LogEntry(self.log_serial, t, kind, detail[:200], **fields))

    # ------------------------------------------------------------------------------------ alarms

    def _raise(self, code: AlarmCode, t: float, message: str) -> list[Effect]:
        if code in self.alarms:
            return []
        self._alarm_counter += 1
        alarm_id = f"a{self._alarm_counter}-{code._value_}"
        self.alarms[code] = _ActiveAlarm(alarm_id, t)
        return [AlarmChange(code, True, alarm_id, t, t, message)]

    def _clear(self, code: AlarmCode, t: float) -> list[Effect]:
        active = self.alarms.pop(code, None)
        if active is None:
            return []
        title = ALARM_CATALOGUE[code].title
        return [AlarmChange(code, False, active.alarm_id, active.raised_at, t, f"{title} cleared")]

    def _sync_reservoir_alarms(self, t: float) -> list[Effect]:
        """Make the reservoir alarms agree with the calculated volume (after a refill or reprogram)."""
        effects: list[Effect] = []
        residual = self.config.unusable_residual_ml
        empty = self.reservoir_ml <= residual + _EPS_ML
        low = self.reservoir_ml <= self.low_threshold_ml + _EPS_ML
        if low:
            effects += self._raise(AlarmCode.RESERVOIR_LOW, t, f"Low reservoir: {self.reservoir_ml:.2f} mL left")
        else:
            effects += self._clear(AlarmCode.RESERVOIR_LOW, t)
        if empty:
            self._belief_empty = True
            effects += self._raise(AlarmCode.RESERVOIR_EMPTY, t, "Reservoir empty: the pump cannot deliver")
        else:
            self._belief_empty = False
            effects += self._clear(AlarmCode.RESERVOIR_EMPTY, t)
        return effects

    # ---------------------------------------------------------------------------------- commands

    def _draw_bias(self) -> float:
        return self.config.inherent_flow_bias + self._rng.gauss(0.0, self.config.flow_bias_sd)

    def refill(self, t: float, action: RefillAction, *, reminder_at: float | None = None) -> Outcome:
        """Withdraw the residual and read it off the syringe, then fill ``volume_ml``. Armed bedside
        faults change what really happens: a pocket fill diverts part of the volume; an incomplete
        withdrawal leaves part of the residual behind (it mixes with the new drug); a needle in the
        catheter access port withdraws nothing and sends the whole volume down the catheter.

        ``reminder_at`` (simulation seconds) sets the refill alarm clock; None switches it off.
        """
        self._require_clock(t)
        cfg = self.config
        if action.volume_ml > cfg.reservoir_capacity_ml + _EPS_ML:
            return Outcome(
                False, f"volume {action.volume_ml} mL exceeds the {cfg.reservoir_capacity_ml:g} mL reservoir"
            )
        expected = self.reservoir_ml
        before = self.true_reservoir_ml
        conc_before, dose_before = self.concentration_mg_per_ml, self.programmed_dose_mg_per_day
        syringe_conc = self.armed_concentration or action.concentration_mg_per_ml
        effects: list[Effect] = []
        if self.armed_side_port:
            # the needle is in the catheter access port: nothing comes back, everything goes to the CSF
            withdrawn = 0.0
            self.filled_ml += action.volume_ml
            self.to_patient_ml += action.volume_ml * (1.0 - self.leak)
            self.leaked_ml += action.volume_ml * self.leak
            mass = self.catheter_contents.push(action.volume_ml, syringe_conc)
            self.to_patient_mg += mass * (1.0 - self.leak)
            effects.append(
                ClinicalEvent(
                    "side_port_injection",
                    t,
                    f"{action.volume_ml:g} mL at {syringe_conc:g} mg/mL injected into the catheter access port",
                )
            )
        else:
            fraction = 1.0 if self.armed_withdrawn_fraction is None else self.armed_withdrawn_fraction
            withdrawn = before * fraction
            left = before - withdrawn
            pocket = action.volume_ml * self.armed_pocket_fill
            into = action.volume_ml - pocket
            overflow = max(0.0, left + into - cfg.reservoir_capacity_ml)  # stays in the syringe
            into -= overflow
            self.withdrawn_ml += withdrawn
            self.filled_ml += into + pocket
            self.pocket_ml += pocket
            self.true_reservoir_ml = left + into
            if self.true_reservoir_ml > 0:
                self.actual_concentration_mg_per_ml = (
                    left * self.actual_concentration_mg_per_ml + into * syringe_conc
                ) / self.true_reservoir_ml
            else:
                self.actual_concentration_mg_per_ml = syringe_conc
            if pocket > 0:
                effects.append(ClinicalEvent("pocket_fill", t, f"{pocket:.2f} mL injected into the pocket"))
            if left > 0:
                effects.append(ClinicalEvent("incomplete_withdrawal", t, f"{left:.2f} mL left in the reservoir"))
        measured = self._read_syringe(withdrawn)
        self.armed_pocket_fill, self.armed_concentration = 0.0, None
        self.armed_withdrawn_fraction, self.armed_side_port = None, False
        self.drug = action.drug
        self.concentration_mg_per_ml = action.concentration_mg_per_ml
        self.reservoir_ml = action.volume_ml
        self._truth_dry = self.true_reservoir_ml <= cfg.unusable_residual_ml + _EPS_ML
        self.flow_bias = self._draw_bias()
        if action.low_reservoir_threshold_ml is not None:
            self.low_threshold_ml = action.low_reservoir_threshold_ml
        was_dry = before <= cfg.unusable_residual_ml + _EPS_ML
        effects += self._sync_reservoir_alarms(t)
        effects += self._clear(AlarmCode.REFILL_REMINDER, t)
        self.refill_reminder_at = reminder_at
        self.last_refill = RefillLog(
            t, expected, measured, action.volume_ml, action.drug, action.concentration_mg_per_ml
        )
        detail, event_detail = _refill_details(action.volume_ml, action.drug, action.concentration_mg_per_ml)
        self._log(
            t,
            DeviceLogKind.REFILL,
            detail,
            volume_ml=action.volume_ml,
            expected_residual_ml=round(expected, 4),
            measured_residual_ml=measured,
            concentration_before_mg_per_ml=conc_before,
            concentration_after_mg_per_ml=action.concentration_mg_per_ml,
            dose_before_mg_per_day=dose_before,
            dose_after_mg_per_day=self.programmed_dose_mg_per_day,
        )
        effects.append(ClinicalEvent("refill", t, event_detail))
        if was_dry and self.motor_running and not self._truth_dry:
            effects.append(ClinicalEvent("delivery_resumed", t, "refilled"))
        return Outcome(
            True,
            details={
                "expected_residual_ml": round(expected, 4),
                "measured_residual_ml": measured,
                "discrepancy_ml": round(measured - expected, 4),
                "reservoir_ml": round(self.reservoir_ml, 4),
            },
            effects=effects,
        )

    def _read_syringe(self, withdrawn_ml: float) -> float:
        """The withdrawn residual as read: ±``residual_reading_sd_fraction``, to the syringe's graduation."""
        cfg = self.config
        reading = withdrawn_ml * (1.0 + self._rng.gauss(0.0, cfg.residual_reading_sd_fraction))
        step = cfg.residual_reading_resolution_ml
        if step > 0:
            reading = round(reading / step) * step
        return round(max(0.0, reading), 4)

    def reprogram(self, t: float, action: ReprogramAction) -> Outcome:
        self._require_clock(t)
        was_running = self.motor_running and not self._truth_dry
        conc_before, dose_before = self.concentration_mg_per_ml, self.programmed_dose_mg_per_day
        self.program = action.program
        self._schedule = schedule_of(action.program, self._day_origin)
        if action.low_reservoir_threshold_ml is not None:
            self.low_threshold_ml = action.low_reservoir_threshold_ml
        if action.concentration_mg_per_ml is not None:
            self.concentration_mg_per_ml = action.concentration_mg_per_ml
        self.program_changed_at = t
        self._saved_program_before_reset = None
        effects: list[Effect] = []
        if not self._belief_empty:
            effects += self._sync_reservoir_alarms(t)
        mode = action.program.mode
        what = (
            f"{mode._value_} {self.programmed_ml_per_day:.4g} mL/day" if mode is not InfusionMode.STOPPED else "stopped"
        )
        self._log(
            t,
            DeviceLogKind.REPROGRAM,
            what,
            concentration_before_mg_per_ml=conc_before,
            concentration_after_mg_per_ml=self.concentration_mg_per_ml,
            dose_before_mg_per_day=dose_before,
            dose_after_mg_per_day=self.programmed_dose_mg_per_day,
        )
        effects.append(ClinicalEvent("reprogram", t, mode._value_))
        now_running = self.motor_running and not self._truth_dry
        if was_running != now_running:
            effects.append(ClinicalEvent("delivery_resumed" if now_running else "delivery_stopped", t, "reprogrammed"))
        return Outcome(True, details={"mode": mode._value_}, effects=effects)

    def interrogate(self, t: float) -> Outcome:
        """A clinician programmer reads the pump: logged; a pump held in telemetry mode by an MRI
        scan during an alarm resumes infusion now ([V-S14])."""
        self._require_clock(t)
        self._log(t, DeviceLogKind.INTERROGATION, "clinician programmer session")
        effects: list[Effect] = [ClinicalEvent("interrogation", t)]
        resumed = False
        if self.motor_stalled and self.awaiting_interrogation:
            was_delivering = self.motor_running and not self._truth_dry
            effects += self._recover_motor(t, "infusion resumed after the post-MRI interrogation")
            resumed = True
            if not was_delivering and self.motor_running and not self._truth_dry:
                effects.append(ClinicalEvent("delivery_resumed", t, "interrogated after MRI"))
        return Outcome(True, details={"resumed": resumed, "log_entries": len(self.log)}, effects=effects)

    def clinician_bolus(self, t: float, action: ClinicianBolusAction) -> Outcome:
        self._require_clock(t)
        refusal = self._bolus_refusal(action.volume_ml)
        if refusal:
            return Outcome(False, refusal)
        self.bolus = Bolus("clinician", action.volume_ml, t, t + action.duration_minutes * 60.0)
        self._log(
            t,
            DeviceLogKind.CLINICIAN_BOLUS,
            f"{action.volume_ml:g} mL over {action.duration_minutes:g} min",
            volume_ml=action.volume_ml,
        )
        return Outcome(
            True,
            details={"ends_in_s": action.duration_minutes * 60.0},
            effects=[ClinicalEvent("bolus_started", t, f"clinician {action.volume_ml:g} mL")],
        )

    def patient_bolus(self, t: float, action: PatientBolusAction) -> Outcome:
        """A patient activation: refused without settings, in lockout, over the daily maximum."""
        del action
        self._require_clock(t)
        settings = self.program.patient_bolus
        reason: str | None = None
        if settings is None:
            reason = "no patient bolus is programmed"
        else:
            self._prune_patient_boluses(t)
            last = self._patient_bolus_times[-1] if self._patient_bolus_times else None
            if last is not None and t - last < settings.lockout_minutes * 60.0:
                reason = f"lockout: {settings.lockout_minutes - (t - last) / 60.0:.0f} min left"
            elif len(self._patient_bolus_times) >= settings.max_per_day:
                reason = f"daily maximum of {settings.max_per_day} activations reached"
            else:
                reason = self._bolus_refusal(settings.volume_ml)
        if reason is not None or settings is None:
            self.patient_bolus_refused += 1
            self._log(t, DeviceLogKind.PATIENT_BOLUS_REFUSED, reason or "")
            return Outcome(False, reason, effects=[ClinicalEvent("bolus_refused", t, reason or "")])
        self._patient_bolus_times.append(t)
        self.bolus = Bolus("patient", settings.volume_ml, t, t + settings.duration_minutes * 60.0)
        self._log(t, DeviceLogKind.PATIENT_BOLUS, f"{settings.volume_ml:g} mL", volume_ml=settings.volume_ml)
        return Outcome(
            True,
            details={"accepted_last_24h": len(self._patient_bolus_times)},
            effects=[ClinicalEvent("bolus_started", t, f"patient {settings.volume_ml:g} mL")],
        )

    def _bolus_refusal(self, volume_ml: float) -> str | None:
        if not self.infusing:
            return f"the pump is not infusing ({(self.stop_reason or 'empty')})"
        if self.bolus is not None:
            return "a bolus is already in progress"
        if self.reservoir_ml - self.config.unusable_residual_ml < volume_ml:
            return "not enough drug in the reservoir for this bolus"
        return None

    def _prune_patient_boluses(self, t: float) -> None:
        while self._patient_bolus_times and t - self._patient_bolus_times[0] >= PATIENT_BOLUS_WINDOW_S:
            self._patient_bolus_times.popleft()

    @property
    def patient_boluses_last_24h(self) -> int:
        return len(self._patient_bolus_times)

    @property
    def last_patient_bolus_at(self) -> float | None:
        return self._patient_bolus_times[-1] if self._patient_bolus_times else None

    # -------------------------------------------------------------------------------------- faults

    def inject_fault(self, t: float, fault: FaultModel) -> Outcome:
        """Apply a simulation fault (one of the contract's fault models)."""
        self._require_clock(t)
        cfg = self.config
        effects: list[Effect] = []
        was_delivering = self.motor_running and not self._truth_dry
        match fault:
            case CatheterOcclusionFault(fraction=f):
                self.occlusion = f
            case CatheterLeakFault(fraction=f):
                self.leak = f
            case FlowErrorFault(bias=b):
                self.fault_bias = b
            case MotorStallFault(recover_after_s=after, cause=cause):
                if cfg.valve_gated:
                    return Outcome(False, "a valve-gated pump has no rotor to stall")
                # an MRI while the pump sounds an alarm puts it in telemetry mode: infusion resumes
                # only after an interrogation, however soon the rotor could turn ([V-S14])
                held = cause == "mri" and bool(self.alarms)
                if not self.motor_stalled:
                    self.motor_stalled = True
                    self.bolus = None
                    self._log(t, DeviceLogKind.MOTOR_STALL, f"motor stall ({cause})")
                    effects += self._raise(AlarmCode.MOTOR_STALL, t, f"Motor stall ({cause})")
                if held:
                    self.awaiting_interrogation = True
                    self._log(t, DeviceLogKind.TELEMETRY_MODE_HOLD, "MRI during an alarm: waiting for an interrogation")
                self.stall_recover_at = None if after is None or self.awaiting_interrogation else t + after
            case MemoryErrorFault():
                self.memory_error = True
                self.bolus = None
                self._log(t, DeviceLogKind.MEMORY_ERROR, "self-check failed: infusion stopped")
                effects += self._raise(AlarmCode.MEMORY_ERROR, t, "Pump memory error: infusion stopped")
            case LowBatteryResetFault():
                dose_before = self.programmed_dose_mg_per_day
                if self._saved_program_before_reset is None:
                    self._saved_program_before_reset = self.program
                self.program = MINIMUM_RATE_PROGRAM
                self._schedule = schedule_of(self.program, self._day_origin)
                self.bolus = None
                self._log(
                    t,
                    DeviceLogKind.LOW_BATTERY_RESET,
                    f"settings lost: minimum-rate mode {MINIMUM_RATE_MODE_ML_PER_DAY:g} mL/day",
                    dose_before_mg_per_day=dose_before,
                    dose_after_mg_per_day=self.programmed_dose_mg_per_day,
                )
                effects += self._raise(AlarmCode.LOW_BATTERY_RESET, t, "Low battery reset: settings lost, minimum rate")
            case BatteryDepletionFault(eos_after_days=days):
                if self.battery_status is BatteryStatus.OK:
                    self._saved_battery_before_depletion = (
                        self.battery_percent,
                        self.battery_status,
                        self.eri_at,
                        self.eos_at,
                    )
                    self.battery_percent = self.config.battery.eri_percent
                    self.battery_status = BatteryStatus.ERI
                    self.eri_at = t
                    self.eos_at = t + days * SECONDS_PER_DAY
                    self._log(t, DeviceLogKind.BATTERY_ERI, "premature elective replacement indicator")
                    effects += self._raise(AlarmCode.BATTERY_ERI, t, "Elective replacement indicator (premature)")
            case PocketFillFault(fraction=f):
                self.armed_pocket_fill = f
            case WrongConcentrationFault(actual_concentration_mg_per_ml=c):
                self.armed_concentration = c
            case TelemetryLossFault(duration_s=d):
                self.radio_silent_until = t + d
            case IncompleteWithdrawalFault(withdrawn_fraction=f):
                self.armed_withdrawn_fraction = f
            case CatheterAccessPortInjectionFault():
                self.armed_side_port = True
            case MriValveOpeningFault():
                if not cfg.valve_gated:
                    return Outcome(False, "only a valve-gated pump's valves open in a magnetic field")
                out = max(0.0, self.true_reservoir_ml - cfg.unusable_residual_ml)
                self.true_reservoir_ml -= out
                self.to_patient_ml += out * (1.0 - self.leak)
                self.leaked_ml += out * self.leak
                self._through_catheter(out)
                self._truth_dry = True
                effects.append(ClinicalEvent("valve_dump", t, f"{out:.2f} mL emptied into the patient"))
            case _:  # pragma: no cover - exhaustive over the contract's faults
                assert_never(fault)
        now_delivering = self.motor_running and not self._truth_dry
        if was_delivering and not now_delivering:
            effects.append(ClinicalEvent("delivery_stopped", t, type(fault).__name__))
        return Outcome(True, effects=effects)

    def clear_fault(self, t: float, action: ClearFaultAction) -> Outcome:
        """Remove one fault, or all of them: back to a safe baseline (scenario abort)."""
        self._require_clock(t)
        which = action.fault
        everything = which == "all"
        was_delivering = self.motor_running and not self._truth_dry
        effects: list[Effect] = []
        if everything or which == "catheter_occlusion":
            self.occlusion = 0.0
        if everything or which == "catheter_leak":
            self.leak = 0.0
        if everything or which == "flow_error":
            self.fault_bias = 0.0
        if (everything or which == "motor_stall") and self.motor_stalled:
            self.motor_stalled = False
            self.stall_recover_at = None
            self.awaiting_interrogation = False
            effects += self._clear(AlarmCode.MOTOR_STALL, t)
        if (everything or which == "memory_error") and self.memory_error:
            self.memory_error = False
            effects += self._clear(AlarmCode.MEMORY_ERROR, t)
        if everything or which == "low_battery_reset":
            if self._saved_program_before_reset is not None:
                self.program = self._saved_program_before_reset
                self._schedule = schedule_of(self.program, self._day_origin)
                self._saved_program_before_reset = None
            effects += self._clear(AlarmCode.LOW_BATTERY_RESET, t)
        if (everything or which == "battery_depletion") and self._saved_battery_before_depletion is not None:
            (self.battery_percent, self.battery_status, self.eri_at, self.eos_at) = self._saved_battery_before_depletion
            self._saved_battery_before_depletion = None
            effects += self._clear(AlarmCode.BATTERY_EOS, t)
            effects += self._clear(AlarmCode.BATTERY_ERI, t)
        if everything or which == "pocket_fill":
            self.armed_pocket_fill = 0.0
        if everything or which == "wrong_concentration":
            self.armed_concentration = None
        if everything or which == "incomplete_withdrawal":
            self.armed_withdrawn_fraction = None
        if everything or which == "catheter_access_port_injection":
            self.armed_side_port = False
        # mri_valve_opening has nothing to undo: the drug is gone
        if (everything or which == "telemetry_loss") and self.radio_silent_until is not None:
            self.radio_silent_until = None
            effects.append(ClinicalEvent("telemetry_restored", t))
        now_delivering = self.motor_running and not self._truth_dry
        if now_delivering and not was_delivering:
            effects.append(ClinicalEvent("delivery_resumed", t, f"fault cleared: {which}"))
        return Outcome(True, effects=effects)

    def explant(self, t: float) -> list[Effect]:
        """The pump is taken out (replacement surgery): every active alarm ends."""
        self._require_clock(t)
        effects: list[Effect] = []
        for code in list(self.alarms):
            effects += self._clear(code, t)
        return effects

    # --------------------------------------------------------------------------------- bookkeeping

    def _require_clock(self, t: float) -> None:
        if t < self.t - 1e-6:
            raise ValueError(f"command at {t} is before the pump's clock {self.t}")
        if t > self.t:
            raise ValueError("process_due(t) must run before a command at t")

    def conservation_error_ml(self) -> float:
        """Filled minus every place drug can be: zero up to rounding (the conservation invariant)."""
        accounted = self.true_reservoir_ml + self.to_patient_ml + self.leaked_ml + self.pocket_ml + self.withdrawn_ml
        return self.filled_ml - accounted

    @staticmethod
    def flex_program(steps: list[tuple[int, float]]) -> Program:
        """Shorthand for a flexible program from (start minute, mL/day) pairs."""
        return Program(
            mode=InfusionMode.FLEXIBLE,
            steps=[FlexStep(start_minute=m, rate_ml_per_day=r) for m, r in steps],
        )
