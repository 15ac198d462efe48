"""The alarm guidance over HTTP: what each alarm means and what staff do about it
(:mod:`twin.alarms.guidance`), and the instructor's switch that hides it for a test.

* ``GET /api/alarm-guidance``: ``{"hidden": bool, "codes": {code: {source, priority, title,
  meaning, staff_response}}}``. While hidden, a user below the instructor role gets no ``codes``
  (withheld by the server, not just not drawn): a trainee cannot read it in the devtools either;
* ``PUT /api/alarm-guidance`` ``{"hidden": bool}`` (instructor: ``Permission.RUN_SCENARIO``):
  hide or show it; every console hears of it on the live stream (a ``guidance`` event) and
  reloads.

The switch lives in the process (``app.state.guidance_hidden``): a restarted twin shows the
guidance again, which fails safe for day-to-day use; an instructor hides it again for the next
test. Handlers are ``async`` like the rest of the API (the service is touched on the loop's thread).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict

from twin.alarms.guidance import GUIDANCE
from twin.api.auth import Reader, allowed
from twin.roles import Permission, can
from twin.service.events import Notice
from twin.service.twin_service import TwinService
from twin.store.users import User

Instructor = Annotated[User, Depends(allowed(Permission.RUN_SCENARIO))]


class GuidanceSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: bool


def _hidden(request: Request) -> bool:
    return bool(getattr(request.app.state, "guidance_hidden", False))


def guidance_json(hidden: bool, *, for_instructor: bool) -> dict[str, Any]:
    """The guidance as a user sees it: the codes unless hidden for them."""
    codes = {
        code: {
            "source": g.source,
            "priority": g.priority.value,
            "title": g.title,
            "meaning": g.meaning,
            "staff_response": g.staff_response,
        }
        for code, g in GUIDANCE.items()
    }
    return {"hidden": hidden, "codes": codes if for_instructor or not hidden else {}}


def add_catalogue_routes(app: FastAPI, service: TwinService) -> None:
    """Registered on the app itself, like the other routes, so that ``app.routes`` lists them."""
    app.state.guidance_hidden = False

    @app.get("/api/alarm-guidance", tags=["alarms"])
    async def get_guidance(request: Request, user: Reader) -> dict[str, Any]:
        return guidance_json(_hidden(request), for_instructor=can(user.role, Permission.RUN_SCENARIO))

    @app.put("/api/alarm-guidance", tags=["alarms"])
    async def set_guidance(body: GuidanceSwitch, request: Request, user: Instructor) -> dict[str, Any]:
        request.app.state.guidance_hidden = body.hidden
        service.hub.publish(Notice("guidance", {"hidden": body.hidden, "by": user.username}))
        return guidance_json(body.hidden, for_instructor=True)


__all__ = ["add_catalogue_routes", "guidance_json"]
