"""Escalation of unanswered alarms (``twin.alarms.escalation``): the ladder per priority, what stops
it and what does not, who is told, a restart that catches up, and properties over random sequences
of lifecycle operations (the same sequences the lifecycle's own tests run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings

from tests.harness.alarm_operations import START, Operation, run, sequences
from twin.alarms import lifecycle as lc
from twin.alarms.escalation import (
    DEFAULT_POLICY,
    EscalationPolicy,
    Roster,
    Rung,
    Tier,
    climb,
    due,
    escalation_id,
    live,
    next_due,
)
from twin.alarms.lifecycle import AlarmState
from twin.contract.alarms import Priority
from twin.roles import Role

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
ROSTER = Roster({"ian": Role.INSTRUCTOR, "ida": Role.INSTRUCTOR, "ada": Role.ADMIN, "tom": Role.TRAINEE})


def stall(at: datetime = T0, *, latching: bool = True) -> lc.Alarm:
    alarm, _ = lc.raise_alarm(
        "p1/motor_stall", "p1", "ward", "motor_stall", "device", Priority.HIGH, "stall", at, latching=latching
    )
    return alarm


def low_reservoir(at: datetime = T0) -> lc.Alarm:
    alarm, _ = lc.raise_alarm(
        "p2/reservoir_low", "p2", "ward", "reservoir_low", "device", Priority.MEDIUM, "2 mL left", at
    )
    return alarm


def test_the_default_ladders_are_two_five_minutes_for_high_fifteen_sixty_for_medium_and_none_for_low() -> None:
    high = DEFAULT_POLICY.ladder(Priority.HIGH)
    assert [(t.level, t.name, t.after) for t in high] == [
        (1, "charge nurse", 2 * MIN),
        (2, "physician on call", 5 * MIN),
    ]
    assert [t.after for t in DEFAULT_POLICY.ladder(Priority.MEDIUM)] == [15 * MIN, 60 * MIN]
    assert DEFAULT_POLICY.ladder(Priority.LOW) == ()


def test_an_unanswered_high_alarm_climbs_each_tier_once_at_its_deadline_and_tells_its_accounts() -> None:
    alarm = stall()
    ladders: dict[str, Rung] = {}
    assert due([alarm], ladders, DEFAULT_POLICY, T0 + 2 * MIN - S, ROSTER) == []
    assert next_due([alarm], ladders, DEFAULT_POLICY) == T0 + 2 * MIN
    (first,) = due([alarm], ladders, DEFAULT_POLICY, T0 + 2 * MIN + S, ROSTER)
    assert (first.level, first.tier, first.recipients, first.notified) == (
        1,
        "charge nurse",
        ("role:instructor",),
        ("ian", "ida"),
    )
    assert (first.due_at, first.at, first.unacknowledged_since) == (T0 + 2 * MIN, T0 + 2 * MIN + S, T0)
    assert (first.alarm_state, first.alarm_version, first.message) == (AlarmState.ACTIVE_UNACKNOWLEDGED, 1, "stall")
    assert (
        first.escalation_id
        == escalation_id("p1/motor_stall", T0, 1)
        == "p1/motor_stall@2026-05-04T08:00:00.000000+00:00#1"
    )
    ladders = climb(ladders, [first])
    assert due([alarm], ladders, DEFAULT_POLICY, T0 + 3 * MIN, ROSTER) == []  # each tier once
    assert next_due([alarm], ladders, DEFAULT_POLICY) == T0 + 5 * MIN
    (second,) = due([alarm], ladders, DEFAULT_POLICY, T0 + 5 * MIN, ROSTER)  # the deadline itself is due
    assert (second.level, second.notified) == (2, ("ada",))
    ladders = climb(ladders, [second])
    assert due([alarm], ladders, DEFAULT_POLICY, T0 + 60 * MIN, ROSTER) == []  # the top of the ladder
    assert next_due([alarm], ladders, DEFAULT_POLICY) is None


def test_tiers_that_fell_due_together_are_all_made_in_order_as_after_a_restart() -> None:
    made = due([stall(), low_reservoir(T0 + MIN)], {}, DEFAULT_POLICY, T0 + 20 * MIN, ROSTER)
    assert [(e.key, e.level, e.due_at) for e in made] == [
        ("p1/motor_stall", 1, T0 + 2 * MIN),
        ("p1/motor_stall", 2, T0 + 5 * MIN),
        ("p2/reservoir_low", 1, T0 + 16 * MIN),
    ]
    assert {e.at for e in made} == {T0 + 20 * MIN}
    # a restarted twin folds the journal's records and goes on from there
    assert climb({}, reversed(made)) == {
        "p1/motor_stall": Rung(T0, 2),
        "p2/reservoir_low": Rung(T0 + MIN, 1),
    }


def test_acknowledging_shelving_or_taking_out_of_service_stops_the_ladder_an_audio_pause_does_not() -> None:
    alarm = stall()
    for stopped in (
        lc.acknowledge(alarm, "tom", T0 + MIN)[0],
        lc.shelve(alarm, "ian", T0 + MIN, timedelta(hours=1), "MRI")[0],
        lc.remove_from_service(alarm, "ada", T0 + MIN, "repair")[0],
    ):
        assert due([stopped], {}, DEFAULT_POLICY, T0 + 10 * MIN, ROSTER) == [], stopped.state
        assert next_due([stopped], {}, DEFAULT_POLICY) is None
    paused = lc.silence(alarm, "tom", T0 + MIN, timedelta(minutes=2))[0]
    assert [e.level for e in due([paused], {}, DEFAULT_POLICY, T0 + 2 * MIN, ROSTER)] == [1]


def test_a_latched_alarm_still_unanswered_after_its_condition_ended_keeps_climbing_the_same_ladder() -> None:
    alarm = stall()
    first = due([alarm], {}, DEFAULT_POLICY, T0 + 2 * MIN, ROSTER)
    cleared = lc.condition_cleared(alarm, T0 + 3 * MIN)[0]
    assert cleared.state is AlarmState.CLEARED_UNACKNOWLEDGED
    reraised = lc.condition_returned(cleared, T0 + 4 * MIN)[0]
    assert reraised.unacknowledged_since == T0
    (second,) = due([reraised], climb({}, first), DEFAULT_POLICY, T0 + 5 * MIN, ROSTER)
    assert (second.level, second.unacknowledged_since) == (2, T0)
    # a non-latching alarm that clears unanswered is done: nothing more to answer
    gone = lc.condition_cleared(stall(latching=False), T0 + MIN)[0]
    assert gone.state is AlarmState.NORMAL
    assert due([gone], {}, DEFAULT_POLICY, T0 + 10 * MIN, ROSTER) == []


def test_a_new_occurrence_or_a_return_from_the_shelf_starts_a_new_ladder() -> None:
    alarm = stall()
    ladders = climb({}, due([alarm], {}, DEFAULT_POLICY, T0 + 5 * MIN, ROSTER))
    acked = lc.acknowledge(alarm, "tom", T0 + 6 * MIN)[0]
    normal = lc.condition_cleared(acked, T0 + 7 * MIN)[0]
    again = lc.condition_returned(normal, T0 + 8 * MIN)[0]
    (first,) = due([again], ladders, DEFAULT_POLICY, T0 + 10 * MIN, ROSTER)
    assert (first.level, first.unacknowledged_since) == (1, T0 + 8 * MIN)
    shelved = lc.shelve(again, "ian", T0 + 10 * MIN + S, timedelta(minutes=30), "MRI")[0]
    back = lc.unshelve(shelved, "ian", T0 + 20 * MIN)[0]
    made = due([back], climb(ladders, [first]), DEFAULT_POLICY, T0 + 22 * MIN, ROSTER)
    assert [(e.level, e.unacknowledged_since) for e in made] == [(1, T0 + 20 * MIN)]


def test_recipients_resolve_to_active_accounts_by_role_or_name() -> None:
    assert ROSTER.resolve(["role:instructor", "tom", "nobody", "ian"]) == ("ian", "ida", "tom")
    assert ROSTER.resolve(["role:viewer"]) == ()
    assert Roster().resolve(["role:admin"]) == ()


def test_a_policy_must_be_a_ladder_with_someone_to_tell() -> None:
    tier = Tier(1, "charge nurse", MIN, ("role:instructor",))
    EscalationPolicy({Priority.HIGH: (tier, Tier(2, "doctor", 2 * MIN, ("dr.bo",)))})
    bad = [
        ((Tier(2, "x", MIN, ("a",)),), "levels count"),
        ((tier, Tier(2, "x", MIN, ("a",))), "longer than the tier before"),
        ((Tier(1, "x", timedelta(0), ("a",)),), "longer than the tier before"),
        ((Tier(1, "x", MIN, ()),), "someone to tell"),
        ((Tier(1, "x", MIN, ("role:nurse",)),), "no role 'nurse'"),
        ((Tier(1, "x", MIN, (" ian",)),), "not a recipient"),
    ]
    for tiers, why in bad:
        with pytest.raises(ValueError, match=why):
            EscalationPolicy({Priority.HIGH: tiers})
    with pytest.raises(ValueError, match="timezone"):
        due([stall()], {}, DEFAULT_POLICY, datetime(2026, 5, 4, 9, 0), ROSTER)


def test_live_shows_the_highest_tier_of_each_alarm_still_climbing_most_urgent_first() -> None:
    alarm, low = stall(), low_reservoir()
    made = due([alarm, low], {}, DEFAULT_POLICY, T0 + 20 * MIN, ROSTER)
    alarms = {alarm.key: alarm, low.key: low}
    assert [(e.key, e.level) for e in live(alarms, made)] == [("p1/motor_stall", 2), ("p2/reservoir_low", 1)]
    alarms[alarm.key] = lc.acknowledge(alarm, "tom", T0 + 21 * MIN)[0]
    assert [e.key for e in live(alarms, made)] == ["p2/reservoir_low"]


FAST = EscalationPolicy(
    {
        Priority.HIGH: (Tier(1, "a", 30 * S, ("role:instructor",)), Tier(2, "b", 90 * S, ("role:admin",))),
        Priority.MEDIUM: (Tier(1, "a", 10 * MIN, ("role:instructor",)),),
        Priority.LOW: (Tier(1, "a", 2 * MIN, ("role:instructor",)),),
    }
)


@settings(max_examples=150, deadline=None)
@given(sequences)
def test_after_every_tick_each_asking_alarm_has_reached_exactly_the_tiers_whose_deadline_passed(
    ops: list[Operation],
) -> None:
    alarms: dict[str, lc.Alarm] = {}
    ladders: dict[str, Rung] = {}
    seen: set[str] = set()
    now = START
    for op in ops:
        now, alarms, _, _ = run(alarms, op, now)
        made = due(alarms.values(), ladders, FAST, now, ROSTER)
        for e in made:
            alarm = alarms[e.key]
            assert e.escalation_id not in seen
            seen.add(e.escalation_id)
            assert alarm.state in (AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.CLEARED_UNACKNOWLEDGED)
            assert e.unacknowledged_since == alarm.unacknowledged_since
            assert e.due_at == e.unacknowledged_since + FAST.ladder(e.priority)[e.level - 1].after <= e.at == now
        ladders = climb(ladders, made)
        assert due(alarms.values(), ladders, FAST, now, ROSTER) == []  # idempotent once recorded
        for alarm in alarms.values():
            if alarm.unacknowledged_since is None or alarm.state not in (
                AlarmState.ACTIVE_UNACKNOWLEDGED,
                AlarmState.CLEARED_UNACKNOWLEDGED,
            ):
                continue
            passed = sum(1 for t in FAST.ladder(alarm.priority) if alarm.unacknowledged_since + t.after <= now)
            rung = ladders.get(alarm.key)
            reached = rung.level if rung is not None and rung.since == alarm.unacknowledged_since else 0
            assert reached == passed
