"""Scenario routes of the HTTP API, present when the process runs a simulation (``pumptwin demo``).

* ``GET /api/scenarios`` — the scenarios on offer, each with whether it can start now
  (``runnable``, ``not_runnable_because``); ``GET /api/scenarios/{name}`` — one of them;
* ``POST /api/scenarios/{name}/start`` (optional ``speed``) — start a live run, on pumps of its own
  (the scenario's fleet from its baseline, sites ``tr-<run>.<site>``, its own simulation);
* ``GET /api/scenario-runs`` — every run: status, timeline progress, expectation counts;
  ``GET /api/scenario-runs/{run_id}`` — the same with the report so far;
* ``POST /api/scenario-runs/{run_id}/pause`` | ``resume`` | ``abort`` — pause stops the timeline
  and the simulation clock; abort is the kill switch (every pump the run touched back to its
  safe baseline).

Run status changes (and the symptoms patients report) are pushed on the live stream
(``/api/stream``) as ``scenario`` events, in the list's compact form.
Errors are JSON with a stable ``reason``: ``unknown_scenario``/``unknown_run`` (404),
``not_attached`` (503), ``too_many_runs``, ``run_finished``, ``invalid_scenario`` (409).
Reading needs a session (any role); starting, pausing, resuming and aborting need the instructor
role (``Permission.RUN_SCENARIO``); the acting user is the one signed in. Handlers are ``async`` for the same reason as the rest of the API: the service is only ever touched
from the event loop's thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from twin.api.auth import Reader, allowed
from twin.roles import Permission
from twin.scenarios.runner import ScenarioRefused, ScenarioRunner, run_json, scenario_json
from twin.store.users import User

Trainer = Annotated[User, Depends(allowed(Permission.RUN_SCENARIO))]

STATUS = {"unknown_scenario": 404, "unknown_run": 404, "not_attached": 503}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    speed: float | None = Field(default=None, gt=0, le=1_000_000, description="x real time; default: the scenario's")


class AbortBody(_Body):
    reason: str = Field(default="aborted by the trainer", min_length=1, max_length=500)


@contextmanager
def refusals(statuses: Mapping[str, int] = STATUS) -> Iterator[None]:
    """A :class:`ScenarioRefused` (or subclass) raised inside becomes an HTTP error with its
    reason: the status from ``statuses``, 409 for any other reason."""
    try:
        yield
    except ScenarioRefused as exc:
        status = statuses.get(exc.reason, 409)
        raise HTTPException(status_code=status, detail={"reason": exc.reason, "detail": str(exc)}) from None


def scenario_router(runner: ScenarioRunner) -> APIRouter:
    """The scenario routes, bound to ``runner``."""
    router = APIRouter(prefix="/api", tags=["scenarios"])

    @router.get("/scenarios")
    async def list_scenarios(user: Reader) -> list[dict[str, Any]]:
        """The catalogue; ``runnable`` says whether each can start on the running fleet now
        (``not_runnable_because`` why not: e.g. the demo's default fleet lacks its pumps)."""
        rows = []
        for _, scenario in sorted(runner.library.items()):
            why = runner.fits(scenario)
            rows.append({**scenario_json(scenario), "runnable": why is None, "not_runnable_because": why})
        return rows

    @router.get("/scenarios/{name}")
    async def get_scenario(name: str, user: Reader) -> dict[str, Any]:
        scenario = runner.library.get(name)
        if scenario is None:
            raise HTTPException(404, detail={"reason": "unknown_scenario", "detail": f"no scenario {name!r}"})
        return {**scenario_json(scenario), "scenario": scenario.model_dump(mode="json")}

    @router.post("/scenarios/{name}/start", status_code=201)
    async def start(name: str, user: Trainer, body: StartBody | None = None) -> dict[str, Any]:
        body = body or StartBody()
        with refusals():
            run = runner.start(name, speed=body.speed, started_by=user.username)
        return run_json(run)

    @router.get("/scenario-runs")
    async def list_runs(user: Reader) -> list[dict[str, Any]]:
        return [run_json(r, detail=False) for r in runner.runs.values()]

    @router.get("/scenario-runs/{run_id}")
    async def get_run(run_id: str, user: Reader) -> dict[str, Any]:
        with refusals():
            return run_json(runner.get(run_id))

    @router.post("/scenario-runs/{run_id}/pause")
    async def pause(run_id: str, user: Trainer) -> dict[str, Any]:
        with refusals():
            return run_json(runner.pause(run_id))

    @router.post("/scenario-runs/{run_id}/resume")
    async def resume(run_id: str, user: Trainer) -> dict[str, Any]:
        with refusals():
            return run_json(runner.resume(run_id))

    @router.post("/scenario-runs/{run_id}/abort")
    async def abort(run_id: str, user: Trainer, body: AbortBody | None = None) -> dict[str, Any]:
        body = body or AbortBody()
        with refusals():
            return run_json(await runner.abort(run_id, body.reason, by=user.username))

    return router
