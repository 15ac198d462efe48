"""A naive, fixed-step reference model of a pump's calculated reservoir and battery.

It steps the clock (one minute by default) and looks for threshold crossings after each step,
the way a straightforward SimPy model would. It is deliberately independent of
:mod:`twin.pump.flow`: it evaluates the program minute by minute from the contract's
:class:`~twin.contract.messages.Program`. It serves two purposes:

* an oracle for the event-driven model's tests (crossing times must agree within one step);
* the baseline of the fleet-year benchmark (``benchmarks/fleet_year.py``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import simpy

from twin.contract.messages import MINIMUM_RATE_MODE_ML_PER_DAY, InfusionMode, Program
from twin.pump.model import BatteryModel

DAY_S = 86_400.0


def rate_ml_per_day(program: Program, t: float, day_origin_s: float = 0.0) -> float:
    """The programmed flow at simulation second ``t``, read straight from the program."""
    if program.mode is InfusionMode.CONTINUOUS:
        return program.rate_ml_per_day or 0.0
    if program.mode is InfusionMode.MINIMUM_RATE:
        return MINIMUM_RATE_MODE_ML_PER_DAY
    if program.mode is InfusionMode.STOPPED:
        return 0.0
    minute = ((t - day_origin_s) % DAY_S) / 60.0
    current = program.steps[-1].rate_ml_per_day  # the last step runs through midnight
    for step in program.steps:
        if step.start_minute <= minute:
            current = step.rate_ml_per_day
    return current


@dataclass
class SteppedPump:
    """Calculated reservoir and battery, stepped at ``step_s``; logs (time, alarm) crossings."""

    program: Program
    reservoir_ml: float
    low_threshold_ml: float
    unusable_residual_ml: float
    battery_percent: float
    battery: BatteryModel = field(default_factory=BatteryModel)
    day_origin_s: float = 0.0
    capacity_ml: float = 20.0
    log: list[tuple[float, str]] = field(default_factory=list)
    _low: bool = False
    _empty: bool = False
    _eri: bool = False

    def step(self, t: float, dt: float) -> None:
        """Advance from ``t`` to ``t + dt`` at the rate in force at ``t``. The motor keeps turning
        after the pump reports empty (the battery keeps draining); the calculated volume stays put."""
        rate = rate_ml_per_day(self.program, t, self.day_origin_s)
        moved = rate * dt / DAY_S
        self.reservoir_ml = max(self.unusable_residual_ml, self.reservoir_ml - moved)
        if not self._eri:
            self.battery_percent -= self.battery.base_percent_per_day * dt / DAY_S + self.battery.percent_per_ml * moved
        end = t + dt
        if not self._low and self.reservoir_ml <= self.low_threshold_ml:
            self._low = True
            self.log.append((end, "reservoir_low"))
        if not self._empty and self.reservoir_ml <= self.unusable_residual_ml:
            self._empty = True
            self.log.append((end, "reservoir_empty"))
        if not self._eri and self.battery_percent <= self.battery.eri_percent:
            self._eri = True
            self.log.append((end, "battery_eri"))

    def refill(self, volume_ml: float) -> None:
        self.reservoir_ml = volume_ml
        self._low = self.reservoir_ml <= self.low_threshold_ml
        self._empty = self.reservoir_ml <= self.unusable_residual_ml


def stepped_process(
    env: simpy.Environment, pump: SteppedPump, step_s: float, refill_on_low: bool
) -> Generator[simpy.Event, object, None]:
    """A SimPy process that wakes every ``step_s`` and steps ``pump`` (the naive way)."""
    while True:
        yield env.timeout(step_s)
        before = len(pump.log)
        pump.step(float(env.now) - step_s, step_s)
        if refill_on_low and any(kind == "reservoir_low" for _, kind in pump.log[before:]):
            pump.refill(pump.capacity_ml)
