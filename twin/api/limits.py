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

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ERRORS: Final = 10


class FieldError(BaseModel):
    """One thing wrong with a request: where (``loc``, e.g. ``["body", "password"]``), what, and
    pydantic's error type. Never the value."""

    loc: list[str] = Field(max_length=8)
    msg: str = Field(max_length=200)
    type: str = Field(max_length=64)


class ValidationProblem(BaseModel):
    """A 422 answer: ``invalid_request`` with ``errors`` for a request that does not match the API
    (:func:`validation_error_without_input`), or a rule's own reason (``weak_password``, ...)
    without them."""

    reason: str
    detail: str
    errors: list[FieldError] = Field(default_factory=list, max_length=MAX_ERRORS)


def document_validation_problem(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document say what its 422 answers are: FastAPI documents its own
    default body (``HTTPValidationError``: ``detail`` a list, with the input) on every route,
    which the twin replaced (found by the schemathesis pass, ``tests/integration/test_api_fuzz.py``).
    The component keeps its name, so every route's reference to it stays valid."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            problem = ValidationProblem.model_json_schema(ref_template="#/components/schemas/{model}")
            definitions = problem.pop("$defs", {})
            schemas["HTTPValidationError"] = problem
            schemas.update(definitions)
            schemas.pop("ValidationError", None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


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
