"""Flow through a pump as a function of time, integrated and inverted in closed form.

A programmed pump is piecewise constant in flow: a daily schedule of steps (one step for a
continuous program), optionally with a bolus laid on top for a while. Volume delivered is then
piecewise linear in time, so instead of stepping the clock we *compute* when a volume will have
been delivered (the low-reservoir threshold, empty, the battery's replacement point). That is
what lets a fleet-year run in seconds.

Time is seconds of simulation time; the schedule's days start at ``day_origin_s`` (the
simulation second that is midnight, device time). Rates here are per second.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Final

from twin.pump.fastinit import fast_frozen_init

SECONDS_PER_DAY: Final = 86_400.0


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class DailySchedule:
    """A periodic, piecewise-constant rate: ``rates[i]`` from ``starts[i]`` (seconds after midnight)
    until the next start, wrapping at midnight. ``starts[0]`` need not be 0: the last step runs
    through midnight until the first."""

    starts: tuple[float, ...]
    rates: tuple[float, ...]
    day_origin_s: float = 0.0
    # derived, for O(log n) lookups
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _day_total: float = field(init=False, repr=False, compare=False)
    _seg_rates: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _memo: list[float] = field(init=False, repr=False, compare=False)
    """The last two (t, cumulative(t)) answers, newest first: a pump asks for the same instants
    over and over (its clock, its next event), so :meth:`cumulative` answers those from here."""

    def __post_init__(self) -> None:
        starts, rates = self.starts, self.rates
        if starts == (0.0,) and len(rates) == 1 and 0.0 <= rates[0] < math.inf:
            derived = _constant_segments(rates[0])  # a continuous program: the common case, cheaply
        else:
            derived = _segments(starts, rates)
        bounds, cum, seg_rates = derived
        object.__setattr__(self, "_bounds", bounds)
        object.__setattr__(self, "_cum", cum)
        object.__setattr__(self, "_day_total", cum[-1])
        object.__setattr__(self, "_seg_rates", seg_rates)
        object.__setattr__(self, "_memo", [math.nan, 0.0, math.nan, 0.0])

    @classmethod
    def constant(cls, rate_per_s: float, day_origin_s: float = 0.0) -> DailySchedule:
        return cls((0.0,), (rate_per_s,), day_origin_s)

    def scaled(self, factor: float, plus: float = 0.0) -> DailySchedule:
        """``factor × rate + plus`` at every step (same breakpoints)."""
        return DailySchedule(self.starts, tuple(factor * r + plus for r in self.rates), self.day_origin_s)

    @property
    def per_day(self) -> float:
        """Amount accumulated over one whole day."""
        return self._day_total

    def _seg_rate(self, i: int) -> float:
        return self._seg_rates[i]

    def rate_at(self, t: float) -> float:
        x = (t - self.day_origin_s) % SECONDS_PER_DAY
        bounds = self._bounds
        i = bisect.bisect_right(bounds, x) - 1
        return self._seg_rates[min(i, len(bounds) - 2)]

    def cumulative(self, t: float) -> float:
        """Amount accumulated from ``day_origin_s`` to ``t`` (negative before the origin).

        Memoised: the last two instants asked for are answered from :attr:`_memo` (the same float
        :meth:`cumulative_direct` computes; NaN never matches, so it is always computed)."""
        memo = self._memo
        if t == memo[0]:
            return memo[1]
        if t == memo[2]:
            return memo[3]
        value = self.cumulative_direct(t)
        memo[2], memo[3] = memo[0], memo[1]
        memo[0], memo[1] = t, value
        return value

    def cumulative_direct(self, t: float) -> float:
        """:meth:`cumulative` computed, without the memo."""
        x = t - self.day_origin_s
        days = math.floor(x / SECONDS_PER_DAY)
        within = x - days * SECONDS_PER_DAY
        bounds = self._bounds
        i = min(bisect.bisect_right(bounds, within) - 1, len(bounds) - 2)
        return days * self._day_total + self._cum[i] + self._seg_rates[i] * (within - bounds[i])

    def amount_between(self, t0: float, t1: float) -> float:
        return self.cumulative(t1) - self.cumulative(t0)

    def time_to_accumulate(self, t0: float, amount: float) -> float:
        """Earliest ``t >= t0`` with ``amount_between(t0, t) == amount``; ``inf`` if never."""
        if amount <= 0:
            return t0
        day_total = self._day_total
        if day_total <= 0:
            return math.inf
        target = self.cumulative(t0) + amount
        days = math.floor(target / day_total)
        rem = target - days * day_total
        cum, bounds, rates = self._cum, self._bounds, self._seg_rates
        last = len(bounds) - 2
        i = 0  # one segment (a continuous program): always the first, as below
        if last > 0:
            # find the segment where the within-day cumulative reaches rem (first with cum[i+1] >= rem and rate > 0)
            i = bisect.bisect_left(cum, rem) - 1
            i = max(0, min(i, last))
            while rates[i] == 0.0 and i < last and cum[i + 1] <= rem:
                i += 1
        rate = rates[i]
        offset = (rem - cum[i]) / rate if rate > 0 else 0.0
        t = self.day_origin_s + days * SECONDS_PER_DAY + bounds[i] + offset
        return t0 if t0 > t else t  # max(t, t0)


Segments = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
"""A schedule's day as segments: bounds (from 0 to a day), cumulative amounts at them, rates."""


def _segments(starts: tuple[float, ...], rates: tuple[float, ...]) -> Segments:
    """Steps normalised into segments covering [0, day): the step running at midnight is the last one."""
    if not starts or len(starts) != len(rates):
        raise ValueError("a schedule needs one rate per step and at least one step")
    if any(r < 0 or not math.isfinite(r) for r in rates):
        raise ValueError("rates must be finite and non-negative")
    if list(starts) != sorted(set(starts)) or starts[0] < 0 or starts[-1] >= SECONDS_PER_DAY:
        raise ValueError("step starts must be increasing, within one day")
    bounds = [0.0]
    seg_rates = [rates[-1]]
    for start, rate in zip(starts, rates, strict=True):
        if start == 0.0:
            seg_rates[0] = rate
        else:
            bounds.append(start)
            seg_rates.append(rate)
    bounds.append(SECONDS_PER_DAY)
    cum = [0.0]
    for i, rate in enumerate(seg_rates):
        cum.append(cum[-1] + rate * (bounds[i + 1] - bounds[i]))
    return tuple(bounds), tuple(cum), tuple(seg_rates)


def _constant_segments(rate: float) -> Segments:
    """:func:`_segments` of one step from midnight at ``rate`` (finite, non-negative), computed directly."""
    return (0.0, SECONDS_PER_DAY), (0.0, 0.0 + rate * SECONDS_PER_DAY), (rate,)


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Overlay:
    """A constant extra rate from ``start`` to ``end`` (a bolus on top of the base program)."""

    start: float
    end: float
    rate: float

    def amount_between(self, t0: float, t1: float) -> float:
        lo, hi = max(t0, self.start), min(t1, self.end)
        return self.rate * (hi - lo) if hi > lo else 0.0


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Flow:
    """``base`` (a daily schedule) plus an optional ``overlay``: the whole rate of one quantity."""

    base: DailySchedule
    overlay: Overlay | None = None

    def rate_at(self, t: float) -> float:
        extra = self.overlay.rate if self.overlay and self.overlay.start <= t < self.overlay.end else 0.0
        return self.base.rate_at(t) + extra

    def amount_between(self, t0: float, t1: float) -> float:
        if t1 <= t0:
            return 0.0
        overlay = self.overlay
        extra = overlay.amount_between(t0, t1) if overlay else 0.0
        base = self.base
        return base.cumulative(t1) - base.cumulative(t0) + extra  # base.amount_between(t0, t1) + extra

    def time_to_accumulate(self, t0: float, amount: float) -> float:
        """Earliest ``t >= t0`` by which ``amount`` has accumulated; ``inf`` if never."""
        if amount <= 0:
            return t0
        ov = self.overlay
        if ov is None or t0 >= ov.end or ov.rate == 0.0:
            return self.base.time_to_accumulate(t0, amount)
        # Before and during the overlay, walk the base schedule's segments (at most a day's worth
        # plus the overlay's two edges), each linear; after it, the closed form again.
        t, left = t0, amount
        while t < ov.end:
            seg_end = min(self._next_break(t), ov.end)
            if t < ov.start:
                seg_end = min(seg_end, ov.start)
            rate = self.rate_at(t)
            got = rate * (seg_end - t)
            if got >= left and rate > 0:
                return t + left / rate
            left -= got
            t = seg_end
        return self.base.time_to_accumulate(t, left)

    def _next_break(self, t: float) -> float:
        base = self.base
        x = (t - base.day_origin_s) % SECONDS_PER_DAY
        i = bisect.bisect_right(base._bounds, x)
        nxt = base._bounds[min(i, len(base._bounds) - 1)]
        step = nxt - x
        return t + (step if step > 0 else SECONDS_PER_DAY)
