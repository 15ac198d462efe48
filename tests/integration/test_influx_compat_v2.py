"""The real ``InfluxWriter`` against InfluxDB 2.x's v1 compatibility API (a stand-in: 2.x cannot run here).

The stand-in (``tests.harness.influx_compat.FakeInflux2``, a Starlette app on a real socket)
answers as these pages of InfluxData's documentation say (text from github.com/influxdata/docs-v2):

* https://docs.influxdata.com/influxdb/v2/api-guide/influxdb-1x/ — authentication of the 1.x
  compatibility API: ``Authorization: Token``, HTTP Basic, or ``u``/``p``, with a v1 authorization
  (``influx v1 auth create``) or any user name and an API token as the password, never the 2.x
  login; "InfluxQL database management commands are not supported".
* https://docs.influxdata.com/influxdb/v2/api-guide/influxdb-1x/write/ — ``POST /write`` with
  ``db``, ``rp``, ``precision``, ``u``, ``p``; ``db``/``rp`` map to a bucket.
* https://docs.influxdata.com/influxdb/v2/api-guide/influxdb-1x/dbrp/ — a bucket gets a
  "virtual" DBRP mapping when it is created (``db`` -> ``db``/``autogen``, default; ``db/rp``);
  otherwise a mapping is made with ``influx v1 dbrp create``
  (https://docs.influxdata.com/influxdb/v2/reference/cli/influx/v1/dbrp/create/).
* https://docs.influxdata.com/influxdb/v2/api/v1-compatibility/ and its OpenAPI document
  (``api-docs/influxdb/v2/influxdb-oss-v2-openapi.yaml``): ``PostLegacyWrite`` answers 204, 400
  (``LineProtocolError``: "no points were written"), 401, 403, 413, 422 (some points rejected),
  429 and 503 with ``Retry-After`` ("a non-negative decimal integer indicating the seconds to
  delay"); errors are the ``Error`` schema, ``{"code": <ErrorCode>, "message": ...}``; ``GetPing``
  answers 204 with ``X-Influxdb-Version`` and ``X-Influxdb-Build``.
* https://docs.influxdata.com/influxdb/v2/write-data/troubleshoot/ — "404 Not found: a requested
  resource, such as an organization or bucket, was not found"; 422 partial writes; 503 with
  ``Retry-After``.
* https://docs.influxdata.com/influxdb/v2/query-data/influxql/ — "InfluxQL support": ``CREATE``
  is not supported.

The exact messages are not on those pages; they are InfluxDB 2.x's own, from its source
(github.com/influxdata/influxdb): "no dbrp mapping found" and "insufficient permissions for
write" (``http/legacy/write_handler.go``), "failure writing points to database" for a partial
write (same file), ``not implemented: CREATE DATABASE`` answered in the statement's result
(``v1/coordinator/statement_executor.go``, ``influxql/errors.go``), "unauthorized access".

What is checked: the writer authenticates as 2.x wants, never sends ``CREATE DATABASE``, keeps
every point through a missing DBRP mapping or wrong credentials (``stats.problem`` and
``/healthz`` say what to fix), waits ``Retry-After`` on 429/503, dead-letters only the lines
2.x refuses, and every point lands once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from pydantic import SecretStr

from tests.harness import influx_fleet
from tests.harness.influx_compat import FakeInflux2, Injected, Seen, serving
from tests.harness.mqtt import hostname_port
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.app.serve import running_twin
from twin.contract import examples
from twin.contract.codec import encode
from twin.contract.topics import Channel, build_topic
from twin.influx.writer import DEAD_LETTER_FILE, InfluxWriter
from twin.mqtt_endpoint import MqttEndpoint
from twin.settings import InfluxSettings, Settings
from twin.timeseries.points import InfluxPoint, stored_tag_value

pytestmark = pytest.mark.integration

DB = "pumptwin"
TOKEN = "2x-all-access-token"


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


def _stored(fake: FakeInflux2, bucket: str = DB) -> set[tuple[str, tuple[tuple[str, str], ...], int]]:
    return set(fake.buckets[bucket].by_identity)


def _writes(fake: FakeInflux2) -> list[Seen]:
    return [seen for seen in fake.seen if seen.path == "/write"]


def _mapped_2x() -> FakeInflux2:
    fake = FakeInflux2(tokens={TOKEN: None})
    fake.create_bucket(DB)  # with its virtual DBRP mapping pumptwin/autogen
    return fake


def _rounds(n: int, devices: int = 10) -> list[InfluxPoint]:
    return [point for seq in range(n) for point in influx_fleet.fleet_round(devices, seq)]


# --------------------------------------------------------------------------------- authentication


async def test_a_token_writes_through_the_dbrp_mapping_and_no_database_is_created(tmp_path: Path) -> None:
    fake = _mapped_2x()
    points = _rounds(5)
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(points)
        assert await writer.drain(30)
        stats = writer.stats
    assert _stored(fake) == _identities(points)
    assert fake.buckets[DB].lines_taken == len(points)  # each point once
    assert (stats.written, stats.dead_lettered, stats.problem) == (50, 0, None)
    assert stats.server == "InfluxDB 2.7.10 (2.x, OSS)"
    assert (fake.seen[0].method, fake.seen[0].path) == ("GET", "/ping")
    assert all(seen.headers["authorization"] == f"Token {TOKEN}" for seen in fake.seen)
    assert not [seen for seen in fake.seen if seen.path == "/query"]  # no CREATE DATABASE: 2.x has none
    assert all(seen.params["db"] == DB and seen.params["precision"] == "ns" for seen in _writes(fake))


@pytest.mark.parametrize(
    ("username", "password"),
    [("twin-writer", "v1 password"), ("anyone", TOKEN)],
    ids=["v1-authorization", "any-user-and-a-token"],
)
async def test_basic_auth_with_a_v1_authorization_or_a_token_as_password(
    tmp_path: Path, username: str, password: str
) -> None:
    fake = _mapped_2x()
    fake.v1_auths["twin-writer"] = ("v1 password", {DB})
    points = _rounds(2)
    async with serving(fake.app()) as url:
        settings = _settings(url, tmp_path, username=username, password=SecretStr(password))
        async with InfluxWriter(settings) as writer:
            writer.submit(points)
            assert await writer.drain(30)
    assert _stored(fake) == _identities(points)
    assert all(seen.headers["authorization"].startswith("Basic ") for seen in _writes(fake))


async def test_wrong_credentials_keep_every_point_and_say_what_to_fix(tmp_path: Path) -> None:
    fake = _mapped_2x()
    points = _rounds(3)
    async with (
        serving(fake.app()) as url,
        InfluxWriter(_settings(url, tmp_path, token=SecretStr("revoked-token"))) as writer,
    ):
        writer.submit(points)
        await until(lambda: writer.stats.auth_failures >= 3, timeout_s=30, what="401 answers")
        stats = writer.stats
        assert (stats.dead_lettered, stats.written) == (0, 0)
        assert stats.spool_backlog_bytes > 0
        assert stats.problem is not None
        assert "HTTP 401: unauthorized access" in stats.problem
        assert "PUMPTWIN_INFLUX__TOKEN" in stats.problem
        assert "kept" in stats.problem
        assert "revoked-token" not in stats.problem
        fake.tokens["revoked-token"] = None  # the operator grants the token: no restart needed
        assert await writer.drain(30)
        assert writer.stats.problem is None
    assert _stored(fake) == _identities(points)


async def test_a_token_without_write_permission_on_the_bucket_is_a_403_and_the_points_wait(tmp_path: Path) -> None:
    fake = _mapped_2x()
    fake.create_bucket("other")
    fake.tokens["read-other"] = {"other"}
    async with (
        serving(fake.app()) as url,
        InfluxWriter(_settings(url, tmp_path, token=SecretStr("read-other"))) as writer,
    ):
        writer.submit(_rounds(1))
        await until(lambda: writer.stats.auth_failures >= 2, timeout_s=30, what="403 answers")
        problem = writer.stats.problem or ""
        assert "HTTP 403: insufficient permissions for write" in problem
        assert "database 'pumptwin'" in problem
        assert writer.stats.dead_lettered == 0


# --------------------------------------------------------------------------------- DBRP mapping


async def test_no_dbrp_mapping_is_a_configuration_error_not_a_reason_to_drop_points(tmp_path: Path) -> None:
    fake = FakeInflux2(tokens={TOKEN: None})
    fake.create_bucket(DB, virtual_mapping=False)  # a bucket, but nothing maps database pumptwin to it
    points = _rounds(4)
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(points)
        await until(lambda: writer.stats.database_missing >= 3, timeout_s=30, what="404 answers")
        stats = writer.stats
        assert (stats.dead_lettered, stats.written, stats.auth_failures) == (0, 0, 0)
        assert stats.spool_backlog_bytes > 0
        assert stats.problem is not None
        assert "no DBRP mapping" in stats.problem
        assert "HTTP 404: no dbrp mapping found" in stats.problem
        assert "influx v1 dbrp create --db pumptwin --rp autogen --bucket-id <bucket id> --default" in stats.problem
        assert "kept in the spool" in stats.problem
        assert not [seen for seen in fake.seen if seen.path == "/query"]  # never CREATE DATABASE on 2.x
        fake.map_dbrp(DB, "autogen", DB, default=True)  # what the problem told the operator to do
        assert await writer.drain(30)
        assert writer.stats.problem is None
    assert _stored(fake) == _identities(points)
    assert not (tmp_path / DEAD_LETTER_FILE).exists()


async def test_a_retention_policy_without_its_mapping_names_it_in_the_fix(tmp_path: Path) -> None:
    fake = _mapped_2x()  # pumptwin/autogen exists; pumptwin/long_term does not
    async with serving(fake.app()) as url:
        settings = _settings(url, tmp_path, token=SecretStr(TOKEN), retention_policy="long_term")
        async with InfluxWriter(settings) as writer:
            writer.submit(_rounds(1))
            await until(lambda: writer.stats.database_missing >= 1, timeout_s=30, what="a 404")
            problem = writer.stats.problem or ""
    assert "retention policy 'long_term'" in problem
    assert "create a bucket named 'pumptwin/long_term'" in problem
    assert "--rp long_term" in problem
    assert all(seen.params.get("rp") == "long_term" for seen in _writes(fake))


async def test_healthz_names_the_missing_dbrp_mapping_and_the_fix(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The whole twin on a 2.x without a mapping: ingest goes on (the points wait in the spool),
    and ``/healthz`` answers 503 with the time series part saying what to fix; then it recovers."""
    fake = FakeInflux2(tokens={TOKEN: None})
    fake.create_bucket(DB, virtual_mapping=False)
    async with serving(fake.app()) as url:
        settings = Settings()
        settings.data_dir = tmp_path
        settings.http.port = 0
        settings.influx = _settings(url, tmp_path / "spool", token=SecretStr(TOKEN))
        async with running_twin(settings, MqttEndpoint.parse(mosquitto.url), client_id="twin-2x") as twin:
            async with asyncio.timeout(10):
                await twin.mqtt_connected.wait()
            host, port = hostname_port(mosquitto.url)
            async with aiomqtt.Client(host, port) as device:
                site, pump = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
                await device.publish(build_topic(site, pump, Channel.BIRTH), encode(examples.birth()), qos=1)
                await device.publish(build_topic(site, pump, Channel.STATE), encode(examples.state()), qos=1)
            async with httpx.AsyncClient(base_url=twin.url) as api:
                health: dict[str, Any] = {}

                async def degraded() -> bool:
                    nonlocal health
                    answer = await api.get("/healthz")
                    health = answer.json()
                    return answer.status_code == 503 and "DBRP" in health["parts"]["timeseries"]["detail"]

                await _until_async(degraded, "healthz to report the missing DBRP mapping")
                detail = health["parts"]["timeseries"]["detail"]
                assert health["parts"]["timeseries"]["status"] == "degraded"
                assert "influx v1 dbrp create --db pumptwin" in detail
                assert TOKEN not in json.dumps(health)
                fake.map_dbrp(DB, "autogen", DB, default=True)

                async def recovered() -> bool:
                    answer = await api.get("/healthz")
                    return answer.json()["parts"]["timeseries"]["status"] == "ok"

                await _until_async(recovered, "healthz to recover once the mapping exists")
    assert [p.measurement for p in fake.points(DB)] == ["state"]


async def _until_async(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110 - polls an HTTP endpoint: there is no event to wait on
            await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------- overload, refusals


async def test_429_and_503_are_retried_after_the_retry_after_they_send(tmp_path: Path) -> None:
    fake = _mapped_2x()
    fake.inject = deque(
        [
            Injected(429, None, {"Retry-After": "1"}),  # "Token is temporarily over quota"
            Injected(503, None, {"Retry-After": "1"}),  # "Server is temporarily unavailable to accept writes"
        ]
    )
    points = _rounds(2)
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(points)
        assert await writer.drain(30)
        stats = writer.stats
    writes = _writes(fake)
    assert len(writes) == 3
    assert all(later.at - earlier.at >= 0.95 for earlier, later in itertools.pairwise(writes))
    assert (stats.failed_requests, stats.dead_lettered, stats.written, stats.problem) == (2, 0, 20, None)
    assert _stored(fake) == _identities(points)


async def test_a_partial_write_422_dead_letters_only_the_conflicting_point(tmp_path: Path) -> None:
    fake = _mapped_2x()
    good = _rounds(2, devices=15)
    conflicting = InfluxPoint(
        "telemetry",
        influx_fleet.device_tags(99).as_tags(),
        {"reservoir_ml": "plenty", "seq": 0},  # reservoir_ml is a float field
        good[0].time_ns,
    )
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.submit(good[:1])
        assert await writer.drain(30)  # reservoir_ml is a float now
        writer.submit([*good[1:17], conflicting, *good[17:]])
        assert await writer.drain(30)
        stats = writer.stats
    assert (stats.dead_lettered, stats.written) == (1, len(good))
    assert _stored(fake) == _identities(good)
    (record,) = [json.loads(line) for line in (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()]
    assert record["status"] == 422
    assert "failure writing points to database: partial write: field type conflict" in record["reason"]
    assert record["line"] == conflicting.line_protocol()


async def test_a_malformed_line_400_is_dead_lettered_and_the_rest_written(tmp_path: Path) -> None:
    """2.x refuses the whole batch for a malformed line (400, "no points were written") and names
    only the first by number: the writer splits the batch until the line is alone."""
    fake = _mapped_2x()
    good = _rounds(1, devices=12)
    lines = [(p.line_protocol().encode(), True) for p in good]
    lines.insert(5, (b"telemetry,device=x reservoir_ml= 1", True))
    async with serving(fake.app()) as url, InfluxWriter(_settings(url, tmp_path, token=SecretStr(TOKEN))) as writer:
        writer.persist(lines)
        assert await writer.drain(30)
        stats = writer.stats
    assert (stats.dead_lettered, stats.written) == (1, 12)
    assert _stored(fake) == _identities(good)
    (record,) = [json.loads(line) for line in (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()]
    assert (record["status"], record["line"]) == (400, "telemetry,device=x reservoir_ml= 1")
    assert record["reason"].startswith("unable to parse points")
