"""Stand-ins for InfluxDB 2.x and 3.x on their v1-compatible API, which cannot run here.

Each is a small Starlette app served by uvicorn on a free port of 127.0.0.1 (a real socket, so
the writer's own httpx client, gzip, auth headers and timeouts are what is tested). Each answers
``/ping``, ``/write`` and ``/query`` the way its version's documentation says; the pages
followed are cited in the test modules (``tests/integration/test_influx_compat_v2.py``,
``..._v3.py``) and at each answer below. They reproduce only what the writer can meet: auth,
databases or their mappings, line-protocol parsing, field type conflicts, and the overload
answers a test injects. They do not run InfluxQL (the writer never reads).

Stored points are parsed with the reference reader ``tests.harness.line_protocol`` and kept
per database (or bucket), so a test can count every point that landed, and how often.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness.line_protocol import ReadPoint, read_lines, read_located_lines

FieldType = str  # "float", "integer", "boolean", "string"


def field_type(value: float | int | bool | str) -> FieldType:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "string"


SeriesTime = tuple[str, tuple[tuple[str, str], ...], int]
"""A point's identity in InfluxDB: measurement, tag set and timestamp (a rewrite overwrites)."""


@dataclass
class Store:
    """The points of one database (3.x) or bucket (2.x), one per identity as InfluxDB keeps them
    (a point written again replaces itself), how many lines were taken in all, and the type each
    field was first written with."""

    by_identity: dict[SeriesTime, ReadPoint] = field(default_factory=dict)
    lines_taken: int = 0
    types: dict[tuple[str, str], FieldType] = field(default_factory=dict)

    @property
    def points(self) -> list[ReadPoint]:
        return list(self.by_identity.values())

    def conflict(self, point: ReadPoint) -> tuple[str, FieldType, FieldType] | None:
        """(field, type it has, type it was given) of the first field of ``point`` whose type differs."""
        for key, value in point.fields.items():
            known = self.types.get((point.measurement, key))
            if known is not None and known != field_type(value):
                return key, known, field_type(value)
        return None

    def add(self, point: ReadPoint) -> None:
        for key, value in point.fields.items():
            self.types.setdefault((point.measurement, key), field_type(value))
        self.by_identity[(point.measurement, tuple(sorted(point.tags.items())), point.time_ns)] = point
        self.lines_taken += 1


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it (headers lower-cased)."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float
    """``time.monotonic()`` when it arrived."""


@dataclass(frozen=True)
class Grant:
    """What authenticated credentials may write: these buckets or databases (``None``: all)."""

    targets: set[str] | None

    def allows(self, target: str) -> bool:
        return self.targets is None or target in self.targets


@dataclass(frozen=True)
class Injected:
    """An answer given to the next ``/write`` instead of handling it."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _credentials(request: Request) -> tuple[str | None, str | None, str | None]:
    """(scheme, user, secret) from the ``Authorization`` header or the ``u``/``p`` parameters."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme in ("Token", "Bearer"):
        return scheme, None, value
    if scheme == "Basic":
        try:
            user, _, secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "Basic", None, None
        return "Basic", user, secret
    if "p" in request.query_params:
        return "query", request.query_params.get("u"), request.query_params["p"]
    return None, None, None


async def _body(request: Request) -> str:
    raw = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    return raw.decode()


# ------------------------------------------------------------------------------------- 2.x


@dataclass
class FakeInflux2:
    """InfluxDB OSS 2.x (its 1.x compatibility API): an organisation's buckets, API tokens, v1
    authorizations and DBRP mappings.

    ``create_bucket`` makes a bucket and, as 2.x does, its "virtual" DBRP mapping (a bucket named
    ``db`` maps to ``db``/``autogen``, default; ``db/rp`` to ``db``/``rp``); ``map_dbrp`` maps a
    database and retention policy to an existing bucket (``influx v1 dbrp create``). A bucket may
    exist without a mapping (``create_bucket(..., virtual_mapping=False)``: a bucket made before
    virtual mappings, or one whose mapping an operator deleted).
    """

    version: str = "v2.7.10"
    tokens: dict[str, set[str] | None] = field(default_factory=dict)
    """API token -> buckets it may write (``None``: all: an operator's all-access token)."""
    v1_auths: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    """v1 authorization user name -> (password, buckets it may write)."""
    buckets: dict[str, Store] = field(default_factory=dict)
    dbrp: dict[tuple[str, str], str] = field(default_factory=dict)
    default_rp: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    inject: deque[Injected] = field(default_factory=deque)

    def create_bucket(self, name: str, *, virtual_mapping: bool = True) -> None:
        self.buckets.setdefault(name, Store())
        if virtual_mapping:
            database, _, rp = name.partition("/")
            self.map_dbrp(database, rp or "autogen", name, default=database not in self.default_rp)

    def map_dbrp(self, database: str, rp: str, bucket: str, *, default: bool = False) -> None:
        self.dbrp[(database, rp)] = bucket
        if default:
            self.default_rp[database] = rp

    def points(self, bucket: str) -> list[ReadPoint]:
        return self.buckets[bucket].points

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ping", self._ping, methods=["GET", "HEAD"]),
                Route("/write", self._write, methods=["POST"]),
                Route("/query", self._query, methods=["GET", "POST"]),
            ]
        )

    def _see(self, request: Request) -> None:
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                dict(request.headers.items()),
                time.monotonic(),
            )
        )

    @staticmethod
    def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
        """The v2 ``Error`` schema: ``code`` (machine-readable, from the ErrorCode enum), ``message``."""
        return JSONResponse({"code": code, "message": message, **extra}, status_code=status)

    def _grant(self, request: Request) -> Grant | None:
        """What the request's credentials may write; ``None`` when they authenticate nobody.

        2.x's v1 API takes ``Authorization: Token``, HTTP Basic and ``u``/``p``, with either a v1
        authorization's user name and password or any user name and an API token as the password;
        never the 2.x login (``/influxdb/v2/api-guide/influxdb-1x/``, Authentication).
        """
        scheme, user, secret = _credentials(request)
        if scheme == "Token" and secret in self.tokens:
            return Grant(self.tokens[secret])
        if scheme in ("Basic", "query") and secret is not None:
            if user in self.v1_auths and self.v1_auths[user][0] == secret:
                return Grant(self.v1_auths[user][1])
            if secret in self.tokens:
                return Grant(self.tokens[secret])
        return None

    async def _ping(self, request: Request) -> Response:
        # v2 OpenAPI, GetPing/HeadPing: 204, X-Influxdb-Version and X-Influxdb-Build; no auth
        self._see(request)
        return Response(status_code=204, headers={"X-Influxdb-Version": self.version, "X-Influxdb-Build": "OSS"})

    async def _write(self, request: Request) -> Response:
        # v2 OpenAPI PostLegacyWrite; the order of checks is 2.x's legacy write handler's
        self._see(request)
        if self.inject:
            injected = self.inject.popleft()
            await request.body()
            return JSONResponse(injected.body, status_code=injected.status, headers=injected.headers)
        grant = self._grant(request)
        if grant is None:
            return self._error(401, "unauthorized", "unauthorized access")
        database = request.query_params.get("db")
        if not database:
            return self._error(400, "invalid", "missing db")
        rp = request.query_params.get("rp") or self.default_rp.get(database)
        bucket = self.dbrp.get((database, rp)) if rp is not None else None
        if bucket is None:
            return self._error(404, "not found", "no dbrp mapping found")
        if not grant.allows(bucket):
            return self._error(403, "forbidden", "insufficient permissions for write")
        body = await _body(request)
        try:
            points = read_lines(body)
        except (ValueError, IndexError) as error:  # LineProtocolError: nothing written
            return self._error(400, "invalid", f"unable to parse points: {error}", line=1)
        store = self.buckets[bucket]
        dropped = []
        for point in points:
            conflict = store.conflict(point)
            if conflict is None:
                store.add(point)
            else:
                dropped.append((point, conflict))
        if dropped:  # the others are written: 422, "some or all points were rejected" (troubleshoot page)
            point, (key, known, given) = dropped[0]
            return self._error(
                422,
                "unprocessable entity",
                "failure writing points to database: partial write: field type conflict: input field "
                f'"{key}" on measurement "{point.measurement}" is type {given}, already exists as type {known} '
                f"dropped={len(dropped)}",
            )
        return Response(status_code=204)

    async def _query(self, request: Request) -> Response:
        self._see(request)
        if self._grant(request) is None:
            return self._error(401, "unauthorized", "unauthorized access")
        statement = request.query_params.get("q") or (await request.body()).decode()
        verb = " ".join(statement.split()[:2]).upper()
        if verb.startswith(("CREATE", "DROP DATABASE", "ALTER", "GRANT", "REVOKE")):
            # "InfluxQL database management commands are not supported" (api-guide/influxdb-1x);
            # answered in the statement's result, 200 (v1/coordinator/statement_executor.go)
            return JSONResponse({"results": [{"statement_id": 0, "error": f"not implemented: {verb}"}]})
        return self._error(501, "not implemented", "this stand-in answers only what the writer sends")


# ------------------------------------------------------------------------------------- 3.x


@dataclass
class FakeInflux3:
    """InfluxDB 3 Core/Enterprise on its v1 compatibility endpoints: databases created by the
    first write, tokens required everywhere (``/ping`` too, by default), partial writes answered
    400 with the refused lines."""

    version: str = "3.8.0"
    build: str = "Core"
    tokens: dict[str, set[str] | None] = field(default_factory=dict)
    """Token -> databases it may write (``None``: an admin token)."""
    databases: dict[str, Store] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    inject: deque[Injected] = field(default_factory=deque)

    MAX_LISTED: int = 100
    """"details about the rejected points, up to 100 points" (troubleshoot page)."""

    def points(self, database: str) -> list[ReadPoint]:
        return self.databases[database].points

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ping", self._ping, methods=["GET", "HEAD", "POST"]),
                Route("/write", self._write, methods=["POST"]),
                Route("/query", self._query, methods=["GET", "POST"]),
            ]
        )

    def _see(self, request: Request) -> None:
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                dict(request.headers.items()),
                time.monotonic(),
            )
        )

    def _grant(self, request: Request) -> Grant | None:
        """Bearer (all endpoints), Token (v1/v2), Basic with the token as password and any user
        name, ``p`` as the token (3 Core OpenAPI, security schemes); ``None``: unauthenticated."""
        scheme, _, secret = _credentials(request)
        if scheme is not None and secret in self.tokens:
            return Grant(self.tokens[secret])
        return None

    @staticmethod
    def _unauthorized() -> JSONResponse:
        # the 3 Core OpenAPI's Unauthorized response: an ErrorMessage ({"error": ..., "data": ...})
        return JSONResponse({"error": "unauthorized access", "data": None}, status_code=401)

    async def _ping(self, request: Request) -> Response:
        # 3 Core OpenAPI GetPing: GET (and POST) 200 with headers and a JSON body; HEAD 404;
        # "This endpoint requires authentication by default in InfluxDB 3 Core"
        self._see(request)
        if request.method == "HEAD":
            return Response(status_code=404)
        if self._grant(request) is None:
            return self._unauthorized()
        return JSONResponse(
            {"version": self.version, "revision": "83b589b883", "process_id": "b756d9e0-cecd-4f72-b6d0-19e2d4f8cbb7"},
            headers={"x-influxdb-version": self.version, "x-influxdb-build": self.build},
        )

    async def _write(self, request: Request) -> Response:
        # 3 Core OpenAPI PostV1Write, and write-data/troubleshoot
        self._see(request)
        if self.inject:
            injected = self.inject.popleft()
            await request.body()
            return JSONResponse(injected.body, status_code=injected.status, headers=injected.headers)
        grant = self._grant(request)
        if grant is None:
            return self._unauthorized()
        database = request.query_params.get("db")
        if not database:
            return JSONResponse({"error": "missing db", "data": None}, status_code=400)
        if not grant.allows(database):
            return JSONResponse({"error": "access denied", "data": None}, status_code=403)
        body = await _body(request)
        store = self.databases.setdefault(database, Store())  # "creates the database if it doesn't already exist"
        try:
            located = read_located_lines(body)
        except (ValueError, IndexError):
            return JSONResponse(
                {"error": "parsing failed for write_lp endpoint", "data": {"line_number": 1}}, status_code=400
            )
        rejected = []
        for point, text, number in located:
            conflict = store.conflict(point)
            if conflict is None:
                store.add(point)
                continue
            key, known, given = conflict
            rejected.append(
                {
                    # the documented example shows the line without the quotes of its string field
                    "original_line": text.replace('"', ""),
                    "line_number": number,
                    "error_message": f"invalid column type for column '{key}', expected "
                    f"iox::column_type::field::{known}, got iox::column_type::field::{given}",
                }
            )
        if not rejected:
            return Response(status_code=204)
        partial = len(rejected) < len(located)
        error = "partial write of line protocol occurred" if partial else "write of line protocol failed"
        return JSONResponse({"error": error, "data": rejected[: self.MAX_LISTED]}, status_code=400)

    async def _query(self, request: Request) -> Response:
        self._see(request)
        if self._grant(request) is None:
            return self._unauthorized()
        # InfluxQL on 3.x reads (SELECT, SHOW ...); databases are made by writes or the v3 API
        return JSONResponse(
            {"error": "this stand-in answers only what the writer sends", "data": None}, status_code=400
        )


# ----------------------------------------------------------------------------------- serving


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 in this event loop; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises why it could not start
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
