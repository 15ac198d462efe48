"""A replay: a training session (or any window of the journal) as a timeline to play back, built
only from what was recorded. Pure: the records are arguments; no I/O, no clock.

What a replay holds (every time on the twin's clock, the one the journal records):

* **pumps**: each pump's :class:`~twin.training.frames.PumpFrame` s, what it showed as it changed
  (reservoir, flow, dose, motor, presence, the truth behind it for simulated pumps);
* **alarms**: each alarm point's lifecycle transitions in the window, the escalations of its
  unanswered occurrences (who was told, when), and the staff responses the scenario expected of it;
* **steps**: what the scenario did and when (faults, refills, reprograms, boluses, the patient's
  symptoms), as the desk journaled them when they happened (``step-<n>`` training events);
* **commands**: every command the twin sent to those pumps in the window, with its outcome;
* **trainees**: each trainee's acts (acknowledgements, audio pauses, responses) in time order, with
  their score rows (expected responses, verdicts) for a session;
* **session events**: started, paused, resumed, ended.

Nothing is re-simulated: a frame the twin did not record is not invented, a window without
frames has alarms and acts but no pump figures (InfluxDB holds those where it is configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import DEVICE_ACTOR, TWIN_ACTOR, Transition
from twin.alarms.responses import AlarmResponse
from twin.mirror.commands import CommandRecord
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame
from twin.training.scoring import TrainingScore, acts
from twin.training.session import TrainingSession, act_json, row_json, summary_json, team_json

STEP_EVENT_PREFIX: Final = "step-"
"""Training events ``step-<n>``: the n-th step of a session's scenario as it happened."""

_LIFE_EVENTS: Final = ("started", "paused", "resumed", "completed", "aborted")


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _inside(at: datetime, start: datetime, end: datetime) -> bool:
    return start <= at <= end


def _pumps(frames: Iterable[PumpFrame], devices: Sequence[str], sites: Mapping[str, str]) -> list[dict[str, Any]]:
    by_device: dict[str, list[PumpFrame]] = {d: [] for d in devices}
    for f in frames:
        by_device.setdefault(f.device_id, []).append(f)
    return [
        {
            "device_id": device,
            "site": sites.get(device),
            "frames": [{"at": f.at.isoformat(), **f.state} for f in sorted(found, key=lambda f: (f.at, f.seq))],
        }
        for device, found in by_device.items()
    ]


def _alarms(
    transitions: Iterable[Transition],
    escalations: Iterable[Escalation],
    expected: Mapping[str, tuple[str, ...]],
) -> list[dict[str, Any]]:
    points: dict[str, dict[str, Any]] = {}
    for t in sorted(transitions, key=lambda t: (t.at, t.key, t.version)):
        point = points.setdefault(
            t.key,
            {
                "key": t.key,
                "device_id": t.device_id,
                "site": t.site,
                "code": t.code,
                "priority": t.priority.value,
                "source": t.source,
                "expected": list(expected.get(t.key, ())),
                "transitions": [],
                "escalations": [],
            },
        )
        point["priority"] = t.priority.value
        point["transitions"].append(
            {
                "at": t.at.isoformat(),
                "event": t.event.value,
                "from_state": t.from_state.value if t.from_state else None,
                "to_state": t.to_state.value,
                "actor": t.actor,
                "version": t.version,
                "comment": t.comment,
                "message": t.message,
                "time_to_ack_s": t.time_to_ack_s,
            }
        )
    for e in sorted(escalations, key=lambda e: (e.at, e.key, e.level)):
        escalated = points.get(e.key)
        if escalated is None:
            continue  # its raise lies before the window: the alarm is not in this replay
        escalated["escalations"].append(
            {
                "at": e.at.isoformat(),
                "due_at": e.due_at.isoformat(),
                "unacknowledged_since": e.unacknowledged_since.isoformat(),
                "level": e.level,
                "tier": e.tier,
                "recipients": list(e.recipients),
                "notified": list(e.notified),
            }
        )
    return sorted(points.values(), key=lambda p: (p["transitions"][0]["at"], p["key"]))


def _commands(records: Iterable[CommandRecord]) -> list[dict[str, Any]]:
    """One entry per command: its first record (what was sent, by whom, when) and its last status."""
    found: dict[str, dict[str, Any]] = {}
    for r in records:
        entry = found.get(r.command_id)
        if entry is None:
            action = (r.detail.get("command") or {}).get("action") or {}
            found[r.command_id] = {
                "command_id": r.command_id,
                "device_id": r.device_id,
                "at": r.at.isoformat(),
                "actor": r.actor,
                "action": action,
                "type": action.get("type"),
                "status": r.status,
                "answered_at": None,
            }
        else:
            entry["status"] = r.status
            entry["answered_at"] = r.at.isoformat()
    return sorted(found.values(), key=lambda c: (c["at"], c["command_id"]))


def _steps(events: Iterable[TrainingEvent]) -> list[dict[str, Any]]:
    return [
        {"at": e.at.isoformat(), "actor": e.actor, **e.detail}
        for e in sorted(events, key=lambda e: e.at)
        if e.event.startswith(STEP_EVENT_PREFIX)
    ]


def _life(events: Iterable[TrainingEvent]) -> list[dict[str, Any]]:
    return [
        {"at": e.at.isoformat(), "event": e.event, "actor": e.actor}
        for e in sorted(events, key=lambda e: e.at)
        if e.event.split("-")[0] in _LIFE_EVENTS
    ]


def session_replay(
    session: TrainingSession,
    result: TrainingScore,
    *,
    end: datetime,
    transitions: Iterable[Transition],
    escalations: Iterable[Escalation],
    frames: Iterable[PumpFrame],
    events: Iterable[TrainingEvent],
    commands: Iterable[CommandRecord],
    sites: Mapping[str, str],
    reveal: bool = True,
) -> dict[str, Any]:
    """The replay of ``session`` from its start to ``end`` (its end, or now while it runs) with
    ``result`` (its final score, or the score so far; already cut to the rows its reader may see:
    its trainees' acts are the session's acts). ``reveal``: show the expected responses (see
    ``twin.api.training``)."""
    start = session.started_at
    devices = frozenset(session.devices)
    owned = frozenset(session.sites)  # the session's own sites (none: a session from before they had them)
    transitions = [t for t in transitions if not owned or t.site in owned]
    escalations = [e for e in escalations if not owned or e.site in owned]
    seen = [t for t in transitions if t.device_id in devices and _inside(t.at, start, end)]
    expected = session.expected if reveal else {}
    trainees = [t.trainee for t in result.trainees]
    rows_of = {name: [r for r in result.alarms if r.trainee == name] for name in trainees}
    acts_of = {name: [a for a in result.actions if a.trainee == name] for name in trainees}
    body: dict[str, Any] = {
        "kind": "session",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "session": {
            "session_id": session.session_id,
            "scenario": session.scenario,
            "title": session.title,
            "instructor": session.instructor,
            "trainees": list(session.trainees),
            "devices": list(session.devices),
            "speed": session.speed,
            "status": session.status,
            "started_at": start.isoformat(),
            "ended_at": _iso(session.ended_at),
            "aborted_reason": session.aborted_reason,
            "expected": {k: list(v) for k, v in expected.items()},
        },
        "pumps": _pumps((f for f in frames if _inside(f.at, start, end)), session.devices, sites),
        "alarms": _alarms(
            seen, (e for e in escalations if e.device_id in devices and _inside(e.at, start, end)), expected
        ),
        "steps": _steps(events),
        "commands": _commands(c for c in commands if c.device_id in devices and _inside(c.at, start, end)),
        "trainees": [
            {
                "trainee": name,
                "summary": summary_json(next(t for t in result.trainees if t.trainee == name)),
                "acts": [act_json(a) for a in acts_of[name]],
                "rows": [_hidden(row_json(r), reveal) for r in rows_of[name]],
            }
            for name in trainees
        ],
        "team": team_json(result.team),
        "session_events": _life(events),
    }
    return body


def _hidden(row: dict[str, Any], reveal: bool) -> dict[str, Any]:
    if not reveal:
        row["expected"] = []
    return row


def window_replay(
    start: datetime,
    end: datetime,
    *,
    transitions: Iterable[Transition],
    responses: Iterable[AlarmResponse],
    escalations: Iterable[Escalation],
    frames: Iterable[PumpFrame],
    commands: Iterable[CommandRecord],
    devices: Sequence[str] | None = None,
    site: str | None = None,
    only: str | None = None,
) -> dict[str, Any]:
    """Any window ``[start, end]`` of the journal, for ``devices`` (or every pump of ``site``, or
    every pump with a record in the window). The trainees are everyone who acted (a user: not the
    pumps, the twin or a scenario), or ``only`` that one; no scores (a window is not a session)."""
    ts = [t for t in transitions if _inside(t.at, start, end) and (site is None or t.site == site)]
    rs = [r for r in responses if _inside(r.at, start, end) and (site is None or r.site == site)]
    fs = [f for f in frames if _inside(f.at, start, end)]
    cs = [c for c in commands if _inside(c.at, start, end) and (site is None or c.site == site)]
    if devices is None:
        chosen = sorted({t.device_id for t in ts} | {r.device_id for r in rs} | {c.device_id for c in cs})
        if site is None:
            chosen = sorted(set(chosen) | {f.device_id for f in fs})
    else:
        chosen = list(devices)
    wanted = frozenset(chosen)
    ts = [t for t in ts if t.device_id in wanted]
    rs = [r for r in rs if r.device_id in wanted]
    staff = sorted(
        {t.actor for t in ts if t.event.value in ("acknowledge", "silence") and _is_person(t.actor)}
        | {r.actor for r in rs if _is_person(r.actor)}
    )
    if only is not None:
        staff = [s for s in staff if s == only]
    done = acts(ts, rs, frozenset(staff), wanted, start, end)
    sites = {t.device_id: t.site for t in ts} | {c.device_id: c.site for c in cs}
    return {
        "kind": "window",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "session": None,
        "pumps": _pumps((f for f in fs if f.device_id in wanted), chosen, sites),
        "alarms": _alarms(ts, (e for e in escalations if e.device_id in wanted and _inside(e.at, start, end)), {}),
        "steps": [],
        "commands": _commands(c for c in cs if c.device_id in wanted),
        "trainees": [
            {"trainee": name, "summary": None, "acts": [act_json(a) for a in done if a.trainee == name], "rows": []}
            for name in staff
        ],
        "team": None,
        "session_events": [],
    }


def _is_person(actor: str) -> bool:
    return actor not in (DEVICE_ACTOR, TWIN_ACTOR) and not actor.startswith("scenario:")


__all__ = ["STEP_EVENT_PREFIX", "session_replay", "window_replay"]
