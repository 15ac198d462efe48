"""The InfluxDB writer against a real influxd 1.6.7: points land, refusals are dead-lettered, retries
retry, credentials work, and outages, restarts and crashes lose nothing and duplicate nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.harness import influx_fleet
from tests.harness.servers import Influxd
from tests.harness.waiting import until
from twin.contract import examples
from twin.contract.alarms import AlarmCode, Priority
from twin.contract.messages import Drug
from twin.influx.writer import DEAD_LETTER_FILE, InfluxWriter
from twin.settings import InfluxSettings
from twin.timeseries.points import (
    AlarmTransitionPoint,
    CommandOutcome,
    CommandOutcomePoint,
    DeviceTags,
    InfluxPoint,
    TwinHealthPoint,
    alarm_event_point,
    alarm_transition_point,
    command_point,
    sim_truth_point,
    state_point,
    telemetry_point,
    twin_health_point,
)

pytestmark = pytest.mark.integration

DB = "pumptwin"
AWKWARD_MODEL = 'Synchro"Med, II = µ\\model 😀'
TAGS = DeviceTags(examples.EXAMPLE_SITE, "pump-0001", AWKWARD_MODEL, simulated=True, drug=Drug.BACLOFEN)
AWKWARD_COMMENT = 'line one\nline "two", a=b \\ back\\slash, é ü 😀\ttab'


def _settings(url: str | None, spool_dir: Path, **overrides: Any) -> InfluxSettings:
    values: dict[str, Any] = {
        "url": url,
        "database": DB,
        "spool_dir": spool_dir,
        "batch_size": 500,
        "flush_interval_s": 0.05,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.5,
        "timeout_s": 5.0,
        "drain_on_close_s": 1.0,
    }
    values.update(overrides)
    return InfluxSettings(**values)


def _rows(influxd: Influxd, query: str, db: str = DB) -> list[dict[str, Any]]:
    """Every row of every series, as dicts, with the series' tags merged in."""
    statement = influxd.query(query, db=db, epoch="ns")["results"][0]  # type: ignore[index]
    assert "error" not in statement, statement
    rows = []
    for series in statement.get("series", []):
        for values in series["values"]:
            rows.append({**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))})
    return rows


def _field_keys(influxd: Influxd, measurement: str) -> list[tuple[str, str]]:
    """(field key, type) of every field InfluxDB holds for ``measurement``."""
    statement = influxd.query(f'SHOW FIELD KEYS FROM "{measurement}"', db=DB)["results"][0]  # type: ignore[index]
    return [(key, kind) for series in statement.get("series", []) for key, kind in series["values"]]


@dataclass
class WatchedTransport(httpx.AsyncBaseTransport):
    """The real network transport, with a record of every request and optional answers injected in
    front of real writes (``faults``: responses given instead of forwarding, first to last)."""

    requests: list[httpx.Request] = field(default_factory=list)
    faults: deque[httpx.Response] = field(default_factory=deque)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/write" and self.faults:
            await request.aread()
            return self.faults.popleft()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# ---------------------------------------------------------------------------------- round trips


def _every_kind_of_point() -> list[InfluxPoint]:
    at = examples.EXAMPLE_TIME
    truth = sim_truth_point(TAGS, examples.telemetry())
    assert truth is not None
    return [
        telemetry_point(TAGS, examples.telemetry()),
        truth,
        state_point(TAGS, examples.state()),
        alarm_event_point(TAGS, examples.alarm()),
        alarm_transition_point(
            TAGS,
            AlarmTransitionPoint(
                alarm_id="pump-0001-reservoir_low-7",
                device_id="pump-0001",
                site=examples.EXAMPLE_SITE,
                code=AlarmCode.RESERVOIR_LOW,
                priority=Priority.MEDIUM,
                from_state="active_unacknowledged",
                to_state="active_acknowledged",
                actor="nurse.jones",
                comment=AWKWARD_COMMENT,
                at=at + timedelta(seconds=30),
                time_to_ack_s=30.0,
            ),
        ),
        command_point(
            TAGS,
            CommandOutcomePoint(
                command_id="cmd-5f1c2a",
                device_id="pump-0001",
                site=examples.EXAMPLE_SITE,
                action="refill",
                status=CommandOutcome.APPLIED,
                actor="nurse.jones",
                at=at,
                latency_s=1.5,
                session=3,
                seq=4,
            ),
        ),
        twin_health_point(
            TwinHealthPoint(twin="twin-a", at=at, messages_in=10, rejects_by_reason={"schema": 1}, lag_s=0.1)
        ),
    ]


@pytest.mark.parametrize("gzip", [True, False])
async def test_every_measurement_lands_and_reads_back(influxd: Influxd, tmp_path: Path, gzip: bool) -> None:
    transport = WatchedTransport()
    async with InfluxWriter(_settings(influxd.url, tmp_path, gzip=gzip), transport=transport) as writer:
        writer.submit(_every_kind_of_point())
        assert await writer.drain(60)
        assert writer.stats.written == 7
        assert writer.stats.influx_reachable is True

    writes = [r for r in transport.requests if r.url.path == "/write"]
    assert writes
    assert all(r.url.params["precision"] == "ns" and r.url.params["db"] == DB for r in writes)
    assert all((r.headers.get("content-encoding") == "gzip") is gzip for r in writes)

    (telemetry,) = _rows(influxd, "SELECT * FROM telemetry GROUP BY *")
    assert telemetry["model"] == AWKWARD_MODEL
    assert telemetry["time"] == telemetry_point(TAGS, examples.telemetry()).time_ns
    assert (telemetry["seq"], telemetry["session"]) == (2, 3)
    assert telemetry["reservoir_ml"] == 6.42
    telemetry_fields = {row[0] for row in _field_keys(influxd, "telemetry")}
    assert "reservoir_ml" in telemetry_fields
    assert not [key for key in telemetry_fields if key.startswith("true_")]  # truth stays behind the glass
    (truth,) = _rows(influxd, "SELECT * FROM sim_truth GROUP BY *")  # ... in its own measurement
    assert truth["time"] == telemetry["time"]
    assert (truth["device"], truth["simulated"], truth["seq"]) == ("pump-0001", "true", 2)
    assert (truth["true_catheter"], truth["true_reservoir_ml"], truth["true_actual_dose_mg_per_day"]) == (
        "patent",
        6.51,
        0.81,
    )
    (transition,) = _rows(influxd, "SELECT * FROM alarm WHERE event = 'transition' GROUP BY *")
    assert transition["comment"] == AWKWARD_COMMENT
    assert (transition["code"], transition["priority"], transition["time_to_ack_s"]) == ("reservoir_low", "medium", 30)
    (raised,) = _rows(influxd, "SELECT * FROM alarm WHERE event = 'raised' GROUP BY *")
    assert raised["seq"] == 3
    (state,) = _rows(influxd, "SELECT * FROM state GROUP BY *")
    assert state["drug"] == "baclofen"
    assert state["battery_status"] == "ok"
    (command,) = _rows(influxd, "SELECT * FROM command GROUP BY *")
    assert (command["action"], command["status"], command["latency_s"]) == ("refill", "applied", 1.5)
    (health,) = _rows(influxd, "SELECT * FROM twin_health GROUP BY *")
    assert (health["twin"], health["rejects_schema"]) == ("twin-a", 1)
    kinds = dict(_field_keys(influxd, "telemetry"))
    assert (kinds["reservoir_ml"], kinds["seq"], kinds["infusing"], kinds["motor"]) == (
        "float",
        "integer",
        "boolean",
        "string",
    )


async def test_the_database_is_created_at_start(influxd: Influxd, tmp_path: Path) -> None:
    def databases() -> list[str]:
        (series,) = influxd.query("SHOW DATABASES")["results"][0]["series"]  # type: ignore[index]
        return [row[0] for row in series.get("values", [])]  # no "values" while there is no database

    async with InfluxWriter(_settings(influxd.url, tmp_path)) as writer:
        await until(lambda: DB in databases(), what="CREATE DATABASE at start")
        assert writer.stats.server == "InfluxDB 1.6.7~rc0 (1.x, OSS)"  # what its /ping said (Debian's build)


async def test_a_database_dropped_underway_is_created_again(influxd: Influxd, tmp_path: Path) -> None:
    async with InfluxWriter(_settings(influxd.url, tmp_path)) as writer:
        writer.submit(influx_fleet.fleet_round(3, 0))
        assert await writer.drain(60)
        influxd.query(f"DROP DATABASE {DB}")
        writer.submit(influx_fleet.fleet_round(3, 1))
        assert await writer.drain(60)
    assert len(_rows(influxd, "SELECT seq FROM telemetry")) == 3  # the second round, in the new database


# --------------------------------------------------------------------------------- dead letters


async def test_a_field_type_conflict_is_dead_lettered_with_influxdbs_reason(influxd: Influxd, tmp_path: Path) -> None:
    good = influx_fleet.fleet_round(20, 0)
    conflicting = InfluxPoint(
        "telemetry",
        influx_fleet.device_tags(99).as_tags(),
        {"reservoir_ml": "plenty", "seq": 0},  # reservoir_ml is a float field
        good[0].time_ns,
    )
    async with InfluxWriter(_settings(influxd.url, tmp_path)) as writer:
        writer.submit(good[:1])
        assert await writer.drain(60)  # reservoir_ml exists now, as a float
        writer.submit([*good[1:10], conflicting, *good[10:]])
        assert await writer.drain(60)  # refused for good: not retried forever
        stats = writer.stats
    assert stats.dead_lettered == 1
    assert stats.written == 20
    assert len(_rows(influxd, "SELECT seq FROM telemetry")) == 20  # the rest of the batch landed

    (record,) = [json.loads(line) for line in (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()]
    assert record["status"] == 400
    assert "field type conflict" in record["reason"]
    assert record["line"] == conflicting.line_protocol()
    assert record["database"] == DB
    assert record["at"].endswith("Z")


async def test_points_beyond_the_retention_policy_are_dead_lettered(influxd: Influxd, tmp_path: Path) -> None:
    influxd.query(f"CREATE DATABASE {DB} WITH DURATION 1h NAME recent")
    async with InfluxWriter(_settings(influxd.url, tmp_path)) as writer:
        writer.submit(influx_fleet.fleet_round(2, 0))  # January 2026: long gone for a one-hour policy
        assert await writer.drain(60)
        assert writer.stats.dead_lettered == 2
    reasons = [json.loads(line)["reason"] for line in (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()]
    assert all("retention policy" in reason for reason in reasons)


# -------------------------------------------------------------------------------------- retries


async def test_a_missing_retention_policy_is_retried_until_it_exists(influxd: Influxd, tmp_path: Path) -> None:
    """InfluxDB 1.x answers 500 for an unknown retention policy: a server-side condition, retried."""
    settings = _settings(influxd.url, tmp_path, retention_policy="long_term")
    async with InfluxWriter(settings) as writer:
        writer.submit(influx_fleet.fleet_round(5, 0))
        await until(lambda: writer.stats.failed_requests >= 3, what="repeated 500 answers")
        assert writer.stats.dead_lettered == 0
        assert "retention policy not found" in (writer.stats.last_error or "")
        influxd.query(f"CREATE RETENTION POLICY long_term ON {DB} DURATION INF REPLICATION 1")
        assert await writer.drain(60)
        assert writer.stats.retried >= 15
    assert len(_rows(influxd, 'SELECT seq FROM "long_term".telemetry')) == 5


async def test_429_and_503_are_retried_respecting_retry_after(influxd: Influxd, tmp_path: Path) -> None:
    transport = WatchedTransport(
        faults=deque(
            [
                httpx.Response(429, headers={"Retry-After": "0.3"}, json={"error": "too many requests"}),
                httpx.Response(503, json={"error": "overloaded"}),
            ]
        )
    )
    async with InfluxWriter(_settings(influxd.url, tmp_path), transport=transport) as writer:
        writer.submit(influx_fleet.fleet_round(4, 0))
        assert await writer.drain(60)
        stats = writer.stats
    assert (stats.failed_requests, stats.retried, stats.written, stats.dead_lettered) == (2, 8, 4, 0)
    assert len([r for r in transport.requests if r.url.path == "/write"]) == 3
    assert len(_rows(influxd, "SELECT seq FROM telemetry")) == 4


async def test_a_frozen_influxdb_times_out_and_is_retried(influxd: Influxd, tmp_path: Path) -> None:
    assert influxd.process is not None
    async with InfluxWriter(_settings(influxd.url, tmp_path, timeout_s=0.3)) as writer:
        writer.submit(influx_fleet.fleet_round(3, 0))
        assert await writer.drain(60)  # database created, connection warm
        influxd.process.send_signal(signal.SIGSTOP)
        try:
            writer.submit(influx_fleet.fleet_round(3, 1))
            await until(lambda: writer.stats.failed_requests >= 2, what="timeouts against a frozen influxd")
            assert "Timeout" in (writer.stats.last_error or "")
        finally:
            influxd.process.send_signal(signal.SIGCONT)
        assert await writer.drain(60)
    assert len(_rows(influxd, "SELECT seq FROM telemetry")) == 6


# ------------------------------------------------------------------------------------ credentials


def _writer_user(influxd: Influxd) -> None:
    influxd.query(f"CREATE DATABASE {DB}")
    influxd.query("CREATE USER twin WITH PASSWORD 'twin:pass word'")
    influxd.query(f"GRANT ALL ON {DB} TO twin")


async def test_user_and_password_on_an_influxdb_with_auth(influxd_auth: Influxd, tmp_path: Path) -> None:
    _writer_user(influxd_auth)
    settings = _settings(influxd_auth.url, tmp_path, username="twin", password=SecretStr("twin:pass word"))
    async with InfluxWriter(settings) as writer:
        assert "user 'twin'" in writer.describe()
        assert "pass word" not in writer.describe()
        writer.submit(influx_fleet.fleet_round(3, 0))
        assert await writer.drain(60)  # CREATE DATABASE was refused (not an admin): ignored
    assert len(_rows(influxd_auth, "SELECT seq FROM telemetry")) == 3


async def test_wrong_credentials_keep_the_points_for_the_right_ones(influxd_auth: Influxd, tmp_path: Path) -> None:
    _writer_user(influxd_auth)
    wrong = _settings(influxd_auth.url, tmp_path, username="twin", password=SecretStr("guess"))
    async with InfluxWriter(wrong) as writer:
        writer.submit(influx_fleet.fleet_round(3, 0))
        await until(lambda: writer.stats.auth_failures >= 2, what="401 answers")
        assert writer.stats.dead_lettered == 0  # a credentials problem is not the points' fault
        problem = writer.stats.problem or ""
        assert "HTTP 401: authorization failed" in problem
        assert "PUMPTWIN_INFLUX__USERNAME and PUMPTWIN_INFLUX__PASSWORD" in problem
        assert "guess" not in problem
    right = wrong.model_copy(update={"password": SecretStr("twin:pass word")})
    async with InfluxWriter(right) as writer:
        assert await writer.drain(60)
    assert len(_rows(influxd_auth, "SELECT seq FROM telemetry")) == 3


async def test_a_token_is_sent_as_a_token_header(influxd: Influxd, tmp_path: Path) -> None:
    """InfluxDB 2.x/3.x read ``Authorization: Token …``; 1.6.7 without auth ignores it, so the points land."""
    transport = WatchedTransport()
    settings = _settings(influxd.url, tmp_path, token=SecretStr("s3cr3t-token"), username="ignored")
    async with InfluxWriter(settings, transport=transport) as writer:
        assert "token" in writer.describe()
        assert "s3cr3t" not in writer.describe()
        writer.submit(influx_fleet.fleet_round(2, 0))
        assert await writer.drain(60)
    assert {r.url.path for r in transport.requests} == {"/ping", "/query", "/write"}  # 1.x: CREATE DATABASE
    assert all(r.headers["authorization"] == "Token s3cr3t-token" for r in transport.requests)
    assert len(_rows(influxd, "SELECT seq FROM telemetry")) == 2


async def test_influxdb_1_6_refuses_token_auth_and_the_points_wait(influxd_auth: Influxd, tmp_path: Path) -> None:
    """``Token user:password`` arrived in InfluxDB 1.8; 1.6.7 answers 401. The points are kept, not dead-lettered."""
    _writer_user(influxd_auth)
    settings = _settings(influxd_auth.url, tmp_path, token=SecretStr("twin:twin:pass word"))
    async with InfluxWriter(settings) as writer:
        writer.submit(influx_fleet.fleet_round(2, 0))
        await until(lambda: writer.stats.auth_failures >= 1, what="a 401 for the token")
        assert writer.stats.dead_lettered == 0
        assert writer.stats.spool_backlog_bytes > 0


# ----------------------------------------------------------------------------------- the drills


def _count_by_device(influxd: Influxd) -> dict[str, tuple[int, int]]:
    """Per device: points stored and distinct sequence numbers among them."""
    rows = _rows(influxd, "SELECT count(seq) AS n, count(distinct(seq)) AS d FROM telemetry GROUP BY device")
    return {row["device"]: (row["n"], row["d"]) for row in rows}


@pytest.mark.slow
async def test_outage_drill_every_point_exactly_once(influxd: Influxd, tmp_path: Path) -> None:
    """Many devices write; influxd is killed mid-run; the twin restarts (a new writer on the same
    spool) while it is down; influxd returns, goes down cleanly, returns again: every point is
    stored exactly once."""
    devices, seq = 40, 0
    settings = _settings(influxd.url, tmp_path / "spool", batch_size=300)

    async def rounds(writer: InfluxWriter, count: int) -> None:
        nonlocal seq
        for _ in range(count):
            writer.submit(influx_fleet.fleet_round(devices, seq))
            seq += 1
            await asyncio.sleep(0.002)

    async with InfluxWriter(settings) as first:
        await rounds(first, 60)
        await until(lambda: first.stats.written > 0, what="first writes")
        influxd.stop(kill=True)  # a crash of InfluxDB, mid-run
        await rounds(first, 60)
        await until(lambda: first.stats.failed_requests > 0, what="the writer noticing the outage")
    assert first.stats.spool_backlog_bytes > 0  # left for the next writer

    async with InfluxWriter(settings) as second:  # the twin restarted; InfluxDB still down
        await rounds(second, 40)
        await second.flush()
        influxd.start()
        await rounds(second, 40)
        await until(lambda: second.stats.written > 0, what="replay after InfluxDB came back")
        influxd.stop()  # a clean stop this time, mid-replay or mid-run
        await rounds(second, 40)
        influxd.start()
        assert await second.drain(120)
        assert second.stats.dead_lettered == 0

    counts = _count_by_device(influxd)
    assert counts == {f"pump-{d:03d}": (seq, seq) for d in range(devices)}
    assert first.stats.accepted + second.stats.accepted == devices * seq


@pytest.mark.slow
@pytest.mark.parametrize("influx_up", [True, False], ids=["influxdb-up", "influxdb-down"])
async def test_crash_drill_a_killed_twin_loses_nothing_it_flushed(
    influxd: Influxd, tmp_path: Path, influx_up: bool
) -> None:
    """The twin process is killed (SIGKILL) mid-run, possibly mid-append. A new writer on the same
    spool replays: every round the dead process reported flushed is stored exactly once, and no
    point is stored twice."""
    devices = 25
    spool_dir = tmp_path / "spool"
    if not influx_up:
        influxd.stop(kill=True)
    flushed = await asyncio.to_thread(_run_fleet_and_kill_it, influxd.url, spool_dir, devices, 150)

    if not influx_up:
        influxd.start()
    async with InfluxWriter(_settings(influxd.url, spool_dir)) as writer:
        assert await writer.drain(120)
        assert writer.stats.dead_lettered == 0

    counts = _count_by_device(influxd)
    assert len(counts) == devices
    for device, (stored, distinct) in counts.items():
        assert stored == distinct, f"{device}: a sequence number stored twice"
        assert stored >= flushed + 1, f"{device}: lost points the crashed writer had flushed"
    rows = _rows(influxd, "SELECT max(seq) AS top FROM telemetry GROUP BY device")
    assert all(row["top"] + 1 == counts[row["device"]][0] for row in rows), "a hole in the sequence"


def _run_fleet_and_kill_it(url: str, spool_dir: Path, devices: int, at_least: int) -> int:
    """Start the twin stand-in, SIGKILL it once it has flushed ``at_least`` rounds; the last round it flushed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.influx_fleet", url, str(spool_dir), str(devices), "100000"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONWARNINGS": "error"},
        text=True,
    )
    flushed = -1
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("flushed"):
                flushed = int(line.split()[1])
                if flushed >= at_least:
                    break
        process.send_signal(signal.SIGKILL)
        remaining, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reported = [int(line.split()[1]) for line in remaining.splitlines() if line.startswith("flushed")]
    flushed = max([flushed, *reported])
    assert flushed >= at_least, "the twin stand-in died before it flushed enough"
    return flushed
