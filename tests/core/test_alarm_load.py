"""ISA-18.2 alarm load per site: rates, peaks, floods, chattering, stale alarms and bad actors,
against hand-computed figures, and floods against a brute-force reading of the definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.alarms import lifecycle as lc
from twin.alarms.lifecycle import Alarm, AlarmState, Transition, TransitionEvent
from twin.alarms.load import (
    CHATTER_COUNT,
    FLOOD_PER_10_MIN,
    RATE_INTERVAL,
    BadActor,
    FloodPeriod,
    LoadRating,
    SiteLoad,
    alarm_load,
    is_annunciation,
    priority_distribution,
    rating,
)
from twin.contract.alarms import Priority

NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
AU = AlarmState.ACTIVE_UNACKNOWLEDGED


def raised_at(
    at: datetime,
    *,
    device: str = "pump-1",
    code: str = "reservoir_low",
    site: str = "clinic-a",
    priority: Priority = Priority.MEDIUM,
    event: TransitionEvent = TransitionEvent.RAISE,
    from_state: AlarmState | None = None,
    to_state: AlarmState = AU,
) -> Transition:
    return Transition(
        key=lc.alarm_key(site, device, code),
        device_id=device,
        site=site,
        code=code,
        priority=priority,
        from_state=from_state,
        to_state=to_state,
        event=event,
        actor="device",
        at=at,
        comment=None,
        raised_at=at,
        time_to_ack_s=None,
        version=1,
        source="device",
        latching=False,
        message="m",
        expires_at=None,
    )


def burst(start: datetime, count: int, every: timedelta) -> list[Transition]:
    """``count`` annunciations of distinct alarms, ``every`` apart from ``start``."""
    return [raised_at(start + i * every, device=f"pump-{i}") for i in range(count)]


def one_site(transitions: list[Transition], *, window: timedelta = HOUR, alarms: tuple[Alarm, ...] = ()) -> SiteLoad:
    loads = alarm_load(transitions, now=NOW, window=window, alarms=alarms)
    assert list(loads) == ["clinic-a"]
    return loads["clinic-a"]


# ----------------------------------------------------------------------------------------------- rates


@pytest.mark.parametrize(
    ("count", "average", "expected"),
    [
        (0, 0.0, LoadRating.ACCEPTABLE),
        (6, 1.0, LoadRating.ACCEPTABLE),
        (7, 7 / 6, LoadRating.MANAGEABLE),
        (12, 2.0, LoadRating.MANAGEABLE),
        (13, 13 / 6, LoadRating.OVER_DEMANDING),
        (60, 10.0, LoadRating.OVER_DEMANDING),
        (61, 61 / 6, LoadRating.UNACCEPTABLE),
    ],
)
def test_average_rate_per_10_minutes_and_its_rating(count: int, average: float, expected: LoadRating) -> None:
    # spread over the hour: 59 min / count apart, so no flood
    transitions = burst(NOW - 59 * MIN, count, 59 * MIN / max(count, 1))
    load = one_site(transitions) if count else None
    if load is not None:
        assert load.annunciations == count
        assert load.average_per_10_min == pytest.approx(average)
        assert load.rating is expected
    assert rating(average) is expected


def test_window_bounds_are_inclusive_and_outside_is_ignored() -> None:
    transitions = [raised_at(NOW - HOUR), raised_at(NOW), raised_at(NOW - HOUR - S), raised_at(NOW + S)]
    assert one_site(transitions).annunciations == 2


def test_only_raises_into_active_unacknowledged_are_annunciations() -> None:
    sh = AlarmState.SHELVED
    counted = [
        raised_at(NOW - 50 * MIN),
        raised_at(NOW - 40 * MIN, event=TransitionEvent.RAISE, from_state=AlarmState.NORMAL),
        raised_at(NOW - 30 * MIN, event=TransitionEvent.RERAISE, from_state=AlarmState.CLEARED_UNACKNOWLEDGED),
    ]
    not_counted = [
        raised_at(NOW - 20 * MIN, event=TransitionEvent.RAISE, from_state=sh, to_state=sh),  # while shelved
        raised_at(NOW - 19 * MIN, event=TransitionEvent.UNSHELVE, from_state=sh),
        raised_at(NOW - 18 * MIN, event=TransitionEvent.SHELVE_EXPIRED, from_state=sh),
        raised_at(NOW - 17 * MIN, event=TransitionEvent.RETURN_TO_SERVICE, from_state=AlarmState.OUT_OF_SERVICE),
        raised_at(
            NOW - 16 * MIN,
            event=TransitionEvent.ACKNOWLEDGE,
            from_state=AU,
            to_state=AlarmState.ACTIVE_ACKNOWLEDGED,
        ),
        raised_at(NOW - 15 * MIN, event=TransitionEvent.CLEAR, from_state=AU, to_state=AlarmState.NORMAL),
    ]
    assert [is_annunciation(t) for t in counted + not_counted] == [True] * 3 + [False] * 6
    assert one_site(counted + not_counted).annunciations == 3


def test_peak_counts_the_most_within_any_10_minutes() -> None:
    # 3 at 11:10-11:12, 4 at 11:30:00, 11:35, 11:39:59.999999, 11:40:00
    transitions = [
        *burst(NOW - 50 * MIN, 3, MIN),
        raised_at(NOW - 30 * MIN),
        raised_at(NOW - 25 * MIN),
        raised_at(NOW - 20 * MIN - timedelta(microseconds=1)),
        raised_at(NOW - 20 * MIN),  # exactly 10 min after 11:30: not within 10 minutes of it
    ]
    assert one_site(transitions).peak_per_10_min == 3


def test_by_priority_lists_every_priority() -> None:
    transitions = [raised_at(NOW - MIN, priority=Priority.HIGH), raised_at(NOW - 2 * MIN, priority=Priority.HIGH)]
    assert one_site(transitions).by_priority == {Priority.HIGH: 2, Priority.MEDIUM: 0, Priority.LOW: 0}


def test_the_priority_distribution_against_the_80_15_5_target() -> None:
    def load(high: int, medium: int, low: int) -> SiteLoad:
        transitions = [
            raised_at(NOW - (i + 1) * S, priority=priority)
            for i, priority in enumerate([Priority.HIGH] * high + [Priority.MEDIUM] * medium + [Priority.LOW] * low)
        ]
        return one_site(transitions)

    balanced = load(1, 3, 16).priority_distribution
    assert balanced.shares == {Priority.HIGH: 0.05, Priority.MEDIUM: 0.15, Priority.LOW: 0.80}
    assert balanced.target == {Priority.HIGH: 0.05, Priority.MEDIUM: 0.15, Priority.LOW: 0.80}
    assert balanced.within_target is True
    assert load(0, 0, 20).priority_distribution.within_target is True  # more low than the target is no fault
    assert load(3, 2, 15).priority_distribution.within_target is False  # 15 % high
    assert load(2, 4, 14).priority_distribution.within_target is False  # 30 % high or medium
    assert load(2, 3, 15).priority_distribution.within_target is True  # 10 % high, 25 %: at the tolerance
    small = load(3, 0, 0).priority_distribution
    assert small.within_target is None  # three alarms say nothing about a distribution
    assert small.shares[Priority.HIGH] == 1.0
    assert priority_distribution({}).shares == {Priority.HIGH: 0.0, Priority.MEDIUM: 0.0, Priority.LOW: 0.0}


# ---------------------------------------------------------------------------------------------- floods


def test_eleven_alarms_thirty_seconds_apart_are_a_five_minute_flood() -> None:
    start = NOW - 50 * MIN  # 11:10
    load = one_site(burst(start, 11, 30 * S))
    assert load.floods == (FloodPeriod(start + 5 * MIN, start + 10 * MIN, 11, 11, ongoing=False),)
    assert load.flood_s == 300.0
    assert load.flood_fraction == pytest.approx(300 / 3600)
    assert load.peak_per_10_min == 11


def test_ten_alarms_in_ten_minutes_are_not_a_flood() -> None:
    load = one_site(burst(NOW - 50 * MIN, FLOOD_PER_10_MIN, 30 * S))
    assert (load.floods, load.flood_s, load.peak_per_10_min) == ((), 0.0, 10)


def test_a_flood_ends_when_enough_alarms_leave_the_window() -> None:
    start = NOW - 50 * MIN
    # 15 alarms 20 s apart: the 11th (start + 200 s) floods; the rate is back to 10 after the
    # 5th departure, at start + 80 s + 10 min
    load = one_site(burst(start, 15, 20 * S))
    assert load.floods == (FloodPeriod(start + 200 * S, start + 80 * S + 10 * MIN, 15, 15, ongoing=False),)


def test_an_arrival_and_a_departure_at_the_same_instant_keep_the_flood() -> None:
    start = NOW - 50 * MIN
    transitions = [*burst(start, 11, 5 * S), raised_at(start + 10 * MIN, device="late")]
    # at start + 10 min the first leaves as the late one arrives: still 11; the rate falls to 10
    # when the second leaves (start + 5 s + 10 min)
    assert one_site(transitions).floods == (
        FloodPeriod(start + 50 * S, start + 5 * S + 10 * MIN, 12, 11, ongoing=False),
    )


def test_two_floods_are_reported_in_order() -> None:
    first, second = NOW - 55 * MIN, NOW - 25 * MIN
    load = one_site(burst(first, 11, S) + burst(second, 12, S))
    assert [(f.start, f.end, f.count, f.peak_per_10_min) for f in load.floods] == [
        (first + 10 * S, first + 10 * MIN, 11, 11),
        (second + 10 * S, second + S + 10 * MIN, 12, 12),
    ]
    assert load.flood_s == (10 * MIN - 10 * S + 10 * MIN + S - 10 * S).total_seconds()


def test_a_flood_still_going_at_now_is_ongoing_and_ends_now() -> None:
    start = NOW - 2 * MIN
    load = one_site(burst(start, 11, 10 * S))  # the last one at NOW - 20 s
    assert load.floods == (FloodPeriod(start + 100 * S, NOW, 11, 11, ongoing=True),)


def test_an_alarm_arriving_as_the_flood_ends_is_not_part_of_it() -> None:
    start = NOW - 50 * MIN
    transitions = [*burst(start, 2, timedelta(0)), *burst(start + S, 9, S), raised_at(start + 10 * MIN, device="late")]
    # at start + 10 min two leave and one arrives: 11 - 2 + 1 = 10, the flood is over
    assert one_site(transitions).floods == (FloodPeriod(start + 9 * S, start + 10 * MIN, 11, 11, ongoing=False),)


def test_an_alarm_that_left_as_the_flood_began_is_not_part_of_it() -> None:
    start = NOW - 50 * MIN
    transitions = [raised_at(start, device="early"), *burst(start + 10 * MIN, 11, timedelta(0))]
    assert one_site(transitions).floods == (FloodPeriod(start + 10 * MIN, start + 20 * MIN, 11, 11, ongoing=False),)


def test_a_flood_that_ends_exactly_now_is_over() -> None:
    start = NOW - 10 * MIN
    assert one_site(burst(start, 11, timedelta(0))).floods == (FloodPeriod(start, NOW, 11, 11, ongoing=False),)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3600), max_size=60), st.integers(1, 4))
def test_floods_match_a_brute_force_reading_of_the_definition(offsets_s: list[int], clump: int) -> None:
    times = sorted(NOW - HOUR + timedelta(seconds=o // clump) for o in offsets_s)
    loads = alarm_load([raised_at(t, device=f"p{i}") for i, t in enumerate(times)], now=NOW, window=HOUR)
    if not times:
        assert loads == {}
        return
    load = loads["clinic-a"]

    def trailing(t: datetime) -> int:  # r(t): annunciations in (t - 10 min, t]
        return sum(t - RATE_INTERVAL < tau <= t for tau in times)

    instants = sorted({*times, *(t + RATE_INTERVAL for t in times if t + RATE_INTERVAL <= NOW)})
    expected: list[tuple[datetime, datetime, int, int, bool]] = []
    start, peak = None, 0
    for instant in instants:
        r = trailing(instant)
        if r > FLOOD_PER_10_MIN:
            start, peak = (instant, r) if start is None else (start, max(peak, r))
        elif start is not None:
            count = sum(start - RATE_INTERVAL < tau < instant for tau in times)
            expected.append((start, instant, count, peak, False))
            start = None
    if start is not None:
        expected.append((start, NOW, sum(start - RATE_INTERVAL < tau <= NOW for tau in times), peak, True))
    assert [(f.start, f.end, f.count, f.peak_per_10_min, f.ongoing) for f in load.floods] == expected
    brute_peak = max((sum(t <= tau < t + RATE_INTERVAL for tau in times) for t in times), default=0)
    assert load.peak_per_10_min == brute_peak
    assert bool(load.floods) == (brute_peak > FLOOD_PER_10_MIN)


# ------------------------------------------------------------------------------------------ chattering


def test_three_raises_of_one_alarm_within_a_minute_chatter() -> None:
    start = NOW - 30 * MIN
    transitions = [
        raised_at(start),
        raised_at(start + 20 * S, event=TransitionEvent.RERAISE, from_state=AlarmState.CLEARED_UNACKNOWLEDGED),
        raised_at(start + 59 * S, event=TransitionEvent.RAISE, from_state=AlarmState.NORMAL),
        raised_at(start + 10 * MIN, from_state=AlarmState.NORMAL),
    ]
    [chatter] = one_site(transitions).chattering
    assert (chatter.device_id, chatter.code, chatter.priority) == ("pump-1", "reservoir_low", Priority.MEDIUM)
    assert (chatter.annunciations, chatter.max_per_minute, chatter.first_burst_at) == (4, 3, start)


def test_three_raises_spanning_a_full_minute_do_not_chatter() -> None:
    start = NOW - 30 * MIN
    transitions = [raised_at(start), raised_at(start + 30 * S), raised_at(start + MIN)]
    assert CHATTER_COUNT == 3
    assert one_site(transitions).chattering == ()


def test_chattering_is_per_device_and_code() -> None:
    start = NOW - 30 * MIN
    transitions = [
        raised_at(start, device="pump-1"),
        raised_at(start + S, device="pump-2"),
        raised_at(start + 2 * S, device="pump-1", code="motor_stall"),
        raised_at(start + 3 * S, device="pump-1"),
    ]
    assert one_site(transitions).chattering == ()


def test_the_first_burst_is_reported_when_an_alarm_chatters_twice() -> None:
    first, second = NOW - 40 * MIN, NOW - 20 * MIN
    transitions = [raised_at(first + i * 10 * S) for i in range(3)] + [raised_at(second + i * S) for i in range(5)]
    [chatter] = one_site(transitions).chattering
    assert (chatter.annunciations, chatter.max_per_minute, chatter.first_burst_at) == (8, 5, first)


# ------------------------------------------------------------------------------------------ bad actors


def test_top_ten_most_frequent_alarms_with_shares() -> None:
    transitions = []
    # pump-00 raised 12 times, pump-01 11 times, ... pump-11 once: 78 in all, 2 min apart per pump
    for rank in range(12):
        transitions += [
            raised_at(NOW - 50 * MIN + i * 2 * MIN + rank * S, device=f"pump-{rank:02}") for i in range(12 - rank)
        ]
    load = one_site(transitions)
    assert load.annunciations == 78
    assert [(b.device_id, b.annunciations) for b in load.bad_actors] == [(f"pump-{r:02}", 12 - r) for r in range(10)]
    assert load.bad_actors[0] == BadActor("pump-00", "reservoir_low", Priority.MEDIUM, 12, 12 / 78)
    assert load.top_10_share == pytest.approx(75 / 78)


def test_bad_actor_ties_are_broken_by_device_then_code() -> None:
    transitions = [
        raised_at(NOW - 3 * MIN, device="pump-b"),
        raised_at(NOW - 2 * MIN, device="pump-a", code="reservoir_low"),
        raised_at(NOW - MIN, device="pump-a", code="battery_eri"),
    ]
    assert [(b.device_id, b.code) for b in one_site(transitions).bad_actors] == [
        ("pump-a", "battery_eri"),
        ("pump-a", "reservoir_low"),
        ("pump-b", "reservoir_low"),
    ]


def test_no_annunciations_give_zero_shares() -> None:
    ack = raised_at(NOW - MIN, event=TransitionEvent.ACKNOWLEDGE, to_state=AlarmState.ACTIVE_ACKNOWLEDGED)
    load = one_site([ack])
    assert (load.annunciations, load.bad_actors, load.top_10_share, load.peak_per_10_min) == (0, (), 0.0, 0)


# ------------------------------------------------------------------------------------- current alarms


def _alarm(device: str, raised: datetime, *, site: str = "clinic-a") -> Alarm:
    alarm, _ = lc.raise_alarm(
        lc.alarm_key(site, device, "motor_stall"), device, site, "motor_stall", "device", Priority.HIGH, "stall", raised
    )
    return alarm


def test_stale_alarms_are_active_shown_alarms_older_than_a_day() -> None:
    old = NOW - 25 * HOUR
    stale_unacked = _alarm("pump-1", old)
    stale_acked = lc.acknowledge(_alarm("pump-2", old - HOUR), "nurse:ana", old)[0]
    fresh = _alarm("pump-3", NOW - 23 * HOUR)
    exactly_a_day = _alarm("pump-4", NOW - 24 * HOUR)
    shelved = lc.shelve(_alarm("pump-5", old), "dr:bo", NOW - HOUR, 2 * HOUR, "known")[0]
    out = lc.remove_from_service(_alarm("pump-6", old), "tech:cy", NOW - HOUR, "explanted")[0]
    latched = lc.condition_cleared(_alarm("pump-7", old), NOW - HOUR)[0]  # cleared, unacknowledged
    load = one_site([], alarms=(stale_unacked, stale_acked, fresh, exactly_a_day, shelved, out, latched))
    assert [(s.device_id, s.state, s.active_since, s.active_s) for s in load.stale] == [
        ("pump-2", AlarmState.ACTIVE_ACKNOWLEDGED, old - HOUR, 26 * 3600.0),
        ("pump-1", AU, old, 25 * 3600.0),
    ]
    assert (load.shelved, load.out_of_service, load.annunciations) == (1, 1, 0)


def test_every_site_gets_its_own_figures() -> None:
    transitions = [raised_at(NOW - MIN, site="clinic-a"), raised_at(NOW - MIN, site="clinic-b", device="pump-9")]
    only_alarm = _alarm("pump-8", NOW - 30 * HOUR, site="clinic-c")
    loads = alarm_load(transitions, now=NOW, window=HOUR, alarms=[only_alarm])
    assert sorted(loads) == ["clinic-a", "clinic-b", "clinic-c"]
    assert [loads[s].annunciations for s in sorted(loads)] == [1, 1, 0]
    assert [len(loads[s].stale) for s in sorted(loads)] == [0, 0, 1]
    assert loads["clinic-c"].window_start == NOW - HOUR
    assert loads["clinic-c"].window_end == NOW


def test_the_default_window_is_a_day() -> None:
    loads = alarm_load([raised_at(NOW - 23 * HOUR), raised_at(NOW - 25 * HOUR)], now=NOW)
    assert loads["clinic-a"].annunciations == 1
    assert loads["clinic-a"].average_per_10_min == pytest.approx(1 / 144)


def test_figures_come_from_lifecycle_transitions() -> None:
    alarm, made = lc.raise_alarm(
        "pump-1/motor_stall", "pump-1", "clinic-a", "motor_stall", "device", Priority.HIGH, "s", NOW - 3 * MIN
    )
    for step in range(2):
        alarm, cleared = lc.condition_cleared(alarm, NOW - 3 * MIN + (2 * step + 1) * 10 * S)
        alarm, back = lc.condition_returned(alarm, NOW - 3 * MIN + (2 * step + 2) * 10 * S)
        made += cleared + back
    [chatter] = one_site(made).chattering
    assert (chatter.annunciations, chatter.max_per_minute) == (3, 3)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        alarm_load([], now=datetime(2025, 3, 2, 12, 0))
    with pytest.raises(ValueError, match="positive"):
        alarm_load([], now=NOW, window=timedelta(0))
