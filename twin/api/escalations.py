"""Escalation routes of the HTTP API (:mod:`twin.service.escalator`), for every signed-in role:

* ``GET /api/escalations/mine`` — the escalations that told the signed-in user and whose alarm is
  still unanswered (the console's "escalated to you"), most urgent first;
* ``GET /api/escalations/live`` — every alarm still climbing its ladder, at its highest tier;
* ``GET /api/escalations`` — the journal's escalations, oldest first (``since``, ``key``,
  ``device_id``, ``limit``);
* ``GET /api/escalations/policy`` — the ladders in force.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from twin.api.auth import Reader
from twin.service.escalator import Escalator, escalation_json, policy_json


def escalation_router(escalator: Escalator) -> APIRouter:
    router = APIRouter(prefix="/api/escalations", tags=["alarms"])

    @router.get("/mine")
    async def mine(user: Reader) -> list[dict[str, Any]]:
        return [escalation_json(e) for e in escalator.live_for(user.username)]

    @router.get("/live")
    async def live(_: Reader) -> list[dict[str, Any]]:
        return [escalation_json(e) for e in escalator.live()]

    @router.get("/policy")
    async def policy(_: Reader) -> dict[str, list[dict[str, Any]]]:
        return policy_json(escalator.policy)

    @router.get("")
    async def recorded(
        _: Reader,
        since: datetime | None = None,
        key: str | None = None,
        device_id: str | None = None,
        limit: int = Query(default=500, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        try:
            rows = await escalator.service.store.escalations(key=key, since=since)
        except (OverflowError, ValueError) as exc:  # a time SQLite's UTC text cannot hold (year 1 at +07:04)
            raise HTTPException(422, detail={"reason": "invalid_time", "detail": str(exc)}) from None
        return [escalation_json(e) for e in rows if device_id is None or e.device_id == device_id][:limit]

    return router


__all__ = ["escalation_router"]
