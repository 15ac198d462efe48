"""Response actions on alarms over HTTP (see :mod:`twin.alarms.responses`).

* ``GET /api/response-actions``: the catalogue (for the console's form);
* ``POST /api/alarms/{key}/responses``: record one response as the signed-in user; refill and
  reprogram carry the command to send to the simulated pump;
* ``GET /api/alarms/{key}/responses`` and ``GET /api/responses`` (filter by device, actor, time):
  what was done, in order, for the alarm's history and for training review.

Register these routes *before* the generic ``/api/alarms/{key}/{action}`` route: Starlette takes
the first route that matches, and ``{key:path}`` would otherwise swallow ``.../responses``.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.alarms.lifecycle import AlarmError
from twin.alarms.responses import BRIDGE_BOLUS_MINUTES, MAX_NOTE_LENGTH, RESPONSE_CATALOGUE, ResponseAction
from twin.api import models, views
from twin.api.auth import Reader, Responder
from twin.api.params import Since
from twin.contract.messages import ClinicianBolusAction, InterrogateAction, RefillAction, ReprogramAction
from twin.mirror.commands import CommandRefused
from twin.service.twin_service import TwinService

ResponseCommand = Annotated[
    RefillAction | ReprogramAction | InterrogateAction | ClinicianBolusAction, Field(discriminator="type")
]


class ResponseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ResponseAction
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH)
    command: ResponseCommand | None = Field(
        default=None, description="refill and reprogram only: what to send to the pump"
    )

    @model_validator(mode="after")
    def _command_matches_action(self) -> Self:
        spec = RESPONSE_CATALOGUE[self.action]
        applies = spec.applies
        if applies is None and self.command is not None:
            raise ValueError(f"{self.action.value} is a recorded clinical action: it sends no command")
        if applies is not None and self.command is None and not spec.optional_command:
            raise ValueError(f"{self.action.value} needs a {applies} command")
        if applies is not None and self.command is not None and self.command.type != applies:
            raise ValueError(f"{self.action.value} needs a {applies} command")
        if self.action is ResponseAction.OTHER and not (self.note and self.note.strip()):
            raise ValueError("'other' needs a note saying what was done")
        return self


def _problem(status: int, reason: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "detail": detail})


def add_response_routes(app: FastAPI, service: TwinService) -> None:
    """Registered on the app itself, like the other routes, so that ``app.routes`` lists them."""

    @app.get("/api/response-actions", tags=["responses"])
    async def response_actions(_: Reader) -> list[dict[str, Any]]:
        return [
            {
                "action": s.action.value,
                "title": s.title,
                "description": s.description,
                "applies": s.applies,
                "preset": s.preset,
                "bolus_minutes": BRIDGE_BOLUS_MINUTES if s.applies == "clinician_bolus" else None,
            }
            for s in RESPONSE_CATALOGUE.values()
        ]

    @app.post("/api/alarms/{key:path}/responses", status_code=201, tags=["responses"])
    async def respond(
        key: Annotated[str, Path(description="alarm key, e.g. pump-0001/reservoir_low")],
        body: ResponseBody,
        user: Responder,
    ) -> models.RespondedView:
        """Record a response as the signed-in user (any alarm state: a late response is still a
        response, and scoring wants to see it). 404 unknown alarm; 403 when the pump refuses
        commands (a real device: read-only mirror), and then nothing is recorded."""
        detail = body.command.model_dump(mode="json") if body.command is not None else {}
        try:
            response, tracked = await service.respond(
                key,
                body.action.value,
                user.username,
                user.role.value,
                note=body.note,
                command=body.command,
                detail=detail,
            )
        except AlarmError as exc:
            raise _problem(404, exc.reason, str(exc)) from None
        except CommandRefused as exc:
            raise _problem(404 if exc.reason == "unknown_device" else 403, exc.reason, str(exc)) from None
        return models.RespondedView(
            **views.response_view(response).model_dump(),
            command=views.command_view(tracked) if tracked is not None else None,
        )

    @app.get("/api/alarms/{key:path}/responses", tags=["responses"])
    async def alarm_responses(key: str, _: Reader) -> list[models.ResponseView]:
        return [views.response_view(r) for r in await service.store.responses(key=key)]

    @app.get("/api/responses", tags=["responses"])
    async def list_responses(
        _: Reader,
        device_id: str | None = None,
        actor: str | None = None,
        since: Since = None,
        limit: int = Query(default=500, ge=1, le=10_000),
    ) -> list[models.ResponseView]:
        rows = await service.store.responses(actor=actor, since=since)
        if device_id is not None:
            rows = [r for r in rows if r.device_id == device_id]
        return [views.response_view(r) for r in rows[:limit]]


__all__ = ["ResponseBody", "add_response_routes"]
