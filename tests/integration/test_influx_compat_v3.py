"""The real ``InfluxWriter`` against InfluxDB 3 Core/Enterprise's v1 compatibility API (a stand-in:
3.x cannot run here).

The stand-in (``tests.harness.influx_compat.FakeInflux3``, a Starlette app on a real socket)
answers as these pages of InfluxData's documentation say (text from github.com/influxdata/docs-v2):

* https://docs.influxdata.com/influxdb3/core/api/ — the InfluxDB 3 Core OpenAPI document
  (``api-docs/influxdb3/core/influxdb3-core-openapi.yaml``): security schemes (Bearer on every
  endpoint; ``Token`` on the v1 and v2 endpoints; Basic and ``u``/``p`` on the v1 endpoints, where
  the password is the token and the user name is ignored); ``PostV1Write``: ``db`` "InfluxDB
  creates the database if it doesn't already exist", 204, 400 "Some (a partial write) or all of
  the data from the batch was rejected" with ``{"error": "partial write of line protocol
  occurred" | "write of line protocol failed", "data": [{"original_line", "line_number",
  "error_message"}]}``, 401 (``ErrorMessage``), 403, 413; ``GetPing``: GET 200 with
  ``x-influxdb-version``, ``x-influxdb-build`` (``Core``/``Enterprise``) and a JSON body, HEAD
  404, "requires authentication by default in InfluxDB 3 Core".
* https://docs.influxdata.com/influxdb3/core/write-data/http-api/compatibility-apis/ — ``POST
  /write?db=mydb&precision=ns``; tags are immutable and a tag and a field cannot share a name.
* https://docs.influxdata.com/influxdb3/core/write-data/troubleshoot/ — 400 when "some or all
  request data isn't allowed", details "up to 100 points"; 401; 404; 503 with ``Retry-After``.
* https://docs.influxdata.com/influxdb3/core/write-data/http-api/v3-write-lp/ — the partial-write
  example: a field type conflict, ``line_number`` counted from 1, ``original_line`` shown without
  the string field's quotes, and the "invalid column type for column ..." message.

The query file limit: https://docs.influxdata.com/influxdb3/core/reference/config-options/#query-file-limit
("Limits the number of Parquet files a query can access. If a query attempts to read more than
this limit, InfluxDB 3 Core returns an error"; default 432, about 72 hours of data with the
default 10-minute ``gen1-duration``) and Amazon Timestream for InfluxDB 3's parameter page
https://docs.aws.amazon.com/timestream/latest/developerguide/query-file-limit.html (default 432,
0-1024, the query "is rejected"). 432 is a count of Parquet files, not an HTTP status, and
neither page documents the status or body of the error, so the stand-in does not invent one. It
concerns reads only: the writer never queries (its only ``/query`` is ``CREATE DATABASE``, which
it does not send to 3.x); what it means for the dashboards is in ``dashboards/README.md``.

What is checked: the writer authenticates with a token (and Basic with the token as password),
identifies 3.x from ``/ping``, leaves the database to the first write (no ``CREATE DATABASE``),
keeps the points through a 401/403 and says why, waits ``Retry-After`` on 503, and on a partial
write dead-letters exactly the lines 3.x names, each with its reason, and writes the rest.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.harness import influx_fleet
from tests.harness.influx_compat import FakeInflux3, Injected, Seen, serving
from tests.harness.waiting import until
from twin.contract.alarms import AlarmCode, Priority
from twin.influx.writer import DEAD_LETTER_FILE, InfluxWriter
from twin.settings import InfluxSettings
from twin.timeseries.points import AlarmTransitionPoint, InfluxPoint, alarm_transition_point, stored_tag_value

pytestmark = pytest.mark.integration

DB = "pumptwin"
TOKEN = "apiv3_admin-token"


def _settings(url: str, spool_dir: Path, **overrides: Any) -> InfluxSettings:
    values: dict[str, Any] = {
        "url": url,
        "database": DB,
        "spool_dir": spool_dir,
        "batch_size": 500,
        "flush_interval_s": 0.05,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.3,
        "timeout_s": 5.0,
        "drain_on_close_s": 1.0,
    }
    values.update(overrides)
    return InfluxSettings(**values)


def _identities(points: list[InfluxPoint]) -> set[tuple[str, tuple[tuple[str, str], ...], int]]:
    return {
        (p.measurement, tuple(sorted((k, stored_tag_value(v)) for k, v in p.tags.items())), p.time_ns) for p in points
    }


def _stored(fake: FakeInflux3) -> set[tuple[str, tuple[tuple[str, str], ...], int]]:
    return set(fake.databases[DB].by_identity)


def _writes(fake: FakeInflux3) -> list[Seen]:
    return [seen for seen in fake.seen if seen.path == "/write"]


def _rounds(n: int, devices: int = 10) -> list[InfluxPoint]:
    return [point for seq in range(n) for point in influx_fleet.fleet_round(devices, seq)]


def _conflicting(device: int) -> InfluxPoint:
    """Telemetry whose ``reservoir_ml`` is a string where the database holds floats."""
    sample = influx_fleet.sample(device, 0)
    return InfluxPoint("telemetry", sample.tags, {"reservoir_ml": "plenty", "seq": 0}, sample.time_ns + 1)


def _dead_letters(spool_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (spool_dir / DEAD_LETTER_FILE).read_text().splitlines()]


# --------------------------------------------------------------------------------- authentication


async def test_a_token_writes_and_the_first_write_makes_the_database(tmp_path: Path) -> None:
    fake = FakeInflux3(tokens={TOKEN: None})
    points = _rounds(5)
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(points)
        assert await writer.drain(30)
        stats = writer.stats
    assert _stored(fake) == _identities(points)
    assert fake.databases[DB].lines_taken == len(points)
    assert (stats.written, stats.dead_lettered, stats.problem) == (50, 0, None)
    assert stats.server == "InfluxDB 3.8.0 (3.x, Core)"
    assert (fake.seen[0].method, fake.seen[0].path) == ("GET", "/ping")  # GET: 3.x answers HEAD /ping with 404
    assert all(seen.headers["authorization"] == f"Token {TOKEN}" for seen in fake.seen)
    assert not [seen for seen in fake.seen if seen.path == "/query"]  # no CREATE DATABASE: the write makes it


async def test_basic_auth_with_the_token_as_password_and_any_user_name(tmp_path: Path) -> None:
    fake = FakeInflux3(tokens={TOKEN: None}, build="Enterprise")
    points = _rounds(2)
    async with serving(fake.app()) as url:
        settings = _settings(url, tmp_path, username="ignored-by-3x", password=SecretStr(TOKEN))
        async with InfluxWriter(settings) as writer:
            writer.submit(points)
            assert await writer.drain(30)
            assert writer.stats.server == "InfluxDB 3.8.0 (3.x, Enterprise)"
    assert _stored(fake) == _identities(points)
    assert all(seen.headers["authorization"].startswith("Basic ") for seen in fake.seen)


async def test_a_wrong_token_keeps_the_points_says_why_and_creates_nothing(tmp_path: Path) -> None:
    """3.x refuses even ``/ping`` without a good token: the writer cannot tell the version, asks
    again before each try, and sends nothing but pings and writes until the token is right."""
    fake = FakeInflux3(tokens={TOKEN: None})
    points = _rounds(3)
    async with (
        serving(fake.app()) as url,
        InfluxWriter(_settings(url, tmp_path, token=SecretStr("expired-token"))) as writer,
    ):
        writer.submit(points)
        await until(lambda: writer.stats.auth_failures >= 3, timeout_s=30, what="401 answers")
        stats = writer.stats
        assert (stats.dead_lettered, stats.written, stats.server) == (0, 0, None)
        assert stats.spool_backlog_bytes > 0
        assert stats.problem is not None
        assert "HTTP 401: unauthorized access" in stats.problem
        assert "PUMPTWIN_INFLUX__TOKEN" in stats.problem
        assert "expired-token" not in stats.problem
        assert {seen.path for seen in fake.seen} == {"/ping", "/write"}
        fake.tokens["expired-token"] = None  # the operator makes the token valid
        assert await writer.drain(30)
        assert writer.stats.server == "InfluxDB 3.8.0 (3.x, Core)"
        assert writer.stats.problem is None
    assert _stored(fake) == _identities(points)
    assert not [seen for seen in fake.seen if seen.path == "/query"]


async def test_a_token_for_another_database_is_a_403_and_the_points_wait(tmp_path: Path) -> None:
    fake = FakeInflux3(tokens={"other-db-token": {"other"}})
    async with (
        serving(fake.app()) as url,
        InfluxWriter(_settings(url, tmp_path, token=SecretStr("other-db-token"))) as writer,
    ):
        writer.submit(_rounds(1))
        await until(lambda: writer.stats.auth_failures >= 2, timeout_s=30, what="403 answers")
        problem = writer.stats.problem or ""
        assert "HTTP 403: access denied" in problem
        assert "a database token that may write to 'pumptwin'" in problem
        assert writer.stats.dead_lettered == 0
    assert DB not in fake.databases


# ----------------------------------------------------------------------------------- refusals


async def test_a_partial_write_dead_letters_exactly_the_lines_it_names_and_writes_the_rest(tmp_path: Path) -> None:
    fake = FakeInflux3(tokens={TOKEN: None})
    good = _rounds(3)
    bad = [_conflicting(device) for device in (90, 91, 92)]
    batch = [*good[1:8], bad[0], *good[8:20], bad[1], bad[2], *good[20:]]
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(good[:1])
        assert await writer.drain(30)  # reservoir_ml is a float column now
        before = len(_writes(fake))
        writer.submit(batch)
        assert await writer.drain(30)
        stats = writer.stats
    assert len(_writes(fake)) - before == 2  # the 400 naming the 3 lines, then the rest: no splitting
    assert (stats.dead_lettered, stats.written) == (3, len(good))
    assert _stored(fake) == _identities(good)
    records = _dead_letters(tmp_path)
    assert [record["line"] for record in records] == [point.line_protocol() for point in bad]
    for record in records:
        assert record["status"] == 400
        assert record["reason"].startswith("partial write of line protocol occurred: invalid column type for column")
        assert "'reservoir_ml'" in record["reason"]


async def test_more_refused_lines_than_one_answer_lists_take_one_more_round(tmp_path: Path) -> None:
    """3.x lists "up to 100" refused points: the writer dead-letters those, resends the rest, and the
    next answer names the others."""
    fake = FakeInflux3(tokens={TOKEN: None})
    good = _rounds(4)
    bad = [_conflicting(100 + device) for device in range(130)]
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(good[:1])
        assert await writer.drain(30)
        before = len(_writes(fake))
        writer.submit([*bad[:70], *good[1:], *bad[70:]])
        assert await writer.drain(30)
        stats = writer.stats
    assert len(_writes(fake)) - before == 3  # 100 named, then 30 named, then the good ones alone
    assert (stats.dead_lettered, stats.written) == (130, len(good))
    assert sorted(record["line"] for record in _dead_letters(tmp_path)) == sorted(p.line_protocol() for p in bad)
    assert _stored(fake) == _identities(good)


async def test_a_batch_refused_whole_is_resent_without_the_named_line(tmp_path: Path) -> None:
    """A batch of one bad line among none good: 3.x answers "write of line protocol failed"."""
    fake = FakeInflux3(tokens={TOKEN: None})
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(_rounds(1, devices=1))
        assert await writer.drain(30)
        writer.submit([_conflicting(5)])
        assert await writer.drain(30)
        assert writer.stats.dead_lettered == 1
    (record,) = _dead_letters(tmp_path)
    assert record["reason"].startswith("write of line protocol failed: invalid column type")


async def test_a_newline_in_a_string_field_makes_line_numbers_untrustworthy_so_the_batch_is_split(
    tmp_path: Path,
) -> None:
    """A comment may hold a newline: 3.x's line numbers then count physical lines, which are not
    the batch's lines, so the writer splits instead of trusting them, and still dead-letters only
    the refused line."""
    fake = FakeInflux3(tokens={TOKEN: None})
    good = _rounds(2)
    transition = alarm_transition_point(
        influx_fleet.device_tags(1),
        AlarmTransitionPoint(
            alarm_id="pump-001/reservoir_low",
            device_id="pump-001",
            site=influx_fleet.SITE,
            code=AlarmCode.RESERVOIR_LOW,
            priority=Priority.MEDIUM,
            from_state="active_unacknowledged",
            to_state="active_acknowledged",
            actor="nurse.jones",
            comment="refill booked\nfor Tuesday",
            at=influx_fleet.START + timedelta(minutes=3),
        ),
    )
    bad = _conflicting(93)
    batch = [*good[1:5], transition, *good[5:12], bad, *good[12:]]
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(good[:1])
        assert await writer.drain(30)
        before = len(_writes(fake))
        writer.submit(batch)
        assert await writer.drain(30)
        stats = writer.stats
    assert len(_writes(fake)) - before > 2  # split, not trusted
    assert stats.dead_lettered == 1
    (record,) = _dead_letters(tmp_path)
    assert record["line"] == bad.line_protocol()
    assert _stored(fake) == _identities([*good, transition])
    (stored,) = [p for p in fake.points(DB) if p.measurement == "alarm"]
    assert stored.fields["comment"] == "refill booked\nfor Tuesday"


async def test_503_is_retried_after_the_retry_after_it_sends(tmp_path: Path) -> None:
    fake = FakeInflux3(tokens={TOKEN: None})
    fake.inject = deque([Injected(503, {"error": "service unavailable", "data": None}, {"Retry-After": "1"})])
    points = _rounds(2)
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(points)
        assert await writer.drain(30)
        stats = writer.stats
    writes = _writes(fake)
    assert len(writes) == 2
    assert all(later.at - earlier.at >= 0.95 for earlier, later in itertools.pairwise(writes))
    assert (stats.failed_requests, stats.dead_lettered, stats.written) == (1, 0, 20)
    assert _stored(fake) == _identities(points)
