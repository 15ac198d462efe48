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

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from twin import __version__
from twin.alarms.lifecycle import AlarmError
from twin.alarms.load import alarm_load
from twin.api import models, views
from twin.api.auth import (
    STREAM_DEVICE_PACE_S,
    STREAM_ENCODE_CHUNK,
    STREAM_SESSION_RECHECK_S,
    AuthState,
    Commander,
    Reader,
    TruthReader,
    add_auth_routes,
    allowed_by_path,
    browser_guard,
    current_session,
    metrics_access,
)
from twin.api.catalogue import add_catalogue_routes
from twin.api.console import mount_console
from twin.api.fhir import TwinServiceSource, add_fhir_routes
from twin.api.forwarding import NotServedHere, forward
from twin.api.limits import BodyLimit, document_validation_problem, validation_error_without_input
from twin.api.params import Since
from twin.api.responses import add_response_routes
from twin.contract.messages import (
    ClearFaultAction,
    ClinicianBolusAction,
    InjectFaultAction,
    PatientBolusAction,
    RefillAction,
    ReprogramAction,
)
from twin.mirror.commands import CommandRefused
from twin.mirror.device_twin import DeviceTwin
from twin.roles import Permission
from twin.service.events import sse_chunk
from twin.service.twin_service import TwinService
from twin.settings import AuthSettings
from twin.store.protocol import StoreUnavailable
from twin.store.users import User, UserStore

if TYPE_CHECKING:
    from twin.scenarios.runner import ScenarioRunner
    from twin.service.escalator import Escalator
    from twin.training.desk import TrainingDesk

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
    training: TrainingDesk | None = None,
    escalator: Escalator | None = None,
    max_body_bytes: int = 1024 * 1024,
) -> FastAPI:
    """Every handler is ``async``: they run on the event loop's thread, like the MQTT ingest, so the
    service's state is only ever touched from one thread (changes go through the service's lock,
    in the order the twin decided them).

    ``users``: the account store; without one the app has no accounts and every ``/api`` route
    but login answers 401 (closed by default, never open). With ``scenarios`` (a process that
    runs a simulation too), the scenario routes of :mod:`twin.api.scenarios` and the training
    routes of :mod:`twin.api.training` with ``training`` (the desk); with ``escalator``, the
    escalation routes of :mod:`twin.api.escalations`. ``health``: more parts for ``/healthz``
    (the process's tasks). A request body over ``max_body_bytes`` is refused with 413 before it
    is read to the end, and a body that fails validation is refused without echoing it."""
    app = FastAPI(
        title="PumpTwin twin service",
        version=__version__,
        description="Mirror, predicted state, alarms and commands of every intrathecal pump, real or simulated.",
        dependencies=[Depends(browser_guard)],
        docs_url=None,  # served from the twin's own files by mount_console (no CDN)
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.auth = AuthState(users if users is not None else UserStore(None), auth or AuthSettings(), service.clock)
    app.state.service = service
    predictions = views.Predictions()
    service.hub.set_encoder(views.stream_encoder(lambda: service.fleet, service.clock))
    add_auth_routes(app)
    # before the alarm routes: /api/alarms/{key}/responses must not reach /api/alarms/{key}/{action}
    add_response_routes(app, service)
    add_catalogue_routes(app, service)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        body = detail if isinstance(detail, dict) else {"reason": "error", "detail": str(detail)}
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, validation_error_without_input)

    @app.exception_handler(NotServedHere)
    async def _elsewhere(request: Request, exc: NotServedHere) -> JSONResponse:
        """A replica's action on a partition it does not serve, on a route that does not forward."""
        return JSONResponse(
            status_code=503,
            content={"reason": "not_served_here", "detail": f"{exc}: send it there", "owner_url": exc.url},
            headers={"Retry-After": "3"},
        )

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"reason": "journal_unavailable", "detail": "the journal cannot be written: nothing was changed"},
            headers={"Retry-After": "5"},
        )

    # ----------------------------------------------------------------------------- devices

    def _twin(device_id: str, site: str | None) -> DeviceTwin:
        try:
            twin: DeviceTwin = service.device(device_id, site)
        except LookupError as exc:
            reason, detail = exc.args
            raise _problem(404 if reason == "unknown_device" else 409, reason, detail) from None
        return twin

    @app.get("/api/devices", tags=["devices"])
    async def list_devices(
        _: Reader,
        response: Response,
        site: str | None = None,
        presence: Literal["online", "offline", "unknown"] | None = None,
        alarm: Literal["high", "medium", "low", "any", "none"] | None = Query(
            default=None, description="highest active alarm priority"
        ),
        q: str | None = Query(default=None, max_length=100, description="device id, site or drug contains this"),
        offset: int = Query(default=0, ge=0),
        limit: int = Query(default=1000, ge=1, le=5000),
    ) -> list[models.DeviceSummary]:
        """One page of the fleet (``offset``/``limit``; ``X-Total-Count`` says how many match)."""
        now = service.clock()
        fleet = service.fleet
        out = []
        needle = q.lower() if q else None
        for key in sorted(fleet.devices.keys()):
            twin = fleet.devices[key]
            if site and twin.site != site:
                continue
            if presence and twin.presence.value != presence:
                continue
            summary = views.summary(fleet, twin, now)
            highest = summary.highest_priority
            if alarm == "none" and highest is not None:
                continue
            if alarm == "any" and highest is None:
                continue
            if alarm in ("high", "medium", "low") and highest != alarm:
                continue
            if needle and not any(needle in (v or "").lower() for v in (twin.device_id, twin.site, summary.drug)):
                continue
            out.append(summary)
        response.headers["X-Total-Count"] = str(len(out))
        return out[offset : offset + limit]

    @app.get("/api/devices/{device_id}", tags=["devices"])
    async def get_device(device_id: str, _: Reader, site: str | None = None) -> models.DeviceDetail:
        twin = _twin(device_id, site)
        return views.detail(service.fleet, twin, service.clock(), predictions)

    @app.get("/api/devices/{device_id}/truth", tags=["devices"])
    async def get_truth(device_id: str, _: TruthReader, site: str | None = None) -> models.SimulatorTruth:
        """Simulator truth of a simulated pump (instructors only, for the exercise and the debrief)."""
        return views.truth(_twin(device_id, site))

    @app.get("/api/devices/{device_id}/history", tags=["devices"])
    async def device_history(
        device_id: str, _: Reader, site: str | None = None, limit: int = Query(default=360, ge=1, le=720)
    ) -> list[models.TelemetrySample]:
        twin = _twin(device_id, site)
        samples = service.history_of(twin.key)
        return [
            models.TelemetrySample(
                device_time=s.device_time,
                reservoir_ml=s.reservoir_ml,
                current_rate_ml_per_day=s.current_rate_ml_per_day,
                dose_mg_per_day=s.dose_mg_per_day,
                battery_percent=s.battery_percent,
                infusing=s.infusing,
            )
            for s in samples[-limit:]
        ]

    @app.post(
        "/api/devices/{device_id}/commands", status_code=202, tags=["commands"], response_model=models.CommandView
    )
    async def send_command(
        device_id: str, body: CommandBody, user: Commander, request: Request, site: str | None = None
    ) -> models.CommandView | Response:
        twin = _twin(device_id, site)
        try:
            tracked = await service.send_command(twin.key, body.action, user.username)
        except NotServedHere as exc:  # a replica that does not serve the device's site (twin.api.forwarding)
            return await forward(request, exc, replica=service.name, json_body=body.model_dump(mode="json"))
        except CommandRefused as exc:
            status = 404 if exc.reason == "unknown_device" else 403
            raise _problem(status, exc.reason, str(exc)) from None
        return views.command_view(tracked)

    @app.get("/api/commands", tags=["commands"])
    async def list_commands(
        _: Reader, device_id: str | None = None, state: str | None = None
    ) -> list[models.CommandView]:
        items = sorted(service.fleet.commands.values(), key=lambda c: c.created_at, reverse=True)
        return [
            views.command_view(c)
            for c in items
            if (device_id is None or c.device_id == device_id) and (state is None or c.state.value == state)
        ][:500]

    @app.get("/api/commands/{command_id}", tags=["commands"])
    async def get_command(command_id: str, _: Reader) -> models.CommandView:
        tracked = service.fleet.commands.get(command_id)
        if tracked is None:
            raise _problem(404, "unknown_command", f"no command {command_id!r}")
        return views.command_view(tracked)

    # ------------------------------------------------------------------------------ alarms

    @app.get("/api/alarms", tags=["alarms"])
    async def list_alarms(
        _: Reader,
        response: Response,
        state: str | None = None,
        priority: Literal["high", "medium", "low"] | None = None,
        site: str | None = None,
        device_id: str | None = None,
        offset: int = Query(default=0, ge=0),
        limit: int = Query(default=1000, ge=1, le=5000),
    ) -> list[models.AlarmView]:
        """One page of the alarm points, most urgent first (``X-Total-Count`` says how many match)."""
        rank = {"high": 0, "medium": 1, "low": 2}
        alarms = [
            a
            for a in service.fleet.board.alarms.values()
            if (state is None or a.state.value == state)
            and (priority is None or a.priority.value == priority)
            and (site is None or a.site == site)
            and (device_id is None or a.device_id == device_id)
        ]
        alarms.sort(key=lambda a: (rank[a.priority.value], a.raised_at))
        response.headers["X-Total-Count"] = str(len(alarms))
        return [views.alarm_view(a) for a in alarms[offset : offset + limit]]

    @app.post("/api/alarms/{key:path}/{action}", tags=["alarms"], response_model=models.AlarmView)
    async def act_on_alarm(
        key: Annotated[str, Path(description="alarm key, e.g. st-olaf-clinic/pump-0001/reservoir_low")],
        action: Literal["acknowledge", "silence", "shelve", "unshelve", "remove-from-service", "return-to-service"],
        body: Annotated[AlarmActionBody, Body()],
        user: Annotated[User, Depends(allowed_by_path("action", ALARM_ACTION_PERMISSIONS))],
        request: Request,
    ) -> models.AlarmView | Response:
        """Acknowledge and silence: trainee; shelve and unshelve: instructor; remove from and
        return to service: admin (:data:`ALARM_ACTION_PERMISSIONS`). Shelving needs a reason
        (``comment``)."""
        try:
            alarm = await service.alarm_action(
                key,
                ALARM_ACTIONS[action],
                user.username,
                duration=timedelta(minutes=body.minutes) if body.minutes else None,
                comment=body.comment,
            )
        except NotServedHere as exc:  # a replica that does not serve the alarm's site (twin.api.forwarding)
            return await forward(request, exc, replica=service.name, json_body=body.model_dump(mode="json"))
        except AlarmError as exc:
            status = 404 if exc.reason == "unknown_alarm" else 422 if exc.reason in ALARM_ERRORS_OF_THE_REQUEST else 409
            raise _problem(status, exc.reason, str(exc)) from None
        return views.alarm_view(alarm)

    @app.get("/api/alarms/{key:path}/journal", tags=["alarms"])
    async def alarm_journal(key: str, _: Reader) -> list[models.TransitionView]:
        return [views.transition_view(t) for t in await service.store.transitions(key=key)]

    @app.get("/api/journal", tags=["alarms"])
    async def journal(
        _: Reader,
        since: Since,
        site: str | None = None,
        device_id: str | None = None,
        limit: int = Query(default=500, ge=1, le=10_000),
    ) -> list[models.TransitionView]:
        rows = await service.store.transitions(site=site, device_id=device_id, since=since, limit=limit)
        return [views.transition_view(t) for t in rows]

    @app.get("/api/alarm-load", tags=["alarms"])
    async def get_alarm_load(_: Reader, hours: float = Query(default=24.0, ge=1 / 60, le=24 * 30)) -> dict[str, Any]:
        """ISA-18.2 alarm-load figures per site over the last ``hours`` (one minute to 30 days)."""
        now = service.clock()
        since = now - timedelta(hours=hours)
        loads = alarm_load(
            await service.store.transitions(since=since),
            now=now,
            window=timedelta(hours=hours),
            alarms=service.fleet.board.alarms.values(),
        )
        return {site: _jsonable(load) for site, load in loads.items()}

    # ------------------------------------------------------------------------------- stream

    @app.get("/api/stream", tags=["stream"])
    async def stream(request: Request, _: Reader) -> EventSourceResponse:
        """Server-sent events: ``device`` (summaries, coalesced per device), ``alarm`` (every
        transition), ``command`` (every state change), ``response`` (every response action),
        ``scenario`` and training notices, ``resync`` (too slow: reload). The stream ends when its
        session does (checked every ``STREAM_SESSION_RECHECK_S``)."""
        sub = service.hub.subscribe()
        loop = asyncio.get_running_loop()

        async def events() -> AsyncIterator[dict[str, str] | bytes]:
            try:
                yield {"event": "hello", "data": json.dumps({"version": __version__})}
                recheck_at = loop.time() + STREAM_SESSION_RECHECK_S
                while True:
                    if loop.time() >= recheck_at:
                        if current_session(request) is None:
                            return
                        recheck_at = loop.time() + STREAM_SESSION_RECHECK_S
                    try:
                        async with asyncio.timeout(max(0.0, recheck_at - loop.time())):
                            first, later = await sub.next_split(pace_s=STREAM_DEVICE_PACE_S)
                    except TimeoutError:
                        continue
                    # A read in at most two writes: one event per send made the stream the twin's
                    # largest cost at 1,000 messages/s (a socket write per device summary). Alarms,
                    # commands and responses go first; the device summaries are encoded after.
                    # The summaries go a chunk at a time with a turn of the event loop between
                    # (ingest goes on), and an alarm that arrived meanwhile is written first.
                    while True:
                        if first:
                            yield sse_chunk(first)
                            if first[-1][1] == "resync":
                                return
                        chunk, later = later[:STREAM_ENCODE_CHUNK], later[STREAM_ENCODE_CHUNK:]
                        if chunk and (rest := service.hub.encode_later(sub, chunk)):
                            yield sse_chunk(rest)
                        if not later:
                            break
                        await asyncio.sleep(0)
                        first, newer = sub.read_urgent()
                        later += newer
            finally:
                service.hub.unsubscribe(sub)

        return EventSourceResponse(events(), ping=15)

    # ------------------------------------------------------------------------------ health

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse, dependencies=[Depends(metrics_access)])
    async def metrics() -> PlainTextResponse:
        service.refresh_gauges()  # counts as of the scrape, not as of the last tick
        return PlainTextResponse(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """``ok`` only when every part of the twin is (ingest, journal, time series, clock and
        every task of the process); 503 otherwise, with each part's status and detail."""
        extra = health() if health is not None else {}  # first: it may report parts as of now
        report = service.health.as_json()
        body: dict[str, Any] = {
            **report,
            "devices": len(service.fleet.devices),
            "open_alarms": sum(1 for _ in service.fleet.board.open()),
        }
        if health is not None:
            body.update({k: v for k, v in extra.items() if k != "status"})
            if extra.get("status", "ok") != "ok" and body["status"] == "ok":
                body["status"] = extra["status"]
        code = 200 if body.get("status") == "ok" else 503
        return JSONResponse(status_code=code, content=body)

    if escalator is not None:
        from twin.api.escalations import escalation_router

        app.state.escalator = escalator
        app.include_router(escalation_router(escalator))

    if scenarios is not None:
        from twin.api.scenarios import scenario_router

        app.include_router(scenario_router(scenarios))
        from twin.api.cues import cue_router

        app.include_router(cue_router(scenarios, service))
    if training is not None:
        from twin.api.training import training_router

        app.state.training = training
        app.include_router(training_router(training))

    add_fhir_routes(app, TwinServiceSource(service, predictions))  # /fhir/: read-only FHIR R4 view of the pumps
    mount_console(app)
    document_validation_problem(app)
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
