"""A trainee's competence record: every session they took, how they answered each alarm code and
each scenario, and how their scores move over time. Pure aggregation of the sessions' frozen final
scores (:class:`~twin.training.session.TrainingSession`): no I/O, no clock.

A nurse educator keeps evidence of competence over months; this is that evidence, drawn from the
journal alone, so it cannot drift from the reports it summarises. Only *ended* sessions
(completed or aborted) count: their scores never change. A session still running is listed in
``in_progress`` without figures.

* **Sessions**: one :class:`SessionEntry` per ended session the trainee was scored in, oldest first,
  with their summary (score 0..100, verdict counts, median time to acknowledge) and how many of
  their alarms escalated because nobody answered in time.
* **By alarm code** (:class:`CodeRecord`): every row the trainee was scored on, pooled across
  sessions: how many, how many they acknowledged themselves, the median of those times, the
  verdicts and the share correct. Flood rows count under ``alarm_flood``.
* **By scenario** (:class:`ScenarioRecord`): sessions of each scenario, first, latest, best and
  mean score.
* **Trend** (:class:`Trend`): the session scores in time order, the least-squares slope in points
  per session and the change from the first to the latest; read as ``improving``/``declining``
  when the slope is at least :data:`STEADY_SLOPE` points per session either way over at least
  :data:`TREND_MIN_SESSIONS` sessions, else ``steady`` (or ``too_few``).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from twin.training.scoring import AlarmScore, Verdict
from twin.training.session import TrainingSession

TREND_MIN_SESSIONS: Final = 3
"""Fewer sessions than this make no trend: two points always lie on a line. [A]"""

STEADY_SLOPE: Final = 2.0
"""Points per session (of 100) below which scores are read as steady: a single alarm answered a
little faster or slower moves a session's score by about that much. [A]"""

Direction = Literal["improving", "steady", "declining", "too_few"]


@dataclass(frozen=True, slots=True)
class SessionEntry:
    session_id: str
    scenario: str
    title: str
    instructor: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    score: float
    """The trainee's score in the session, 0..100."""
    alarms: int
    acknowledged: int
    correct: int
    incorrect: int
    missed: int
    median_time_to_ack_s: float | None
    escalated: int
    """Of the trainee's rows, how many were of an alarm that escalated (nobody answered in time)."""


@dataclass(frozen=True, slots=True)
class CodeRecord:
    code: str
    alarms: int
    acknowledged: int
    """Rows the trainee acknowledged themselves (the team's first acknowledgement was theirs)."""
    median_time_to_ack_s: float | None
    correct: int
    incorrect: int
    missed: int
    correct_share: float
    """``correct`` / ``alarms`` (0..1)."""


@dataclass(frozen=True, slots=True)
class ScenarioRecord:
    scenario: str
    title: str
    sessions: int
    first_score: float
    latest_score: float
    best_score: float
    mean_score: float


@dataclass(frozen=True, slots=True)
class Trend:
    scores: tuple[tuple[datetime, float], ...]
    """(session start, score) oldest first."""
    slope_per_session: float | None
    change: float | None
    """Latest minus first score."""
    direction: Direction


@dataclass(frozen=True, slots=True)
class TraineeRecord:
    trainee: str
    sessions: tuple[SessionEntry, ...]
    by_code: tuple[CodeRecord, ...]
    by_scenario: tuple[ScenarioRecord, ...]
    trend: Trend
    in_progress: tuple[str, ...]
    """Sessions the trainee is in that have not ended (no figures yet)."""


def trainees_of(sessions: Iterable[TrainingSession]) -> list[str]:
    """Everyone any session scored, sorted."""
    return sorted({name for s in sessions for name in s.trainees})


def _ended_with(trainee: str, sessions: Iterable[TrainingSession]) -> list[TrainingSession]:
    ended = [s for s in sessions if trainee in s.trainees and s.final is not None and not s.active]
    return sorted(ended, key=lambda s: (s.started_at, s.session_id))


def _rows(trainee: str, session: TrainingSession) -> list[AlarmScore]:
    assert session.final is not None
    return [r for r in session.final.alarms if r.trainee == trainee]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def trainee_record(trainee: str, sessions: Iterable[TrainingSession]) -> TraineeRecord:
    """``trainee``'s record from every session given (see the module docstring)."""
    everything = list(sessions)
    ended = _ended_with(trainee, everything)
    entries: list[SessionEntry] = []
    per_code: dict[str, list[AlarmScore]] = defaultdict(list)
    per_scenario: dict[str, list[SessionEntry]] = defaultdict(list)
    for s in ended:
        assert s.final is not None
        summary = next((t for t in s.final.trainees if t.trainee == trainee), None)
        rows = _rows(trainee, s)
        entry = SessionEntry(
            session_id=s.session_id,
            scenario=s.scenario,
            title=s.title,
            instructor=s.instructor,
            status=s.status,
            started_at=s.started_at,
            ended_at=s.ended_at,
            score=summary.score if summary is not None else 0.0,
            alarms=len(rows),
            acknowledged=sum(1 for r in rows if r.time_to_ack_s is not None),
            correct=sum(1 for r in rows if r.verdict is Verdict.CORRECT),
            incorrect=sum(1 for r in rows if r.verdict is Verdict.INCORRECT),
            missed=sum(1 for r in rows if r.verdict is Verdict.MISSED),
            median_time_to_ack_s=_median([r.time_to_ack_s for r in rows if r.time_to_ack_s is not None]),
            escalated=sum(1 for r in rows if r.escalation_level > 0),
        )
        entries.append(entry)
        per_scenario[s.scenario].append(entry)
        for r in rows:
            per_code[r.occurrence.code].append(r)
    by_code = tuple(
        CodeRecord(
            code=code,
            alarms=len(rows),
            acknowledged=sum(1 for r in rows if r.time_to_ack_s is not None),
            median_time_to_ack_s=_median([r.time_to_ack_s for r in rows if r.time_to_ack_s is not None]),
            correct=sum(1 for r in rows if r.verdict is Verdict.CORRECT),
            incorrect=sum(1 for r in rows if r.verdict is Verdict.INCORRECT),
            missed=sum(1 for r in rows if r.verdict is Verdict.MISSED),
            correct_share=round(sum(1 for r in rows if r.verdict is Verdict.CORRECT) / len(rows), 4),
        )
        for code, rows in sorted(per_code.items())
    )
    by_scenario = tuple(
        ScenarioRecord(
            scenario=name,
            title=runs[-1].title,
            sessions=len(runs),
            first_score=runs[0].score,
            latest_score=runs[-1].score,
            best_score=max(e.score for e in runs),
            mean_score=round(statistics.fmean(e.score for e in runs), 1),
        )
        for name, runs in sorted(per_scenario.items())
    )
    in_progress = tuple(s.session_id for s in everything if s.active and trainee in s.trainees)
    return TraineeRecord(
        trainee, tuple(entries), by_code, by_scenario, trend([e.score for e in entries], entries), in_progress
    )


def trend(scores: list[float], entries: list[SessionEntry] | None = None) -> Trend:
    """The trend of ``scores`` (oldest first; ``entries`` give their dates)."""
    points = tuple((e.started_at, e.score) for e in entries) if entries is not None else ()
    if not scores:
        return Trend(points, None, None, "too_few")
    change = round(scores[-1] - scores[0], 1)
    if len(scores) < TREND_MIN_SESSIONS:
        return Trend(points, None, change, "too_few")
    slope = statistics.linear_regression(range(len(scores)), scores).slope
    direction: Direction = "steady"
    if slope >= STEADY_SLOPE:
        direction = "improving"
    elif slope <= -STEADY_SLOPE:
        direction = "declining"
    return Trend(points, round(slope, 2), change, direction)


# ---------------------------------------------------------------------------------------- JSON


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def record_json(record: TraineeRecord) -> dict[str, Any]:
    return {
        "trainee": record.trainee,
        "sessions": [
            {
                "session_id": e.session_id,
                "scenario": e.scenario,
                "title": e.title,
                "instructor": e.instructor,
                "status": e.status,
                "started_at": e.started_at.isoformat(),
                "ended_at": _iso(e.ended_at),
                "score": e.score,
                "alarms": e.alarms,
                "acknowledged": e.acknowledged,
                "correct": e.correct,
                "incorrect": e.incorrect,
                "missed": e.missed,
                "median_time_to_ack_s": _s(e.median_time_to_ack_s),
                "escalated": e.escalated,
            }
            for e in record.sessions
        ],
        "by_code": [
            {
                "code": c.code,
                "alarms": c.alarms,
                "acknowledged": c.acknowledged,
                "median_time_to_ack_s": _s(c.median_time_to_ack_s),
                "correct": c.correct,
                "incorrect": c.incorrect,
                "missed": c.missed,
                "correct_share": c.correct_share,
            }
            for c in record.by_code
        ],
        "by_scenario": [
            {
                "scenario": r.scenario,
                "title": r.title,
                "sessions": r.sessions,
                "first_score": r.first_score,
                "latest_score": r.latest_score,
                "best_score": r.best_score,
                "mean_score": r.mean_score,
            }
            for r in record.by_scenario
        ],
        "trend": {
            "scores": [{"started_at": at.isoformat(), "score": score} for at, score in record.trend.scores],
            "slope_per_session": record.trend.slope_per_session,
            "change": record.trend.change,
            "direction": record.trend.direction,
        },
        "in_progress": list(record.in_progress),
    }


# ----------------------------------------------------------------------------------------- CSV

RECORD_CSV_COLUMNS: Final = (
    "trainee",
    "session_id",
    "scenario",
    "session_started_at",
    "session_status",
    "device_id",
    "site",
    "code",
    "priority",
    "raised_at",
    "time_to_ack_s",
    "time_to_respond_s",
    "responses",
    "expected",
    "matched",
    "verdict",
    "score",
    "escalation_level",
)


def record_csv(trainee: str, sessions: Iterable[TrainingSession]) -> str:
    """Every row ``trainee`` was scored on in an ended session, oldest session first: the evidence
    behind the record (``;`` joins the lists inside a cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(RECORD_CSV_COLUMNS)
    for s in _ended_with(trainee, sessions):
        for r in _rows(trainee, s):
            o = r.occurrence
            writer.writerow(
                (
                    trainee,
                    s.session_id,
                    s.scenario,
                    s.started_at.isoformat(),
                    s.status,
                    o.device_id,
                    o.site,
                    o.code,
                    o.priority.value,
                    o.raised_at.isoformat(),
                    "" if r.time_to_ack_s is None else f"{r.time_to_ack_s:.3f}",
                    "" if r.time_to_respond_s is None else f"{r.time_to_respond_s:.3f}",
                    ";".join(r.responses),
                    ";".join(r.expected),
                    ";".join(r.matched),
                    r.verdict.value,
                    f"{r.score:.4f}",
                    r.escalation_level,
                )
            )
    return out.getvalue()


__all__ = [
    "RECORD_CSV_COLUMNS",
    "STEADY_SLOPE",
    "TREND_MIN_SESSIONS",
    "CodeRecord",
    "ScenarioRecord",
    "SessionEntry",
    "TraineeRecord",
    "Trend",
    "record_csv",
    "record_json",
    "trainee_record",
    "trainees_of",
    "trend",
]
