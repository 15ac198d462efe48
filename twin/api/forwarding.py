"""A staff action for a partition this replica does not serve, sent on to the replica that does.

With replicas (``pumptwin serve --database-url``) each partition of sites is served by one
replica (:mod:`twin.cluster`): only that replica may change its alarms and send its commands,
because only its writes pass the partition's fence. Any replica *reads* the whole fleet, so the
console, behind a load balancer, may send an acknowledgement or a command to the wrong one. That
replica's service raises :class:`NotServedHere` naming the partition's owner and the URL the owner
advertised (``twin_replica.http_url``); the route hands the request to :func:`forward`, which
replays it there with the caller's own credentials (accounts and sessions are shared in
PostgreSQL, so the owner checks the same user and role) and answers with the owner's answer.

Failure modes, all said in JSON with a stable ``reason``:

* no owner right now (the partition is between owners: a replica died and its lease has not run
  out yet), or the owner has not said where it answers: 503 ``not_served_here`` with
  ``Retry-After`` (the take-over takes at most the lease TTL plus a tick);
* the owner does not answer: 503 ``owner_unreachable`` with ``Retry-After``;
* a request already forwarded once is never forwarded again (two replicas that each think the
  other serves the partition, for the instant of a hand-over, would bounce it for ever): 503
  ``not_served_here``.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

log = logging.getLogger(__name__)

FORWARDED_BY: Final = "x-pumptwin-forwarded-by"
"""Header a forwarded request carries: the replica that forwarded it (never forwarded twice)."""

SERVED_BY: Final = "x-pumptwin-served-by"
"""Header of a forwarded answer: the replica that did the work."""

PASSED_ON: Final = ("cookie", "authorization", "content-type", "accept", "user-agent")
"""Request headers replayed to the owner: the caller's credentials and what the body is. Not
``Origin`` (the owner's host differs: the browser guard checked it here already) nor ``Host``."""

TIMEOUT_S: Final = 10.0
"""Longest wait for the owner (the same as a store call's)."""

RETRY_AFTER_S: Final = 3
"""What a 503 advises: about one lease tick, after which a new owner usually serves the partition."""


class NotServedHere(Exception):
    """The action is for ``partition``, which this replica does not serve: ``owner`` does (None:
    nobody right now), at ``url`` (None: unknown)."""

    def __init__(self, partition: int, owner: str | None, url: str | None) -> None:
        where = f"replica {owner} ({url or 'address unknown'})" if owner else "no replica right now"
        super().__init__(f"partition {partition} is served by {where}")
        self.partition = partition
        self.owner = owner
        self.url = url


def _unavailable(reason: str, detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=503, content={"reason": reason, "detail": detail}, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


async def forward(request: Request, refusal: NotServedHere, *, replica: str, json_body: Any = None) -> Response:
    """Replay ``request`` (method, path, query, ``json_body``) at the owner ``refusal`` names and
    answer with what it answers (see the module docstring)."""
    if refusal.owner is None or refusal.url is None or request.headers.get(FORWARDED_BY):
        return _unavailable("not_served_here", str(refusal))
    target = refusal.url.rstrip("/") + request.url.path
    headers = {name: value for name in PASSED_ON if (value := request.headers.get(name)) is not None}
    headers[FORWARDED_BY] = replica
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answer = await client.request(
                request.method, target, params=str(request.query_params), headers=headers, json=json_body
            )
    except httpx.HTTPError as error:
        log.warning("forwarding %s %s to %s failed: %s", request.method, request.url.path, refusal.owner, error)
        return _unavailable("owner_unreachable", f"{refusal}: {type(error).__name__}")
    passed = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "retry-after")}
    passed[SERVED_BY] = refusal.owner
    return Response(content=answer.content, status_code=answer.status_code, headers=passed)


__all__ = ["FORWARDED_BY", "SERVED_BY", "NotServedHere", "forward"]
