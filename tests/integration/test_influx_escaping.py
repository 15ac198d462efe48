"""Line protocol against a real InfluxDB: names, tags and strings with every awkward character come back as written.

The same strategies drive ``tests/core/test_influx_points.py`` against the reference reader; here
the reader is influxd itself. Each example gets its own database, so field types never collide.
"""

from __future__ import annotations

import itertools
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.core.test_influx_points import influx_points
from tests.harness.servers import Influxd
from twin.timeseries.points import InfluxPoint, stored_tag_value

pytestmark = pytest.mark.integration

_databases = itertools.count()


def _write(influxd: Influxd, db: str, body: str) -> None:
    request = urllib.request.Request(f"{influxd.url}/write?db={db}&precision=ns", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204
    except urllib.error.HTTPError as error:
        with error:  # closes the response it holds
            raise AssertionError(f"HTTP {error.code}: {error.read().decode()}") from None


def _read_back(influxd: Influxd, db: str) -> list[dict[str, Any]]:
    result = influxd.query("SELECT * FROM /.*/ GROUP BY *", db=db, epoch="ns")
    statement = result["results"][0]  # type: ignore[index]
    assert "error" not in statement, statement
    return list(statement.get("series", []))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(point=influx_points())
def test_points_round_trip_through_influxdb(influxd: Influxd, point: InfluxPoint) -> None:
    db = f"escaping{next(_databases)}"
    influxd.query(f'CREATE DATABASE "{db}"')
    try:
        _write(influxd, db, point.line_protocol())
        (series,) = _read_back(influxd, db)
    finally:
        influxd.query(f'DROP DATABASE "{db}"')  # thousands of databases would exhaust influxd's files
    assert series["name"] == point.measurement
    stored = {key: stored_tag_value(value) for key, value in point.tags.items()}
    assert series.get("tags", {}) == {key: value for key, value in stored.items() if value}
    (row,) = series["values"]
    read = dict(zip(series["columns"], row, strict=True))
    assert read.pop("time") == point.time_ns
    # JSON writes a whole float without a fraction (12.0 as 12; 2.0748627431549530e16 as an
    # integer literal): read floats back as floats. InfluxDB keeps the float type (test below).
    expected = point.fields
    assert {k: float(v) if isinstance(expected.get(k), float) else v for k, v in read.items()} == expected


def test_field_types_are_kept(influxd: Influxd) -> None:
    influxd.query('CREATE DATABASE "types"')
    point = InfluxPoint("m", {"k": "v"}, {"f": 12.0, "i": 12, "b": True, "s": "12"}, 1)
    _write(influxd, "types", point.line_protocol())
    result = influxd.query("SHOW FIELD KEYS FROM m", db="types")
    kinds = dict(result["results"][0]["series"][0]["values"])  # type: ignore[index]
    assert kinds == {"f": "float", "i": "integer", "b": "boolean", "s": "string"}
