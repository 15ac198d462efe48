"""Grafana's InfluxQL interpolation, mirrored in twin.grafana.interpolation (pure: no Grafana here)."""

from __future__ import annotations

import ast
import inspect
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.grafana import interpolation
from twin.grafana.interpolation import (
    ALL_VALUE,
    QueryKind,
    TimeRange,
    Variable,
    escape_regex,
    expand_macros,
    format_interval,
    influxql_format,
    interpolate_variables,
    js_parses_as_number,
    references,
    render_query,
)

DEVICE = Variable("device")
SITE = Variable("site", multi=True, include_all=True, options=("north-general", "st.olaf"))
SITE_ANY = Variable("site_any", multi=True, include_all=True, all_value=".*", options=("a", "b"))
ZONE = Variable("zone", include_all=True, options=("a", "b"))  # All without multi: a trap
VARIABLES = {v.name: v for v in (DEVICE, SITE, SITE_ANY, ZONE)}
RANGE = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))


def _panel(text: str, **selection: object) -> str:
    return interpolate_variables(text, VARIABLES, selection, QueryKind.PANEL)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ escaping


def test_escape_regex_backslashes_exactly_grafanas_special_characters() -> None:
    assert escape_regex(r"\^$*+?.()|[]{}/") == r"\\\^\$\*\+\?\.\(\)\|\[\]\{\}\/"
    assert escape_regex("pump-0001_a,b'c") == "pump-0001_a,b'c"  # '-' is left alone, as Grafana does


@given(st.text(st.characters(codec="ascii", exclude_characters="\n\r"), min_size=1, max_size=20))
def test_an_escaped_value_matches_itself_literally(value: str) -> None:
    assert re.fullmatch(escape_regex(value), value)
    assert re.fullmatch("(" + escape_regex(value) + "|" + escape_regex(value + "x") + ")", value + "x")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("12", True),
        ("12abc", True),  # parseFloat reads a numeric prefix
        ("-.5", True),
        ("  3e2", True),
        ("Infinity", True),
        ("pump-0001", False),
        ("", False),
        ("e5", False),
        (".x", False),
        ("-", False),
    ],
)
def test_numbers_are_what_javascripts_parse_float_reads(text: str, number: bool) -> None:
    assert js_parses_as_number(text) is number


# --------------------------------------------------------------------------------- the InfluxQL format


def test_a_single_value_is_raw_outside_a_regex_and_escaped_inside_one() -> None:
    assert _panel("\"device\" = '$device'", device="pump.1") == "\"device\" = 'pump.1'"
    assert _panel('"device" =~ /^$device$/', device="pump.1") == r'"device" =~ /^pump\.1$/'
    assert _panel('"device" !~ /$device/', device="a(b") == r'"device" !~ /a\(b/'


def test_a_regex_for_another_variable_does_not_make_a_value_escaped() -> None:
    query = '"device" = \'$device\' AND "site" =~ /^$site$/'
    assert _panel(query, device="pump.1", site=["x"]) == '"device" = \'pump.1\' AND "site" =~ /^(x)$/'


def test_multi_value_variables_are_always_escaped_and_grouped() -> None:
    assert _panel("/^$site$/", site="st.olaf") == r"/^st\.olaf$/"
    assert _panel("/^$site$/", site=["st.olaf"]) == r"/^(st\.olaf)$/"
    assert _panel("/^$site$/", site=["a", "b/c"]) == r"/^(a|b\/c)$/"
    assert _panel("'$site'", site=["a", "b"]) == "'(a|b)'"  # outside a regex too: multi is for regexes


def test_all_expands_to_every_option_or_to_the_custom_all_value_unescaped() -> None:
    assert _panel("/^$site$/", site=ALL_VALUE) == r"/^(north-general|st\.olaf)$/"
    assert _panel("/^$site$/", site=[ALL_VALUE]) == r"/^(north-general|st\.olaf)$/"
    assert _panel("/^$site_any$/", site_any=ALL_VALUE) == "/^.*$/"


def test_all_on_a_single_value_variable_outside_a_regex_breaks_the_query_as_grafana_does() -> None:
    assert _panel("'$zone'", zone=ALL_VALUE) == "'a,b'"
    assert _panel('"z" =~ /^$zone$/', zone=ALL_VALUE) == '"z" =~ /^(a|b)$/'
    assert _panel("/^$zone$/", zone=ALL_VALUE) == "/^a,b$/"  # a regex literal counts only after =~ or !~


def test_numbers_are_never_escaped() -> None:
    assert influxql_format("6", Variable("hours", multi=True), "x =~ /$hours/") == "6"
    assert _panel("moving_average(count(x), $device)", device="6") == "moving_average(count(x), 6)"


def test_variable_queries_insert_single_values_raw_even_in_a_regex() -> None:
    text = 'SHOW TAG VALUES WITH KEY = "device" WHERE "site" =~ /^$site$/ AND "device" =~ /^$device$/'
    rendered = interpolate_variables(text, VARIABLES, {"site": ["a.b"], "device": "p.1"}, QueryKind.VARIABLE)
    assert rendered.endswith(r'"site" =~ /^(a\.b)$/ AND "device" =~ /^p.1$/')


def test_reference_syntaxes_formats_and_unknown_names() -> None:
    assert _panel("${device}-[[device]]", device="p.1") == "p.1-p.1"
    assert _panel("/${device:raw}/ /${device:regex}/ [[site:regex]]", device="p.1", site=["a", "b"]) == (
        r"/p.1/ /p\.1/ (a|b)"
    )
    assert _panel("$timeFilter $__interval $nobody", device="x") == "$timeFilter $__interval $nobody"
    with pytest.raises(ValueError, match="not supported"):
        _panel("${device:csv}", device="x")
    with pytest.raises(ValueError, match="no value selected"):
        _panel("$device")
    with pytest.raises(ValueError, match="no All option"):
        _panel("$device", device=ALL_VALUE)
    assert references("$a ${b} [[c]] ${d:raw} $__interval") == ["a", "b", "c", "d", "__interval"]


# ------------------------------------------------------------------------------------- backend macros


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=90), "1h"),  # truncated, as Go's integer division does
        (timedelta(minutes=10), "10m"),
        (timedelta(days=2, hours=5), "2d"),
        (timedelta(days=400), "1y"),
        (timedelta(seconds=30), "30s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(0), "1ms"),
    ],
)
def test_intervals_are_written_in_grafanas_units(interval: timedelta, text: str) -> None:
    assert format_interval(interval) == text


def test_backend_macros() -> None:
    text = "WHERE $timeFilter GROUP BY time($__interval) -- $interval $__interval_ms"
    assert expand_macros(text, RANGE, timedelta(hours=1)) == (
        "WHERE time >= 1767225600000ms and time <= 1769817600000ms GROUP BY time(1h) -- 1h 3600000"
    )


def test_time_ranges_are_aware_ordered_and_in_epoch_milliseconds() -> None:
    berlin = timezone(timedelta(hours=1))
    assert TimeRange(datetime(2026, 1, 1, 1, tzinfo=berlin), RANGE.end).start_ms == RANGE.start_ms
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeRange(datetime(2026, 1, 1), RANGE.end)  # naive, on purpose
    with pytest.raises(ValueError, match="after it ends"):
        TimeRange(RANGE.end, RANGE.start)


def test_render_query_runs_both_steps() -> None:
    text = 'SELECT mean("reservoir_ml") FROM "telemetry" WHERE "site" =~ /^$site$/ AND $timeFilter GROUP BY time($__interval)'
    rendered = render_query(
        text,
        QueryKind.PANEL,
        variables=VARIABLES,
        selection={"site": ALL_VALUE},
        time_range=RANGE,
        interval=timedelta(hours=1),
    )
    assert rendered == (
        'SELECT mean("reservoir_ml") FROM "telemetry" WHERE "site" =~ /^(north-general|st\\.olaf)$/ AND '
        "time >= 1767225600000ms and time <= 1769817600000ms GROUP BY time(1h)"
    )


def test_interpolation_module_is_pure() -> None:
    tree = ast.parse(inspect.getsource(interpolation))
    imported = {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert imported <= {"__future__", "re", "collections", "dataclasses", "datetime", "enum", "typing"}
