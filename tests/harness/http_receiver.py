"""A real HTTP receiver on a free loopback port (uvicorn serving a tiny Starlette app), standing in
for an outside paging system: it keeps every request it gets and answers with the statuses a test
scripts (then 200). Started and stopped by the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    """What the receiver answered."""


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    """Statuses to answer with, in order, before answering 200 to everything."""
    retry_after: str | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def bodies(self, status: int = 200) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.status == status]


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # uvicorn's own signature
        yield


@contextlib.asynccontextmanager
async def http_receiver(path: str = "/page") -> AsyncIterator[Receiver]:
    receiver = Receiver(url="")

    async def take(request: Request) -> JSONResponse:
        status = receiver.script.pop(0) if receiver.script else 200
        body = json.loads(await request.body() or b"{}")
        receiver.requests.append(Received(request.url.path, dict(request.headers), body, status))
        receiver.arrived.set()
        headers = {"Retry-After": receiver.retry_after} if receiver.retry_after and status != 200 else None
        return JSONResponse({"ok": status == 200}, status_code=status, headers=headers)

    app = Starlette(routes=[Route(path, take, methods=["POST"])])
    server = _Quiet(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
