"""What InfluxDB 1.x, 2.x and 3.x answers mean (twin.influx.dialect: pure, no server here).

The answers are the documented ones cited in ``twin/influx/dialect.py`` and in
``tests/integration/test_influx_compat_v2.py`` / ``..._v3.py``, where the writer meets them on a socket.
"""

from __future__ import annotations

import httpx
import pytest

from twin.influx.dialect import (
    Dialect,
    NotFound,
    Server,
    configuration_problem,
    identify,
    not_found,
    refused_lines,
    statement_error,
)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (204, {"X-Influxdb-Version": "1.6.7", "X-Influxdb-Build": "OSS"}, Server(Dialect.V1, "1.6.7", "OSS")),
        (204, {"X-Influxdb-Version": "1.11.8-c1.11.8"}, Server(Dialect.V1, "1.11.8-c1.11.8")),
        (204, {"X-Influxdb-Version": "v2.7.10", "X-Influxdb-Build": "OSS"}, Server(Dialect.V2, "v2.7.10", "OSS")),
        (200, {"x-influxdb-version": "3.8.0", "x-influxdb-build": "Core"}, Server(Dialect.V3, "3.8.0", "Core")),
        (204, {}, Server(Dialect.UNKNOWN)),  # InfluxDB Cloud: "doesn't return X-Influxdb-Version"
        (401, {}, Server(Dialect.UNKNOWN)),
        (204, {"X-Influxdb-Version": "unknown"}, Server(Dialect.UNKNOWN, "unknown")),
    ],
)
def test_ping_names_the_dialect_by_its_major_version(status: int, headers: dict[str, str], expected: Server) -> None:
    assert identify(status, httpx.Headers(headers)) == expected


def test_only_1x_and_an_unknown_server_are_sent_create_database() -> None:
    assert [d for d in Dialect if Server(d).creates_databases] == [Dialect.V1, Dialect.UNKNOWN]


def test_a_server_describes_itself_for_people() -> None:
    assert Server(Dialect.V2, "v2.7.10", "OSS").describe() == "InfluxDB 2.7.10 (2.x, OSS)"
    assert Server(Dialect.V3, "3.8.0", "Enterprise").describe() == "InfluxDB 3.8.0 (3.x, Enterprise)"
    assert Server(Dialect.UNKNOWN).describe() == "InfluxDB (unknown version)"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": 'database not found: "pumptwin"'}, NotFound.DATABASE),  # 1.x
        ({"code": "not found", "message": "no dbrp mapping found"}, NotFound.DBRP_MAPPING),  # 2.x
        ({"code": "not found", "message": 'bucket "pumptwin" not found'}, NotFound.OTHER),
        ({"error": "not found", "data": None}, NotFound.OTHER),
    ],
)
def test_what_a_404_says_is_missing(body: dict[str, object], expected: NotFound) -> None:
    assert not_found(httpx.Response(404, json=body)) is expected
    assert not_found(httpx.Response(404, text="404 page not found")) is NotFound.OTHER


def test_a_failed_statement_is_read_from_its_result() -> None:
    answer = {"results": [{"statement_id": 0, "error": "not implemented: CREATE DATABASE"}]}
    assert statement_error(httpx.Response(200, json=answer)) == "not implemented: CREATE DATABASE"
    assert statement_error(httpx.Response(200, json={"results": [{"statement_id": 0}]})) is None
    assert statement_error(httpx.Response(200, text="not json")) is None


LINES = [
    b"telemetry,device=a reservoir_ml=1 1",
    b"telemetry,device=b reservoir_ml=2 2",
    b'telemetry,device=c reservoir_ml="x" 3',
    b"state,device=a infusing=true 4",
]


def _partial(*entries: dict[str, object], error: str = "partial write of line protocol occurred") -> httpx.Response:
    return httpx.Response(400, json={"error": error, "data": list(entries)})


def test_the_lines_a_3x_partial_write_names_are_found_by_number_from_1() -> None:
    answer = _partial(
        {
            "original_line": "telemetry,device=c reservoir_ml=x 3",  # the documented example drops the quotes
            "line_number": 3,
            "error_message": "invalid column type for column 'reservoir_ml'",
        }
    )
    (line,) = refused_lines(answer, LINES) or ()
    assert line.index == 2
    assert line.reason == "partial write of line protocol occurred: invalid column type for column 'reservoir_ml'"


def test_the_single_object_form_of_data_is_read_too() -> None:
    answer = httpx.Response(
        400, json={"error": "parsing failed", "data": {"line_number": 4, "error_message": "no fields"}}
    )
    assert [line.index for line in refused_lines(answer, LINES) or ()] == [3]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, json={"error": "unable to parse 'x': missing fields"}),  # 1.x
        httpx.Response(400, json={"code": "invalid", "message": "unable to parse", "line": 2}),  # 2.x: no text
        _partial(),  # nothing named
        _partial({"line_number": 0}),
        _partial({"line_number": 5}),  # beyond the batch
        _partial({"line_number": True}),
        _partial({"line_number": "3"}),
        _partial({"line_number": 3, "original_line": "state,device=a infusing=true 4"}),  # another line's measurement
        _partial("not an object"),  # type: ignore[arg-type]
        httpx.Response(400, text="<html>bad gateway</html>"),
    ],
)
def test_lines_are_named_only_when_they_can_be_matched_with_certainty(answer: httpx.Response) -> None:
    assert refused_lines(answer, LINES) is None


def test_line_numbers_are_not_trusted_when_a_line_holds_a_newline() -> None:
    lines = [*LINES[:2], b'alarm,device=a comment="two\nlines" 5', *LINES[2:]]
    assert refused_lines(_partial({"line_number": 2}), lines) is None


def test_an_escaped_comma_or_space_in_the_measurement_is_part_of_it() -> None:
    lines = [b"a\\,b\\ c,device=a x=1 1", b"a,device=a x=1 2"]
    assert refused_lines(_partial({"line_number": 1, "original_line": "a\\,b\\ c,device=a x=1 1"}), lines)
    assert refused_lines(_partial({"line_number": 2, "original_line": "a\\,b\\ c,device=a x=1 1"}), lines) is None


def _problem(status: int, reason: str, server: Server, missing: NotFound = NotFound.OTHER, **kw: object) -> str:
    values: dict[str, object] = {"database": "pumptwin", "retention_policy": None, "credentials": "token", **kw}
    return configuration_problem(status, reason, server=server, missing=missing, **values)  # type: ignore[arg-type]


V2 = Server(Dialect.V2, "v2.7.10", "OSS")


def test_a_missing_dbrp_mapping_says_how_to_make_one() -> None:
    problem = _problem(404, "no dbrp mapping found", V2, NotFound.DBRP_MAPPING)
    assert problem.startswith("InfluxDB 2.7.10 (2.x, OSS) has no DBRP mapping")
    assert "kept in the spool" in problem
    assert "create a bucket named 'pumptwin'" in problem
    assert "influx v1 dbrp create --db pumptwin --rp autogen --bucket-id <bucket id> --default" in problem


def test_a_missing_1x_database_says_an_admin_can_create_it() -> None:
    problem = _problem(404, 'database not found: "pumptwin"', Server(Dialect.V1, "1.6.7"), NotFound.DATABASE)
    assert 'CREATE DATABASE "pumptwin" WITH DURATION INF' in problem


@pytest.mark.parametrize(
    ("credentials", "server", "fix"),
    [
        ("token", V2, "InfluxDB 2.x API token with write permission"),
        ("token", Server(Dialect.V3, "3.8.0", "Core"), "InfluxDB 3 admin token, or a database token"),
        ("user", V2, "influx v1 auth create"),
        ("user", Server(Dialect.V1, "1.6.7"), "a user with WRITE on 'pumptwin'"),
        ("none", Server(Dialect.UNKNOWN), "this InfluxDB wants credentials"),
    ],
)
def test_refused_credentials_say_which_setting_to_check(credentials: str, server: Server, fix: str) -> None:
    problem = _problem(401, "unauthorized access", server, credentials=credentials)
    assert "refused the twin's credentials (HTTP 401: unauthorized access)" in problem
    assert fix in problem
