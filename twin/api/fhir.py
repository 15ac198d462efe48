"""The FHIR R4 routes under ``/fhir/`` (read-only, behind the same login as ``/api``).

* ``GET /fhir/metadata`` — the CapabilityStatement;
* ``GET /fhir/Device`` (``?identifier=site/device``), ``GET /fhir/Device/{id}``;
* ``GET /fhir/Observation?device={id}`` (or ``Device/{id}``), ``GET /fhir/Observation/{id}`` — reservoir
  (calculated, and predicted now), flow, dose rate, concentration, battery;
* ``GET /fhir/DetectedIssue?implicated={id}`` (or ``Device/{id}``), ``GET /fhir/DetectedIssue/{id}`` — the
  pump's alarms and the twin's alerts (why DetectedIssue: :mod:`twin.fhir.mapping`).

Answers are ``application/fhir+json``; an unknown resource is a 404 OperationOutcome. Every route needs a
signed-in user allowed to read (:data:`twin.api.auth.Reader`); a missing login is the API's own 401.

The routes read through :class:`FhirSource`, a small read-only interface, so that any shape of the twin
service can serve them: :class:`TwinServiceSource` adapts today's :class:`~twin.service.twin_service.TwinService`.
Plug them in with :func:`add_fhir_routes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from twin import __version__
from twin.alarms.lifecycle import Alarm, AlarmState
from twin.api.auth import Reader
from twin.fhir import mapping
from twin.fhir.mapping import MEDIA_TYPE, PumpRecord, fhir_id
from twin.service.twin_service import TwinService


class FhirSource(Protocol):
    """What the FHIR routes read. Implementations must not change the twin."""

    def pumps(self) -> Sequence[PumpRecord]:
        """Every pump with a birth, in a stable order."""
        ...

    def alarms(self) -> Sequence[Alarm]:
        """Every alarm point not in the normal state (what staff see)."""
        ...

    def now(self) -> datetime:
        """The twin's wall clock."""
        ...


class TwinServiceSource:
    """:class:`FhirSource` over a :class:`TwinService` (its twins, predictions and alarm board)."""

    def __init__(self, service: TwinService) -> None:
        self.service = service

    def pumps(self) -> Sequence[PumpRecord]:
        now = self.service.clock()
        out = []
        for twin in sorted(self.service.twins.values(), key=lambda t: (t.site, t.device_id)):
            if twin.birth is None:
                continue
            out.append(
                PumpRecord(
                    site=twin.site,
                    device_id=twin.device_id,
                    birth=twin.birth,
                    state=twin.reported,
                    telemetry=twin.telemetry,
                    prediction=self.service.prediction(twin, now),
                    last_seen_at=twin.last_seen_at,
                )
            )
        return out

    def alarms(self) -> Sequence[Alarm]:
        return [a for a in self.service.board.alarms.values() if a.state is not AlarmState.NORMAL]

    def now(self) -> datetime:
        return self.service.clock()


def _fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(content=body, status_code=status, media_type=MEDIA_TYPE)


def _not_found(what: str) -> JSONResponse:
    return _fhir(mapping.as_json(mapping.operation_outcome("not-found", what)), 404)


def _device_param(value: str | None) -> str | None:
    """``Device/x``, ``x`` or an absolute ``.../Device/x`` → the FHIR id ``x``."""
    if value is None:
        return None
    return value.rstrip("/").rsplit("/", 1)[-1]


def fhir_router(source: FhirSource) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["fhir"])

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/fhir"

    def bundle(request: Request, resources: Sequence[Any]) -> JSONResponse:
        return _fhir(mapping.as_json(mapping.searchset(resources, str(request.url), base(request))))

    def pumps_by_id() -> dict[str, PumpRecord]:
        return {fhir_id(p.device_id): p for p in source.pumps()}

    @router.get("/metadata")
    async def metadata(_: Reader) -> JSONResponse:
        return _fhir(mapping.as_json(mapping.capability_statement(source.now(), __version__)))

    @router.get("/Device")
    async def search_devices(request: Request, _: Reader, identifier: str | None = None) -> JSONResponse:
        wanted = identifier.split("|", 1)[-1] if identifier else None  # system|value or value
        found = [mapping.device(p) for p in source.pumps() if wanted is None or f"{p.site}/{p.device_id}" == wanted]
        return bundle(request, found)

    @router.get("/Device/{resource_id}")
    async def read_device(resource_id: str, _: Reader) -> JSONResponse:
        pump = pumps_by_id().get(resource_id)
        if pump is None:
            return _not_found(f"Device/{resource_id} is not known")
        return _fhir(mapping.as_json(mapping.device(pump)))

    @router.get("/Observation")
    async def search_observations(request: Request, _: Reader, device: str | None = None) -> JSONResponse:
        wanted = _device_param(device)
        pumps = [p for fid, p in pumps_by_id().items() if wanted is None or fid == wanted]
        return bundle(request, [o for p in pumps for o in mapping.observations(p)])

    @router.get("/Observation/{resource_id}")
    async def read_observation(resource_id: str, _: Reader) -> JSONResponse:
        for pump in source.pumps():
            for observation in mapping.observations(pump):
                if observation.id == resource_id:
                    return _fhir(mapping.as_json(observation))
        return _not_found(f"Observation/{resource_id} is not known")

    def issues(wanted: str | None) -> list[Any]:
        pumps = {p.device_id: p for p in source.pumps()}
        out = []
        for alarm in sorted(source.alarms(), key=lambda a: (a.device_id, a.raised_at, a.key)):
            if wanted is not None and fhir_id(alarm.device_id) != wanted:
                continue
            out.append(mapping.detected_issue(alarm, pumps.get(alarm.device_id)))
        return out

    @router.get("/DetectedIssue")
    async def search_issues(request: Request, _: Reader, implicated: str | None = None) -> JSONResponse:
        return bundle(request, issues(_device_param(implicated)))

    @router.get("/DetectedIssue/{resource_id}")
    async def read_issue(resource_id: str, _: Reader) -> JSONResponse:
        for issue in issues(None):
            if issue.id == resource_id:
                return _fhir(mapping.as_json(issue))
        return _not_found(f"DetectedIssue/{resource_id} is not known")

    return router


def add_fhir_routes(app: FastAPI, source: FhirSource) -> None:
    """Serve ``/fhir/`` on ``app`` from ``source`` (read-only)."""
    app.include_router(fhir_router(source))
