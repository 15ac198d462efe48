"""The real InfluxDB harness: a point written with line protocol reads back with InfluxQL."""

import urllib.request

import pytest

from tests.harness.servers import Influxd

pytestmark = pytest.mark.integration


def _write(influxd: Influxd, db: str, body: bytes) -> int:
    req = urllib.request.Request(f"{influxd.url}/write?db={db}&precision=s", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def test_point_round_trips_through_write_and_query(influxd: Influxd) -> None:
    influxd.query("CREATE DATABASE harness")
    status = _write(influxd, "harness", b"telemetry,site=a,device=p1 reservoir_ml=12.5,seq=7i 1767225600\n")
    assert status == 204
    result = influxd.query("SELECT reservoir_ml, seq FROM telemetry WHERE device = 'p1'", db="harness")
    series = result["results"][0]["series"][0]  # type: ignore[index]
    assert series["columns"] == ["time", "reservoir_ml", "seq"]
    assert series["values"] == [["2026-01-01T00:00:00Z", 12.5, 7]]


def test_data_survives_a_restart(influxd: Influxd) -> None:
    influxd.query("CREATE DATABASE harness")
    _write(influxd, "harness", b"m v=1 1767225600\n")
    influxd.restart()
    result = influxd.query("SELECT count(v) FROM m", db="harness")
    assert result["results"][0]["series"][0]["values"][0][1] == 1  # type: ignore[index]


def test_stopped_server_refuses_connections(influxd: Influxd) -> None:
    influxd.stop()
    with pytest.raises(OSError, match="Connection refused"):
        influxd.query("SHOW DATABASES")
    influxd.start()
    assert "results" in influxd.query("SHOW DATABASES")
