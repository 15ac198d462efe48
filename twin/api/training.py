"""Training-session routes of the HTTP API, present with the scenario routes (a process that runs
a simulation: ``pumptwin demo``). See :mod:`twin.training.desk`.

* ``GET /api/training/trainees`` — the active trainee accounts (instructor);
* ``POST /api/training/sessions`` ``{scenario, trainees, speed?}`` — start a session (instructor);
* ``GET /api/training/sessions`` — every session, with each trainee's summary;
  ``GET /api/training/sessions/{id}`` — one, with the full report (live while it runs);
* ``POST /api/training/sessions/{id}/pause`` | ``resume`` | ``abort`` (instructor);
* ``GET /api/training/sessions/{id}/report.json`` | ``report.csv`` — the report as a download;
* ``GET /api/training/current`` — the running session the signed-in user is a trainee of;
* ``GET /api/training/sessions/{id}/replay`` — the session as a timeline to play back
  (:mod:`twin.training.replay`), built from the journal alone; a running session's replay is for
  instructors (``session_running``, 409, for anyone else until it ends);
* ``GET /api/training/replay?since=&until=&site=&device_id=`` — any window of the journal, replayed
  the same way (no scores: a window is not a session);
* ``GET /api/training/trainees/{name}/record`` | ``record.csv`` — a trainee's competence record
  (:mod:`twin.training.records`): every ended session, by alarm code, by scenario, the trend; the
  CSV holds every row behind it.

While a session runs, only instructors (and admins) see the responses the scenario expects
(``expected``); trainees and viewers get them empty until it ends, and so does the live stream.

Whose rows: instructors and admins see every trainee's. Anyone else sees only their own: in a
session's report (its summary, rows and acts, JSON and CSV alike) and in the session list, and
only their own record (another's is ``not_your_record``, 403). The team's figures
(acknowledged before escalation) are the team's and shown to all.

Errors are JSON with a stable ``reason``: ``unknown_session``, ``unknown_trainee`` for a record
(404), ``not_your_record`` (403), ``session_running`` (a replay, 409), ``invalid_window`` (422),
``no_trainees``,
``unknown_trainee``, ``not_a_trainee`` (422), ``session_finished`` and the scenario runner's
refusals (``run_active``, ``flat_out``, ``invalid_for_fleet``: 409; ``unknown_scenario``: 404;
``not_attached``: 503). Reading needs a session (any role); starting and steering a session need
the instructor role (``Permission.RUN_SCENARIO``): a trainee cannot start one (403).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from twin.api.auth import Reader, allowed
from twin.api.scenarios import STATUS as SCENARIO_STATUS
from twin.api.scenarios import refusals
from twin.roles import Permission, can
from twin.store.users import User
from twin.training.desk import TrainingDesk
from twin.training.records import record_csv, record_json, trainee_record, trainees_of
from twin.training.replay import session_replay, window_replay
from twin.training.session import TrainingSession, only_trainee, report_csv

Trainer = Annotated[User, Depends(allowed(Permission.RUN_SCENARIO))]

_STATUS = {
    **SCENARIO_STATUS,
    "unknown_session": 404,
    "no_trainees": 422,
    "unknown_trainee": 422,
    "not_a_trainee": 422,
}

MAX_REPLAY_WINDOW: Final = timedelta(days=7)
"""Longest journal window one replay covers: a week of a ward's alarms is a debrief's worth (and
stays a few megabytes of JSON); page through longer stretches."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartSession(_Body):
    scenario: str = Field(min_length=1, max_length=200)
    trainees: list[str] = Field(min_length=1, max_length=50, description="user names of trainee accounts")
    speed: float | None = Field(default=None, gt=0, le=1_000_000, description="x real time; default: the scenario's")


class AbortSession(_Body):
    reason: str = Field(default="aborted by the instructor", min_length=1, max_length=500)


def _download(body: str, media_type: str, filename: str) -> Response:
    return Response(
        content=body.encode(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _reveal(session: TrainingSession, user: User) -> bool:
    """May ``user`` see the expected responses? Instructors always; everyone once it has ended."""
    return not session.active or can(user.role, Permission.RUN_SCENARIO)


def _only(user: User) -> str | None:
    """Whose rows ``user`` may see: everyone's (``None``) for instructors and admins, else their own."""
    return None if can(user.role, Permission.RUN_SCENARIO) else user.username


def _record_for(desk: TrainingDesk, name: str, user: User) -> str:
    """``name`` if ``user`` may read that trainee's record; 403 or 404 otherwise."""
    if _only(user) not in (None, name):
        raise HTTPException(403, detail={"reason": "not_your_record", "detail": "a trainee sees only their own record"})
    known = name == user.username or name in trainees_of(desk.sessions.values()) or name in desk.trainees()
    if not known:
        raise HTTPException(404, detail={"reason": "unknown_trainee", "detail": f"no trainee {name!r}"})
    return name


def training_router(desk: TrainingDesk) -> APIRouter:
    router = APIRouter(prefix="/api/training", tags=["training"])

    @router.get("/trainees")
    async def trainees(user: Trainer) -> list[dict[str, str]]:
        return [{"username": name, "role": "trainee"} for name in desk.trainees()]

    @router.post("/sessions", status_code=201)
    async def start(body: StartSession, user: Trainer) -> dict[str, Any]:
        with refusals(_STATUS):
            session = await desk.start(body.scenario, body.trainees, instructor=user.username, speed=body.speed)
        return await desk.json(session)

    @router.get("/sessions")
    async def list_sessions(user: Reader) -> list[dict[str, Any]]:
        newest_first = reversed(list(desk.sessions.values()))
        return [await desk.json(s, detail=False, reveal=_reveal(s, user), only=_only(user)) for s in newest_first]

    @router.get("/current")
    async def current(user: Reader) -> dict[str, Any]:
        session = desk.current_for(user.username)
        if session is None:
            return {"session": None}
        return {"session": await desk.json(session, detail=False, reveal=_reveal(session, user), only=_only(user))}

    @router.get("/sessions/{session_id}")
    async def get_session(session_id: str, user: Reader) -> dict[str, Any]:
        with refusals(_STATUS):
            session = desk.get(session_id)
        return await desk.json(session, reveal=_reveal(session, user), only=_only(user))

    @router.post("/sessions/{session_id}/pause")
    async def pause(session_id: str, user: Trainer) -> dict[str, Any]:
        with refusals(_STATUS):
            return await desk.json(await desk.pause(session_id, by=user.username))

    @router.post("/sessions/{session_id}/resume")
    async def resume(session_id: str, user: Trainer) -> dict[str, Any]:
        with refusals(_STATUS):
            return await desk.json(await desk.resume(session_id, by=user.username))

    @router.post("/sessions/{session_id}/abort")
    async def abort(session_id: str, user: Trainer, body: AbortSession | None = None) -> dict[str, Any]:
        body = body or AbortSession()
        with refusals(_STATUS):
            return await desk.json(await desk.abort(session_id, body.reason, by=user.username))

    @router.get("/sessions/{session_id}/report.json")
    async def report_json(session_id: str, user: Reader) -> Response:
        with refusals(_STATUS):
            session = desk.get(session_id)
        body = await desk.json(session, reveal=_reveal(session, user), only=_only(user))
        return _download(json.dumps(body, indent=2), "application/json", f"training-{session_id}.json")

    @router.get("/sessions/{session_id}/report.csv")
    async def report_as_csv(session_id: str, user: Reader) -> Response:
        with refusals(_STATUS):
            session = desk.get(session_id)
            result = await desk.score(session)
            only = _only(user)
            if only is not None:
                result = only_trainee(result, only)
            text = report_csv(session, result, reveal=_reveal(session, user))
        return _download(text, "text/csv; charset=utf-8", f"training-{session_id}.csv")

    @router.get("/sessions/{session_id}/replay")
    async def replay(session_id: str, user: Reader) -> dict[str, Any]:
        with refusals(_STATUS):
            session = desk.get(session_id)
        if session.active and not can(user.role, Permission.RUN_SCENARIO):
            raise HTTPException(
                409, detail={"reason": "session_running", "detail": "a session is replayed once it has ended"}
            )
        store = desk.service.store
        result = await desk.score(session)
        only = _only(user)
        if only is not None:
            result = only_trainee(result, only)
        end = session.ended_at or desk.service.clock()
        commands = [
            c
            for d in session.devices
            for c in await store.commands(device_id=d)
            if not session.sites or c.site in session.sites
        ]
        return session_replay(
            session,
            result,
            end=end,
            transitions=await store.transitions(since=session.started_at),
            escalations=await store.escalations(since=session.started_at),
            frames=await store.frames(session.session_id),
            events=await store.training_events(session.session_id),
            commands=commands,
            sites={c.device_id: c.site for c in commands} | desk.sites_of(session),
            reveal=_reveal(session, user),
        )

    @router.get("/replay")
    async def replay_window(
        user: Reader,
        since: datetime,
        until: datetime | None = None,
        site: str | None = None,
        device_id: Annotated[list[str] | None, Query()] = None,
    ) -> dict[str, Any]:
        end = until or desk.service.clock()
        try:
            span = end - since
        except TypeError:
            raise HTTPException(422, detail={"reason": "invalid_window", "detail": "give times with a zone"}) from None
        if not timedelta(0) < span <= MAX_REPLAY_WINDOW:
            raise HTTPException(
                422,
                detail={
                    "reason": "invalid_window",
                    "detail": f"the window must be positive and at most {MAX_REPLAY_WINDOW}",
                },
            )
        store = desk.service.store
        try:
            transitions = await store.transitions(site=site, since=since, until=end)
            escalations = await store.escalations(since=since, until=end)
            responses = await store.responses(since=since)
            frames = await store.frames(since=since, until=end)
        except (OverflowError, ValueError) as exc:
            raise HTTPException(422, detail={"reason": "invalid_window", "detail": str(exc)}) from None
        commands = [c for c in await store.commands() if since <= c.at <= end]
        return window_replay(
            since,
            end,
            transitions=transitions,
            responses=responses,
            escalations=escalations,
            frames=frames,
            commands=commands,
            devices=device_id,
            site=site,
            only=_only(user),
        )

    @router.get("/trainees/{name}/record")
    async def record(name: str, user: Reader) -> dict[str, Any]:
        trainee = _record_for(desk, name, user)
        return record_json(trainee_record(trainee, desk.sessions.values()))

    @router.get("/trainees/{name}/record.csv")
    async def record_as_csv(name: str, user: Reader) -> Response:
        trainee = _record_for(desk, name, user)
        text = record_csv(trainee, desk.sessions.values())
        return _download(text, "text/csv; charset=utf-8", f"record-{trainee}.csv")

    return router


__all__ = ["training_router"]
