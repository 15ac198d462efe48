"""A training session's record, and its report as JSON, CSV and InfluxDB points.

A session is stored as the events of its life in the journal (table ``training_event``):
``started`` (scenario, run, instructor, trainees, pumps, speed), ``paused-N``/``resumed-N``, and
``completed`` or ``aborted``, whose detail holds the final score, so that a finished session's
report never changes however the journal grows. :func:`fold` rebuilds the sessions from those
events. Everything here is pure (no I/O, no clock).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal

from twin.contract.alarms import Priority
from twin.timeseries.points import TrainingResponsePoint, TrainingVerdict
from twin.training.events import TrainingEvent
from twin.training.scoring import Act, AlarmScore, Occurrence, TeamSummary, TraineeSummary, TrainingScore, Verdict

SessionStatus = Literal["running", "paused", "completed", "aborted"]
FINAL: Final = frozenset({"completed", "aborted"})


@dataclass(frozen=True, slots=True)
class TrainingSession:
    session_id: str
    scenario: str
    title: str
    run_id: str
    instructor: str
    trainees: tuple[str, ...]
    devices: tuple[str, ...]
    speed: float
    started_at: datetime
    status: SessionStatus = "running"
    ended_at: datetime | None = None
    aborted_reason: str | None = None
    final: TrainingScore | None = None
    """The score frozen when the session ended (``None`` while it runs)."""
    expected: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Alarm key -> the staff responses the scenario expects (fixed at the start)."""
    sites: tuple[str, ...] = ()
    """The sites of the session's own pumps (``tr-<run>.<site>``): its score covers those alone.
    Empty for a session journaled before sessions owned their pumps (every site then)."""
    drill: dict[str, Any] | None = None
    """Whether the drill did what its scenario promised, frozen at the end
    (:func:`twin.training.desk.drill_json`)."""

    @property
    def active(self) -> bool:
        return self.status not in FINAL


def started_event(session: TrainingSession) -> TrainingEvent:
    return TrainingEvent(
        session.session_id,
        "started",
        session.instructor,
        session.started_at,
        {
            "scenario": session.scenario,
            "title": session.title,
            "run_id": session.run_id,
            "trainees": list(session.trainees),
            "devices": list(session.devices),
            "speed": session.speed,
            "expected": {key: list(names) for key, names in session.expected.items()},
            "sites": list(session.sites),
        },
    )


def ended_event(session: TrainingSession, actor: str) -> TrainingEvent:
    if session.status not in FINAL or session.ended_at is None or session.final is None:
        raise ValueError(f"session {session.session_id} has not ended")
    detail: dict[str, Any] = {
        "aborted_reason": session.aborted_reason,
        "score": score_json(session.final),
        "drill": session.drill,
    }
    return TrainingEvent(session.session_id, session.status, actor, session.ended_at, detail)


def fold(events: Iterable[TrainingEvent]) -> dict[str, TrainingSession]:
    """The sessions the events describe, in the order they started (events of a session that
    never started are ignored)."""
    sessions: dict[str, TrainingSession] = {}
    for e in events:
        if e.event == "started":
            d = e.detail
            sessions[e.session_id] = TrainingSession(
                e.session_id,
                d["scenario"],
                d["title"],
                d["run_id"],
                e.actor,
                tuple(d["trainees"]),
                tuple(d["devices"]),
                float(d["speed"]),
                e.at,
                expected={key: tuple(names) for key, names in d.get("expected", {}).items()},
                sites=tuple(d.get("sites", ())),
            )
            continue
        session = sessions.get(e.session_id)
        if session is None:
            continue
        if e.event.startswith("paused"):
            sessions[e.session_id] = replace(session, status="paused")
        elif e.event.startswith("resumed"):
            sessions[e.session_id] = replace(session, status="running")
        elif e.event in FINAL:
            sessions[e.session_id] = replace(
                session,
                status="completed" if e.event == "completed" else "aborted",
                ended_at=e.at,
                aborted_reason=e.detail.get("aborted_reason"),
                final=score_from_json(e.detail["score"]),
                drill=e.detail.get("drill"),
            )
    return sessions


# ---------------------------------------------------------------------------------------- JSON


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def row_json(r: AlarmScore) -> dict[str, Any]:
    o = r.occurrence
    return {
        "trainee": r.trainee,
        "key": o.key,
        "version": o.version,
        "device_id": o.device_id,
        "site": o.site,
        "code": o.code,
        "priority": o.priority.value,
        "raised_at": o.raised_at.isoformat(),
        "expected": list(r.expected),
        "acknowledged_by": r.acknowledged_by,
        "time_to_ack_s": _seconds(r.time_to_ack_s),
        "time_to_respond_s": _seconds(r.time_to_respond_s),
        "responses": list(r.responses),
        "matched": list(r.matched),
        "verdict": r.verdict.value,
        "score": r.score,
        "in_order": r.in_order,
        "escalated_at": _iso(r.escalated_at),
        "escalation_level": r.escalation_level,
    }


def act_json(a: Act) -> dict[str, Any]:
    return {
        "trainee": a.trainee,
        "at": a.at.isoformat(),
        "key": a.key,
        "device_id": a.device_id,
        "code": a.code,
        "kind": a.kind,
        "action": a.action,
        "note": a.note,
    }


def summary_json(t: TraineeSummary) -> dict[str, Any]:
    return {
        "trainee": t.trainee,
        "alarms": t.alarms,
        "acknowledged": t.acknowledged,
        "correct": t.correct,
        "incorrect": t.incorrect,
        "missed": t.missed,
        "pending": t.pending,
        "median_time_to_ack_s": _seconds(t.median_time_to_ack_s),
        "score": t.score,
    }


def team_json(t: TeamSummary) -> dict[str, Any]:
    return {
        "alarms": t.alarms,
        "acknowledged": t.acknowledged,
        "acknowledged_before_escalation": t.acknowledged_before_escalation,
        "escalated": t.escalated,
    }


def score_json(score: TrainingScore, *, detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"trainees": [summary_json(t) for t in score.trainees], "team": team_json(score.team)}
    if detail:
        body["alarms"] = [row_json(r) for r in score.alarms]
        body["actions"] = [act_json(a) for a in score.actions]
    return body


def score_from_json(body: dict[str, Any]) -> TrainingScore:
    """The inverse of :func:`score_json` (with detail): how a final score is read back."""
    rows = []
    for r in body["alarms"]:
        occurrence = Occurrence(
            r["key"],
            r["device_id"],
            r["site"],
            r["code"],
            Priority(r["priority"]),
            datetime.fromisoformat(r["raised_at"]),
            int(r["version"]),
        )
        rows.append(
            AlarmScore(
                r["trainee"],
                occurrence,
                tuple(r["expected"]),
                r["acknowledged_by"],
                r["time_to_ack_s"],
                r["time_to_respond_s"],
                tuple(r["responses"]),
                tuple(r["matched"]),
                Verdict(r["verdict"]),
                float(r["score"]),
                r.get("in_order"),
                datetime.fromisoformat(r["escalated_at"]) if r.get("escalated_at") else None,
                int(r.get("escalation_level", 0)),
            )
        )
    trainees = tuple(
        TraineeSummary(
            t["trainee"],
            t["alarms"],
            t["acknowledged"],
            t["correct"],
            t["incorrect"],
            t["missed"],
            t["pending"],
            t["median_time_to_ack_s"],
            float(t["score"]),
        )
        for t in body["trainees"]
    )
    actions = tuple(
        Act(
            a["trainee"],
            a["key"],
            a["device_id"],
            a["code"],
            datetime.fromisoformat(a["at"]),
            a["kind"],
            a["action"],
            a["note"],
        )
        for a in body["actions"]
    )
    team = TeamSummary(**body["team"]) if "team" in body else TeamSummary()  # reports before escalation had none
    return TrainingScore(trainees, tuple(rows), actions, team)


def only_trainee(score: TrainingScore, trainee: str) -> TrainingScore:
    """The score as ``trainee`` may see it: their own summary, rows and acts; the team's figures
    stay (they are the team's, not another trainee's)."""
    return TrainingScore(
        tuple(t for t in score.trainees if t.trainee == trainee),
        tuple(r for r in score.alarms if r.trainee == trainee),
        tuple(a for a in score.actions if a.trainee == trainee),
        score.team,
    )


def session_json(
    session: TrainingSession, score: TrainingScore, *, detail: bool = True, reveal: bool = True
) -> dict[str, Any]:
    """A session as the API shows it, with its score (the full report with ``detail``; the
    per-trainee summary only without, for lists and the live stream). Without ``reveal``, the
    expected responses are left out (empty): trainees do not see the answers while they work."""
    body: dict[str, Any] = {
        "session_id": session.session_id,
        "scenario": session.scenario,
        "title": session.title,
        "run_id": session.run_id,
        "instructor": session.instructor,
        "trainees": list(session.trainees),
        "devices": list(session.devices),
        "sites": list(session.sites),
        "speed": session.speed,
        "status": session.status,
        "started_at": session.started_at.isoformat(),
        "ended_at": _iso(session.ended_at),
        "aborted_reason": session.aborted_reason,
        "expected": {key: list(names) for key, names in session.expected.items()} if reveal else {},
        "report": score_json(score, detail=detail),
        "drill": session.drill,
    }
    if not reveal:
        for row in body["report"].get("alarms", []):
            row["expected"] = []
    return body


# ----------------------------------------------------------------------------------------- CSV

CSV_COLUMNS: Final = (
    "session_id",
    "scenario",
    "trainee",
    "device_id",
    "site",
    "code",
    "priority",
    "raised_at",
    "acknowledged_by",
    "time_to_ack_s",
    "time_to_respond_s",
    "responses",
    "expected",
    "matched",
    "verdict",
    "score",
    "escalated_at",
    "escalation_level",
)


def report_csv(session: TrainingSession, score: TrainingScore, *, reveal: bool = True) -> str:
    """One row per alarm and trainee (``;`` joins the lists inside a cell); ``expected`` is left
    empty without ``reveal`` (see :func:`session_json`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in score.alarms:
        o = r.occurrence
        writer.writerow(
            (
                session.session_id,
                session.scenario,
                r.trainee,
                o.device_id,
                o.site,
                o.code,
                o.priority.value,
                o.raised_at.isoformat(),
                r.acknowledged_by or "",
                "" if r.time_to_ack_s is None else f"{r.time_to_ack_s:.3f}",
                "" if r.time_to_respond_s is None else f"{r.time_to_respond_s:.3f}",
                ";".join(r.responses),
                ";".join(r.expected) if reveal else "",
                ";".join(r.matched),
                r.verdict.value,
                f"{r.score:.4f}",
                _iso(r.escalated_at) or "",
                r.escalation_level,
            )
        )
    return out.getvalue()


# -------------------------------------------------------------------------------------- InfluxDB

_POINT_VERDICT: Final = {
    Verdict.CORRECT: TrainingVerdict.CORRECT,
    Verdict.INCORRECT: TrainingVerdict.INCORRECT,
    Verdict.MISSED: TrainingVerdict.MISSED,
}


def training_points(session: TrainingSession, score: TrainingScore) -> list[TrainingResponsePoint]:
    """The ``training`` measurement's rows for a finished session: one per alarm and trainee,
    at the raise (rows still ``pending`` are not written: only a final score is)."""
    points = []
    for r in score.alarms:
        verdict = _POINT_VERDICT.get(r.verdict)
        if verdict is None:
            continue
        o = r.occurrence
        points.append(
            TrainingResponsePoint(
                session=session.session_id,
                trainee=r.trainee,
                site=o.site,
                scenario=session.scenario,
                alarm_id=f"{o.key}#{o.version}",
                code=o.code,
                priority=o.priority,
                response=",".join(r.responses) or ("acknowledge" if r.time_to_ack_s is not None else "none"),
                expected_response=",".join(r.expected) or "acknowledge",
                verdict=verdict,
                score=r.score,
                at=o.raised_at,
                time_to_ack_s=r.time_to_ack_s,
                time_to_respond_s=r.time_to_respond_s,
                device=o.device_id or None,  # a flood row is the site's, not one pump's
            )
        )
    return points


__all__ = [
    "CSV_COLUMNS",
    "FINAL",
    "SessionStatus",
    "TrainingSession",
    "ended_event",
    "fold",
    "only_trainee",
    "report_csv",
    "score_from_json",
    "score_json",
    "session_json",
    "started_event",
    "training_points",
]
