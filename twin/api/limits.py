"""Limits on what a request may make the twin do, as a written policy.

* **Body size.** A request body over ``max_bytes`` (1 MiB by default: the largest legitimate body,
  a reprogram with a 24-step schedule, is under 4 KiB) is refused with 413 before it is read
  further: by its ``Content-Length`` when it declares one, and by counting the bytes as they
  arrive when it does not (chunked). A 400 MiB login body costs the twin one header read.
* **Errors do not echo input.** A body that fails validation gets 422 with the field and the
  message of each error (at most :data:`MAX_ERRORS`), never the input itself: an error answer must
  not hand back (or amplify) what a client sent.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ERRORS: Final = 10


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await _too_large(send, self.max_bytes)
                    return
        received = 0
        started = False
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # answer now and tell the app the client went away: it stops reading, and
                    # whatever it would answer is dropped below
                    refused = True
                    if not started:
                        await _too_large(send, self.max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, watched)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"reason":"body_too_large","detail":"a request body may be at most {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def validation_error_without_input(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each field and what is wrong with it, without the input (see the module docstring)."""
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = []
    for error in exc.errors()[:MAX_ERRORS]:
        errors.append(
            {
                "loc": [str(part)[:64] for part in error.get("loc", ())][:8],
                "msg": str(error.get("msg", ""))[:200],
                "type": str(error.get("type", ""))[:64],
            }
        )
    return JSONResponse(
        status_code=422,
        content={"reason": "invalid_request", "detail": "the request does not match the API", "errors": errors},
    )
