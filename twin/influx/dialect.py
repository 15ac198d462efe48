"""Which InfluxDB answers, and what its answers on the v1 API mean: 1.x, 2.x or 3.x.

All three serve ``/write``, ``/query`` and ``/ping`` (the only API the writer uses), but they
answer differently, and the writer must tell a configuration problem (keep the points, say what
to fix) from refused points (dead-letter exactly those). Pure: functions of a response's status,
headers and body; no I/O. What each version answers, and where that is documented
(docs.influxdata.com, source in github.com/influxdata/docs-v2):

* ``GET /ping``: 1.x ``204`` with ``X-Influxdb-Version: 1.x.y``; 2.x ``204`` with
  ``X-Influxdb-Version`` (``v2.x.y``; InfluxDB Cloud sends none) and ``X-Influxdb-Build``
  (``/influxdb/v2/api/`` GetPing); 3.x Core/Enterprise ``200`` with ``x-influxdb-version: 3.x.y``
  and ``x-influxdb-build: Core``/``Enterprise``, a JSON body, and authentication required by
  default (``/influxdb3/core/api/`` GetPing; a ``HEAD`` answers 404 there, so always ``GET``).
* Databases: 1.x makes them with ``CREATE DATABASE`` through ``/query``. 2.x does not ("InfluxQL
  database management commands are not supported", ``/influxdb/v2/api-guide/influxdb-1x/``): a
  database is a bucket reached through a DBRP mapping, made by an operator or by 2.x itself for
  a bucket named ``db`` or ``db/rp`` (``/influxdb/v2/api-guide/influxdb-1x/dbrp/``); the statement
  is answered ``200`` with ``"error": "not implemented: CREATE DATABASE"`` in its result
  (influxdb ``v1/coordinator/statement_executor.go``). 3.x creates a database on its first write
  ("InfluxDB creates the database if it doesn't already exist", 3 Core OpenAPI ``PostV1Write``).
* ``404`` on a write: 1.x ``{"error": "database not found: \\"db\\""}``
  (``/influxdb/v1/guides/write_data/``); 2.x ``{"code": "not found", "message": "no dbrp mapping
  found"}`` when no DBRP mapping covers ``db``/``rp`` (the ``Error`` schema of the v2 OpenAPI;
  ``/influxdb/v2/write-data/troubleshoot/``: "404 Not found ... the requested resource type and
  resource name"; the message is ``findMapping`` in influxdb ``http/legacy/write_handler.go``).
* ``400`` on a write: 3.x lists the refused lines, up to 100, with a partial write of the rest:
  ``{"error": "partial write of line protocol occurred", "data": [{"original_line": ...,
  "line_number": 2, "error_message": ...}]}`` (3 Core OpenAPI ``PostV1Write``;
  ``/influxdb3/core/write-data/http-api/v3-write-lp/``: line numbers count from 1, and
  ``original_line`` may lose the quotes of a string field). 1.x and 2.x name at most the first
  line (2.x ``LineProtocolError.line``), without its text: the writer splits those batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import httpx

MAX_REASON_CHARS: Final = 2000
"""InfluxDB's own words are kept up to this many characters (a 1.x parse error quotes the line)."""


class Dialect(StrEnum):
    """The InfluxDB major version behind the v1 API, as its ``/ping`` says."""

    V1 = "1.x"
    V2 = "2.x"
    V3 = "3.x"
    UNKNOWN = "unknown"  # no version header (InfluxDB Cloud), or /ping did not answer 2xx


@dataclass(frozen=True, slots=True)
class Server:
    """What ``/ping`` said: dialect, version and build as sent (``None`` when absent)."""

    dialect: Dialect
    version: str | None = None
    build: str | None = None

    @property
    def creates_databases(self) -> bool:
        """Whether ``CREATE DATABASE`` through ``/query`` can work here: on 1.x, and worth one try
        on an unknown server (its answer then says). Never on 2.x (a bucket and a DBRP mapping,
        made by an operator) or 3.x (made by the first write)."""
        return self.dialect in (Dialect.V1, Dialect.UNKNOWN)

    def describe(self) -> str:
        """``InfluxDB 2.7.10 (2.x, OSS)``, ``InfluxDB (unknown version)``."""
        version = (self.version or "").removeprefix("v")
        details = ", ".join(part for part in (self.dialect.value, self.build) if part and part != "unknown")
        name = f"InfluxDB {version}" if version else "InfluxDB (unknown version)"
        return f"{name} ({details})" if details else name


UNKNOWN_SERVER: Final = Server(Dialect.UNKNOWN)


def identify(status: int, headers: Mapping[str, str]) -> Server:
    """The server behind a ``GET /ping`` answer (``headers``: case-insensitive, as httpx gives them).

    A 2xx with a version header names the dialect by its major version (``1.6.7``, ``v2.7.10``,
    ``3.8.0``); without one, or on any other status, the dialect is unknown.
    """
    version = headers.get("x-influxdb-version") or None
    build = headers.get("x-influxdb-build") or None
    if not 200 <= status < 300:
        return Server(Dialect.UNKNOWN, version, build)
    major = (version or "").strip().removeprefix("v").split(".", 1)[0]
    dialect = {"1": Dialect.V1, "2": Dialect.V2, "3": Dialect.V3}.get(major, Dialect.UNKNOWN)
    return Server(dialect, version, build)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # not JSON (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
        return None


def influx_reason(response: httpx.Response) -> str:
    """InfluxDB's own words for a refusal: the ``X-Influxdb-Error`` header (1.x), the JSON ``error``
    (1.x, 3.x) or ``message`` (2.x), else the body text."""
    reason = response.headers.get("x-influxdb-error")
    if not reason:
        body = _json(response)
        if isinstance(body, dict):
            reason = body.get("error") or body.get("message")
        if not reason:
            reason = response.text or response.reason_phrase
    return str(reason)[:MAX_REASON_CHARS]


class NotFound(StrEnum):
    """What a ``404`` on a write says is missing."""

    DATABASE = "database"  # 1.x: "database not found" (CREATE DATABASE makes it)
    DBRP_MAPPING = "dbrp_mapping"  # 2.x: no database/retention-policy mapping to a bucket
    OTHER = "other"


def not_found(response: httpx.Response) -> NotFound:
    """Read a ``404`` answer to ``/write`` (see the module docstring for the bodies)."""
    body = _json(response)
    if isinstance(body, dict):
        error = str(body.get("error") or "")
        message = str(body.get("message") or "")
        if "database not found" in error:
            return NotFound.DATABASE
        if "dbrp" in message.lower() or (body.get("code") == "not found" and "mapping" in message.lower()):
            return NotFound.DBRP_MAPPING
    return NotFound.OTHER


def statement_error(response: httpx.Response) -> str | None:
    """The first statement's ``error`` in a ``/query`` answer (1.x and 2.x answer a failed
    statement with ``200`` and the error in its result), else ``None``."""
    body = _json(response)
    if not isinstance(body, dict):
        return None
    results = body.get("results")
    if isinstance(results, list):
        for result in results:
            if isinstance(result, dict) and result.get("error"):
                return str(result["error"])[:MAX_REASON_CHARS]
    return None


@dataclass(frozen=True, slots=True)
class RefusedLine:
    """One line of a batch that InfluxDB refused: its place in the batch (from 0) and why."""

    index: int
    reason: str


def refused_lines(response: httpx.Response, lines: Sequence[bytes]) -> tuple[RefusedLine, ...] | None:
    """The lines of ``lines`` (the batch as sent, in order) that an InfluxDB 3 ``400`` names, or
    ``None`` when the answer names none that can be matched with certainty.

    Matched by ``line_number`` (from 1), and only when every line of the batch is one physical
    line (a string field may hold a newline, and then line numbers are ambiguous) and each named
    line's measurement, as ``original_line`` shows it, is the one at that place. Anything else
    (1.x, 2.x, a truncated or unexpected body) is ``None``: the caller then splits the batch.
    """
    body = _json(response)
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    entries = [data] if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries or any(b"\n" in line for line in lines):
        return None
    summary = str(body.get("error") or "refused")
    found: dict[int, RefusedLine] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            return None
        number = entry.get("line_number")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(lines):
            return None
        original = entry.get("original_line")
        if isinstance(original, str) and original and _measurement(original) != _measurement(lines[number - 1]):
            return None
        detail = entry.get("error_message")
        reason = f"{summary}: {detail}" if detail else summary
        found[number - 1] = RefusedLine(number - 1, reason[:MAX_REASON_CHARS])
    return tuple(found[index] for index in sorted(found))


def _measurement(line: str | bytes) -> str:
    """The escaped measurement name at the start of a line: up to the first unescaped ``,`` or space."""
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    at = 0
    while at < len(text):
        if text[at] == "\\":
            at += 2
            continue
        if text[at] in ", ":
            break
        at += 1
    return text[:at]


# ----------------------------------------------------------------------------- configuration


def _credentials_fix(dialect: Dialect, database: str, credentials: str) -> str:
    if credentials == "token":
        if dialect is Dialect.V2:
            return (
                "check PUMPTWIN_INFLUX__TOKEN: an InfluxDB 2.x API token with write permission on the bucket "
                f"mapped to database {database!r}"
            )
        if dialect is Dialect.V3:
            return (
                "check PUMPTWIN_INFLUX__TOKEN: an InfluxDB 3 admin token, or a database token that may write to "
                f"{database!r}"
            )
        return "check PUMPTWIN_INFLUX__TOKEN (InfluxDB 2.x/3.x: an API token that may write to the database)"
    if credentials == "user":
        if dialect is Dialect.V2:
            return (
                "check PUMPTWIN_INFLUX__USERNAME and PUMPTWIN_INFLUX__PASSWORD: InfluxDB 2.x takes a v1 "
                "authorization here (influx v1 auth create), not the 2.x login, or any user name with an API "
                "token as the password"
            )
        return (
            "check PUMPTWIN_INFLUX__USERNAME and PUMPTWIN_INFLUX__PASSWORD (InfluxDB 1.x: a user with WRITE on "
            f"{database!r})"
        )
    return (
        "this InfluxDB wants credentials: set PUMPTWIN_INFLUX__TOKEN (2.x/3.x) or PUMPTWIN_INFLUX__USERNAME and "
        "PUMPTWIN_INFLUX__PASSWORD (1.x)"
    )


def configuration_problem(
    status: int,
    reason: str,
    *,
    server: Server,
    missing: NotFound,
    database: str,
    retention_policy: str | None,
    credentials: str,
) -> str:
    """The plain words for a write InfluxDB refused because of how it is set up (``401``,
    ``403``, ``404``): what is wrong, that the points are kept, and how to fix it.

    ``credentials`` is what the writer sends: ``token``, ``user`` or ``none``. Never contains a
    secret (``reason`` is InfluxDB's own message, which names no credential).
    """
    who = server.describe()
    kept = "The points are kept in the spool and sent once this is fixed."
    target = f"database {database!r}" + (f", retention policy {retention_policy!r}" if retention_policy else "")
    if status == 401:
        return (
            f"{who} refused the twin's credentials (HTTP 401: {reason}). {kept} Fix: "
            f"{_credentials_fix(server.dialect, database, credentials)}."
        )
    if status == 403:
        return (
            f"{who} accepted the twin's credentials but they may not write to {target} (HTTP 403: {reason}). "
            f"{kept} Fix: grant write permission on it, or {_credentials_fix(server.dialect, database, credentials)}."
        )
    if missing is NotFound.DBRP_MAPPING or (missing is NotFound.OTHER and server.dialect is Dialect.V2):
        rp = retention_policy or "autogen"
        bucket = f"{database}/{retention_policy}" if retention_policy else database
        return (
            f"{who} has no DBRP mapping (database and retention policy to bucket) for {target}, so it refuses "
            f"the points (HTTP 404: {reason}). {kept} Fix: create a bucket named {bucket!r} (InfluxDB 2.x maps "
            f"it to database {database!r}, retention policy {rp!r}, by itself), or map an existing bucket: "
            f"influx v1 dbrp create --db {database} --rp {rp} --bucket-id <bucket id> --default"
        )
    if missing is NotFound.DATABASE:
        return (
            f"{who} has no {target} (HTTP 404: {reason}). {kept} The twin sends CREATE DATABASE, which needs an "
            f'admin user; if this persists, create it as an admin: CREATE DATABASE "{database}" WITH DURATION INF'
            + (f" (and the retention policy {retention_policy!r})" if retention_policy else "")
        )
    return (
        f"{who} answered HTTP 404 for {target} ({reason}): it does not exist there. {kept} Fix: create it "
        f"(InfluxDB 3: influxdb3 create database {database}; InfluxDB 2.x: a bucket and its DBRP mapping)."
    )


__all__ = [
    "UNKNOWN_SERVER",
    "Dialect",
    "NotFound",
    "RefusedLine",
    "Server",
    "configuration_problem",
    "identify",
    "influx_reason",
    "not_found",
    "refused_lines",
    "statement_error",
]
