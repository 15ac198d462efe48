"""A fleet of simulated pumps on one SimPy environment.

Each pump is a SimPy process that sleeps until its pump model's next computed event (or until a
command wakes it), so a quiet pump costs nothing between events. Optional processes per pump
sample telemetry at its publish times, refill pumps the way a clinic does (a few days after the
low-reservoir alarm or the refill reminder), and inject faults at random with the published
hazard rates.

Everything a device publishes goes to a ``sink`` callable, in order, with the simulation time.
This module does no I/O: the asyncio driver (``twin.sim.driver``) steps :attr:`env` against the
wall clock and publishes what reaches the sink; tests and benchmarks call :meth:`run` directly.

Radio: while a pump has a telemetry-loss fault its messages are held (telemetry is not sampled)
and its commands wait; both are released, in order, when the radio comes back.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import simpy

from twin.contract.alarms import AlarmCode
from twin.contract.messages import (
    Action,
    AlarmEvent,
    AlarmEventType,
    CatheterLeakFault,
    CatheterOcclusionFault,
    Command,
    FaultModel,
    InjectFaultAction,
    MotorStallFault,
    RefillAction,
)
from twin.contract.topics import Channel
from twin.pump.drugs import DRUGS
from twin.pump.flow import SECONDS_PER_DAY
from twin.pump.model import BatteryModel, Pump, PumpConfig, PumpStart
from twin.sim.device import Identity, Outgoing, SimulatedDevice
from twin.sim.fleet import PumpSpec

SECONDS_PER_YEAR: Final = 365.25 * SECONDS_PER_DAY

REFILL_DELAY_DAYS: Final = (1.0, 7.0)
"""A clinic refills between one day and a week after the low-reservoir alarm or refill reminder."""

EMPTY_REFILL_DELAY_DAYS: Final = (0.1, 1.0)
"""An empty reservoir is an urgent refill: within hours."""

MOTOR_STALL_PER_PUMP_YEAR: Final = 0.004
"""Motor stall hazard (DOMAIN-RESEARCH §7: 2.4 % at 78 months on approved drugs)."""

CATHETER_COMPLICATION_PER_PATIENT_YEAR: Final = 0.03
"""Catheter complications (occlusion, leak, disconnection), DOMAIN-RESEARCH §7."""

Sink = Callable[[SimulatedDevice, Outgoing, float], None]


@dataclass
class _Radio:
    held: list[Outgoing] = field(default_factory=list)
    commands: deque[Command] = field(default_factory=deque)


class FleetSimulation:
    """Pumps of a fleet, their clinic and their hazards, on one SimPy environment."""

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
    ) -> None:
        self.env = simpy.Environment()
        self.epoch = epoch
        self.seed = seed
        self.sink = sink
        self.observers: list[Sink] = []
        """Also told of every message the sink gets (scenario runs watch the pumps this way)."""
        self.telemetry_interval_s = telemetry_interval_s
        self.clinic_refills = clinic_refills
        self.devices: dict[str, SimulatedDevice] = {}
        self.sites: dict[str, str] = {}
        self._wake: dict[str, simpy.Event] = {}
        self._radio: dict[str, _Radio] = {}
        self._refill_pending: set[str] = set()
        self._clinic_rng = random.Random(f"clinic:{seed}")
        self.refills_done = 0
        midnight = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
        self._day_origin = -(epoch - midnight).total_seconds()
        for index, spec in enumerate(specs):
            device = self._build(spec)
            self.devices[spec.device_id] = device
            self.sites[spec.device_id] = spec.site
            self._radio[spec.device_id] = _Radio()
            self.env.process(self._life(device))
            if telemetry_interval_s:
                offset = (index * 7.919) % telemetry_interval_s  # spread samples over the interval
                self.env.process(self._telemetry(device, telemetry_interval_s, offset))
            if random_faults:
                self.env.process(self._hazards(device))

    def _build(self, spec: PumpSpec) -> SimulatedDevice:
        config = PumpConfig(
            reservoir_capacity_ml=spec.reservoir_capacity_ml,
            catheter_volume_ml=spec.catheter_volume_ml,
            audible_alarms=spec.audible_alarms,
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

    # -------------------------------------------------------------------------------- plumbing

    @property
    def now(self) -> float:
        return float(self.env.now)

    def at(self, t: float) -> datetime:
        return self.epoch + timedelta(seconds=t)

    def _emit(self, device: SimulatedDevice, messages: list[Outgoing]) -> None:
        radio = self._radio[device.device_id]
        if device.silent:
            radio.held.extend(m for m in messages if m.channel is not Channel.TELEMETRY)
            return
        if radio.held:
            held, radio.held = radio.held, []
            for m in held:
                self._publish(device, m)
        for m in messages:
            self._publish(device, m)
            if self.clinic_refills and m.channel is Channel.ALARM:
                self._clinic_sees(device, m)

    def _publish(self, device: SimulatedDevice, m: Outgoing) -> None:
        self.sink(device, m, self.now)
        for observer in self.observers:
            observer(device, m, self.now)

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
        """Run the fleet up to simulation second ``until`` (events due at ``until`` included)."""
        if until > self.now:
            self.env.run(until=until)
        # SimPy 4.1 re-queues its (now empty) stop event at the current time; stepping through
        # everything due now keeps peek() honest and runs events that fall exactly on `until`
        while self.env.peek() <= self.now:
            self.env.step()

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
        wake = self._wake.get(device_id)
        if wake is not None and not wake.triggered:
            wake.succeed()

    # ------------------------------------------------------------------------------- processes

    def _life(self, device: SimulatedDevice) -> Generator[simpy.Event, object, None]:
        env = self.env
        while True:
            when, _ = device.pump.next_event()
            wake = env.event()
            self._wake[device.device_id] = wake
            if math.isinf(when):
                yield wake
            else:
                yield env.timeout(max(0.0, when - env.now)) | wake
            self._emit(device, device.advance(env.now))
            radio = self._radio[device.device_id]
            while radio.commands and not device.silent:
                self._emit(device, device.handle(radio.commands.popleft(), env.now))

    def _telemetry(
        self, device: SimulatedDevice, interval: float, offset: float
    ) -> Generator[simpy.Event, object, None]:
        yield self.env.timeout(offset)
        while True:
            messages = device.advance(self.now)
            if messages:
                self._wake_up(device.device_id)  # the pump changed on the way: let its life re-plan
            if not device.silent:
                messages.append(device.telemetry(self.now))
            self._emit(device, messages)
            yield self.env.timeout(interval)

    def _clinic_sees(self, device: SimulatedDevice, outgoing: Outgoing) -> None:
        alarm = outgoing.message
        assert isinstance(alarm, AlarmEvent)
        if alarm.event is not AlarmEventType.RAISED or device.device_id in self._refill_pending:
            return
        if alarm.code in (AlarmCode.RESERVOIR_LOW, AlarmCode.REFILL_REMINDER):
            delay = self._clinic_rng.uniform(*REFILL_DELAY_DAYS)
        elif alarm.code is AlarmCode.RESERVOIR_EMPTY:
            delay = self._clinic_rng.uniform(*EMPTY_REFILL_DELAY_DAYS)
        else:
            return
        self._refill_pending.add(device.device_id)
        self.env.process(self._clinic_refill(device, delay * SECONDS_PER_DAY))

    def _clinic_refill(self, device: SimulatedDevice, delay_s: float) -> Generator[simpy.Event, object, None]:
        yield self.env.timeout(delay_s)
        self._refill_pending.discard(device.device_id)
        pump = device.pump
        stability = DRUGS[pump.drug].stability_days
        action = RefillAction(
            volume_ml=pump.config.reservoir_capacity_ml,
            drug=pump.drug,
            concentration_mg_per_ml=pump.concentration_mg_per_ml,
            refill_reminder_at=self.at(self.now + stability * SECONDS_PER_DAY),
        )
        if self.bedside(device.device_id, action) is None:
            self.refills_done += 1

    def _hazards(self, device: SimulatedDevice) -> Generator[simpy.Event, object, None]:
        """Random faults at the published per-year hazard rates (a Poisson process each)."""
        rng = random.Random(f"hazard:{self.seed}:{device.device_id}")
        candidates: list[tuple[float, FaultModel]] = [
            (rng.expovariate(MOTOR_STALL_PER_PUMP_YEAR / SECONDS_PER_YEAR), MotorStallFault(cause="wear")),
            (
                rng.expovariate(CATHETER_COMPLICATION_PER_PATIENT_YEAR / SECONDS_PER_YEAR),
                CatheterOcclusionFault(fraction=round(rng.uniform(0.5, 1.0), 2))
                if rng.random() < 0.55
                else CatheterLeakFault(fraction=round(rng.uniform(0.3, 1.0), 2)),
            ),
        ]
        for when, fault in sorted(candidates, key=lambda c: c[0]):
            yield self.env.timeout(max(0.0, when - self.now))
            self.bedside(device.device_id, InjectFaultAction(fault=fault))

    def bedside(self, device_id: str, action: Action) -> str | None:
        """Something done to a pump in person (or happening to it), not through the twin: a refill at
        the clinic, a fault occurring. Returns the pump's refusal reason, or None."""
        device = self.devices[device_id]
        self._emit(device, device.advance(self.now))
        reason, messages = device.perform(action, self.now)
        self._emit(device, messages)
        self._wake_up(device_id)
        return reason
