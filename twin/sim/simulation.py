"""A fleet of simulated pumps on one SimPy environment, with the clinic that looks after them.

Each pump sleeps until its pump model's next computed event (or until a command wakes it), so a
quiet pump costs nothing between events. Per pump, telemetry is sampled at its publish times, the
clinic (:mod:`twin.sim.clinic`: refills booked from the predicted date, replacements, catheter
revisions, dose adjustments) looks after it and faults are injected at random with the published
hazard rates.

None of this runs as a SimPy process: each is a chain of SimPy events with callbacks (see
:class:`_Call`), scheduled exactly as the process it stands for would schedule its own events (a
start event at once, URGENT, as a process's initialisation; the timeout it would sleep on; for a
pump's life, the condition event a ``timeout | wake`` would trigger), so the order in which
events due at the same instant run is the processes' order, and what the fleet does is the same,
at a fraction of the cost of a generator per appointment.

Everything a device publishes goes to a ``sink`` callable, in order, with the simulation time.
What the clinic does and what befalls the pumps is tallied (:attr:`FleetSimulation.tally`) and,
with ``record_events``, kept as :class:`FleetEvent` rows (the realism benchmark reads them).
This module does no I/O: the asyncio driver (``twin.sim.driver``) steps :attr:`env` against the
wall clock and publishes what reaches the sink; tests and benchmarks call :meth:`run` directly.

Radio: while a pump has a telemetry-loss fault its messages are held (telemetry is not sampled)
and its commands wait; both are released, in order, when the radio comes back.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from heapq import heappop, heappush
from typing import Final, Literal

import simpy
from simpy.events import NORMAL, URGENT, EventPriority

from twin.contract.alarms import AlarmCode
from twin.contract.messages import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_RATE_ML_PER_DAY,
    MIN_RATE_ML_PER_DAY,
    Action,
    CatheterLeakFault,
    CatheterOcclusionFault,
    ClearFaultAction,
    Command,
    Drug,
    FlexStep,
    InfusionMode,
    InjectFaultAction,
    InterrogateAction,
    MotorStallFault,
    PocketFillFault,
    Program,
    RefillAction,
    ReprogramAction,
)
from twin.contract.topics import Channel
from twin.pump.drugs import DRUGS
from twin.pump.flow import SECONDS_PER_DAY, Flow
from twin.pump.model import AlarmChange, BatteryModel, Pump, PumpConfig, PumpStart, schedule_of
from twin.pump.refill_planning import PROMETRA_REFILL_TARGET_ML, seconds_until_volume, worst_case_program
from twin.sim.clinic import (
    SECONDS_PER_YEAR,
    ClinicPolicy,
    HazardRates,
    next_catheter_complication,
    uniform_days,
)
from twin.sim.device import Identity, Outgoing, SimulatedDevice
from twin.sim.fleet import PumpSpec

Sink = Callable[[SimulatedDevice, Outgoing, float], None]

POCKET_FILL_FRACTION: Final = (0.3, 1.0)
"""Share of a refill a random pocket fill puts into the pocket. [A]"""

OCCLUSION_FRACTION: Final = (0.5, 1.0)
"""How much of the flow a random occlusion or kink blocks. [A]"""

LEAK_FRACTION: Final = (0.3, 1.0)
"""How much of the flow a random fracture or disconnection loses to tissue (1: disconnected). [A]"""

GRANULOMA_FRACTION: Final = (0.2, 0.6)
"""How much of the flow a granuloma at the tip blocks. [A] a mass slows delivery before it stops it."""

PROGRAMMING_ERROR_FACTORS: Final = (10.0, 0.1)
"""A programming error is a decimal slip in the rate ([V-S58, S59, S60]: decimal errors). [A]"""

SILENT_EMPTY_FOUND_DAYS: Final = (0.5, 3.0)
"""A pump without audible alarms that runs empty is found through the patient (withdrawal). [A]"""

EventKind = Literal[
    "refill",
    "appointment_missed",
    "replacement",
    "replacement_missed",
    "catheter_complication",
    "granuloma",
    "catheter_revision",
    "motor_stall",
    "pocket_fill",
    "reprogram",
    "programming_error",
    "infection",
    "alarm",
]


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """One thing the clinic did or that befell a pump: ``kind``, and ``detail`` (the cause, the
    alarm code, the subtype); ``model`` is the pump model at the time."""

    at_s: float
    device_id: str
    kind: EventKind
    detail: str = ""
    model: str = ""


@dataclass
class Patient:
    """The clinic's record of the patient behind one device (times in simulation seconds)."""

    prescribed: Program
    """The program the physician wants (dose adjustments scale it; an error is corrected back to it)."""
    catheter_since: float
    """When the current catheter was implanted or revised (negative: before the simulation)."""
    last_fill_at: float | None = None
    refill_at: float | None = None
    refill_generation: int = 0
    replacement_at: float | None = None
    replacement_cause: str = ""
    replacement_generation: int = 0
    missed_refill: bool = False
    """An appointment was missed since the last fill (the only way to an empty reservoir)."""
    missed_replacement: bool = False
    """A replacement surgery was missed since ERI (the only way to end of service)."""
    catheter_faulty: bool = False
    catheter_generation: int = 0
    pump_generation: int = 0
    pumps: int = 1
    catheter_starts: list[float] = field(default_factory=list)
    pump_starts: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class _Radio:
    held: list[Outgoing] = field(default_factory=list)
    commands: deque[Command] = field(default_factory=deque)


class _Call(simpy.Event):
    """An event that calls ``fn`` when it is processed, scheduled as it is made (``delay`` from
    now, at ``priority``), the way SimPy's own :class:`~simpy.events.Timeout` schedules itself."""

    def __init__(
        self,
        env: simpy.Environment,
        fn: Callable[[simpy.Event], None],
        delay: float = 0.0,
        priority: EventPriority = NORMAL,
    ) -> None:
        self.env = env
        self.callbacks = [fn]
        self._value = None
        self._ok = True
        # what env.schedule(self, priority, delay) does, without the call
        heappush(env._queue, (env._now + delay, priority, next(env._eid), self))


@dataclass(slots=True)
class _Life:
    """Where one pump's life loop stands (the loop: sleep until the pump's next event or a wake-up,
    bring the pump up to now, deliver held commands, sleep again). ``token`` names the current
    sleep; ``armed``: asleep and not yet triggered; ``woken``: this sleep's wake-up was sent;
    ``direct``: the pump has no next event (it sleeps on the wake-up alone)."""

    token: int = 0
    armed: bool = False
    woken: bool = True  # no wake-up until the life has started
    direct: bool = False


class FleetSimulation:
    """Pumps of a fleet, their clinic and their hazards, on one SimPy environment.

    ``clinic_refills`` turns the clinic on (:class:`~twin.sim.clinic.ClinicPolicy`: refills,
    replacements, revisions, dose adjustments); ``random_faults`` the hazards
    (:class:`~twin.sim.clinic.HazardRates`). ``record_events`` keeps every :class:`FleetEvent`
    in :attr:`events` (otherwise only :attr:`tally` counts them)."""

    def __init__(
        self,
        specs: list[PumpSpec],
        *,
        epoch: datetime,
        seed: int,
        sink: Sink,
        telemetry_interval_s: float | None = None,
        clinic_refills: bool = True,
        random_faults: bool = False,
        clinic: ClinicPolicy | None = None,
        hazards: HazardRates | None = None,
        record_events: bool = False,
    ) -> None:
        self.env = simpy.Environment()
        self.epoch = epoch
        self.seed = seed
        self.sink = sink
        self.observers: list[Sink] = []
        """Also told of every message the sink gets (scenario runs watch the pumps this way)."""
        self.telemetry_interval_s = telemetry_interval_s
        self.clinic_refills = clinic_refills
        self.random_faults = random_faults
        self.clinic = clinic or ClinicPolicy()
        self.hazards = hazards or HazardRates()
        self.devices: dict[str, SimulatedDevice] = {}
        self.sites: dict[str, str] = {}
        self.patients: dict[str, Patient] = {}
        self.tally: Counter[str] = Counter()
        self.events: list[FleetEvent] | None = [] if record_events else None
        self._lives: dict[str, _Life] = {}
        self._refill_flows: dict[str, tuple[Program, Flow]] = {}  # device -> (program, its worst-case flow)
        self._radio: dict[str, _Radio] = {}
        self._rngs: dict[str, random.Random] = {}
        self.refills_done = 0
        midnight = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
        self._day_origin = -(epoch - midnight).total_seconds()
        for index, spec in enumerate(specs):
            device = self._build(spec)
            self.devices[spec.device_id] = device
            self.sites[spec.device_id] = spec.site
            self._radio[spec.device_id] = _Radio()
            implanted = ((spec.implant_date or epoch) - epoch).total_seconds()
            self.patients[spec.device_id] = Patient(
                prescribed=spec.program,
                catheter_since=implanted,
                catheter_starts=[implanted],
                pump_starts=[(implanted, spec.model)],
            )
            self._rngs[spec.device_id] = random.Random(f"clinic:{seed}:{spec.device_id}")
            device.on_alarm = self._pump_alarm
            life = self._lives[spec.device_id] = _Life()
            self._spawn(self._arm, device, life)
            if telemetry_interval_s:
                offset = (index * 7.919) % telemetry_interval_s  # spread samples over the interval
                self._spawn(self._telemetry_start, device, telemetry_interval_s, offset)
            if clinic_refills:
                self._book_refill(device, self._next_refill_at(device, device.pump.reservoir_ml, None))
                if device.pump.battery_status.value != "ok":
                    self._book_replacement(device, "battery_eri", self.clinic.eri_replacement_days)
            if random_faults:
                self._start_hazards(device)

    def _build(self, spec: PumpSpec) -> SimulatedDevice:
        config = PumpConfig(
            reservoir_capacity_ml=spec.reservoir_capacity_ml,
            catheter_volume_ml=spec.catheter_volume_ml,
            audible_alarms=spec.audible_alarms,
            valve_gated=spec.valve_gated,
            battery=BatteryModel(),
        )
        start = PumpStart(
            drug=spec.drug,
            concentration_mg_per_ml=spec.concentration_mg_per_ml,
            program=spec.program,
            reservoir_ml=spec.reservoir_ml,
            low_reservoir_threshold_ml=spec.low_reservoir_threshold_ml,
            battery_percent=spec.battery_percent,
            delivered_ml_total=spec.delivered_ml_total,
        )
        pump = Pump(
            config, start, rng=random.Random(f"pump:{self.seed}:{spec.device_id}"), day_origin_s=self._day_origin
        )
        identity = Identity(
            site=spec.site,
            device_id=spec.device_id,
            model=spec.model,
            serial=spec.serial or f"SIM-{spec.device_id}",
            implant_date=spec.implant_date or self.epoch,
        )
        return SimulatedDevice(identity, pump, self.epoch)

    def _record(self, device: SimulatedDevice, kind: EventKind, detail: str = "") -> None:
        self.tally[kind if not detail else f"{kind}:{detail}"] += 1
        if self.events is not None:
            self.events.append(FleetEvent(self.now, device.device_id, kind, detail, device.identity.model))

    # -------------------------------------------------------------------------------- plumbing

    @property
    def now(self) -> float:
        return float(self.env._now)

    def at(self, t: float) -> datetime:
        return self.epoch + timedelta(seconds=t)

    def _emit(self, device: SimulatedDevice, messages: list[Outgoing]) -> None:
        radio = self._radio[device.device_id]
        if not messages and not radio.held:
            return
        if device.silent:
            radio.held.extend(m for m in messages if m.channel is not Channel.TELEMETRY)
            return
        if radio.held:
            held, radio.held = radio.held, []
            for m in held:
                self._publish(device, m)
        for m in messages:
            self._publish(device, m)

    def _publish(self, device: SimulatedDevice, m: Outgoing) -> None:
        now = self.now
        self.sink(device, m, now)
        for observer in self.observers:
            observer(device, m, now)

    def observe(self, observer: Sink) -> Callable[[], None]:
        """Tell ``observer`` of every message from now on; returns the function that stops it."""
        self.observers.append(observer)

        def stop() -> None:
            if observer in self.observers:
                self.observers.remove(observer)

        return stop

    def open_sessions(self, session: int) -> None:
        """Open ``session`` on every device (births, states, online) at the current time."""
        for device_id in self.devices:
            self.open_session(device_id, session)

    def open_session(self, device_id: str, session: int) -> None:
        """A device (re)connected: bring it up to now, then birth, full state and status online."""
        device = self.devices[device_id]
        self._emit(device, device.advance(self.now))
        self._emit(device, device.open_session(session, self.now))

    def run(self, until: float) -> None:
        """Run the fleet up to simulation second ``until`` (events due at ``until`` included).

        What ``env.run(until=until)`` followed by stepping through everything then due did (the
        events processed, in the same order, and the clock left at the same instant), in one loop
        without SimPy's stop event and per-event method call: every event due at or before the
        instant SimPy's stop event would have been scheduled at (``now + (until - now)``, as
        :meth:`simpy.Environment.schedule` computes it), in the queue's order, each processed as
        :meth:`simpy.Environment.step` processes it."""
        env = self.env
        now = env._now
        stop = now
        if until > float(now):
            at = until if isinstance(until, int) else float(until)
            stop = now + (at - now)
        queue = env._queue
        while queue and queue[0][0] <= stop:
            env._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
        env._now = stop

    def peek(self) -> float:
        """Time of the next scheduled SimPy event (``inf`` if none)."""
        return float(self.env.peek())

    def command(self, device_id: str, command: Command) -> None:
        """Deliver ``command`` to a device now (held while its radio is down)."""
        device = self.devices[device_id]
        self._emit(device, device.advance(self.now))
        if device.silent:
            self._radio[device_id].commands.append(command)
            return
        self._emit(device, device.handle(command, self.now))
        self._wake_up(device_id)

    def _wake_up(self, device_id: str) -> None:
        """Wake a pump's life now (as triggering the wake-up event its process waits on)."""
        life = self._lives.get(device_id)
        if life is None or life.woken:
            return
        life.woken = True
        device, token = self.devices[device_id], life.token
        _Call(self.env, lambda _: self._life_triggered(device, life, token))

    # ------------------------------------------------------------------------------- processes

    def _spawn(self, start: Callable[..., None], *args: object) -> None:
        """Run ``start(*args)`` when a SimPy process made now would take its first step: an URGENT
        event now, after the ones already made."""
        _Call(self.env, lambda _: start(*args), 0.0, URGENT)

    def _after(self, at: float, fn: Callable[..., None], *args: object) -> None:
        """Call ``fn(*args)`` at ``at`` (or now if it is past), as a process made now that sleeps
        until ``at`` would: the start event, then the timeout from the start."""

        env = self.env

        def start(_: simpy.Event) -> None:  # as self._spawn(start) runs it, a step of the process
            _Call(env, lambda _: fn(*args), max(0.0, at - float(env._now)))

        _Call(env, start, 0.0, URGENT)

    def _arm(self, device: SimulatedDevice, life: _Life) -> None:
        """The top of a pump's life loop: sleep until the pump's next event or a wake-up."""
        when, _ = device.pump.next_event()
        life.token += 1
        life.armed, life.woken = True, False
        token = life.token
        life.direct = math.isinf(when)
        if not life.direct:
            _Call(self.env, lambda _: self._life_triggered(device, life, token), max(0.0, when - self.env.now))

    def _life_triggered(self, device: SimulatedDevice, life: _Life, token: int) -> None:
        """The timeout or the wake-up of a sleep: the first one ends it. Woken from a sleep on the
        wake-up alone, the life runs at once; from ``timeout | wake``, once that condition's own
        event is processed."""
        if token != life.token or not life.armed:
            return
        life.armed = False
        if life.direct:
            self._live(device, life)
        else:
            _Call(self.env, lambda _: self._live(device, life))

    def _live(self, device: SimulatedDevice, life: _Life) -> None:
        now = self.env.now
        self._emit(device, device.advance(now))
        radio = self._radio[device.device_id]
        while radio.commands and not device.silent:
            self._emit(device, device.handle(radio.commands.popleft(), now))
        self._arm(device, life)

    def _telemetry_start(self, device: SimulatedDevice, interval: float, offset: float) -> None:
        _Call(self.env, lambda _: self._telemetry(device, interval), offset)

    def _telemetry(self, device: SimulatedDevice, interval: float) -> None:
        messages = device.advance(self.now)
        if messages:
            self._wake_up(device.device_id)  # the pump changed on the way: let its life re-plan
        if not device.silent:
            messages.append(device.telemetry(self.now))
        self._emit(device, messages)
        _Call(self.env, lambda _: self._telemetry(device, interval), interval)

    # ---------------------------------------------------------------------------------- clinic

    def _rng(self, device: SimulatedDevice) -> random.Random:
        return self._rngs[device.device_id]

    def _next_refill_at(self, device: SimulatedDevice, volume_ml: float, filled_at: float | None) -> float:
        """When the clinic books the next refill of the device's pump holding ``volume_ml`` (see
        :mod:`twin.sim.clinic`): worst-case boluses, a margin, the drug's stability limit."""
        policy, now, pump, device_id = self.clinic, self.now, device.pump, device.device_id
        program = pump.program
        cached = self._refill_flows.get(device_id)
        if cached is not None and cached[0] is program:
            flow = cached[1]
        else:  # the programmer's worst-case flow, once per program
            flow = Flow(schedule_of(worst_case_program(program), self._day_origin))
            self._refill_flows[device_id] = (program, flow)
        if pump.config.valve_gated:
            target, margin = PROMETRA_REFILL_TARGET_ML, policy.prometra_margin_days
        else:
            target, margin = pump.low_threshold_ml, policy.refill_margin_days
        by_volume = now + seconds_until_volume(flow, now, volume_ml, target) - margin * SECONDS_PER_DAY
        stable_until = (filled_at if filled_at is not None else now) + DRUGS[pump.drug].stability_days * SECONDS_PER_DAY
        return max(now + policy.soonest_appointment_days * SECONDS_PER_DAY, min(by_volume, stable_until))

    def _book_refill(self, device: SimulatedDevice, at: float) -> None:
        patient = self.patients[device.device_id]
        patient.refill_generation += 1
        patient.refill_at = at
        self._after(at, self._refill_appointment, device, patient.refill_generation)

    def _bring_refill_forward(self, device: SimulatedDevice, span: tuple[float, float]) -> None:
        at = self.now + uniform_days(self._rng(device), span)
        patient = self.patients[device.device_id]
        if patient.refill_at is None or at < patient.refill_at:
            self._book_refill(device, at)

    def _refill_appointment(self, device: SimulatedDevice, generation: int) -> None:
        patient = self.patients[device.device_id]
        if patient.refill_generation != generation:
            return  # rebooked meanwhile
        if self._rng(device).random() < self.clinic.missed_appointment_rate:
            patient.missed_refill = True
            self._record(device, "appointment_missed", "refill")
            self._book_refill(device, self.now + uniform_days(self._rng(device), self.clinic.rebook_refill_days))
            return
        self._refill_visit(device)

    def _refill_visit(self, device: SimulatedDevice) -> None:
        """A refill visit: maybe a dose adjustment, the refill (maybe a pocket fill), the next booking."""
        rng, patient, pump = self._rng(device), self.patients[device.device_id], device.pump
        if rng.random() < self.clinic.dose_adjustment_per_visit and patient.prescribed.mode in (
            InfusionMode.CONTINUOUS,
            InfusionMode.FLEXIBLE,
        ):
            self._reprogram(device, _scaled(patient.prescribed, rng.uniform(*self.clinic.dose_adjustment_range)))
        if self.random_faults and rng.random() < self.hazards.pocket_fill_per_refill:
            self.bedside(
                device.device_id, InjectFaultAction(fault=PocketFillFault(fraction=rng.uniform(*POCKET_FILL_FRACTION)))
            )
            self._record(device, "pocket_fill")
        volume = pump.config.reservoir_capacity_ml
        appointment = self._next_refill_at(device, volume, self.now)
        reminder = appointment + self.clinic.reminder_after_appointment_days * SECONDS_PER_DAY
        action = refill_action(volume, pump.drug, pump.concentration_mg_per_ml, self.at(reminder))
        if self.bedside(device.device_id, action) is not None:
            return
        self.refills_done += 1
        patient.missed_refill = False
        patient.last_fill_at = self.now
        refill = pump.last_refill
        detail = ""
        if refill is not None:
            tolerance = 1.0 if pump.config.reservoir_capacity_ml <= 20.0 else 2.0
            if abs(refill.measured_residual_ml - refill.expected_residual_ml) > tolerance:
                detail = "discrepancy"
        self._record(device, "refill", detail)
        self._book_refill(device, appointment)

    def _reprogram(self, device: SimulatedDevice, intended: Program, *, correction: bool = False) -> None:
        """A programming session to ``intended``; at the assumed rate the rate is entered wrong (a
        decimal slip), which the patient's symptoms bring to light and the clinic corrects."""
        rng = self._rng(device)
        program = intended
        if self.random_faults and rng.random() < self.hazards.programming_error_per_reprogramming:
            program = _scaled(intended, rng.choice(PROGRAMMING_ERROR_FACTORS))
            self._record(device, "programming_error")
            found = self.now + uniform_days(rng, self.clinic.programming_error_found_days)
            self._after(found, self._correct_program, device, self.patients[device.device_id].pump_generation)
        self.bedside(device.device_id, ReprogramAction(program=program))
        self._record(device, "reprogram", "correction" if correction else "")
        if not correction:
            self.patients[device.device_id].prescribed = intended

    def _correct_program(self, device: SimulatedDevice, generation: int) -> None:
        patient = self.patients[device.device_id]
        if patient.pump_generation != generation:
            return  # the pump was replaced meanwhile, with the right program
        self._reprogram(device, patient.prescribed, correction=True)
        # the programmer computes the refill date again from the corrected program
        self._book_refill(device, self._next_refill_at(device, device.pump.reservoir_ml, patient.last_fill_at))

    def _pump_alarm(self, device: SimulatedDevice, change: AlarmChange) -> None:
        """Every alarm a pump raises, audible or not: tallied; the clinic acts on what it hears
        (audible pumps), on ERI for every pump (the programmer's replacement date, read at visits
        [A]) and on an empty Prometra through the patient."""
        if not change.raised:
            return
        patient = self.patients[device.device_id]
        cause = ""
        if change.code is AlarmCode.RESERVOIR_EMPTY:
            cause = "after_missed_appointment" if patient.missed_refill else "unexplained"
        elif change.code is AlarmCode.BATTERY_EOS:
            cause = "after_missed_replacement" if patient.missed_replacement else "unexplained"
        self._record(device, "alarm", f"{change.code.value}:{cause}" if cause else change.code.value)
        if not self.clinic_refills:
            return
        audible = device.pump.config.audible_alarms
        policy = self.clinic
        match change.code:
            case AlarmCode.RESERVOIR_LOW if audible:
                self._bring_refill_forward(device, policy.low_alarm_refill_days)
            case AlarmCode.RESERVOIR_EMPTY:
                self._bring_refill_forward(device, policy.empty_refill_days if audible else SILENT_EMPTY_FOUND_DAYS)
            case AlarmCode.MOTOR_STALL if audible and device.pump.awaiting_interrogation:
                at = self.now + uniform_days(self._rng(device), policy.post_mri_interrogation_days)
                self._after(at, self._interrogate_later, device, patient.pump_generation)
            case AlarmCode.MOTOR_STALL if audible and device.pump.stall_recover_at is None:
                self._book_replacement(device, "motor_stall", policy.stall_replacement_days)
            case AlarmCode.MEMORY_ERROR if audible:
                self._book_replacement(device, "memory_error", policy.stall_replacement_days)
            case AlarmCode.BATTERY_ERI:
                self._book_replacement(device, "battery_eri", policy.eri_replacement_days)
            case AlarmCode.BATTERY_EOS:
                self._book_replacement(device, "battery_eos", policy.eos_replacement_days, urgent=True)
            case _:
                pass

    def _interrogate_later(self, device: SimulatedDevice, generation: int) -> None:
        """The post-MRI interrogation (a pump held in telemetry mode resumes; a stall that stays after
        it is permanent: replacement)."""
        if self.patients[device.device_id].pump_generation != generation:
            return
        self.bedside(device.device_id, InterrogateAction())
        pump = device.pump
        if pump.motor_stalled and pump.stall_recover_at is None:
            self._book_replacement(device, "motor_stall", self.clinic.stall_replacement_days)

    def _book_replacement(
        self, device: SimulatedDevice, cause: str, span: tuple[float, float], *, urgent: bool = False
    ) -> None:
        patient = self.patients[device.device_id]
        at = self.now + uniform_days(self._rng(device), span)
        if patient.replacement_at is not None and patient.replacement_at <= at and not urgent:
            return
        patient.replacement_generation += 1
        patient.replacement_at = at
        patient.replacement_cause = cause
        self._after(at, self._replacement_appointment, device, patient.replacement_generation, urgent)

    def _replacement_appointment(self, device: SimulatedDevice, generation: int, urgent: bool) -> None:
        patient = self.patients[device.device_id]
        if patient.replacement_generation != generation:
            return
        if not urgent and self._rng(device).random() < self.clinic.missed_appointment_rate:
            patient.missed_replacement = True
            self._record(device, "replacement_missed", patient.replacement_cause)
            at = self.now + uniform_days(self._rng(device), self.clinic.rebook_replacement_days)
            patient.replacement_generation += 1
            patient.replacement_at = at
            self._after(at, self._replacement_appointment, device, patient.replacement_generation, False)
            return
        self._replace_pump(device, patient.replacement_cause)

    def _replace_pump(self, device: SimulatedDevice, cause: str) -> None:
        """Replacement surgery: a new pump (full battery, filled, the prescribed program) on the same
        catheter; the next refill is booked from it."""
        self._emit(device, device.advance(self.now))
        patient, old = self.patients[device.device_id], device.pump
        patient.pumps += 1
        patient.pump_generation += 1
        patient.replacement_at, patient.replacement_cause = None, ""
        patient.missed_replacement = False
        patient.missed_refill = False
        start = PumpStart(
            drug=old.drug,
            concentration_mg_per_ml=old.concentration_mg_per_ml,
            program=patient.prescribed,
            reservoir_ml=old.config.reservoir_capacity_ml,
            low_reservoir_threshold_ml=old.low_threshold_ml,
        )
        rng = random.Random(f"pump:{self.seed}:{device.device_id}:{patient.pumps}")
        pump = Pump(old.config, start, rng=rng, t0=self.now, day_origin_s=self._day_origin)
        pump.occlusion, pump.leak = old.occlusion, old.leak  # the catheter stays
        pump.catheter_contents = old.catheter_contents
        identity = Identity(
            site=device.identity.site,
            device_id=device.device_id,
            model=device.identity.model,
            serial=f"{device.identity.serial.split('-R')[0]}-R{patient.pumps - 1}",
            implant_date=self.at(self.now).replace(microsecond=0),
            firmware=device.identity.firmware,
        )
        self._emit(device, device.replace_pump(pump, identity, self.now))
        patient.pump_starts.append((self.now, device.identity.model))
        patient.last_fill_at = self.now
        self._record(device, "replacement", cause)
        self._surgery(device)
        self._wake_up(device.device_id)
        self._book_refill(device, self._next_refill_at(device, pump.reservoir_ml, self.now))
        if self.random_faults:
            self._spawn(self._stall_hazard, device, patient.pump_generation)

    def _surgery(self, device: SimulatedDevice) -> None:
        if self.random_faults and self._rng(device).random() < self.hazards.infection_per_procedure:
            self._record(device, "infection")

    def _revise_catheter(self, device: SimulatedDevice, generation: int) -> None:
        patient = self.patients[device.device_id]
        if patient.catheter_generation != generation:
            return
        self.bedside(device.device_id, ClearFaultAction(fault="catheter_occlusion"))
        self.bedside(device.device_id, ClearFaultAction(fault="catheter_leak"))
        pump = device.pump
        pump.catheter_contents.refill_with(pump.actual_concentration_mg_per_ml)  # a new catheter, primed
        patient.catheter_faulty = False
        patient.catheter_generation += 1
        patient.catheter_since = self.now
        patient.catheter_starts.append(self.now)
        self._record(device, "catheter_revision")
        self._surgery(device)
        self._spawn(self._catheter_hazard, device, patient.catheter_generation)

    # --------------------------------------------------------------------------------- hazards

    def _start_hazards(self, device: SimulatedDevice) -> None:
        patient = self.patients[device.device_id]
        self._spawn(self._stall_hazard, device, patient.pump_generation)
        self._spawn(self._catheter_hazard, device, patient.catheter_generation)
        if DRUGS[device.pump.drug].opioid and self.hazards.granuloma_per_opioid_year > 0:
            self._spawn(self._granuloma_hazard, device)

    def _hazard_rng(self, device: SimulatedDevice, what: str, generation: int) -> random.Random:
        return random.Random(f"hazard:{self.seed}:{device.device_id}:{what}:{generation}")

    def _stall_hazard(self, device: SimulatedDevice, generation: int) -> None:
        """One pump's motor stall: a Poisson process at its drug's rate (never on a valve-gated pump)."""
        rate = self.hazards.motor_stall_rate(device.pump.drug, valve_gated=device.pump.config.valve_gated)
        if rate <= 0:
            return
        delay = self._hazard_rng(device, "stall", generation).expovariate(rate / SECONDS_PER_YEAR)
        _Call(self.env, lambda _: self._motor_stall(device, generation), delay)

    def _motor_stall(self, device: SimulatedDevice, generation: int) -> None:
        if self.patients[device.device_id].pump_generation != generation:
            return
        self._record(
            device, "motor_stall", "off_label" if not DRUGS[device.pump.drug].fda_labelled_for_synchromed else ""
        )
        self.bedside(device.device_id, InjectFaultAction(fault=MotorStallFault(cause="wear")))

    def _catheter_hazard(self, device: SimulatedDevice, generation: int) -> None:
        """The catheter's complications: first-year hazard, then the later one; worked up and revised."""
        self._catheter_wait(device, generation, self._hazard_rng(device, "catheter", generation))

    def _catheter_wait(self, device: SimulatedDevice, generation: int, rng: random.Random) -> None:
        age = self.now - self.patients[device.device_id].catheter_since
        delay = next_catheter_complication(rng, age, self.hazards)
        _Call(self.env, lambda _: self._catheter_complication(device, generation, rng), delay)

    def _catheter_complication(self, device: SimulatedDevice, generation: int, rng: random.Random) -> None:
        patient = self.patients[device.device_id]
        if patient.catheter_generation != generation:
            return
        if patient.catheter_faulty:
            # already under work-up (a granuloma): this one is the same revision
            self._catheter_wait(device, generation, rng)
            return
        band = "year_1" if self.now - patient.catheter_since < SECONDS_PER_YEAR else "later"
        if rng.random() < self.hazards.catheter_occlusion_share:
            fault: CatheterOcclusionFault | CatheterLeakFault = CatheterOcclusionFault(
                fraction=round(rng.uniform(*OCCLUSION_FRACTION), 2)
            )
        else:
            fault = CatheterLeakFault(fraction=round(rng.uniform(*LEAK_FRACTION), 2))
        self._record(device, "catheter_complication", f"{fault.fault}:{band}")
        self.bedside(device.device_id, InjectFaultAction(fault=fault))
        patient.catheter_faulty = True
        if self.clinic_refills:
            at = self.now + uniform_days(rng, self.clinic.catheter_workup_days)
            self._after(at, self._revise_catheter, device, generation)

    def _granuloma_hazard(self, device: SimulatedDevice) -> None:
        """A catheter-tip granuloma on an opioid: slow, partial, found late and revised."""
        self._granuloma_wait(device, self._hazard_rng(device, "granuloma", 0))

    def _granuloma_wait(self, device: SimulatedDevice, rng: random.Random) -> None:
        rate = self.hazards.granuloma_per_opioid_year / SECONDS_PER_YEAR
        _Call(self.env, lambda _: self._granuloma(device, rng), rng.expovariate(rate))

    def _granuloma(self, device: SimulatedDevice, rng: random.Random) -> None:
        patient = self.patients[device.device_id]
        if not patient.catheter_faulty:
            fraction = round(rng.uniform(*GRANULOMA_FRACTION), 2)
            self._record(device, "granuloma")
            self.bedside(device.device_id, InjectFaultAction(fault=CatheterOcclusionFault(fraction=fraction)))
            patient.catheter_faulty = True
            if self.clinic_refills:
                at = self.now + uniform_days(rng, self.clinic.granuloma_workup_days)
                self._after(at, self._revise_catheter, device, patient.catheter_generation)
        self._granuloma_wait(device, rng)

    def bedside(self, device_id: str, action: Action) -> str | None:
        """Something done to a pump in person (or happening to it), not through the twin: a refill at
        the clinic, a fault occurring. Returns the pump's refusal reason, or None."""
        device = self.devices[device_id]
        self._emit(device, device.advance(self.now))
        reason, messages = device.perform(action, self.now)
        self._emit(device, messages)
        self._wake_up(device_id)
        return reason


_REFILL_ACTION_FIELDS_SET: Final = {"volume_ml", "drug", "concentration_mg_per_ml", "refill_reminder_at"}


def refill_action(volume_ml: float, drug: Drug, concentration_mg_per_ml: float, reminder_at: datetime) -> RefillAction:
    """``RefillAction(volume_ml=..., drug=..., concentration_mg_per_ml=..., refill_reminder_at=...)``
    made without validating it (the clinic's own values, always valid; the pump reads them): the
    fields in the model's order, in the form validation gives them (floats as floats, the drug as
    the member). tests/core/test_simulation.py holds it equal to the validated action. Anything
    validation might refuse goes through validation (and is refused as before)."""
    if not (
        type(drug) is Drug
        and 0.0 < volume_ml <= 40.0
        and 0.0 < concentration_mg_per_ml <= 100.0
        and reminder_at.utcoffset() is not None
        and EARLIEST_TIME <= reminder_at < LATEST_TIME
    ):
        return RefillAction(
            volume_ml=volume_ml,
            drug=drug,
            concentration_mg_per_ml=concentration_mg_per_ml,
            refill_reminder_at=reminder_at,
        )
    action = RefillAction.__new__(RefillAction)
    _set = object.__setattr__
    _set(
        action,
        "__dict__",
        {
            "type": "refill",
            "volume_ml": float(volume_ml),
            "drug": drug,
            "concentration_mg_per_ml": float(concentration_mg_per_ml),
            "measured_residual_ml": None,
            "low_reservoir_threshold_ml": None,
            "refill_reminder_at": reminder_at,
        },
    )
    _set(action, "__pydantic_fields_set__", _REFILL_ACTION_FIELDS_SET)  # shared: the model is frozen
    _set(action, "__pydantic_extra__", None)
    _set(action, "__pydantic_private__", None)
    return action


def _scaled(program: Program, factor: float) -> Program:
    """``program`` with every rate times ``factor``, within the programmable range."""

    def rate(value: float) -> float:
        return round(min(MAX_RATE_ML_PER_DAY, max(MIN_RATE_ML_PER_DAY, value * factor)), 4)

    if program.mode is InfusionMode.CONTINUOUS:
        assert program.rate_ml_per_day is not None
        return program.model_copy(update={"rate_ml_per_day": rate(program.rate_ml_per_day)})
    if program.mode is InfusionMode.FLEXIBLE:
        steps = [FlexStep(start_minute=s.start_minute, rate_ml_per_day=rate(s.rate_ml_per_day)) for s in program.steps]
        return program.model_copy(update={"steps": steps})
    return program
