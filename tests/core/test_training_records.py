"""A trainee's competence record (``twin.training.records``), from sessions scored by the real
scoring on transitions made by the real lifecycle: sessions, per code and per scenario figures,
the trend, and the CSV of every row behind it."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from twin.alarms import lifecycle as lc
from twin.alarms.lifecycle import Transition
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import Priority
from twin.training.records import (
    RECORD_CSV_COLUMNS,
    STEADY_SLOPE,
    record_csv,
    record_json,
    trainee_record,
    trainees_of,
    trend,
)
from twin.training.scoring import acts, occurrences, score
from twin.training.session import TrainingSession

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def response(actor: str, key: str, action: str, at: datetime) -> AlarmResponse:
    device_id, code = key.split("/")
    return AlarmResponse(
        f"r-{actor}-{key}-{at.isoformat()}", key, device_id, "w", code, "high", 1, "active_acknowledged",
        action, None, actor, "trainee", at, None, {},
    )  # fmt: skip


def session(n: int, scenario: str, ack_by: str | None, ack_after_s: float, action: str | None) -> TrainingSession:
    """Session ``n`` (one day after the one before): a stall on p1, acknowledged by ``ack_by``
    after ``ack_after_s``, answered by ann with ``action``; ann and bob are scored."""
    start = T0 + n * DAY
    stall, made = lc.raise_alarm(
        "p1/motor_stall", "p1", "w", "motor_stall", "device", Priority.HIGH, "stall", start + timedelta(seconds=10)
    )
    transitions: list[Transition] = list(made)
    if ack_by is not None:
        stall, more = lc.acknowledge(stall, ack_by, start + timedelta(seconds=10 + ack_after_s))
        transitions += more
    responses = [response("ann", "p1/motor_stall", action, start + timedelta(seconds=200))] if action else []
    devices = frozenset({"p1"})
    trainees = ("ann", "bob")
    final = score(
        occurrences(transitions, devices, start, None),
        acts(transitions, responses, frozenset(trainees), devices, start, None),
        trainees,
        {"p1/motor_stall": ("rotor_study",)},
        ended=True,
    )
    base = TrainingSession(f"t-{n}", scenario, scenario.title(), f"run-{n}", "ian", trainees, ("p1",), 60.0, start)
    return replace(base, status="completed", ended_at=start + timedelta(minutes=30), final=final)


def test_a_record_lists_each_ended_session_of_the_trainee_oldest_first_with_their_figures() -> None:
    sessions = [
        session(2, "stall-drill", "ann", 20, "rotor_study"),
        session(0, "stall-drill", "bob", 100, "refill"),
        session(1, "memory-drill", None, 0, None),
        replace(session(3, "stall-drill", "ann", 5, "rotor_study"), status="running", ended_at=None, final=None),
    ]
    record = trainee_record("ann", sessions)
    assert [e.session_id for e in record.sessions] == ["t-0", "t-1", "t-2"]
    assert record.in_progress == ("t-3",)
    first, missed, good = record.sessions
    assert (first.correct, first.incorrect, first.acknowledged) == (0, 1, 0)  # bob acknowledged; ann's refill was wrong
    assert (missed.missed, missed.score) == (1, 0.0)
    assert (good.correct, good.median_time_to_ack_s, good.score) == (1, 20.0, 100.0)
    (code,) = record.by_code
    assert (code.code, code.alarms, code.acknowledged, code.correct, code.incorrect, code.missed) == (
        "motor_stall",
        3,
        1,
        1,
        1,
        1,
    )
    assert code.correct_share == pytest.approx(1 / 3, abs=1e-4)
    scenarios = {r.scenario: r for r in record.by_scenario}
    assert (scenarios["stall-drill"].sessions, scenarios["stall-drill"].best_score) == (2, 100.0)
    assert scenarios["stall-drill"].first_score == first.score
    assert scenarios["memory-drill"].mean_score == 0.0
    assert trainees_of(sessions) == ["ann", "bob"]
    body = record_json(record)
    assert [s["session_id"] for s in body["sessions"]] == ["t-0", "t-1", "t-2"]
    assert body["trend"]["direction"] == "improving"


def test_the_trend_needs_three_sessions_and_a_slope_of_two_points_a_session() -> None:
    assert trend([]).direction == "too_few"
    assert (trend([40.0, 90.0]).direction, trend([40.0, 90.0]).change) == ("too_few", 50.0)
    rising = trend([40.0, 50.0, 60.0, 70.0])
    assert (rising.direction, rising.slope_per_session, rising.change) == ("improving", 10.0, 30.0)
    assert trend([80.0, 70.0, 60.0]).direction == "declining"
    just_under = trend([50.0, 50.0 + STEADY_SLOPE * 0.9, 50.0 + STEADY_SLOPE * 1.8])
    assert just_under.direction == "steady"


def test_the_csv_holds_every_row_of_the_trainee_and_no_one_elses() -> None:
    sessions = [session(0, "stall-drill", "bob", 100, "refill"), session(1, "stall-drill", "ann", 20, "rotor_study")]
    rows = list(csv.DictReader(io.StringIO(record_csv("ann", sessions))))
    assert tuple(rows[0]) == RECORD_CSV_COLUMNS
    assert [(r["session_id"], r["trainee"], r["verdict"], r["time_to_ack_s"]) for r in rows] == [
        ("t-0", "ann", "incorrect", ""),
        ("t-1", "ann", "correct", "20.000"),
    ]
    assert rows[1]["expected"] == "rotor_study"
    assert list(csv.DictReader(io.StringIO(record_csv("nobody", sessions)))) == []
    empty = trainee_record("nobody", sessions)
    assert (empty.sessions, empty.by_code, empty.trend.direction) == ((), (), "too_few")
