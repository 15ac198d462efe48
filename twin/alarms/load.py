"""Alarm load per site: the ISA-18.2 / EEMUA 191 performance figures, from recorded transitions.

Pure: a function of the transitions (``twin.alarms.lifecycle.Transition``, e.g. read back from the
journal), the current alarms and ``now``; no clock, no I/O.

What is counted
---------------
An **annunciation** is a transition that made an alarm sound by its condition: event ``raise`` or
``reraise`` into ``active_unacknowledged``. Not counted: condition changes while shelved or out of
service (nobody was asked), and unshelve / shelve expiry / return to service (an operator action
showing an existing alarm again). ISA-18.2 measures the alarms *presented* to an operator.

The **site** stands for the operator position: the clinic or ward whose staff answer the site's
pumps. ISA-18.2's rates are per operator console; a site is the nearest thing the twin knows.

"Within" an interval of length W means *spanning less than W*: annunciations at ``t`` and ``t + W``
are not within W of each other (half-open windows ``[t, t + W)``, so the figures do not depend on
where a clock's 10-minute buckets fall).

Targets (ISA-18.2-2016 table of alarm performance metrics, after EEMUA 191)
--------------------------------------------------------------------------
* average annunciation rate: ~1 per 10 minutes *very likely acceptable* (about 150 a day), ~2 per
  10 minutes *maximum manageable* (about 300 a day); EEMUA 191 rates 2 to 10 *likely
  over-demanding* and more than 10 *very likely unacceptable* (:class:`LoadRating`);
* flood: more than 10 alarms in 10 minutes; time in flood below ~1 %;
* the top 10 most frequent alarms below ~1-5 % of the load (bad actors);
* chattering alarms: zero; stale alarms: fewer than 5 on any day;
* priority distribution of the annunciated alarms: about 80 % low, 15 % medium, 5 % high (ISA-18.2
  and EEMUA 191): if most alarms are urgent, urgency means nothing (:class:`PriorityDistribution`).

The thresholds are the named constants below; figures marked [A] are this module's reading of
common practice, not numbers fixed by the standard.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from twin.alarms.lifecycle import Alarm, AlarmState, Transition, TransitionEvent
from twin.contract.alarms import PRIORITY_RANK, Priority

RATE_INTERVAL: Final = timedelta(minutes=10)
"""The interval alarm rates are given per (ISA-18.2, EEMUA 191)."""

ACCEPTABLE_PER_10_MIN: Final = 1.0
"""Average rate very likely acceptable (ISA-18.2 / EEMUA 191: ~1 per 10 min, ~150 per day)."""

MANAGEABLE_PER_10_MIN: Final = 2.0
"""Average rate at the limit of manageable (ISA-18.2: ~2 per 10 min, ~300 per day)."""

FLOOD_PER_10_MIN: Final = 10
"""More than this many annunciations within 10 minutes is an alarm flood (ISA-18.2, EEMUA 191).
The flood ends when the rate falls back to this many (no hysteresis [A])."""

STALE_AFTER: Final = timedelta(hours=24)
"""An alarm whose condition has been active (and not suppressed) longer than this is stale (ISA-18.2's example figure)."""

CHATTER_INTERVAL: Final = timedelta(minutes=1)
CHATTER_COUNT: Final = 3
"""An alarm (same code on the same device) annunciated this many times within ``CHATTER_INTERVAL``
is chattering ([A] the usual rule of thumb, e.g. 3 in 1 minute; ISA-18.2 sets the target at zero)."""

BAD_ACTOR_COUNT: Final = 10
"""How many of the most frequent alarms are reported (ISA-18.2's "top 10" metric)."""

PRIORITY_DISTRIBUTION_TARGET: Final[Mapping[Priority, float]] = {
    Priority.LOW: 0.80,
    Priority.MEDIUM: 0.15,
    Priority.HIGH: 0.05,
}
"""Recommended share of annunciated alarms per priority (ISA-18.2-2016 and EEMUA 191: roughly
80 / 15 / 5 % for three priorities)."""

PRIORITY_SHARE_TOLERANCE: Final = 0.05
"""How far above its target the high share (and the high-plus-medium share) may be before the
distribution counts as top-heavy. [A] the standards say "approximately"; five percentage points."""

PRIORITY_KPI_MIN_ANNUNCIATIONS: Final = 20
"""Fewer annunciations than this say nothing about a distribution (``within_target`` is None). [A]"""


class LoadRating(StrEnum):
    """EEMUA 191's reading of an average annunciation rate per 10 minutes."""

    ACCEPTABLE = "acceptable"  # <= 1
    MANAGEABLE = "manageable"  # <= 2
    OVER_DEMANDING = "over_demanding"  # <= 10
    UNACCEPTABLE = "unacceptable"  # > 10


@dataclass(frozen=True, slots=True)
class FloodPeriod:
    """One flood: from ``start`` (the annunciation that took the rate over 10 per 10 minutes) to
    ``end`` (when the rate fell back to 10 or fewer: an annunciation left the 10-minute window;
    ``now`` while ``ongoing``). ``count``: annunciations counted while flooded, those in
    ``(start - 10 min, end)``; ``peak_per_10_min``: the most at once.

    Example: 11 alarms 30 s apart from 12:00:00 make a flood from 12:05:00 (the 11th) to 12:10:00
    (the first leaves the window) with count 11 and peak 11.
    """

    start: datetime
    end: datetime
    count: int
    peak_per_10_min: int
    ongoing: bool


@dataclass(frozen=True, slots=True)
class ChatteringAlarm:
    """An alarm code on one device annunciated ``CHATTER_COUNT`` or more times within ``CHATTER_INTERVAL``.

    ``annunciations``: in the whole window; ``max_per_minute``: the most within one
    ``CHATTER_INTERVAL``; ``first_burst_at``: the first annunciation of the first such burst.
    """

    device_id: str
    code: str
    priority: Priority
    annunciations: int
    max_per_minute: int
    first_burst_at: datetime


@dataclass(frozen=True, slots=True)
class StaleAlarm:
    """An alarm whose condition has been active, and shown, for longer than ``STALE_AFTER``.
    ``active_s``: seconds from ``active_since`` (the alarm's ``raised_at``) to ``now``."""

    key: str
    device_id: str
    code: str
    priority: Priority
    state: AlarmState
    active_since: datetime
    active_s: float


@dataclass(frozen=True, slots=True)
class BadActor:
    """One of the most frequent alarms: ``annunciations`` in the window and their ``share``
    (0..1) of the site's annunciations."""

    device_id: str
    code: str
    priority: Priority
    annunciations: int
    share: float


@dataclass(frozen=True, slots=True)
class PriorityDistribution:
    """The priority-distribution KPI over a window: each priority's ``shares`` (0..1, summing to 1
    with any annunciation; all 0 without), the ``target`` shares, and ``within_target``: whether the
    high share and the high-plus-medium share stay within :data:`PRIORITY_SHARE_TOLERANCE` of their
    targets (a surplus of low-priority alarms is no fault); ``None`` with fewer than
    :data:`PRIORITY_KPI_MIN_ANNUNCIATIONS` annunciations."""

    shares: Mapping[Priority, float]
    target: Mapping[Priority, float]
    within_target: bool | None


def priority_distribution(by_priority: Mapping[Priority, int]) -> PriorityDistribution:
    """The KPI from annunciation counts per priority (missing priorities count 0)."""
    total = sum(by_priority.get(p, 0) for p in Priority)
    shares = {p: (by_priority.get(p, 0) / total if total else 0.0) for p in Priority}
    target = PRIORITY_DISTRIBUTION_TARGET
    within: bool | None = None
    if total >= PRIORITY_KPI_MIN_ANNUNCIATIONS:
        high_ok = shares[Priority.HIGH] <= target[Priority.HIGH] + PRIORITY_SHARE_TOLERANCE
        urgent = shares[Priority.HIGH] + shares[Priority.MEDIUM]
        within = high_ok and urgent <= target[Priority.HIGH] + target[Priority.MEDIUM] + PRIORITY_SHARE_TOLERANCE
    return PriorityDistribution(shares, dict(target), within)


@dataclass(frozen=True, slots=True)
class SiteLoad:
    """ISA-18.2 alarm-load figures of one site over ``[window_start, window_end]`` (``window_end`` = now).

    * ``annunciations``: count in the window; ``by_priority``: the same split by priority (every
      priority present, zero if none); ``priority_distribution``: its shares against the
      ISA-18.2 / EEMUA 191 targets.
    * ``average_per_10_min``: ``annunciations`` / (window length / 10 min); ``peak_per_10_min``:
      the most annunciations within any 10 minutes of the window; ``rating``: the average read
      against EEMUA 191.
    * ``floods``: flood periods in time order; ``flood_s``: seconds spent in flood in the window;
      ``flood_fraction``: ``flood_s`` / window length (0..1).
    * ``chattering``: alarms chattering in the window, most annunciations first.
    * ``bad_actors``: the ``BAD_ACTOR_COUNT`` most frequent alarms (device and code), most first,
      ties by device then code; ``top_10_share``: their share of ``annunciations`` (0..1; 0 when
      there are none).
    * ``stale``: current alarms active longer than ``STALE_AFTER`` (oldest first), from the
      ``alarms`` given; ``shelved`` and ``out_of_service``: how many current alarms are so.
    """

    site: str
    window_start: datetime
    window_end: datetime
    annunciations: int
    by_priority: Mapping[Priority, int]
    average_per_10_min: float
    peak_per_10_min: int
    rating: LoadRating
    floods: tuple[FloodPeriod, ...]
    flood_s: float
    flood_fraction: float
    chattering: tuple[ChatteringAlarm, ...]
    bad_actors: tuple[BadActor, ...]
    top_10_share: float
    stale: tuple[StaleAlarm, ...]
    shelved: int
    out_of_service: int
    priority_distribution: PriorityDistribution


_ANNUNCIATING_EVENTS: Final = frozenset({TransitionEvent.RAISE, TransitionEvent.RERAISE})


def is_annunciation(transition: Transition) -> bool:
    """Did this transition present an alarm to staff by its condition (see the module docstring)?"""
    return transition.event in _ANNUNCIATING_EVENTS and transition.to_state == AlarmState.ACTIVE_UNACKNOWLEDGED


def rating(average_per_10_min: float) -> LoadRating:
    """EEMUA 191's reading of an average rate (annunciations per 10 minutes)."""
    if average_per_10_min <= ACCEPTABLE_PER_10_MIN:
        return LoadRating.ACCEPTABLE
    if average_per_10_min <= MANAGEABLE_PER_10_MIN:
        return LoadRating.MANAGEABLE
    if average_per_10_min <= FLOOD_PER_10_MIN:
        return LoadRating.OVER_DEMANDING
    return LoadRating.UNACCEPTABLE


def alarm_load(
    transitions: Iterable[Transition],
    *,
    now: datetime,
    window: timedelta = timedelta(hours=24),
    alarms: Iterable[Alarm] = (),
) -> dict[str, SiteLoad]:
    """Alarm-load figures per site over the window ``[now - window, now]``.

    ``transitions`` may come in any order and may hold transitions outside the window (ignored).
    ``alarms`` are the current alarms (for stale, shelved and out-of-service figures). Every site
    with a transition in the window or a current alarm gets an entry. Raises ``ValueError`` for a
    naive ``now`` or a window that is not positive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if window <= timedelta(0):
        raise ValueError(f"the window must be positive, not {window}")
    start = now - window
    in_window: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        if start <= transition.at <= now:
            in_window[transition.site].append(transition)
    current: dict[str, list[Alarm]] = defaultdict(list)
    for alarm in alarms:
        current[alarm.site].append(alarm)
    return {
        site: _site_load(site, in_window.get(site, []), current.get(site, []), start, now)
        for site in sorted(in_window.keys() | current.keys())
    }


def _site_load(
    site: str, transitions: list[Transition], alarms: list[Alarm], start: datetime, now: datetime
) -> SiteLoad:
    raised = sorted((t for t in transitions if is_annunciation(t)), key=lambda t: t.at)
    times = [t.at for t in raised]
    window_s = (now - start).total_seconds()
    average = len(times) / (window_s / RATE_INTERVAL.total_seconds())
    floods = _floods(times, now)
    flood_s = sum((f.end - f.start).total_seconds() for f in floods)
    by_priority = Counter(Priority(t.priority) for t in raised)
    per_alarm: dict[tuple[str, str], list[Transition]] = defaultdict(list)
    for t in raised:
        per_alarm[(t.device_id, t.code)].append(t)
    ranked = sorted(per_alarm.items(), key=lambda item: (-len(item[1]), item[0]))[:BAD_ACTOR_COUNT]
    bad_actors = tuple(
        BadActor(device, code, _highest(ts), len(ts), len(ts) / len(times)) for (device, code), ts in ranked
    )
    return SiteLoad(
        site=site,
        window_start=start,
        window_end=now,
        annunciations=len(times),
        by_priority={p: by_priority.get(p, 0) for p in Priority},
        average_per_10_min=average,
        peak_per_10_min=_most_within(times, RATE_INTERVAL)[0],
        rating=rating(average),
        floods=floods,
        flood_s=flood_s,
        flood_fraction=flood_s / window_s,
        chattering=_chattering(per_alarm),
        bad_actors=bad_actors,
        top_10_share=sum(b.annunciations for b in bad_actors) / len(times) if times else 0.0,
        stale=_stale(alarms, now),
        shelved=sum(a.state is AlarmState.SHELVED for a in alarms),
        out_of_service=sum(a.state is AlarmState.OUT_OF_SERVICE for a in alarms),
        priority_distribution=priority_distribution(by_priority),
    )


def _highest(transitions: list[Transition]) -> Priority:
    return max((t.priority for t in transitions), key=PRIORITY_RANK.__getitem__)


def _most_within(times: list[datetime], interval: timedelta, reaching: int = 1) -> tuple[int, int | None]:
    """The most of the sorted ``times`` spanning less than ``interval``, and the index of the first
    time that starts a run of ``reaching`` or more (``None`` if none does). Exact: datetimes, not
    float seconds (a float timestamp can put two alarms exactly 10 minutes apart a fraction of a
    microsecond inside the window)."""
    best, first_run, first = 0, None, 0
    for last, value in enumerate(times):
        while value - times[first] >= interval:
            first += 1
        best = max(best, last - first + 1)
        if first_run is None and last - first + 1 >= reaching:
            first_run = first
    return best, first_run


def _floods(times: list[datetime], now: datetime) -> tuple[FloodPeriod, ...]:
    """Sweep the trailing 10-minute count r(t) = #{τ : t - 10 min < τ <= t} over the annunciation
    times: it rises at each τ and falls at each τ + 10 min; a flood is a maximal interval with
    r > FLOOD_PER_10_MIN. All changes at one instant are applied before r is read."""
    floods: list[FloodPeriod] = []
    arrivals, departures = 0, 0  # indices into times: next arrival, next departure (τ + W)
    count = 0
    flood_start: datetime | None = None
    peak = 0
    while arrivals < len(times):
        instant = times[arrivals]
        if times[departures] + RATE_INTERVAL <= instant:
            instant = times[departures] + RATE_INTERVAL
        while departures < arrivals and times[departures] + RATE_INTERVAL == instant:
            departures += 1
            count -= 1
        while arrivals < len(times) and times[arrivals] == instant:
            arrivals += 1
            count += 1
        if count > FLOOD_PER_10_MIN:
            if flood_start is None:
                flood_start, peak = instant, count
            peak = max(peak, count)
        elif flood_start is not None:
            floods.append(_flood(times, flood_start, instant, peak, ongoing=False))
            flood_start = None
    # after the last arrival only departures remain: the count can only fall
    while flood_start is not None:
        leaving = times[departures] + RATE_INTERVAL
        if leaving > now:
            floods.append(_flood(times, flood_start, now, peak, ongoing=True))
            break
        while departures < len(times) and times[departures] + RATE_INTERVAL == leaving:
            departures += 1
            count -= 1
        if count <= FLOOD_PER_10_MIN:
            floods.append(_flood(times, flood_start, leaving, peak, ongoing=False))
            flood_start = None
    return tuple(floods)


def _flood(times: list[datetime], start: datetime, end: datetime, peak: int, *, ongoing: bool) -> FloodPeriod:
    first = bisect_right(times, start - RATE_INTERVAL)
    last = bisect_right(times, end) if ongoing else bisect_left(times, end)
    return FloodPeriod(start, end, last - first, peak, ongoing)


def _chattering(per_alarm: Mapping[tuple[str, str], list[Transition]]) -> tuple[ChatteringAlarm, ...]:
    found = []
    for (device, code), transitions in per_alarm.items():
        most, first = _most_within([t.at for t in transitions], CHATTER_INTERVAL, CHATTER_COUNT)
        if first is not None:
            found.append(
                ChatteringAlarm(device, code, _highest(transitions), len(transitions), most, transitions[first].at)
            )
    return tuple(sorted(found, key=lambda c: (-c.annunciations, c.device_id, c.code)))


def _stale(alarms: list[Alarm], now: datetime) -> tuple[StaleAlarm, ...]:
    stale = [
        StaleAlarm(a.key, a.device_id, a.code, a.priority, a.state, a.raised_at, (now - a.raised_at).total_seconds())
        for a in alarms
        if a.condition_active and a.state in (AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED)
        if now - a.raised_at > STALE_AFTER
    ]
    return tuple(sorted(stale, key=lambda s: (s.active_since, s.key)))


__all__ = [
    "ACCEPTABLE_PER_10_MIN",
    "BAD_ACTOR_COUNT",
    "CHATTER_COUNT",
    "CHATTER_INTERVAL",
    "FLOOD_PER_10_MIN",
    "MANAGEABLE_PER_10_MIN",
    "PRIORITY_DISTRIBUTION_TARGET",
    "PRIORITY_KPI_MIN_ANNUNCIATIONS",
    "PRIORITY_SHARE_TOLERANCE",
    "RATE_INTERVAL",
    "STALE_AFTER",
    "BadActor",
    "ChatteringAlarm",
    "FloodPeriod",
    "LoadRating",
    "PriorityDistribution",
    "SiteLoad",
    "StaleAlarm",
    "alarm_load",
    "is_annunciation",
    "priority_distribution",
    "rating",
]
