"""The FHIR R4 routes under ``/fhir/`` (read-only, behind the same login as ``/api``).

* ``GET /fhir/metadata`` — the CapabilityStatement;
* ``GET /fhir/Device`` (``?identifier=site/device``), ``GET /fhir/Device/{id}``;
* ``GET /fhir/Observation?device={id}`` (or ``Device/{id}``), ``GET /fhir/Observation/{id}`` — reservoir
  (calculated, and predicted now), flow, dose rate, concentration, battery;
* ``GET /fhir/DetectedIssue?implicated={id}`` (or ``Device/{id}``), ``GET /fhir/DetectedIssue/{id}`` — the
  pump's alarms and the twin's alerts (why DetectedIssue: :mod:`twin.fhir.mapping`).

Answers are ``application/fhir+json``; an unknown resource is a 404 OperationOutcome. Every route needs a
signed-in user allowed to read (:data:`twin.api.auth.Reader`); a missing login is the API's own 401.

The routes read through :class:`FhirSource`, a small read-only interface: :class:`TwinServiceSource` reads the
:class:`~twin.service.twin_service.TwinService`'s current fleet value (``service.fleet``, never changed) and its
clock. Plug them in with :func:`add_fhir_routes`. Observations are the latest readings and the twin's prediction
now; the history of readings is the time-series store's (Grafana), not served here.
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
from twin.api.views import Predictions
from twin.fhir import mapping
from twin.fhir.mapping import MEDIA_TYPE, PumpRecord
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
    """:class:`FhirSource` over a :class:`TwinService`: reads ``service.fleet`` (the devices, the alarm
    board) as it stands at each request, and predicts with the API's cache (:class:`Predictions`)."""

    def __init__(self, service: TwinService, predictions: Predictions | None = None) -> None:
        self.service = service
        self.predictions = predictions if predictions is not None else Predictions()

    def pumps(self) -> Sequence[PumpRecord]:
        fleet = self.service.fleet  # one value: every record of this answer comes from the same fleet
        now = self.service.clock()
        out = []
        for key in sorted(fleet.devices.keys()):
            twin = fleet.devices[key]
            if twin.birth is None:
                continue
            out.append(
                PumpRecord(
                    site=twin.site,
                    device_id=twin.device_id,
                    birth=twin.birth,
                    state=twin.reported,
                    telemetry=twin.telemetry,
                    prediction=self.predictions.get(fleet, twin, now),
                    last_seen_at=twin.last_seen_at,
                )
            )
        return out

    def alarms(self) -> Sequence[Alarm]:
        return [a for a in self.service.fleet.board.alarms.values() if a.state is not AlarmState.NORMAL]

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
        return {p.resource_id: p for p in source.pumps()}

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
        pumps = {(p.site, p.device_id): p for p in source.pumps()}
        out = []
        for alarm in sorted(source.alarms(), key=lambda a: (a.site, a.device_id, a.raised_at, a.key)):
            if wanted is not None and mapping.device_fhir_id(alarm.site, alarm.device_id) != wanted:
                continue
            out.append(mapping.detected_issue(alarm, pumps.get((alarm.site, alarm.device_id))))
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
