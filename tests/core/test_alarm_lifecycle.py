"""The alarm lifecycle: every row of the transition table in ``twin.alarms.lifecycle``, the rules
around it (expiries, re-raise, time to acknowledge, validation), and properties over random
sequences of operations (invariants, annunciation, versions, chains, immutability, latching, replay)."""

from __future__ import annotations

import ast
import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings

from tests.harness.alarm_operations import POINTS, START, Operation, run, sequences
from twin.alarms import lifecycle as lc
from twin.alarms.lifecycle import Alarm, AlarmError, AlarmState, Transition, TransitionEvent
from twin.contract.alarms import AlarmCode, Priority

N = AlarmState.NORMAL
AU = AlarmState.ACTIVE_UNACKNOWLEDGED
AA = AlarmState.ACTIVE_ACKNOWLEDGED
CU = AlarmState.CLEARED_UNACKNOWLEDGED
SH = AlarmState.SHELVED
OOS = AlarmState.OUT_OF_SERVICE

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def raised(*, latching: bool = True, at: datetime = T0) -> Alarm:
    alarm, _ = lc.raise_alarm(
        "pump-1/motor_stall",
        "pump-1",
        "clinic-a",
        AlarmCode.MOTOR_STALL,
        "device",
        Priority.HIGH,
        "Motor stall (wear)",
        at,
        latching=latching,
    )
    return alarm


# Builders of an alarm in each state, all starting at T0 and ending by T0 + 4 min.
def au(latching: bool = True) -> Alarm:
    return raised(latching=latching)


def aa(latching: bool = True) -> Alarm:
    return lc.acknowledge(au(latching), "nurse:ana", T0 + MIN)[0]


def cu() -> Alarm:
    return lc.condition_cleared(au(latching=True), T0 + MIN)[0]


def normal(latching: bool = True) -> Alarm:
    return lc.condition_cleared(aa(latching), T0 + 2 * MIN)[0]


def shelved(active: bool, latching: bool = True, start: Callable[[bool], Alarm] | None = None) -> Alarm:
    """Shelved from ``start`` (default: active unacknowledged), its condition then cleared unless ``active``."""
    alarm = lc.shelve((start or au)(latching), "nurse:ana", T0 + MIN, HOUR, "refill in progress")[0]
    return alarm if active else lc.condition_cleared(alarm, T0 + 2 * MIN)[0]


def oos(active: bool, latching: bool = True, start: Callable[[bool], Alarm] | None = None) -> Alarm:
    alarm = lc.remove_from_service((start or au)(latching), "tech:cy", T0 + MIN, "pump explanted")[0]
    return alarm if active else lc.condition_cleared(alarm, T0 + 2 * MIN)[0]


AT = T0 + 5 * MIN
"""When the operation under test happens."""

Op = Callable[[Alarm], lc.Step]


@dataclass(frozen=True)
class Row:
    call: str
    start: Callable[[], Alarm]
    op: Op
    expected: AlarmState | str | None  # a state: one transition to it; a str: AlarmError reason; None: no transition
    event: TransitionEvent | None = None


def _returned(a: Alarm) -> lc.Step:
    return lc.condition_returned(a, AT)


def _cleared(a: Alarm) -> lc.Step:
    return lc.condition_cleared(a, AT)


def _ack(a: Alarm) -> lc.Step:
    return lc.acknowledge(a, "dr:bo", AT, "seen")


def _silence(a: Alarm) -> lc.Step:
    return lc.silence(a, "dr:bo", AT, 2 * MIN)


def _shelve(a: Alarm) -> lc.Step:
    return lc.shelve(a, "dr:bo", AT, 4 * HOUR, "chattering sensor")


def _unshelve(a: Alarm) -> lc.Step:
    return lc.unshelve(a, "dr:bo", AT)


def _remove(a: Alarm) -> lc.Step:
    return lc.remove_from_service(a, "tech:cy", AT, "replacement scheduled")


def _restore(a: Alarm) -> lc.Step:
    return lc.return_to_service(a, "tech:cy", AT)


def _silenced(a: Alarm) -> Alarm:
    return lc.silence(a, "nurse:ana", T0 + 3 * MIN, MIN)[0]


def _shelved_to_expire(active: bool, latching: bool = True) -> Alarm:
    alarm = lc.shelve(au(latching), "nurse:ana", T0 + MIN, MIN, "brief")[0]  # deadline T0 + 2 min
    return alarm if active else lc.condition_cleared(alarm, T0 + MIN + 30 * S)[0]


def _expire(a: Alarm) -> lc.Step:
    return lc.expire(a, AT)


E = TransitionEvent
ROWS = [
    Row("condition_returned", normal, _returned, AU, E.RAISE),
    Row("condition_returned", cu, _returned, AU, E.RERAISE),
    Row("condition_returned", au, _returned, None),
    Row("condition_returned", aa, _returned, None),
    Row("condition_returned", lambda: shelved(active=False), _returned, SH, E.RAISE),
    Row("condition_returned", lambda: oos(active=False), _returned, OOS, E.RAISE),
    Row("condition_returned", lambda: shelved(active=True), _returned, None),
    Row("condition_returned", lambda: oos(active=True), _returned, None),
    Row("condition_cleared", lambda: au(latching=True), _cleared, CU, E.CLEAR),
    Row("condition_cleared", lambda: au(latching=False), _cleared, N, E.CLEAR),
    Row("condition_cleared", aa, _cleared, N, E.CLEAR),
    Row("condition_cleared", normal, _cleared, None),
    Row("condition_cleared", cu, _cleared, None),
    Row("condition_cleared", lambda: shelved(active=True), _cleared, SH, E.CLEAR),
    Row("condition_cleared", lambda: oos(active=True), _cleared, OOS, E.CLEAR),
    Row("condition_cleared", lambda: shelved(active=False), _cleared, None),
    Row("condition_cleared", lambda: oos(active=False), _cleared, None),
    Row("acknowledge", au, _ack, AA, E.ACKNOWLEDGE),
    Row("acknowledge", cu, _ack, N, E.ACKNOWLEDGE),
    Row("acknowledge", aa, _ack, "already_acknowledged"),
    Row("acknowledge", normal, _ack, "not_active"),
    Row("acknowledge", lambda: shelved(active=True), _ack, "shelved"),
    Row("acknowledge", lambda: oos(active=True), _ack, "out_of_service"),
    Row("silence", au, _silence, AU, E.SILENCE),
    Row("silence", cu, _silence, CU, E.SILENCE),
    Row("silence", aa, _silence, "already_acknowledged"),
    Row("silence", normal, _silence, "not_active"),
    Row("silence", lambda: shelved(active=True), _silence, "shelved"),
    Row("silence", lambda: oos(active=True), _silence, "out_of_service"),
    Row("shelve", normal, _shelve, SH, E.SHELVE),
    Row("shelve", au, _shelve, SH, E.SHELVE),
    Row("shelve", aa, _shelve, SH, E.SHELVE),
    Row("shelve", cu, _shelve, SH, E.SHELVE),
    Row("shelve", lambda: shelved(active=True), _shelve, "already_shelved"),
    Row("shelve", lambda: oos(active=True), _shelve, "out_of_service"),
    Row("unshelve", lambda: shelved(active=True), _unshelve, AU, E.UNSHELVE),
    # a latched occurrence nobody acknowledged comes back cleared-unacknowledged, never normal
    Row("unshelve", lambda: shelved(active=False), _unshelve, CU, E.UNSHELVE),
    Row("unshelve", lambda: shelved(active=False, latching=False), _unshelve, N, E.UNSHELVE),
    Row("unshelve", lambda: shelved(active=False, start=aa), _unshelve, N, E.UNSHELVE),
    *(Row("unshelve", start, _unshelve, "not_shelved") for start in (normal, au, aa, cu, lambda: oos(active=True))),
    Row("expire (shelve)", lambda: _shelved_to_expire(active=True), _expire, AU, E.SHELVE_EXPIRED),
    Row("expire (shelve)", lambda: _shelved_to_expire(active=False), _expire, CU, E.SHELVE_EXPIRED),
    Row("expire (shelve)", lambda: _shelved_to_expire(active=False, latching=False), _expire, N, E.SHELVE_EXPIRED),
    Row("expire (silence)", lambda: _silenced(au()), _expire, AU, E.SILENCE_EXPIRED),
    Row("expire (silence)", lambda: _silenced(cu()), _expire, CU, E.SILENCE_EXPIRED),
    *(Row("remove_from_service", start, _remove, OOS, E.REMOVE_FROM_SERVICE) for start in (normal, au, aa, cu)),
    Row("remove_from_service", lambda: shelved(active=True), _remove, OOS, E.REMOVE_FROM_SERVICE),
    Row("remove_from_service", lambda: oos(active=True), _remove, "already_out_of_service"),
    Row("return_to_service", lambda: oos(active=True), _restore, AU, E.RETURN_TO_SERVICE),
    Row("return_to_service", lambda: oos(active=False), _restore, CU, E.RETURN_TO_SERVICE),
    Row("return_to_service", lambda: oos(active=False, latching=False), _restore, N, E.RETURN_TO_SERVICE),
    Row("return_to_service", lambda: oos(active=False, start=aa), _restore, N, E.RETURN_TO_SERVICE),
    *(
        Row("return_to_service", start, _restore, "not_out_of_service")
        for start in (normal, au, aa, cu, lambda: shelved(active=True))
    ),
]


def _row_id(row: Row) -> str:
    start = row.start()
    condition = "c" if start.condition_active else "not c"
    latching = "latching" if start.latching else "non-latching"
    outcome = "—" if row.expected is None else row.expected
    return f"{row.call}: {start.state.value} ({condition}, {latching}) -> {outcome}"


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_transition_table_row(row: Row) -> None:
    before = row.start()
    if isinstance(row.expected, AlarmState):
        after, made = row.op(before)
        assert after.state is row.expected
        assert [(t.from_state, t.to_state, t.event) for t in made] == [(before.state, row.expected, row.event)]
        assert after.version == before.version + 1
        check_invariants(after)
    elif row.expected is None:
        after, made = row.op(before)
        assert (after, made) == (before, [])
    else:
        with pytest.raises(AlarmError) as refused:
            row.op(before)
        assert refused.value.reason == row.expected


def test_raise_makes_version_one_in_active_unacknowledged() -> None:
    alarm, made = lc.raise_alarm(
        "pump-1/reservoir_low", "pump-1", "clinic-a", AlarmCode.RESERVOIR_LOW, "device", Priority.MEDIUM, "low", T0
    )
    assert (alarm.state, alarm.version, alarm.condition_active, alarm.raised_at) == (AU, 1, True, T0)
    assert alarm.latching is False  # medium device alarms do not latch by default
    [t] = made
    assert (t.from_state, t.to_state, t.event, t.actor, t.at, t.version) == (None, AU, E.RAISE, "device", T0, 1)
    assert (t.source, t.latching, t.message, t.raised_at) == ("device", False, "low", T0)


# ------------------------------------------------------------------------------------ rules in detail


def test_every_transition_records_actor_time_and_comment() -> None:
    _, [t] = lc.shelve(au(), "dr:bo", AT, HOUR, "MRI this afternoon")
    assert (t.actor, t.at, t.comment, t.expires_at) == ("dr:bo", AT, "MRI this afternoon", AT + HOUR)
    _, [t] = lc.acknowledge(au(), "nurse:ana", AT)
    assert (t.actor, t.at, t.comment, t.expires_at) == ("nurse:ana", AT, None, None)


def test_latching_alarm_needs_an_acknowledgement_after_it_clears() -> None:
    alarm, [_] = lc.condition_cleared(au(latching=True), T0 + MIN)
    assert alarm.state is CU
    assert lc.is_annunciated(alarm, T0 + MIN)
    alarm, [ack] = lc.acknowledge(alarm, "nurse:ana", T0 + 3 * MIN)
    assert (alarm.state, ack.time_to_ack_s, alarm.acknowledged_by) == (N, 180.0, "nurse:ana")
    assert not lc.is_annunciated(alarm, T0 + 3 * MIN)


def test_non_latching_alarm_clears_to_normal_without_acknowledgement() -> None:
    alarm, [t] = lc.condition_cleared(au(latching=False), T0 + MIN)
    assert (alarm.state, alarm.acknowledged_by, t.to_state) == (N, None, N)
    assert not lc.is_annunciated(alarm, T0 + MIN)


def test_acknowledged_then_cleared_reaches_normal_even_when_latching() -> None:
    alarm = lc.condition_cleared(aa(latching=True), T0 + 2 * MIN)[0]
    assert alarm.state is N
    assert alarm.acknowledged_at == T0 + MIN  # the occurrence's acknowledgement stays on record


def test_duplicate_raise_of_an_acknowledged_alarm_stays_acknowledged() -> None:
    alarm = aa()
    assert lc.condition_returned(alarm, AT) == (alarm, [])


def test_new_occurrence_after_normal_forgets_the_acknowledgement() -> None:
    alarm, [t] = lc.condition_returned(normal(), AT, message="Motor stall (MRI)")
    assert (t.event, t.from_state, t.to_state, t.version) == (E.RAISE, N, AU, 4)
    assert (alarm.raised_at, alarm.unacknowledged_since, alarm.cleared_at) == (AT, AT, None)
    assert (alarm.acknowledged_by, alarm.acknowledged_at) == (None, None)
    assert alarm.message == t.message == "Motor stall (MRI)"


def test_reraise_keeps_the_first_annunciation_for_time_to_acknowledge() -> None:
    alarm = lc.condition_cleared(au(), T0 + MIN)[0]
    alarm = lc.silence(alarm, "nurse:ana", T0 + 2 * MIN, MIN)[0]
    alarm, [t] = lc.condition_returned(alarm, T0 + 2 * MIN + 30 * S)
    assert (t.event, alarm.raised_at, alarm.unacknowledged_since) == (E.RERAISE, T0 + 2 * MIN + 30 * S, T0)
    assert alarm.silenced_until is None  # the condition returning is news: the pause ends
    assert alarm.message == "Motor stall (wear)"  # no message given: kept
    _, [ack] = lc.acknowledge(alarm, "nurse:ana", T0 + 4 * MIN)
    assert ack.time_to_ack_s == 240.0


def test_silence_pauses_audio_without_acknowledging_and_expires_at_its_deadline() -> None:
    alarm, [t] = lc.silence(au(), "nurse:ana", T0 + MIN, lc.DEFAULT_SILENCE_DURATION)
    assert (alarm.state, alarm.acknowledged_by, alarm.silenced_until) == (AU, None, T0 + 3 * MIN)
    assert t.expires_at == T0 + 3 * MIN
    assert lc.next_expiry(alarm) == T0 + 3 * MIN
    assert not lc.is_annunciated(alarm, T0 + 3 * MIN - timedelta(microseconds=1))
    assert lc.is_annunciated(alarm, T0 + 3 * MIN)
    assert lc.expire(alarm, T0 + 3 * MIN - timedelta(microseconds=1)) == (alarm, [])
    after, [expiry] = lc.expire(alarm, T0 + HOUR)
    assert (expiry.event, expiry.actor, expiry.at, expiry.from_state, expiry.to_state) == (
        E.SILENCE_EXPIRED,
        "twin",
        T0 + 3 * MIN,  # recorded at the deadline, not when expire was called
        AU,
        AU,
    )
    assert after.silenced_until is None
    assert lc.next_expiry(after) is None


def test_a_second_silence_replaces_the_deadline() -> None:
    alarm = lc.silence(au(), "nurse:ana", T0 + MIN, 5 * MIN)[0]
    alarm = lc.silence(alarm, "dr:bo", T0 + 2 * MIN, MIN)[0]
    assert alarm.silenced_until == T0 + 3 * MIN


def test_acknowledging_ends_an_audio_pause() -> None:
    alarm = lc.silence(au(), "nurse:ana", T0 + MIN, 5 * MIN)[0]
    alarm = lc.acknowledge(alarm, "nurse:ana", T0 + 2 * MIN)[0]
    assert alarm.silenced_until is None
    assert lc.next_expiry(alarm) is None


def test_shelve_suppresses_and_expires_to_what_the_condition_implies() -> None:
    alarm, [t] = lc.shelve(aa(), "dr:bo", T0 + 2 * MIN, HOUR, "pump being refilled")
    assert (alarm.shelved_by, alarm.shelved_until, t.expires_at) == ("dr:bo", T0 + 2 * MIN + HOUR, T0 + 2 * MIN + HOUR)
    assert not lc.is_annunciated(alarm, T0 + 30 * MIN)
    assert lc.is_annunciated(alarm, T0 + 2 * MIN + HOUR)  # the expiry is due: it sounds again
    after, [expiry] = lc.expire(alarm, T0 + 5 * HOUR)
    assert (expiry.event, expiry.actor, expiry.at, after.state) == (E.SHELVE_EXPIRED, "twin", T0 + 2 * MIN + HOUR, AU)
    assert after.unacknowledged_since == T0 + 2 * MIN + HOUR  # asked again from the expiry
    assert (after.acknowledged_by, after.shelved_by, after.shelved_until) == (None, None, None)


def test_a_latched_alarm_never_leaves_a_shelf_or_out_of_service_as_if_acknowledged() -> None:
    """ISA-18.2: un-shelving or returning to service restores a latched, unacknowledged occurrence to
    cleared-unacknowledged; only an acknowledgement takes it to normal."""
    alarm = lc.shelve(cu(), "dr:bo", T0 + 2 * MIN, HOUR, "known cause")[0]
    assert alarm.latch_pending
    after, [t] = lc.unshelve(alarm, "dr:bo", T0 + 3 * MIN)
    assert (after.state, after.unacknowledged_since, after.latch_pending) == (CU, T0 + 3 * MIN, False)
    assert (t.from_state, t.to_state) == (SH, CU)
    assert lc.acknowledge(after, "dr:bo", T0 + 4 * MIN)[0].state is N
    moved = lc.remove_from_service(alarm, "tech:cy", T0 + 3 * MIN, "pump explanted")[0]  # shelved -> OOS
    assert lc.return_to_service(moved, "tech:cy", T0 + 4 * MIN)[0].state is CU
    # a latched occurrence that began (and ended) while shelved has never been seen: it owes its ack too
    acknowledged = lc.shelve(aa(), "dr:bo", T0 + 2 * MIN, HOUR, "known cause")[0]
    assert not acknowledged.latch_pending
    acknowledged = lc.condition_cleared(acknowledged, T0 + 3 * MIN)[0]
    assert lc.unshelve(acknowledged, "dr:bo", T0 + 4 * MIN)[0].state is N
    again = lc.condition_cleared(lc.condition_returned(acknowledged, T0 + 4 * MIN)[0], T0 + 5 * MIN)[0]
    assert lc.unshelve(again, "dr:bo", T0 + 6 * MIN)[0].state is CU
    # a non-latching alarm is done when its condition is
    plain = lc.shelve(lc.condition_cleared(au(latching=False), T0 + MIN)[0], "dr:bo", T0 + 2 * MIN, HOUR, "x")[0]
    assert lc.unshelve(plain, "dr:bo", T0 + 3 * MIN)[0].state is N


def test_condition_changes_while_shelved_decide_the_state_after_it() -> None:
    alarm = lc.shelve(au(), "dr:bo", T0 + MIN, HOUR, "chattering")[0]
    alarm, [clear] = lc.condition_cleared(alarm, T0 + 2 * MIN)
    alarm, [back] = lc.condition_returned(alarm, T0 + 3 * MIN)
    assert [(t.event, t.from_state, t.to_state) for t in (clear, back)] == [(E.CLEAR, SH, SH), (E.RAISE, SH, SH)]
    assert alarm.raised_at == T0 + 3 * MIN
    assert lc.unshelve(alarm, "dr:bo", T0 + 4 * MIN)[0].state is AU


def test_operations_apply_a_due_expiry_first() -> None:
    alarm = lc.shelve(au(), "dr:bo", T0 + MIN, HOUR, "refill")[0]
    after, made = lc.acknowledge(alarm, "nurse:ana", T0 + 2 * HOUR)
    assert [(t.event, t.at) for t in made] == [(E.SHELVE_EXPIRED, T0 + MIN + HOUR), (E.ACKNOWLEDGE, T0 + 2 * HOUR)]
    assert made[1].time_to_ack_s == (2 * HOUR - MIN - HOUR).total_seconds()
    assert after.state is AA
    assert [t.version for t in made] == [alarm.version + 1, alarm.version + 2]


def test_unshelve_after_the_deadline_is_refused_because_the_expiry_did_it() -> None:
    alarm = lc.shelve(au(), "dr:bo", T0 + MIN, HOUR, "refill")[0]
    with pytest.raises(AlarmError, match="not_shelved"):
        lc.unshelve(alarm, "dr:bo", T0 + 2 * HOUR)


def test_out_of_service_hides_the_alarm_until_returned() -> None:
    alarm = lc.remove_from_service(lc.silence(au(), "nurse:ana", T0, MIN)[0], "tech:cy", T0 + S, "explanted")[0]
    assert (alarm.silenced_until, lc.next_expiry(alarm)) == (None, None)
    assert not lc.is_annunciated(alarm, T0 + 1000 * HOUR)
    assert lc.expire(alarm, T0 + 1000 * HOUR) == (alarm, [])
    back, [t] = lc.return_to_service(alarm, "tech:cy", T0 + 2 * HOUR)
    assert (back.state, back.unacknowledged_since, t.event) == (AU, T0 + 2 * HOUR, E.RETURN_TO_SERVICE)


def test_removing_a_shelved_alarm_ends_the_shelve() -> None:
    alarm = lc.remove_from_service(shelved(active=True), "tech:cy", AT, "explanted")[0]
    assert (alarm.shelved_until, alarm.shelved_by) == (None, None)


def test_is_annunciated_by_state() -> None:
    assert lc.is_annunciated(au(), AT)
    assert lc.is_annunciated(cu(), AT)
    for alarm in (aa(), normal(), shelved(active=True), oos(active=True)):
        assert not lc.is_annunciated(alarm, AT), alarm.state


def test_default_latching() -> None:
    assert lc.default_latching(Priority.HIGH, "device")
    assert not lc.default_latching(Priority.MEDIUM, "device")
    assert not lc.default_latching(Priority.LOW, "device")
    assert not any(lc.default_latching(p, "twin") for p in Priority)


def test_raise_honours_an_explicit_latching_choice() -> None:
    alarm, _ = lc.raise_alarm("k", "d", "s", "c", "twin", Priority.LOW, "m", T0, latching=True)
    assert alarm.latching
    alarm, _ = lc.raise_alarm("k", "d", "s", "c", "device", Priority.HIGH, "m", T0, latching=False)
    assert not alarm.latching


def test_alarm_key_is_site_device_and_code() -> None:
    assert lc.alarm_key("clinic-a", "pump-1", AlarmCode.MOTOR_STALL) == "clinic-a/pump-1/motor_stall"
    assert lc.alarm_key("clinic-b", "pump-1", AlarmCode.MOTOR_STALL) != lc.alarm_key(
        "clinic-a", "pump-1", "motor_stall"
    )


# ------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("duration", [timedelta(0), -S, lc.MAX_SILENCE_DURATION + timedelta(microseconds=1)])
def test_silence_duration_outside_the_limits_is_refused(duration: timedelta) -> None:
    with pytest.raises(AlarmError) as refused:
        lc.silence(au(), "nurse:ana", AT, duration)
    assert refused.value.reason == "invalid_duration"


@pytest.mark.parametrize("duration", [timedelta(0), -S, lc.MAX_SHELVE_DURATION + timedelta(microseconds=1)])
def test_shelve_duration_outside_the_limits_is_refused(duration: timedelta) -> None:
    with pytest.raises(AlarmError) as refused:
        lc.shelve(au(), "nurse:ana", AT, duration, "reason")
    assert refused.value.reason == "invalid_duration"


def test_the_longest_shelve_and_silence_are_allowed() -> None:
    assert lc.shelve(au(), "dr:bo", AT, lc.MAX_SHELVE_DURATION, "overnight")[0].shelved_until == AT + 12 * HOUR
    assert lc.silence(au(), "dr:bo", AT, lc.MAX_SILENCE_DURATION)[0].silenced_until == AT + lc.MAX_SILENCE_DURATION


@pytest.mark.parametrize("comment", ["", "   ", "\n"])
def test_shelve_and_removal_need_a_reason(comment: str) -> None:
    calls: tuple[Callable[[], object], ...] = (
        lambda: lc.shelve(au(), "dr:bo", AT, HOUR, comment),
        lambda: lc.remove_from_service(au(), "dr:bo", AT, comment),
    )
    for call in calls:
        with pytest.raises(AlarmError) as refused:
            call()
        assert refused.value.reason == "comment_required"


def test_naive_times_are_refused() -> None:
    naive = datetime(2025, 3, 1, 9, 0)
    calls: tuple[Callable[[], object], ...] = (
        lambda: raised(at=naive),
        lambda: lc.condition_cleared(au(), naive),
        lambda: lc.acknowledge(au(), "nurse:ana", naive),
        lambda: lc.expire(au(), naive),
    )
    for call in calls:
        with pytest.raises(AlarmError) as refused:
            call()
        assert refused.value.reason == "naive_time"


def test_an_actor_is_required() -> None:
    with pytest.raises(AlarmError) as refused:
        lc.acknowledge(au(), " ", AT)
    assert refused.value.reason == "actor_required"


def test_a_source_outside_the_contract_is_refused() -> None:
    with pytest.raises(AlarmError) as refused:
        lc.raise_alarm("k", "d", "s", "c", "gateway", Priority.LOW, "m", T0)  # type: ignore[arg-type]  # the point of the test
    assert refused.value.reason == "invalid_source"


def test_alarm_error_is_a_value_error_with_a_reason() -> None:
    error = AlarmError("not_active", "pump-1/motor_stall is normal")
    assert isinstance(error, ValueError)
    assert (error.reason, str(error)) == ("not_active", "not_active: pump-1/motor_stall is normal")


def test_times_in_other_zones_are_the_same_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    alarm = lc.silence(au(), "nurse:ana", T0.astimezone(plus_two), MIN)[0]
    assert lc.expire(alarm, T0 + MIN)[0].silenced_until is None


# ----------------------------------------------------------------------------------------- replay


def test_replay_refuses_a_gap_and_a_journal_that_does_not_start_with_a_raise() -> None:
    alarm, made = lc.raise_alarm("k", "d", "s", "c", "device", Priority.HIGH, "m", T0)
    alarm, made2 = lc.acknowledge(alarm, "nurse:ana", T0 + MIN)
    _, made3 = lc.condition_cleared(alarm, T0 + 2 * MIN)
    assert lc.replay([*made3, *made, *made2]) == {"k": lc.condition_cleared(alarm, T0 + 2 * MIN)[0]}
    with pytest.raises(AlarmError, match="replay_mismatch"):
        lc.replay([*made, *made3])
    with pytest.raises(AlarmError, match="replay_mismatch"):
        lc.replay(made2)


def test_replay_refuses_a_transition_the_lifecycle_would_not_make() -> None:
    alarm, made = lc.raise_alarm("k", "d", "s", "c", "device", Priority.HIGH, "m", T0)
    _, [ack] = lc.acknowledge(alarm, "nurse:ana", T0 + MIN)
    forged = replace(ack, to_state=N)
    with pytest.raises(AlarmError, match="replay_mismatch"):
        lc.replay([*made, forged])
    refused = replace(ack, event=E.UNSHELVE)  # the lifecycle refuses an unshelve there
    with pytest.raises(AlarmError, match="replay_mismatch"):
        lc.replay([*made, refused])


# ---------------------------------------------------------------------------------------- properties


def check_invariants(a: Alarm) -> None:
    """The invariants the lifecycle docstring promises, for one alarm."""
    if a.state in (AU, AA):
        assert a.condition_active
    if a.state in (N, CU):
        assert not a.condition_active
    if a.state is CU:
        assert a.latching
    assert a.condition_active == (a.cleared_at is None)
    if a.state is AA:
        assert a.acknowledged_by is not None
        assert a.acknowledged_at is not None
    if a.state in (AU, CU):
        assert (a.acknowledged_by, a.acknowledged_at) == (None, None)
    assert (a.unacknowledged_since is not None) == (a.state in (AU, CU))
    if a.silenced_until is not None:
        assert a.state in (AU, CU)
    assert (a.shelved_until is not None) == (a.state is SH)
    assert (a.shelved_by is not None) == (a.state is SH)
    if a.latch_pending:
        assert a.state in (SH, OOS)
        assert a.latching
    assert a.version >= 1


def annunciated_by_the_rules(a: Alarm, at: datetime) -> bool:
    """``is_annunciated`` restated from the module docstring, without calling the lifecycle."""
    if a.state is SH:
        return a.shelved_until is not None and a.shelved_until <= at and (a.condition_active or a.latch_pending)
    if a.state not in (AU, CU):
        return False
    return a.silenced_until is None or a.silenced_until <= at


@settings(max_examples=400, deadline=None)
@given(sequences)
def test_random_sequences_keep_every_invariant(ops: list[Operation]) -> None:
    alarms: dict[str, Alarm] = {}
    journal: list[Transition] = []
    now = START
    last_at: dict[str, datetime] = {}
    for op in ops:
        before = dict(alarms)
        copies = {key: copy.copy(alarm) for key, alarm in alarms.items()}
        at, alarms, made, refused = run(alarms, op, now)
        assert before == copies, "an operation changed its input"
        key = next(iter({t.key for t in made}), None)
        if refused is not None or not made:
            assert alarms == before  # a refusal or a no-op changes nothing
        else:
            assert key is not None
            assert {t.key for t in made} == {key}
            old = before.get(key)
            new = alarms[key]
            # versions: one per transition, strictly increasing, ending at the alarm's
            first = 1 if old is None else old.version + 1
            assert [t.version for t in made] == list(range(first, first + len(made)))
            assert new.version == made[-1].version
            # the chain: from the old state through every transition to the new one
            assert made[0].from_state == (None if old is None else old.state)
            for earlier, later in pairwise(made):
                assert earlier.to_state == later.from_state
            assert made[-1].to_state == new.state
            # times never go back for an alarm (operations come at non-decreasing times)
            times = [last_at.get(key, made[0].at), *(t.at for t in made)]
            assert times == sorted(times)
            last_at[key] = made[-1].at
            # latching: only a latching alarm cleared while unacknowledged waits in CU (or comes back
            # to it from a shelf or out of service), and only an acknowledgement takes it to normal
            for t in made:
                if t.to_state is CU and t.from_state is not CU:
                    assert t.latching
                    assert (t.from_state, t.event) in {
                        (AU, E.CLEAR),
                        (SH, E.UNSHELVE),
                        (SH, E.SHELVE_EXPIRED),
                        (OOS, E.RETURN_TO_SERVICE),
                    }
                if t.from_state is CU and t.to_state is N:
                    assert t.event is E.ACKNOWLEDGE
                assert (t.time_to_ack_s is not None) == (t.event is E.ACKNOWLEDGE)
                if t.time_to_ack_s is not None:
                    assert t.time_to_ack_s >= 0
            journal += made
        for alarm in alarms.values():
            check_invariants(alarm)
            assert lc.is_annunciated(alarm, at) == annunciated_by_the_rules(alarm, at)
            expiry = lc.next_expiry(alarm)
            if expiry is not None:
                assert lc.expire(alarm, expiry)[1], "next_expiry names a time expire acts at"
                assert lc.expire(alarm, expiry - timedelta(microseconds=1))[1] == []
        operated = alarms.get(POINTS[op.point].key)
        if refused is None and operated is not None:
            expiry = lc.next_expiry(operated)
            assert expiry is None or expiry > at, "an operation left an expiry that was due"
        now = at
    # the journal folds back into exactly the live alarms
    assert lc.replay(journal) == alarms


# -------------------------------------------------------------------------------------------- purity


@pytest.mark.parametrize("module", ["twin.alarms.lifecycle", "twin.alarms.load"])
def test_alarm_modules_are_pure(module: str) -> None:
    """No I/O, clock, randomness or global state: imports and calls say so."""
    source = inspect.getsource(__import__(module, fromlist=["_"]))
    tree = ast.parse(source)
    imported = {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert imported <= {"__future__", "bisect", "collections", "dataclasses", "datetime", "enum", "typing", "twin"}
    twin_imports = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} - {None}
    assert {m for m in twin_imports if m and m.startswith("twin.")} <= {"twin.alarms.lifecycle", "twin.contract.alarms"}
    methods = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    functions = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not methods & {"now", "utcnow", "today", "fromtimestamp", "time", "monotonic"}
    assert not functions & {"open", "print", "input"}
    assert not any(isinstance(node, ast.Global | ast.Nonlocal) for node in ast.walk(tree))


def test_a_new_occurrence_may_carry_a_new_priority_and_replay_keeps_it() -> None:
    alarm, made = lc.raise_alarm("p/patient_report", "p", "s", "patient_report", "twin", Priority.LOW, "itch", T0)
    alarm, cleared = lc.condition_cleared(alarm, T0 + MIN, "twin")
    alarm, again = lc.condition_returned(alarm, T0 + 2 * MIN, "twin", message="fever", priority=Priority.HIGH)
    assert (alarm.priority, again[0].priority) == (Priority.HIGH, Priority.HIGH)
    same, none = lc.condition_returned(alarm, T0 + 3 * MIN, "twin", priority=Priority.LOW)
    assert (same.priority, none) == (Priority.HIGH, [])  # a duplicate raise changes nothing
    assert lc.replay([*made, *cleared, *again]) == {alarm.key: alarm}
