"""Expected outcomes against observed alarm transitions, and the abort vigil: pure, hand-made observations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twin.alarms.lifecycle import AlarmState, Transition, TransitionEvent
from twin.contract.alarms import Priority
from twin.scenarios.evaluation import (
    AlarmObservation,
    DoseSample,
    Vigil,
    abort_due,
    evaluate,
    watch_alarm,
    watch_dose,
)
from twin.scenarios.timeline import AbortRule, ExpectedOutcome, Timeline

START = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3600.0


def _seen(
    at_s: float,
    device: str,
    code: str,
    event: TransitionEvent = TransitionEvent.RAISE,
    to_state: AlarmState = AlarmState.ACTIVE_UNACKNOWLEDGED,
    *,
    site: str = "north",
    priority: Priority = Priority.HIGH,
) -> AlarmObservation:
    at = START + timedelta(seconds=at_s)
    transition = Transition(
        key=f"{device}/{code}",
        device_id=device,
        site=site,
        code=code,
        priority=priority,
        from_state=None,
        to_state=to_state,
        event=event,
        actor="device",
        at=at,
        comment=None,
        raised_at=at,
        time_to_ack_s=None,
        version=1,
        source="device",
        latching=True,
        message="",
        expires_at=None,
    )
    return AlarmObservation(at_s, transition)


def _expected(
    kind: str = "alarm", *, code: str = "motor_stall", devices: tuple[str, ...] = ("p1",), **kw: object
) -> ExpectedOutcome:
    fields: dict[str, object] = {
        "index": 0,
        "kind": kind,
        "code": code,
        "event": "raise",
        "device_ids": devices,
        "site": None,
        "after": "stall",
        "window_start_s": 1 * HOUR,
        "window_end_s": 2 * HOUR,
    }
    return ExpectedOutcome(**(fields | kw))  # type: ignore[arg-type]  # test data built as a dict of mixed types


def _timeline(*expected: ExpectedOutcome, aborts: tuple[AbortRule, ...] = ()) -> Timeline:
    return Timeline("t", 10 * HOUR, (), expected, aborts, {"start": 0.0}, ("p1", "p2"), {"p1": "north", "p2": "north"})


def _one(
    expected: ExpectedOutcome, alarms: list[AlarmObservation], now_s: float, *, finished: bool = False
) -> tuple[str, float | None]:
    (result,) = evaluate(_timeline(expected), alarms, now_s=now_s, finished=finished, started_at=START)
    return result.status, result.observed_at_s


# ------------------------------------------------------------------------------------------ alarm


def test_an_expected_alarm_is_met_by_the_first_matching_raise_in_its_window() -> None:
    alarms = [
        _seen(0.5 * HOUR, "p1", "motor_stall"),  # before the window
        _seen(1.5 * HOUR, "p2", "motor_stall"),  # another pump
        _seen(1.6 * HOUR, "p1", "memory_error"),  # another code
        _seen(1.7 * HOUR, "p1", "motor_stall", TransitionEvent.CLEAR, AlarmState.CLEARED_UNACKNOWLEDGED),
        _seen(1.8 * HOUR, "p1", "motor_stall", TransitionEvent.RERAISE),
        _seen(1.9 * HOUR, "p1", "motor_stall"),
    ]
    assert _one(_expected(), alarms, now_s=5 * HOUR) == ("met", 1.8 * HOUR)


def test_window_edges_are_inside() -> None:
    assert _one(_expected(), [_seen(1 * HOUR, "p1", "motor_stall")], now_s=5 * HOUR) == ("met", 1 * HOUR)
    assert _one(_expected(), [_seen(2 * HOUR, "p1", "motor_stall")], now_s=5 * HOUR) == ("met", 2 * HOUR)
    assert _one(_expected(), [_seen(2 * HOUR + 1, "p1", "motor_stall")], now_s=5 * HOUR) == ("missed", None)


def test_an_expected_alarm_is_pending_while_its_window_is_open_and_missed_after() -> None:
    assert _one(_expected(), [], now_s=1.5 * HOUR) == ("pending", None)
    assert _one(_expected(), [], now_s=2 * HOUR) == ("missed", None)
    assert _one(_expected(), [], now_s=1.5 * HOUR, finished=True) == ("missed", None)


def test_an_expected_clear_needs_a_clear() -> None:
    expected = _expected(event="clear")
    raised = [_seen(1.2 * HOUR, "p1", "motor_stall")]
    assert _one(expected, raised, now_s=5 * HOUR) == ("missed", None)
    cleared = [*raised, _seen(1.4 * HOUR, "p1", "motor_stall", TransitionEvent.CLEAR, AlarmState.NORMAL)]
    assert _one(expected, cleared, now_s=5 * HOUR) == ("met", 1.4 * HOUR)


# --------------------------------------------------------------------------------------- no alarm


def test_a_forbidden_alarm_on_any_selected_pump_misses() -> None:
    forbidden = _expected("no_alarm", devices=("p1", "p2"))
    assert _one(forbidden, [_seen(1.5 * HOUR, "p2", "motor_stall")], now_s=5 * HOUR) == ("missed", 1.5 * HOUR)
    assert _one(forbidden, [_seen(3 * HOUR, "p2", "motor_stall")], now_s=5 * HOUR) == ("met", None)
    assert _one(forbidden, [], now_s=1.5 * HOUR) == ("pending", None)


def test_a_run_that_ends_early_meets_a_forbidden_alarm_and_says_so() -> None:
    (result,) = evaluate(_timeline(_expected("no_alarm")), [], now_s=1.5 * HOUR, finished=True, started_at=START)
    assert result.status == "met"
    assert "ended before the window closed" in result.detail


# ------------------------------------------------------------------------------------------ flood


def _burst(count: int, *, first_s: float, spacing_s: float, site: str = "north") -> list[AlarmObservation]:
    return [
        _seen(first_s + i * spacing_s, f"p{i}", "device_silent", site=site, priority=Priority.LOW) for i in range(count)
    ]


def test_more_than_ten_alarms_in_ten_minutes_at_the_site_is_a_flood() -> None:
    flood = _expected("alarm_flood", code=None, devices=(), site="north", window_start_s=0.0, window_end_s=5 * HOUR)
    eleven = _burst(11, first_s=HOUR, spacing_s=30)
    assert _one(flood, eleven, now_s=5 * HOUR) == ("met", HOUR + 10 * 30)  # the 11th starts it


def test_ten_alarms_or_a_slower_eleven_are_not_a_flood() -> None:
    flood = _expected("alarm_flood", code=None, devices=(), site="north", window_start_s=0.0, window_end_s=5 * HOUR)
    assert _one(flood, _burst(10, first_s=HOUR, spacing_s=30), now_s=5 * HOUR) == ("missed", None)
    assert _one(flood, _burst(11, first_s=HOUR, spacing_s=60), now_s=5 * HOUR) == ("missed", None)  # 10 min apart
    other_site = _burst(11, first_s=HOUR, spacing_s=30, site="south")
    assert _one(flood, other_site, now_s=5 * HOUR) == ("missed", None)


def test_a_flood_before_the_window_does_not_count() -> None:
    flood = _expected(
        "alarm_flood", code=None, devices=(), site="north", window_start_s=2 * HOUR, window_end_s=5 * HOUR
    )
    assert _one(flood, _burst(11, first_s=HOUR, spacing_s=30), now_s=5 * HOUR) == ("missed", None)


# ------------------------------------------------------------------------------------------ vigil


def _unack_rule(
    longer_than_s: float, priority: Priority = Priority.HIGH, devices: frozenset[str] = frozenset({"p1", "p2"})
) -> AbortRule:
    return AbortRule(0, "unacknowledged_alarm", longer_than_s, devices, priority)


def test_an_unacknowledged_alarm_is_due_from_when_it_first_asked() -> None:
    vigil = watch_alarm(Vigil(), _seen(HOUR, "p1", "motor_stall"))
    vigil = watch_alarm(
        vigil, _seen(1.5 * HOUR, "p1", "motor_stall", TransitionEvent.CLEAR, AlarmState.CLEARED_UNACKNOWLEDGED)
    )
    vigil = watch_alarm(vigil, _seen(1.7 * HOUR, "p1", "motor_stall", TransitionEvent.RERAISE))
    due = abort_due([_unack_rule(2 * HOUR)], vigil)
    assert due is not None
    assert due.at_s == 3 * HOUR
    assert due.reason == "high-priority alarm p1/motor_stall unacknowledged for longer than 2h"


def test_acknowledging_or_shelving_ends_the_wait() -> None:
    vigil = watch_alarm(Vigil(), _seen(HOUR, "p1", "motor_stall"))
    acked = watch_alarm(
        vigil, _seen(1.2 * HOUR, "p1", "motor_stall", TransitionEvent.ACKNOWLEDGE, AlarmState.ACTIVE_ACKNOWLEDGED)
    )
    assert abort_due([_unack_rule(HOUR)], acked) is None
    shelved = watch_alarm(vigil, _seen(1.2 * HOUR, "p1", "motor_stall", TransitionEvent.SHELVE, AlarmState.SHELVED))
    assert abort_due([_unack_rule(HOUR)], shelved) is None


def test_the_priority_floor_and_the_device_selection_apply() -> None:
    medium = watch_alarm(Vigil(), _seen(HOUR, "p1", "reservoir_low", priority=Priority.MEDIUM))
    assert abort_due([_unack_rule(HOUR)], medium) is None
    assert abort_due([_unack_rule(HOUR, Priority.LOW)], medium) is not None
    other = watch_alarm(Vigil(), _seen(HOUR, "p9", "motor_stall"))
    assert abort_due([_unack_rule(HOUR)], other) is None


def test_no_delivery_is_due_from_the_first_dry_sample_and_a_drop_of_drug_resets_it() -> None:
    rule = AbortRule(1, "no_delivery", 12 * HOUR, frozenset({"p1"}))
    vigil = watch_dose(Vigil(), DoseSample(HOUR, "p1", 0.0))
    same = watch_dose(vigil, DoseSample(2 * HOUR, "p1", 0.0))
    assert same is vigil  # nothing changed: the runner does not wake its watcher
    due = abort_due([rule], vigil)
    assert due is not None
    assert due.at_s == 13 * HOUR
    assert due.reason == "no drug reached p1's patient for longer than 12h"
    flowing = watch_dose(vigil, DoseSample(3 * HOUR, "p1", 0.4))
    assert abort_due([rule], flowing) is None


def test_the_earliest_condition_wins() -> None:
    vigil = watch_dose(watch_alarm(Vigil(), _seen(HOUR, "p1", "motor_stall")), DoseSample(0.0, "p2", 0.0))
    rules = [_unack_rule(4 * HOUR), AbortRule(1, "no_delivery", 2 * HOUR, frozenset({"p2"}))]
    due = abort_due(rules, vigil)
    assert due is not None
    assert (due.at_s, due.rule.kind) == (2 * HOUR, "no_delivery")


@pytest.mark.parametrize("dose", [0.0, 1e-12])
def test_a_dose_that_is_zero_up_to_rounding_is_no_delivery(dose: float) -> None:
    assert "p1" in watch_dose(Vigil(), DoseSample(0.0, "p1", dose)).dry_since
