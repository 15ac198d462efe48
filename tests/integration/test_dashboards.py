"""Every query of every dashboard runs on a real InfluxDB 1.6.7 and returns data.

A month of a simulated fleet (``tests/harness/fleet_history.py``) is written through the
``InfluxWriter``; then, for every dashboard in ``dashboards/json``, the template variables are
resolved the way Grafana does (each variable's query run in order, chained variables seeing
the values chosen before them), and every panel target and annotation is rendered by
``twin.grafana.interpolation`` exactly as Grafana would send it, run through ``/query``, and
checked: no error, and at least one non-null value (InfluxQL answers a misspelt field with an
empty result, not an error). That is done for the dashboard as it loads and again with other
selections: several values of a multi-value variable, All, every option of a custom variable.

The last tests compare a few panels with facts the history knows independently: which pumps
are silent, which alarms are active, which pump is past ERI, how big the alarm flood was.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fleet_history import TRAINING_SITE, FleetHistory, simulate_fleet_history
from tests.harness.servers import Influxd
from twin.grafana.interpolation import ALL_VALUE, QueryKind, Selection, TimeRange, Variable, render_query
from twin.influx.writer import InfluxWriter
from twin.settings import InfluxSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "json"
DASHBOARDS: dict[str, dict[str, Any]] = {
    path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))
}
DATABASE = "pumptwin"
INTERVAL = timedelta(hours=1)
"""What Grafana's $__interval comes to for a month on a panel about 700 pixels wide."""


@pytest.fixture(scope="module")
def history() -> FleetHistory:
    return simulate_fleet_history()


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory, history: FleetHistory) -> Iterator[Influxd]:
    server = Influxd(workdir=tmp_path_factory.mktemp("influxd-dashboards"))
    server.start()
    try:
        spool = tmp_path_factory.mktemp("spool-dashboards")
        asyncio.run(_write(server, history, spool))
        yield server
    finally:
        server.stop()


async def _write(server: Influxd, history: FleetHistory, spool: Path) -> None:
    settings = InfluxSettings(url=server.url, database=DATABASE, spool_dir=spool, flush_interval_s=0.05)
    async with InfluxWriter(settings) as writer:
        writer.submit(history.points)
        assert await writer.drain(120), "InfluxDB did not confirm the history"
        assert writer.stats.dead_lettered == 0


@pytest.fixture(scope="module")
def time_range(history: FleetHistory) -> TimeRange:
    return TimeRange(history.start, history.end)


# ---------------------------------------------------------------------------------------- plumbing


def _statement(influx: Influxd, query: str) -> dict[str, Any]:
    answer = influx.query(query, db=DATABASE)
    statement: dict[str, Any] = answer["results"][0]  # type: ignore[index]
    return statement


def _rows(statement: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every row of every series, with the series' tags as columns."""
    rows = []
    for series in statement.get("series", []):
        for values in series["values"]:
            rows.append({**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))})
    return rows


def _problem(statement: Mapping[str, Any]) -> str | None:
    """Why a statement's answer is not "data", or None: an error, no rows, or a column that is
    null in every row (a misspelt field in a SELECT of several is not an error in InfluxQL)."""
    if "error" in statement:
        return f"error: {statement['error']}"
    rows = _rows(statement)
    if not rows:
        return "no rows"
    empty = sorted(
        {key for row in rows for key in row} - {key for row in rows for key, v in row.items() if v is not None}
    )
    if empty:
        return f"only nulls in {empty}"
    return None


def _metric_find_values(statement: Mapping[str, Any]) -> list[str]:
    """What a variable query offers: SHOW TAG VALUES' ``value`` column, else the first non-time column."""
    values: list[str] = []
    for series in statement.get("series", []):
        columns = series["columns"]
        column = columns.index("value") if "value" in columns else next(i for i, c in enumerate(columns) if c != "time")
        values += [str(row[column]) for row in series["values"] if row[column] is not None]
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class Resolved:
    variables: dict[str, Variable]
    selection: dict[str, Selection]


def _default(entry: Mapping[str, Any], options: list[str]) -> Selection:
    """Grafana's choice on load: the saved current value while it is valid, else the first option."""
    current = entry.get("current") or {}
    value = current.get("value")
    values = [value] if isinstance(value, str) else list(value or [])
    if values and values[0] == ALL_VALUE and entry.get("includeAll"):
        return ALL_VALUE
    if values and all(v in options for v in values):
        return values if entry.get("multi") else values[0]
    return [options[0]] if entry.get("multi") else options[0]


def _resolve(
    dashboard: Mapping[str, Any],
    influx: Influxd,
    time_range: TimeRange,
    overrides: Mapping[str, Selection] | None = None,
    failures: list[str] | None = None,
) -> Resolved:
    """Resolve the template variables in order, as a dashboard load does."""
    variables: dict[str, Variable] = {}
    selection: dict[str, Selection] = {}
    for entry in dashboard["templating"]["list"]:
        name = entry["name"]
        if entry["type"] == "query":
            query = render_query(
                entry["query"],
                QueryKind.VARIABLE,
                variables=variables,
                selection=selection,
                time_range=time_range,
                interval=INTERVAL,
            )
            statement = _statement(influx, query)
            options = _metric_find_values(statement)
            if "error" in statement or not options:
                message = f"variable ${name}: {query}\n  -> {statement.get('error', 'no values')}"
                if failures is None:
                    raise AssertionError(message)
                failures.append(message)
                options = options or ["(none)"]
            if entry.get("sort") in (1, 2):
                options = sorted(options, reverse=entry["sort"] == 2)
        elif entry["type"] == "custom":
            options = entry["query"].split(",")
        elif entry["type"] == "constant":
            options = [entry["query"]]
        else:
            raise AssertionError(f"variable ${name}: type {entry['type']} is not handled by this test")
        variables[name] = Variable(
            name,
            multi=bool(entry.get("multi")),
            include_all=bool(entry.get("includeAll")),
            all_value=entry.get("allValue") or None,
            options=tuple(options),
        )
        selection[name] = (overrides or {}).get(name) or _default(entry, options)
    return Resolved(variables, selection)


def _scenarios(dashboard: Mapping[str, Any], influx: Influxd, time_range: TimeRange) -> list[dict[str, Selection]]:
    """The dashboard as it loads, then one variable at a time: two values, All, each custom option."""
    defaults = _resolve(dashboard, influx, time_range)
    scenarios: list[dict[str, Selection]] = [{}]
    for entry in dashboard["templating"]["list"]:
        name = entry["name"]
        variable = defaults.variables[name]
        if variable.multi and len(variable.options) >= 2:
            scenarios.append({name: list(variable.options[:2])})
            scenarios.append({name: [variable.options[-1]]})
        if variable.include_all and defaults.selection[name] != ALL_VALUE:
            scenarios.append({name: ALL_VALUE})
        if entry["type"] == "custom" and not variable.multi:
            scenarios += [{name: option} for option in variable.options if option != defaults.selection[name]]
    return scenarios


def _queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, QueryKind]]:
    """(where, text, kind) of every panel target and annotation."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} target {target['refId']}", target["query"], QueryKind.PANEL
    for annotation in dashboard["annotations"]["list"]:
        yield f"annotation {annotation['name']!r}", annotation["target"]["query"], QueryKind.ANNOTATION


def _panel_statement(
    dashboard: Mapping[str, Any],
    title: str,
    influx: Influxd,
    time_range: TimeRange,
    overrides: Mapping[str, Selection] | None = None,
    ref_id: str = "A",
) -> dict[str, Any]:
    resolved = _resolve(dashboard, influx, time_range, overrides)
    (panel,) = [p for p in dashboard["panels"] if p["title"] == title]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref_id]
    query = render_query(
        target["query"],
        QueryKind.PANEL,
        variables=resolved.variables,
        selection=resolved.selection,
        time_range=time_range,
        interval=INTERVAL,
    )
    statement = _statement(influx, query)
    assert "error" not in statement, f"{query}\n-> {statement['error']}"
    return statement


# -------------------------------------------------------------------------------------- every query


def test_there_are_four_dashboards_to_check() -> None:
    assert sorted(DASHBOARDS) == [
        "pumptwin-alarms.json",
        "pumptwin-device.json",
        "pumptwin-fleet.json",
        "pumptwin-training.json",
    ]


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_every_query_of_the_dashboard_runs_and_returns_data(
    file_name: str, influx: Influxd, time_range: TimeRange
) -> None:
    dashboard = DASHBOARDS[file_name]
    failures: list[str] = []
    checked = 0
    for overrides in _scenarios(dashboard, influx, time_range):
        resolved = _resolve(dashboard, influx, time_range, overrides, failures)
        for where, text, kind in _queries(dashboard):
            query = render_query(
                text,
                kind,
                variables=resolved.variables,
                selection=resolved.selection,
                time_range=time_range,
                interval=INTERVAL,
            )
            checked += 1
            if "$" in query.replace("$/", "").replace("$)", ""):
                failures.append(f"{where} with {overrides or 'the defaults'}: unexpanded reference in {query}")
                continue
            problem = _problem(_statement(influx, query))
            if problem is not None:
                failures.append(f"{where} with {overrides or 'the defaults'}:\n  {query}\n  -> {problem}")
    assert checked >= len(list(_queries(dashboard)))
    assert not failures, f"{len(failures)} of {checked} queries failed:\n" + "\n".join(failures)


# -------------------------------------------------------------------------- panels against the facts


def test_silent_pumps_are_the_ones_that_stopped_sending(
    influx: Influxd, time_range: TimeRange, history: FleetHistory
) -> None:
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    rows = _rows(
        _panel_statement(fleet, "Telemetry samples in the last $silence_hours h (0 = silent)", influx, time_range)
    )
    assert len(rows) == len(history.tags)
    assert {row["device"] for row in rows if row["samples"] == 0} == history.silent
    assert all(row["samples"] >= 6 for row in rows if row["device"] not in history.silent)  # every 30 min, 6 h
    (twin,) = _rows(_panel_statement(fleet, "Devices online (twin)", influx, time_range))
    assert (twin["online"], twin["offline"]) == (len(history.tags) - len(history.silent), len(history.silent))


def test_active_alarms_by_priority_match_the_raises_not_yet_cleared(
    influx: Influxd, time_range: TimeRange, history: FleetHistory
) -> None:
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    rows = _rows(_panel_statement(fleet, "Active alarms by priority", influx, time_range))
    assert {row["priority"]: row["active"] for row in rows} == history.active_by_priority()
    alarms = DASHBOARDS["pumptwin-alarms.json"]
    rows = _rows(_panel_statement(alarms, "Active alarms by priority", influx, time_range, {"priority": ["high"]}))
    assert {row["priority"]: row["active"] for row in rows} == {"high": history.active_by_priority()["high"]}


def test_pumps_not_infusing_are_counted_from_their_last_state(
    influx: Influxd, time_range: TimeRange, history: FleetHistory
) -> None:
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    stopped = {device for device, infusing in history.last_state("infusing").items() if infusing is False}
    assert stopped  # the script stalls motors and raises memory errors
    (count,) = _rows(_panel_statement(fleet, "Pumps not infusing", influx, time_range))
    assert count["not infusing"] == len(stopped)


def test_days_to_empty_joins_every_pump_with_its_residual(
    influx: Influxd, time_range: TimeRange, history: FleetHistory
) -> None:
    """What Grafana's join and two calculations need: every pump in both queries, a positive rate."""
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    title = "Reservoir: days to empty, soonest first"
    reservoir = {row["device"]: row for row in _rows(_panel_statement(fleet, title, influx, time_range))}
    residual = {row["device"]: row for row in _rows(_panel_statement(fleet, title, influx, time_range, ref_id="B"))}
    assert reservoir.keys() == residual.keys() == history.tags.keys()
    days = {
        device: (row["reservoir_ml"] - residual[device]["unusable_residual_ml"]) / row["rate_ml_per_day"]
        for device, row in reservoir.items()
        if row["rate_ml_per_day"] > 0
    }
    assert len(days) >= len(history.tags) // 2  # stopped pumps (stall, memory error, empty) run at 0
    assert all(math.isfinite(d) and -1 < d < 400 for d in days.values()), days


def test_battery_panels_find_the_pump_past_eri(influx: Influxd, time_range: TimeRange, history: FleetHistory) -> None:
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    status = _rows(_panel_statement(fleet, "Battery status reported by the pump (ERI / EOS)", influx, time_range))
    assert {row["device"] for row in status} == history.battery_not_ok() >= history.depleted
    assert {row["battery_status"] for row in status} <= {"eri", "eos"}
    estimates = _rows(_panel_statement(fleet, "Battery: estimated days to ERI, soonest first", influx, time_range))
    assert {row["device"] for row in estimates} == history.tags.keys()  # a full battery has a date too
    assert {row["device"] for row in estimates if row["days_to_eri"] <= 0} == history.battery_not_ok()
    eri = history.last_state("eri_at_ms")
    end_ms = time_range.end_ms
    for row in estimates:
        assert row["eri_date"] == eri[row["device"]]
        assert row["days_to_eri"] == pytest.approx((eri[row["device"]] - end_ms) / 86_400_000)  # type: ignore[operator]


def test_planned_refill_dates_are_the_pumps_refill_reminders(
    influx: Influxd, time_range: TimeRange, history: FleetHistory
) -> None:
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    rows = _rows(_panel_statement(fleet, "Planned refill: days to the next refill, soonest first", influx, time_range))
    planned = {device: at for device, at in history.last_state("refill_reminder_at_ms").items() if at is not None}
    assert planned  # the clinic refills and sets a reminder
    assert {row["device"]: row["next_refill"] for row in rows} == planned
    for row in rows:
        assert row["days_to_refill"] == pytest.approx((row["next_refill"] - time_range.end_ms) / 86_400_000)


def test_latest_state_panels_keep_pumps_whose_state_did_not_change_in_the_range(
    influx: Influxd, time_range: TimeRange, history: FleetHistory
) -> None:
    """The last six hours of the month: most pumps sent no state then (state is published on change
    only), and every latest-state panel still lists them as the whole month does."""
    last_hours = TimeRange(time_range.end - timedelta(hours=6), time_range.end)
    state_times = [p.time_ns for p in history.points if p.measurement == "state"]
    quiet = {
        device
        for device in history.tags
        if max(p.time_ns for p in history.points if p.measurement == "state" and p.tags["device"] == device)
        < last_hours.start_ms * 1_000_000
    }
    assert state_times
    assert len(quiet) > len(history.tags) // 2, "the check needs pumps without a state change in the range"
    fleet = DASHBOARDS["pumptwin-fleet.json"]
    for title, ref_id in (
        ("Battery: estimated days to ERI, soonest first", "A"),
        ("Reservoir: days to empty, soonest first", "B"),
        ("Battery status reported by the pump (ERI / EOS)", "A"),
        ("Planned refill: days to the next refill, soonest first", "A"),
    ):
        month = _rows(_panel_statement(fleet, title, influx, time_range, ref_id=ref_id))
        hours = _rows(_panel_statement(fleet, title, influx, last_hours, ref_id=ref_id))
        assert sorted(r["device"] for r in hours) == sorted(r["device"] for r in month), title
    for title in ("Pumps not infusing", "Active alarms by priority"):
        assert _rows(_panel_statement(fleet, title, influx, last_hours)) == _rows(
            _panel_statement(fleet, title, influx, time_range)
        ), title


def test_the_alarm_flood_crosses_the_line_at_the_training_site(influx: Influxd, time_range: TimeRange) -> None:
    alarms = DASHBOARDS["pumptwin-alarms.json"]
    (panel,) = [p for p in alarms["panels"] if p["title"].startswith("Alarms raised per 10 minutes")]
    rows = _rows(_panel_statement(alarms, panel["title"], influx, time_range))
    peak = {site: max(row["raised"] for row in rows if row["site"] == site) for site in {row["site"] for row in rows}}
    threshold = panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"]
    assert peak[TRAINING_SITE] > threshold >= max(v for site, v in peak.items() if site != TRAINING_SITE)


def test_training_verdicts_add_up_per_session(influx: Influxd, time_range: TimeRange, history: FleetHistory) -> None:
    training = DASHBOARDS["pumptwin-training.json"]
    for session in history.sessions:
        table = _rows(_panel_statement(training, "Each trainee's responses", influx, time_range, {"session": session}))
        counts = {
            verdict: _rows(
                _panel_statement(training, "Verdicts", influx, time_range, {"session": session}, ref_id=ref_id)
            )[0][verdict]
            for ref_id, verdict in (("A", "correct"), ("B", "incorrect"), ("C", "missed"))
        }
        assert sum(counts.values()) == len(table) > 0
        assert {row["verdict"] for row in table} == set(counts)
