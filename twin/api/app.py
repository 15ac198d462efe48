"""The twin's HTTP API: FastAPI, so the OpenAPI document is generated (``/openapi.json``, ``/docs``).

Routes:

* ``GET /api/devices`` (filter by site, presence, highest alarm priority), ``GET /api/devices/{id}``
  (identity, reported, predicted and the report's age side by side, recent history, alarms,
  commands), ``GET /api/devices/{id}/history``;
* ``GET /api/alarms`` (filter by state, priority, site, device), ``POST /api/alarms/{key}/{action}``
  for acknowledge, silence, shelve, unshelve, remove-from-service, return-to-service, with the actor;
  ``GET /api/alarms/{key}/journal``, ``GET /api/journal``, ``GET /api/alarm-load`` (ISA-18.2 figures);
* ``POST /api/devices/{id}/commands`` (refill, reprogram, boluses; faults to simulated devices
  only), ``GET /api/commands``;
* ``GET /api/stream``: server-sent events of device changes, alarm transitions and commands;
* ``GET /metrics`` (Prometheus) and ``GET /healthz``;
* ``POST /api/login``, ``POST /api/logout``, ``GET /api/me``, ``/api/users`` (:mod:`twin.api.auth`),
  response actions on alarms (:mod:`twin.api.responses`), and the console at ``/console/``
  (:mod:`twin.api.console`).

Every ``/api`` route but login and logout needs a signed-in user whose role grants the route's
permission (:mod:`twin.roles`); the user is the actor of what they do. Errors are JSON with a
stable ``reason`` code and a human ``detail``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from twin import __version__
from twin.alarms.lifecycle import AlarmError
from twin.alarms.load import alarm_load
from twin.api.auth import (
    STREAM_SESSION_RECHECK_S,
    AuthState,
    Commander,
    Reader,
    add_auth_routes,
    allowed_by_path,
    browser_guard,
    current_session,
    metrics_access,
)
from twin.api.console import mount_console
from twin.api.fhir import TwinServiceSource, add_fhir_routes
from twin.api.responses import add_response_routes
from twin.contract.messages import (
    ClearFaultAction,
    ClinicianBolusAction,
    InjectFaultAction,
    PatientBolusAction,
    RefillAction,
    ReprogramAction,
)
from twin.mirror import interrogation
from twin.mirror.commands import CommandRefused
from twin.roles import Permission
from twin.service.twin_service import TwinService, alarm_json, command_json, transition_json
from twin.settings import AuthSettings
from twin.store.users import User, UserStore

if TYPE_CHECKING:
    from twin.scenarios.runner import ScenarioRunner

ApiAction = Annotated[
    RefillAction | ReprogramAction | ClinicianBolusAction | PatientBolusAction | InjectFaultAction | ClearFaultAction,
    Field(discriminator="type"),
]

ALARM_ACTIONS = {
    "acknowledge": "acknowledge",
    "silence": "silence",
    "shelve": "shelve",
    "unshelve": "unshelve",
    "remove-from-service": "remove_from_service",
    "return-to-service": "return_to_service",
}

ALARM_ACTION_PERMISSIONS = {
    "acknowledge": Permission.ACKNOWLEDGE,
    "silence": Permission.SILENCE,
    "shelve": Permission.SHELVE,
    "unshelve": Permission.SHELVE,
    "remove-from-service": Permission.REMOVE_FROM_SERVICE,
    "return-to-service": Permission.REMOVE_FROM_SERVICE,
}

ALARM_ERRORS_OF_THE_REQUEST = frozenset({"invalid_duration", "comment_required"})
"""Alarm refusals that are about what was sent (422), not about the alarm's state (409)."""


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlarmActionBody(ApiModel):
    """The actor is the signed-in user, never a body field."""

    comment: str | None = Field(default=None, max_length=2000)
    minutes: float | None = Field(default=None, gt=0, le=24 * 60, description="silence or shelve duration")


class CommandBody(ApiModel):
    """The actor is the signed-in user, never a body field."""

    action: ApiAction


class Problem(ApiModel):
    reason: str
    detail: str


def _problem(status: int, reason: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "detail": detail})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def create_app(
    service: TwinService,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    users: UserStore | None = None,
    auth: AuthSettings | None = None,
    scenarios: ScenarioRunner | None = None,
) -> FastAPI:
    """Every handler is ``async``: they run on the event loop's thread, like the MQTT ingest, so the
    service's state and its SQLite journal are only ever touched from one thread (no locks, and
    the journal's order is the order the twin decided things).

    ``users``: the account store; without one the app has no accounts and every ``/api`` route
    but login answers 401 (closed by default, never open). With ``scenarios`` (a process that
    runs a simulation too), the scenario routes of :mod:`twin.api.scenarios` and the training
    routes of :mod:`twin.api.training` are included."""
    app = FastAPI(
        title="PumpTwin twin service",
        version=__version__,
        description="Mirror, predicted state, alarms and commands of every intrathecal pump, real or simulated.",
        dependencies=[Depends(browser_guard)],
    )
    app.state.auth = AuthState(users if users is not None else UserStore(None), auth or AuthSettings(), service.clock)
    add_auth_routes(app)
    # before the alarm routes: /api/alarms/{key}/responses must not reach /api/alarms/{key}/{action}
    add_response_routes(app, service)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        body = detail if isinstance(detail, dict) else {"reason": "error", "detail": str(detail)}
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)

    # ----------------------------------------------------------------------------- devices

    @app.get("/api/devices", tags=["devices"])
    async def list_devices(
        _: Reader,
        site: str | None = None,
        presence: Literal["online", "offline", "unknown"] | None = None,
        alarm: Literal["high", "medium", "low", "any", "none"] | None = Query(
            default=None, description="highest active alarm priority"
        ),
    ) -> list[dict[str, Any]]:
        now = service.clock()
        out = []
        for twin in sorted(service.twins.values(), key=lambda t: (t.site, t.device_id)):
            if site and twin.site != site:
                continue
            if presence and twin.presence.value != presence:
                continue
            summary = service.summary(twin, now)
            highest = summary["highest_priority"]
            if alarm == "none" and highest is not None:
                continue
            if alarm == "any" and highest is None:
                continue
            if alarm in ("high", "medium", "low") and highest != alarm:
                continue
            out.append(summary)
        return out

    def _twin(device_id: str) -> Any:
        twin = service.twins.get(device_id)
        if twin is None:
            raise _problem(404, "unknown_device", f"no device {device_id!r}")
        return twin

    @app.get("/api/devices/{device_id}", tags=["devices"])
    async def get_device(device_id: str, _: Reader) -> dict[str, Any]:
        twin = _twin(device_id)
        now = service.clock()
        prediction = service.prediction(twin, now)
        predicted = None
        if prediction is not None:
            predicted = {
                "at": _iso(prediction.at),
                "basis": prediction.basis,
                "basis_at": _iso(prediction.basis_at),
                "report_age_s": prediction.report_age_s,
                "reservoir_ml": prediction.reservoir_ml,
                "delivered_ml_total": prediction.delivered_ml_total,
                "battery_percent": prediction.battery_percent,
                "infusing": prediction.infusing,
                "reservoir_low_now": prediction.reservoir_low_now,
                "low_reservoir_at": _iso(prediction.low_reservoir_at),
                "empty_at": _iso(prediction.empty_at),
                "eri_at": _iso(prediction.eri_at),
                "eos_at": _iso(prediction.eos_at),
            }
        return {
            "summary": service.summary(twin, now),
            "identity": twin.birth.model_dump(mode="json") if twin.birth else None,
            "reported": twin.reported.model_dump(mode="json") if twin.reported else None,
            "reported_received_at": _iso(twin.reported_at),
            "telemetry": twin.telemetry.model_dump(mode="json") if twin.telemetry else None,
            "predicted": predicted,
            "interrogation": interrogation.view(twin, service.visits.get(device_id), now),  # real pumps only
            "device_now": _iso(twin.device_now(now)),
            "clock_rate": twin.clock_rate,
            "session": twin.session,
            "last_seq": twin.last_seq,
            "counters": {
                "applied": twin.counters.applied,
                "duplicates": twin.counters.duplicates,
                "gaps": twin.counters.gaps,
                "stale": twin.counters.stale,
            },
            "alarms": [alarm_json(a) for a in service.board.of_device(device_id)],
            "commands": [
                command_json(c)
                for c in sorted(service.commands.values(), key=lambda c: c.created_at, reverse=True)
                if c.device_id == device_id
            ][:50],
        }

    @app.get("/api/devices/{device_id}/history", tags=["devices"])
    async def device_history(
        device_id: str, _: Reader, limit: int = Query(default=360, ge=1, le=720)
    ) -> list[dict[str, Any]]:
        _twin(device_id)
        samples = list(service.history.get(device_id).samples) if device_id in service.history else []  # type: ignore[union-attr]
        return [
            {
                "device_time": s.device_time.isoformat(),
                "reservoir_ml": s.reservoir_ml,
                "current_rate_ml_per_day": s.current_rate_ml_per_day,
                "dose_mg_per_day": s.dose_mg_per_day,
                "battery_percent": s.battery_percent,
                "infusing": s.infusing,
                "true_reservoir_ml": s.sim_truth.reservoir_ml if s.sim_truth else None,
                "actual_dose_mg_per_day": s.sim_truth.actual_dose_mg_per_day if s.sim_truth else None,
            }
            for s in samples[-limit:]
        ]

    @app.post("/api/devices/{device_id}/commands", status_code=202, tags=["commands"])
    async def send_command(device_id: str, body: CommandBody, user: Commander) -> dict[str, Any]:
        try:
            tracked = service.send_command(device_id, body.action, user.username)
        except CommandRefused as exc:
            status = 404 if exc.reason == "unknown_device" else 403
            raise _problem(status, exc.reason, str(exc)) from None
        return command_json(tracked)

    @app.get("/api/commands", tags=["commands"])
    async def list_commands(_: Reader, device_id: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        items = sorted(service.commands.values(), key=lambda c: c.created_at, reverse=True)
        return [
            command_json(c)
            for c in items
            if (device_id is None or c.device_id == device_id) and (state is None or c.state.value == state)
        ][:500]

    @app.get("/api/commands/{command_id}", tags=["commands"])
    async def get_command(command_id: str, _: Reader) -> dict[str, Any]:
        tracked = service.commands.get(command_id)
        if tracked is None:
            raise _problem(404, "unknown_command", f"no command {command_id!r}")
        return command_json(tracked)

    # ------------------------------------------------------------------------------ alarms

    @app.get("/api/alarms", tags=["alarms"])
    async def list_alarms(
        _: Reader,
        state: str | None = None,
        priority: Literal["high", "medium", "low"] | None = None,
        site: str | None = None,
        device_id: str | None = None,
    ) -> list[dict[str, Any]]:
        rank = {"high": 0, "medium": 1, "low": 2}
        alarms = [
            a
            for a in service.board.alarms.values()
            if (state is None or a.state.value == state)
            and (priority is None or a.priority.value == priority)
            and (site is None or a.site == site)
            and (device_id is None or a.device_id == device_id)
        ]
        alarms.sort(key=lambda a: (rank[a.priority.value], a.raised_at))
        return [alarm_json(a) for a in alarms]

    @app.post("/api/alarms/{key:path}/{action}", tags=["alarms"])
    async def act_on_alarm(
        key: Annotated[str, Path(description="alarm key, e.g. pump-0001/a3-reservoir_low")],
        action: Literal["acknowledge", "silence", "shelve", "unshelve", "remove-from-service", "return-to-service"],
        body: Annotated[AlarmActionBody, Body()],
        user: Annotated[User, Depends(allowed_by_path("action", ALARM_ACTION_PERMISSIONS))],
    ) -> dict[str, Any]:
        """Acknowledge and silence: trainee; shelve and unshelve: instructor; remove from and
        return to service: admin (:data:`ALARM_ACTION_PERMISSIONS`). Shelving needs a reason
        (``comment``)."""
        try:
            alarm = service.alarm_action(
                key,
                ALARM_ACTIONS[action],
                user.username,
                duration=timedelta(minutes=body.minutes) if body.minutes else None,
                comment=body.comment,
            )
        except AlarmError as exc:
            status = 404 if exc.reason == "unknown_alarm" else 422 if exc.reason in ALARM_ERRORS_OF_THE_REQUEST else 409
            raise _problem(status, exc.reason, str(exc)) from None
        return alarm_json(alarm)

    @app.get("/api/alarms/{key:path}/journal", tags=["alarms"])
    async def alarm_journal(key: str, _: Reader) -> list[dict[str, Any]]:
        return [transition_json(t, None) for t in service.journal.transitions(key=key)]

    @app.get("/api/journal", tags=["alarms"])
    async def journal(
        _: Reader,
        since: datetime | None = None,
        site: str | None = None,
        device_id: str | None = None,
        limit: int = Query(default=500, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        rows = service.journal.transitions(site=site, device_id=device_id, since=since, limit=limit)
        return [transition_json(t, None) for t in rows]

    @app.get("/api/alarm-load", tags=["alarms"])
    async def get_alarm_load(_: Reader, hours: float = Query(default=24.0, gt=0, le=24 * 30)) -> dict[str, Any]:
        now = service.clock()
        since = now - timedelta(hours=hours)
        loads = alarm_load(
            service.journal.transitions(since=since),
            now=now,
            window=timedelta(hours=hours),
            alarms=service.board.alarms.values(),
        )
        return {site: _jsonable(load) for site, load in loads.items()}

    # ------------------------------------------------------------------------------- stream

    @app.get("/api/stream", tags=["stream"])
    async def stream(request: Request, _: Reader) -> EventSourceResponse:
        """Server-sent events: ``device`` (summaries, coalesced per device), ``alarm`` (every
        transition), ``command`` (every state change), ``response`` (every response action),
        ``resync`` (too slow: reload). The stream ends when its session does (checked every
        ``STREAM_SESSION_RECHECK_S``)."""
        sub = service.bus.subscribe()
        loop = asyncio.get_running_loop()

        async def events() -> AsyncIterator[dict[str, str]]:
            try:
                yield {"event": "hello", "data": json.dumps({"version": __version__})}
                recheck_at = loop.time() + STREAM_SESSION_RECHECK_S
                while True:
                    if loop.time() >= recheck_at:
                        if current_session(request) is None:
                            return
                        recheck_at = loop.time() + STREAM_SESSION_RECHECK_S
                    try:
                        async with asyncio.timeout(recheck_at - loop.time()):
                            event = await sub.next()
                    except TimeoutError:
                        continue
                    yield {"event": event.kind, "id": str(event.id), "data": json.dumps(event.data)}
                    if event.kind == "resync":
                        return
            finally:
                service.bus.unsubscribe(sub)

        return EventSourceResponse(events(), ping=15)

    # ------------------------------------------------------------------------------ health

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse, dependencies=[Depends(metrics_access)])
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        body: dict[str, Any] = {
            "status": "ok",
            "devices": len(service.twins),
            "active_alarms": len(service.board.alarms),
        }
        if health is not None:
            body.update(health())
        code = 200 if body.get("status") == "ok" else 503
        return JSONResponse(status_code=code, content=body)

    if scenarios is not None:
        from twin.api.scenarios import scenario_router

        app.include_router(scenario_router(scenarios))
        from twin.api.training import training_router
        from twin.training.desk import TrainingDesk

        desk = TrainingDesk(scenarios, service, users)
        app.state.training = desk
        app.include_router(training_router(desk))

    add_fhir_routes(app, TwinServiceSource(service))  # /fhir/: read-only FHIR R4 view of the pumps
    mount_console(app)
    return app


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value
