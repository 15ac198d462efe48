"""PumpTwin's four Grafana dashboards, as code: fleet overview, one device, alarms, a training session.

Every panel is raw InfluxQL over the measurements of ``docs/influx-schema.md`` (``telemetry``,
``state``, ``alarm``, ``command``, ``twin_health``, ``training``) and runs on InfluxDB 1.6 and
later (1.x, and the v1 API of 2.x and 3.x). Where InfluxQL cannot finish the job (sorting by a
value, arithmetic across measurements, a time relative to now) the panel says so in its
description and finishes it with a Grafana transformation; ``dashboards/README.md`` lists those.

``python -m twin.grafana`` writes ``dashboards/json/`` from :data:`DASHBOARDS`; a test checks that
the committed files are exactly that output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from twin.grafana.model import (
    JSON,
    Dashboard,
    Panel,
    Query,
    annotation,
    constant_variable,
    custom_variable,
    query_variable,
)

# The threshold ISA-18.2 (and EEMUA 191) call an alarm flood: more than 10 alarms in 10 minutes for
# one operator. A site's alarms go to its pump clinic's staff, so the flood line is drawn per site.
FLOOD_ALARMS_PER_10_MIN: Final = 10

# Days-to-empty colours: a refill takes a clinic visit, booked about a week ahead (DOMAIN.md: refill
# intervals of 1-3 months; the simulator's clinic refills 1-7 days after the low-reservoir alarm).
REFILL_URGENT_DAYS: Final = 7
REFILL_SOON_DAYS: Final = 14

# Days-to-ERI colours: ERI is announced 90 days before end of service (DOMAIN.md), and a replacement
# surgery is planned within that window.
ERI_URGENT_DAYS: Final = 30
ERI_SOON_DAYS: Final = 90

ERI_PERCENT: Final = "10"
"""Battery percentage at the elective replacement indicator (the simulator's ``ERI_PERCENT``)."""

SILENCE_WINDOWS_H: Final = ("2", "6", "12", "24")
"""Hours without telemetry that count as silent; at least 2 (``moving_average`` needs a window > 1)."""

PRIORITY_COLORS: Final = {"high": "red", "medium": "yellow", "low": "blue"}
"""IEC 60601-1-8 priority colours (low is cyan there; Grafana's closest named colour is blue)."""

DEVICE_DASHBOARD_UID: Final = "pumptwin-device"

SITE_FILTER: Final = '"site" =~ /^$site$/'
DEVICE_FILTER: Final = '"device" =~ /^$device$/'
PRIORITY_FILTER: Final = '"priority" =~ /^$priority$/'
SESSION_FILTER: Final = '"session" =~ /^$session$/'
TRAINEE_FILTER: Final = '"trainee" =~ /^$trainee$/'
RAISED_OR_CLEARED: Final = "(\"event\" = 'raised' OR \"event\" = 'cleared')"


# ------------------------------------------------------------------------------- field config bits


def thresholds(base: str, *steps: tuple[float, str]) -> JSON:
    """Absolute thresholds: ``base`` colour below the first step, then each step's colour from its value."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": color, "value": value} for value, color in steps)],
    }


def value_colors(colors: Mapping[str, str]) -> list[JSON]:
    """Value mappings that colour text values (states, verdicts)."""
    return [
        {
            "options": {value: {"color": color, "index": index} for index, (value, color) in enumerate(colors.items())},
            "type": "value",
        }
    ]


def by_name(name: str, **properties: object) -> JSON:
    """A field override for the field called ``name``."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key.replace("_", "."), "value": value} for key, value in properties.items()],
    }


def color_by_name(name: str, color: str) -> JSON:
    return by_name(name, color={"fixedColor": color, "mode": "fixed"})


def device_link(column: str = "device") -> JSON:
    """Make a table's device column open the device dashboard for that pump, keeping the time range."""
    return by_name(
        column,
        links=[
            {
                "targetBlank": False,
                "title": "Open ${__value.text} in the device dashboard",
                "url": f"/d/{DEVICE_DASHBOARD_UID}?var-device=${{__value.text}}&${{__url_time_range}}",
            }
        ],
    )


def colored_cells(name: str, **properties: object) -> JSON:
    """Colour the table cells of ``name`` by the panel's thresholds (or value mappings)."""
    return by_name(name, custom_cellOptions={"type": "color-background"}, **properties)


def sort_by(column: str, *, descending: bool = False) -> JSON:
    return {"id": "sortBy", "options": {"fields": {}, "sort": [{"desc": descending, "field": column}]}}


def organize(*, hide: Sequence[str] = (), rename: Mapping[str, str] | None = None) -> JSON:
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(hide, True),
            "includeByName": {},
            "indexByName": {},
            "renameByName": dict(rename or {}),
        },
    }


def binary(left: str, operator: str, right: str, alias: str) -> JSON:
    """Grafana's "Add field from calculation", binary mode: ``left operator right`` row by row."""
    return {
        "id": "calculateField",
        "options": {
            "alias": alias,
            "binary": {
                "left": {"matcher": {"id": "byName", "options": left}},
                "operator": operator,
                "right": {"matcher": {"id": "byName", "options": right}},
            },
            "mode": "binary",
            "reduce": {"reducer": "sum"},
            "timeSeries": False,  # row by row in the one joined table, no join by time first
        },
    }


TABLE_OPTIONS: Final[JSON] = {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
STAT_OPTIONS: Final[JSON] = {
    "colorMode": "value",
    "graphMode": "none",
    "justifyMode": "auto",
    "orientation": "auto",
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "textMode": "value_and_name",
}
TIMESERIES_OPTIONS: Final[JSON] = {
    "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
    "tooltip": {"mode": "multi", "sort": "none"},
}


def site_variable(*, measurement: str = "telemetry") -> JSON:
    return query_variable(
        "site", "Site", f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "site"', multi=True, include_all=True
    )


# ------------------------------------------------------------------------------------ fleet overview

_SILENCE_COUNTS: Final = (
    'SELECT moving_average(count("seq"), $silence_hours) * $silence_hours AS "samples" FROM "telemetry" '
    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY time(1h), "site", "device" fill(0)'
)
"""Telemetry samples per device in the last ``$silence_hours`` hourly buckets, at every hour."""

_ACTIVE_ALARMS_BY_PRIORITY: Final = (
    'SELECT count("event") AS "active" FROM (SELECT last("event") AS "event" FROM "alarm" '
    f'WHERE {RAISED_OR_CLEARED} AND {SITE_FILTER} AND {{priority}}$timeFilter GROUP BY "site", "device", "code", "priority") '
    'WHERE "event" = \'raised\' GROUP BY "priority"'
)

ACTIVE_ALARMS_DESCRIPTION: Final = (
    "Alarms whose last raise/clear event in the time range is a raise, counted per priority (IEC 60601-1-8). "
    "An alarm raised before the range and still active is not seen: keep the range longer than your alarms last."
)


def fleet_overview() -> Dashboard:
    panels = [
        Panel(
            "Devices online (twin)",
            "stat",
            [
                Query(
                    'SELECT sum("online") AS "online", sum("known") - sum("online") AS "offline" FROM '
                    '(SELECT last("devices_online") AS "online", last("devices_known") AS "known" FROM "twin_health" '
                    'WHERE $timeFilter GROUP BY "twin")'
                )
            ],
            "Devices the twin replicas see online and offline (the MQTT status channel), summed over replicas, "
            "from each replica's latest health sample in the range. Not filtered by site: a replica owns several.",
            width=6,
            height=5,
            overrides=[color_by_name("online", "green"), color_by_name("offline", "red")],
            options=STAT_OPTIONS,
        ),
        Panel(
            "Active alarms by priority",
            "stat",
            [Query(_ACTIVE_ALARMS_BY_PRIORITY.format(priority=""), alias="$tag_priority")],
            ACTIVE_ALARMS_DESCRIPTION,
            width=6,
            height=5,
            overrides=[color_by_name(priority, color) for priority, color in PRIORITY_COLORS.items()],
            options=STAT_OPTIONS,
        ),
        Panel(
            "Pumps not infusing",
            "stat",
            [
                Query(
                    'SELECT count("infusing") AS "not infusing" FROM (SELECT last("infusing") AS "infusing" FROM "state" '
                    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device") WHERE "infusing" = false'
                )
            ],
            "Pumps whose latest reported state says they are not infusing: stopped by program, motor stall, memory "
            "error, end of service, or an empty reservoir. Abrupt withdrawal (baclofen above all) is the risk.",
            width=6,
            height=5,
            defaults={"noValue": "0", "thresholds": thresholds("green", (1, "red"))},
            options=STAT_OPTIONS | {"colorMode": "background"},
        ),
        Panel(
            "Devices reporting active alarms",
            "stat",
            [
                Query(
                    'SELECT count("active") AS "devices" FROM (SELECT last("active_alarm_count") AS "active" FROM "state" '
                    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device") WHERE "active" > 0'
                )
            ],
            "Devices whose latest reported state in the range lists at least one active alarm (the pump's own view).",
            width=6,
            height=5,
            defaults={"noValue": "0", "thresholds": thresholds("green", (1, "orange"))},
            options=STAT_OPTIONS | {"colorMode": "background"},
        ),
        Panel(
            "Reservoir: days to empty, soonest first",
            "table",
            [
                Query(
                    'SELECT last("reservoir_ml") AS "reservoir_ml", last("current_rate_ml_per_day") AS "rate_ml_per_day" '
                    f'FROM "telemetry" WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device"',
                    result_format="table",
                ),
                Query(
                    'SELECT last("unusable_residual_ml") AS "unusable_residual_ml" FROM "state" '
                    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY "device"',
                    ref_id="B",
                    result_format="table",
                ),
            ],
            "(latest calculated reservoir − unusable residual) ÷ current rate, from the latest telemetry sample. "
            "The residual is in the state measurement, the reservoir in telemetry: InfluxQL cannot do arithmetic "
            "across measurements, so Grafana joins the two queries by device, subtracts, divides and sorts. "
            "The current rate includes a running bolus and, on a flexible program, is the current step's rate.",
            height=10,
            defaults={
                "custom": {"align": "auto"},
                "decimals": 1,
                "thresholds": thresholds("red", (REFILL_URGENT_DAYS, "orange"), (REFILL_SOON_DAYS, "green")),
            },
            overrides=[colored_cells("days_to_empty", unit="d"), device_link()],
            options=TABLE_OPTIONS,
            transformations=[
                {"id": "joinByField", "options": {"byField": "device", "mode": "inner"}},
                binary("reservoir_ml", "-", "unusable_residual_ml", "usable_ml"),
                binary("usable_ml", "/", "rate_ml_per_day", "days_to_empty"),
                organize(hide=("Time", "Time 1", "Time 2", "usable_ml")),
                sort_by("days_to_empty"),
            ],
        ),
        Panel(
            "Battery: estimated days to ERI, soonest first",
            "table",
            [
                Query(
                    'SELECT last("battery_percent") AS "battery_percent", -mean("change") AS "drain_percent_per_day", '
                    '(last("battery_percent") - $eri_percent) / -mean("change") AS "days_to_eri" FROM '
                    '(SELECT last("battery_percent") AS "battery_percent", derivative(last("battery_percent"), 1d) AS "change" '
                    f'FROM "telemetry" WHERE {SITE_FILTER} AND $timeFilter GROUP BY time(1d), "site", "device") '
                    'GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "Latest battery percentage, its mean daily drain over the range, and (battery − $eri_percent %) ÷ drain: "
            "days until the elective replacement indicator. Negative: past ERI. Needs two days of telemetry in range. "
            "InfluxQL divides by zero as 0: a pump whose battery did not move shows 0. Sorted by Grafana.",
            height=10,
            defaults={
                "decimals": 1,
                "thresholds": thresholds("red", (ERI_URGENT_DAYS, "orange"), (ERI_SOON_DAYS, "green")),
            },
            overrides=[
                colored_cells("days_to_eri", unit="d"),
                by_name("battery_percent", unit="percent"),
                device_link(),
            ],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",)), sort_by("days_to_eri")],
        ),
        Panel(
            "Telemetry samples in the last $silence_hours h (0 = silent)",
            "table",
            [
                Query(
                    f'SELECT last("samples") AS "samples" FROM ({_SILENCE_COUNTS}) GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "Per device: telemetry samples in the last $silence_hours hourly buckets of the range (a red 0 is a "
            "silent device). InfluxQL cannot compare a point's time with now, so silence is counted in hourly "
            "buckets with fill(0); Grafana sorts the fewest first.",
            height=10,
            defaults={"thresholds": thresholds("red", (1, "green"))},
            overrides=[colored_cells("samples"), device_link()],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",)), sort_by("samples")],
        ),
        Panel(
            "Last telemetry per device, oldest first",
            "table",
            [
                Query(
                    f'SELECT last("seq") AS "seq" FROM "telemetry" WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "When each device last sent telemetry in the range (shown relative to now). Grafana sorts the oldest "
            "first; the devices at the top are the ones silent longest.",
            height=10,
            overrides=[by_name("Time", unit="dateTimeFromNow", displayName="last telemetry"), device_link()],
            options=TABLE_OPTIONS,
            transformations=[sort_by("Time")],
        ),
        Panel(
            "Battery status reported by the pump (ERI / EOS)",
            "table",
            [
                Query(
                    'SELECT "battery_status", "battery_percent" FROM (SELECT last("battery_status") AS "battery_status", '
                    'last("battery_percent") AS "battery_percent" FROM "state" '
                    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device") '
                    'WHERE "battery_status" <> \'ok\' GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "Pumps whose latest reported state says the battery reached the elective replacement indicator (eri: "
            "plan a replacement within about 90 days) or end of service (eos: the pump has stopped).",
            height=8,
            overrides=[by_name("battery_percent", unit="percent"), device_link()],
            defaults={"mappings": value_colors({"eri": "orange", "eos": "red"})},
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",))],
        ),
        Panel(
            "Active alarms per device",
            "table",
            [
                Query(
                    'SELECT "active_alarm_count", "active_alarms", "program_mode", "motor" FROM '
                    '(SELECT last("active_alarm_count") AS "active_alarm_count", last("active_alarms") AS "active_alarms", '
                    'last("program_mode") AS "program_mode", last("motor") AS "motor" FROM "state" '
                    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device") '
                    'WHERE "active_alarm_count" > 0 GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "The alarms each pump lists as active in its latest reported state, with its program mode and motor.",
            height=8,
            overrides=[device_link()],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",)), sort_by("active_alarm_count", descending=True)],
        ),
    ]
    return Dashboard(
        uid="pumptwin-fleet",
        title="PumpTwin: fleet overview",
        description="Every pump at a glance: online, alarms, silent devices, reservoir and battery, soonest first.",
        panels=panels,
        variables=[
            site_variable(),
            custom_variable("silence_hours", "Silent after (h)", SILENCE_WINDOWS_H, current="6"),
            constant_variable("eri_percent", ERI_PERCENT, "Battery percentage at the elective replacement indicator."),
        ],
        time_from="now-30d",
    )


# -------------------------------------------------------------------------------------------- device


def device() -> Dashboard:
    sample = f'FROM "telemetry" WHERE {DEVICE_FILTER} AND $timeFilter GROUP BY time($__interval) fill(none)'
    state_step = f'FROM "state" WHERE {DEVICE_FILTER} AND $timeFilter GROUP BY time($__interval) fill(previous)'
    panels = [
        Panel(
            "Pump state",
            "table",
            [
                Query(
                    'SELECT last("program_mode") AS "mode", last("concentration_mg_per_ml") AS "concentration_mg_per_ml", '
                    'last("low_reservoir_threshold_ml") AS "low_threshold_ml", last("battery_status") AS "battery", '
                    'last("motor") AS "motor", last("active_alarms") AS "active_alarms" '
                    f'FROM "state" WHERE {DEVICE_FILTER} AND $timeFilter GROUP BY "site", "model", "drug"',
                    result_format="table",
                )
            ],
            "The pump's latest reported state in the range: where it is, what it is, what it infuses and how.",
            width=24,
            height=4,
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",))],
        ),
        *(
            Panel(
                title,
                "stat",
                [Query(f'SELECT last("{field}") AS "{name}" {sample}')],
                description,
                width=6,
                height=4,
                defaults={"decimals": 2, "unit": unit},
                options=STAT_OPTIONS | {"graphMode": "area"},
            )
            for title, field, name, unit, description in (
                ("Reservoir (latest)", "reservoir_ml", "reservoir", "mL", "Latest calculated reservoir volume."),
                ("Rate (latest)", "current_rate_ml_per_day", "rate", "mL/day", "Latest flow rate, bolus included."),
                ("Dose (latest)", "dose_mg_per_day", "dose", "mg/day", "Latest programmed dose: concentration × rate."),
                ("Battery (latest)", "battery_percent", "battery", "percent", "Latest battery percentage."),
            )
        ),
        Panel(
            "Reservoir: calculated by the pump and true (simulated)",
            "timeseries",
            [
                Query(
                    f'SELECT mean("reservoir_ml") AS "calculated", mean("true_reservoir_ml") AS "true (simulated)" {sample}'
                ),
                Query(
                    f'SELECT last("low_reservoir_threshold_ml") AS "low-reservoir threshold" {state_step}', ref_id="B"
                ),
            ],
            "The volume the pump believes it holds (it only counts its own strokes) and, for simulated pumps, the "
            "true volume: they part on a catheter leak, an occlusion, a flow error or a pocket fill.",
            defaults={"unit": "mL", "custom": {"lineWidth": 2}},
            overrides=[by_name("low-reservoir threshold", custom_lineStyle={"dash": [10, 10], "fill": "dash"})],
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Flow rate",
            "timeseries",
            [
                Query(f'SELECT mean("current_rate_ml_per_day") AS "current (bolus included)" {sample}'),
                Query(
                    f'SELECT last("program_rate_ml_per_day") AS "programmed (continuous mode)" {state_step}', ref_id="B"
                ),
            ],
            "The rate the pump runs at, and the programmed rate of a continuous program from its reported states "
            "(a flexible program has no single programmed rate: after a switch to flexible the last continuous "
            "rate is carried forward, so read the current rate then).",
            defaults={"unit": "mL/day"},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Dose: programmed and reaching the patient (simulated)",
            "timeseries",
            [
                Query(
                    'SELECT mean("dose_mg_per_day") AS "programmed", '
                    f'mean("true_actual_dose_mg_per_day") AS "reaching the patient (simulated)" {sample}'
                )
            ],
            "Programmed dose (concentration × rate) and, for simulated pumps, the dose that reaches the intrathecal "
            "space: lower on an occlusion or leak, different after a refill with the wrong concentration.",
            defaults={"unit": "mg/day"},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Battery",
            "timeseries",
            [Query(f'SELECT mean("battery_percent") AS "battery" {sample}')],
            f"Battery percentage; the elective replacement indicator is at {ERI_PERCENT} %.",
            defaults={
                "unit": "percent",
                "thresholds": thresholds("red", (float(ERI_PERCENT), "green")),
                "custom": {"thresholdsStyle": {"mode": "line"}},
            },
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Motor and catheter",
            "state-timeline",
            [Query(f'SELECT last("motor") AS "motor", last("true_catheter") AS "catheter (simulated)" {sample}')],
            "The motor as the pump reports it, and for simulated pumps the catheter's true state (a real pump cannot "
            "see its catheter).",
            width=24,
            height=5,
            defaults={
                "mappings": value_colors(
                    {
                        "running": "green",
                        "stopped": "orange",
                        "stalled": "red",
                        "patent": "green",
                        "partially_occluded": "orange",
                        "occluded": "red",
                        "leaking": "red",
                        "disconnected": "dark-red",
                    }
                )
            },
            options={"mergeValues": True, "showValue": "auto", "rowHeight": 0.8},
        ),
        Panel(
            "Command outcomes",
            "table",
            [
                Query(
                    'SELECT "action", "command_id", "status", "actor", "latency_s", "reason", "replay" FROM "command" '
                    f"WHERE {DEVICE_FILTER} AND $timeFilter ORDER BY time DESC LIMIT 200",
                    result_format="table",
                )
            ],
            "Commands sent to this pump and what became of them: pending, applied, rejected (with the reason) or "
            "timed out; latency from issue to answer. Newest first.",
            width=24,
            defaults={
                "mappings": value_colors(
                    {"applied": "green", "pending": "blue", "rejected": "red", "timed_out": "orange"}
                )
            },
            overrides=[colored_cells("status"), by_name("latency_s", unit="s")],
            options=TABLE_OPTIONS,
        ),
        Panel(
            "Alarm log",
            "table",
            [
                Query(
                    'SELECT "event", "code", "priority", "alarm_id", "message", "from_state", "to_state", "actor", '
                    f'"time_to_ack_s", "comment" FROM "alarm" WHERE {DEVICE_FILTER} AND $timeFilter '
                    "ORDER BY time DESC LIMIT 200",
                    result_format="table",
                )
            ],
            "Everything that happened to this pump's alarms: raised and cleared by the device, and each step of "
            "the twin's alarm lifecycle with who took it. Newest first.",
            width=24,
            defaults={"mappings": value_colors(PRIORITY_COLORS)},
            overrides=[colored_cells("priority"), by_name("time_to_ack_s", unit="s")],
            options=TABLE_OPTIONS,
        ),
    ]
    return Dashboard(
        uid=DEVICE_DASHBOARD_UID,
        title="PumpTwin: device",
        description="One pump: reservoir (believed and true), rate, dose, battery, motor, alarms and commands.",
        panels=panels,
        variables=[
            site_variable(),
            query_variable(
                "device",
                "Device",
                f'SHOW TAG VALUES FROM "telemetry" WITH KEY = "device" WHERE {SITE_FILTER}',
            ),
        ],
        annotations=[
            annotation(
                "Alarms raised and cleared",
                'SELECT "event", "message", "code", "priority", "alarm_id" FROM "alarm" '
                f"WHERE {DEVICE_FILTER} AND {RAISED_OR_CLEARED} AND $timeFilter",
                color="red",
                title_column="event",
                text_column="message",
                tags_columns=("code", "priority", "event"),
            ),
            annotation(
                "Alarm lifecycle (acknowledged, shelved, ...)",
                'SELECT "to_state", "from_state", "actor", "code", "priority" FROM "alarm" '
                f"WHERE {DEVICE_FILTER} AND \"event\" = 'transition' AND $timeFilter",
                color="orange",
                text_column="to_state",
                tags_columns=("code", "priority", "actor"),
            ),
            annotation(
                "Commands",
                f'SELECT "status", "command_id", "actor", "action" FROM "command" WHERE {DEVICE_FILTER} AND $timeFilter',
                color="blue",
                text_column="status",
                tags_columns=("action", "actor"),
            ),
        ],
    )


# -------------------------------------------------------------------------------------------- alarms


def alarms() -> Dashboard:
    where = f"{SITE_FILTER} AND {PRIORITY_FILTER} AND $timeFilter"
    acks = f'FROM "alarm" WHERE "event" = \'transition\' AND {where}'

    def lifecycle_count(title: str, states: Sequence[str], description: str, color: str) -> Panel:
        wanted = " OR ".join(f"\"state\" = '{state}'" for state in states)
        return Panel(
            title,
            "stat",
            [
                Query(
                    'SELECT count("state") AS "alarms" FROM (SELECT last("to_state") AS "state" FROM "alarm" '
                    f'WHERE "event" = \'transition\' AND {where} GROUP BY "site", "device", "code", "priority") '
                    f'WHERE {wanted} GROUP BY "priority"',
                    alias="$tag_priority",
                )
            ],
            description,
            width=8,
            height=5,
            defaults={"noValue": "0", "color": {"fixedColor": color, "mode": "fixed"}},
            options=STAT_OPTIONS,
        )

    panels = [
        Panel(
            f"Alarms raised per 10 minutes, per site (flood above {FLOOD_ALARMS_PER_10_MIN})",
            "timeseries",
            [
                Query(
                    'SELECT count("alarm_id") AS "raised" FROM "alarm" '
                    f'WHERE "event" = \'raised\' AND {where} GROUP BY time(10m), "site" fill(0)',
                    alias="$tag_site",
                )
            ],
            f"Alarm floods: more than {FLOOD_ALARMS_PER_10_MIN} alarms in 10 minutes for one team is the ISA-18.2 / "
            "EEMUA 191 flood threshold (the red line). Counted per site in fixed 10-minute buckets.",
            width=24,
            height=8,
            defaults={
                "custom": {"drawStyle": "bars", "fillOpacity": 80, "thresholdsStyle": {"mode": "line"}},
                "thresholds": thresholds("green", (FLOOD_ALARMS_PER_10_MIN, "red")),
                "min": 0,
            },
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Alarm timeline (raised / cleared)",
            "state-timeline",
            [
                Query(
                    f'SELECT last("event") AS "event" FROM "alarm" WHERE {RAISED_OR_CLEARED} AND {where} '
                    'GROUP BY time($__interval), "device", "code" fill(previous)',
                    alias="$tag_device $tag_code",
                )
            ],
            "One row per pump and alarm code: red while raised, green once cleared (as the device reports it).",
            width=24,
            height=10,
            defaults={"mappings": value_colors({"raised": "red", "cleared": "green"})},
            options={"mergeValues": True, "showValue": "never", "rowHeight": 0.8},
        ),
        Panel(
            "Active alarms by priority",
            "stat",
            [Query(_ACTIVE_ALARMS_BY_PRIORITY.format(priority=f"{PRIORITY_FILTER} AND "), alias="$tag_priority")],
            ACTIVE_ALARMS_DESCRIPTION,
            width=8,
            height=5,
            overrides=[color_by_name(priority, color) for priority, color in PRIORITY_COLORS.items()],
            options=STAT_OPTIONS,
        ),
        lifecycle_count(
            "Unacknowledged alarms by priority",
            ("active_unacknowledged", "cleared_unacknowledged"),
            "Alarms whose latest lifecycle step in the range left them unacknowledged (ISA-18.2: active, or cleared "
            "but latched until someone acknowledges).",
            "orange",
        ),
        lifecycle_count(
            "Shelved alarms by priority",
            ("shelved",),
            "Alarms whose latest lifecycle step in the range shelved them (suppressed until the shelf expires).",
            "purple",
        ),
        Panel(
            "Time to acknowledge by priority",
            "table",
            [
                Query(
                    'SELECT count("time_to_ack_s") AS "acknowledged", percentile("time_to_ack_s", 50) AS "p50", '
                    'percentile("time_to_ack_s", 90) AS "p90", percentile("time_to_ack_s", 95) AS "p95", '
                    f'max("time_to_ack_s") AS "worst" {acks} GROUP BY "priority"',
                    result_format="table",
                )
            ],
            "Seconds from an alarm's raise to its acknowledgement (the acknowledging lifecycle step), per priority: "
            "median, 90th and 95th percentile (nearest rank) and the worst.",
            defaults={"unit": "s", "decimals": 0},
            overrides=[
                by_name("acknowledged", unit="none"),
                colored_cells("priority", mappings=value_colors(PRIORITY_COLORS)),
            ],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",))],
        ),
        Panel(
            "Time to acknowledge: distribution",
            "histogram",
            [Query(f'SELECT "time_to_ack_s" {acks} GROUP BY "priority"', alias="$tag_priority")],
            "How acknowledgement times spread, per priority (one value per acknowledged alarm).",
            defaults={"unit": "s"},
            overrides=[color_by_name(priority, color) for priority, color in PRIORITY_COLORS.items()],
            options={"bucketOffset": 0, "combine": False, "legend": {"displayMode": "list", "showLegend": True}},
        ),
        Panel(
            "Median time to acknowledge per day",
            "timeseries",
            [
                Query(
                    f'SELECT median("time_to_ack_s") {acks} GROUP BY time(1d), "priority" fill(none)',
                    alias="$tag_priority",
                )
            ],
            "Daily median of the seconds from raise to acknowledgement, per priority: is the team getting faster?",
            defaults={"unit": "s", "custom": {"drawStyle": "line", "showPoints": "always"}},
            overrides=[color_by_name(priority, color) for priority, color in PRIORITY_COLORS.items()],
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Alarms raised by code",
            "barchart",
            [
                Query(
                    f'SELECT count("alarm_id") AS "raised" FROM "alarm" WHERE "event" = \'raised\' AND {where} GROUP BY "code"',
                    result_format="table",
                )
            ],
            "How many alarms of each code were raised in the range.",
            options={
                "orientation": "horizontal",
                "xField": "code",
                "showValue": "auto",
                "legend": {"showLegend": False},
            },
            transformations=[organize(hide=("Time",))],
        ),
        Panel(
            "Alarm events and lifecycle steps",
            "table",
            [
                Query(
                    'SELECT "site", "device", "code", "priority", "event", "alarm_id", "from_state", "to_state", "actor", '
                    f'"time_to_ack_s", "message", "comment" FROM "alarm" WHERE {where} ORDER BY time DESC LIMIT 500',
                    result_format="table",
                )
            ],
            "Every raise and clear by a device and every lifecycle step by the twin (who acknowledged, shelved, ...), "
            "newest first, at most 500.",
            width=24,
            height=12,
            defaults={"mappings": value_colors(PRIORITY_COLORS)},
            overrides=[colored_cells("priority"), by_name("time_to_ack_s", unit="s"), device_link()],
            options=TABLE_OPTIONS,
        ),
    ]
    return Dashboard(
        uid="pumptwin-alarms",
        title="PumpTwin: alarms",
        description="Alarm floods, the alarm timeline, what is active, unacknowledged or shelved, and how fast staff acknowledge.",
        panels=panels,
        variables=[
            site_variable(),
            custom_variable(
                "priority",
                "Priority",
                tuple(PRIORITY_COLORS),
                current="$__all",
                multi=True,
                include_all=True,
            ),
        ],
    )


# ------------------------------------------------------------------------------------------ training


def training_session() -> Dashboard:
    responses = f'FROM "training" WHERE {SESSION_FILTER} AND {TRAINEE_FILTER} AND $timeFilter'
    panels = [
        Panel(
            "Verdicts",
            "stat",
            [
                Query(f'SELECT count("score") AS "{verdict}" {responses} AND "verdict" = \'{verdict}\'', ref_id=ref_id)
                for ref_id, verdict in (("A", "correct"), ("B", "incorrect"), ("C", "missed"))
            ],
            "Responses judged correct, incorrect, and alarms missed (no response before the scenario moved on).",
            width=12,
            height=5,
            overrides=[
                color_by_name("correct", "green"),
                color_by_name("incorrect", "orange"),
                color_by_name("missed", "red"),
            ],
            options=STAT_OPTIONS,
        ),
        Panel(
            "Mean score",
            "stat",
            [Query(f'SELECT mean("score") AS "score" {responses}')],
            "Mean of the per-response scores (0 to 1) of the selected trainees.",
            width=6,
            height=5,
            defaults={
                "unit": "percentunit",
                "min": 0,
                "max": 1,
                "thresholds": thresholds("red", (0.5, "orange"), (0.8, "green")),
            },
            options=STAT_OPTIONS | {"colorMode": "background"},
        ),
        Panel(
            "Median time to acknowledge",
            "stat",
            [Query(f'SELECT median("time_to_ack_s") AS "time to acknowledge" {responses}')],
            "Median seconds from an alarm's raise to the trainee's acknowledgement.",
            width=6,
            height=5,
            defaults={"unit": "s", "decimals": 0},
            options=STAT_OPTIONS,
        ),
        Panel(
            "Per trainee",
            "table",
            [
                Query(
                    'SELECT mean("score") AS "mean_score", count("score") AS "responses", '
                    'mean("time_to_ack_s") AS "mean_time_to_ack_s", mean("time_to_respond_s") AS "mean_time_to_respond_s" '
                    f'{responses} GROUP BY "trainee"',
                    result_format="table",
                )
            ],
            "Each trainee's mean score, number of responses, and mean times to acknowledge and to respond.",
            defaults={"decimals": 1, "thresholds": thresholds("red", (0.5, "orange"), (0.8, "green"))},
            overrides=[
                colored_cells("mean_score", unit="percentunit"),
                by_name("mean_time_to_ack_s", unit="s"),
                by_name("mean_time_to_respond_s", unit="s"),
            ],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",)), sort_by("mean_score", descending=True)],
        ),
        Panel(
            "Times to acknowledge and respond",
            "timeseries",
            [
                Query(
                    f'SELECT "time_to_ack_s", "time_to_respond_s" {responses} GROUP BY "trainee"',
                    alias="$tag_trainee $col",
                )
            ],
            "One point per response: seconds from the raise to the trainee's acknowledgement and to the response.",
            defaults={"unit": "s", "custom": {"drawStyle": "points", "pointSize": 8}},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            "Each trainee's responses",
            "table",
            [
                Query(
                    'SELECT "trainee", "scenario", "device", "alarm_id", "code", "priority", "response", '
                    f'"expected_response", "verdict", "time_to_ack_s", "time_to_respond_s", "score" {responses} '
                    "ORDER BY time ASC",
                    result_format="table",
                )
            ],
            "Every response in order: the alarm, what the trainee did, what was expected, the verdict and the times.",
            width=24,
            height=12,
            defaults={"mappings": value_colors({"correct": "green", "incorrect": "orange", "missed": "red"})},
            overrides=[
                colored_cells("verdict"),
                by_name("time_to_ack_s", unit="s"),
                by_name("time_to_respond_s", unit="s"),
                by_name("score", unit="percentunit"),
            ],
            options=TABLE_OPTIONS,
        ),
        Panel(
            "Alarms at the session's site",
            "table",
            [
                Query(
                    'SELECT "device", "code", "priority", "event", "alarm_id", "message", "to_state", "actor" FROM "alarm" '
                    f"WHERE {SITE_FILTER} AND $timeFilter ORDER BY time ASC LIMIT 500",
                    result_format="table",
                )
            ],
            "Alarm events and lifecycle steps at the session's site within the time range: set the range to the "
            "session (the console's link does) to see exactly the session's alarms.",
            width=24,
            height=10,
            defaults={"mappings": value_colors(PRIORITY_COLORS)},
            overrides=[colored_cells("priority")],
            options=TABLE_OPTIONS,
        ),
    ]
    return Dashboard(
        uid="pumptwin-training",
        title="PumpTwin: training session",
        description="One training session: the alarms, each trainee's responses, verdicts, scores and times.",
        panels=panels,
        variables=[
            query_variable(
                "session", "Session", 'SHOW TAG VALUES FROM "training" WITH KEY = "session"', sort_descending=True
            ),
            query_variable(
                "trainee",
                "Trainee",
                f'SHOW TAG VALUES FROM "training" WITH KEY = "trainee" WHERE {SESSION_FILTER}',
                multi=True,
                include_all=True,
            ),
            query_variable(
                "site",
                "Site",
                f'SHOW TAG VALUES FROM "training" WITH KEY = "site" WHERE {SESSION_FILTER}',
                multi=True,
                include_all=True,
            ),
        ],
        annotations=[
            annotation(
                "Alarms raised at the session's site",
                'SELECT "event", "message", "device", "code", "priority" FROM "alarm" '
                f"WHERE {SITE_FILTER} AND \"event\" = 'raised' AND $timeFilter",
                color="red",
                text_column="message",
                tags_columns=("device", "code", "priority"),
            ),
            annotation(
                "Trainee responses",
                f'SELECT "verdict", "response", "trainee", "code" FROM "training" WHERE {SESSION_FILTER} AND $timeFilter',
                color="green",
                text_column="response",
                tags_columns=("trainee", "verdict", "code"),
            ),
        ],
        time_from="now-24h",
        refresh="30s",
    )


# ---------------------------------------------------------------------------------------------- all


DASHBOARDS: Final = (fleet_overview, device, alarms, training_session)


def render_all() -> dict[str, str]:
    """File name → JSON text of every dashboard, in a stable order."""
    rendered: dict[str, str] = {}
    for build in DASHBOARDS:
        dashboard = build()
        rendered[dashboard.file_name] = dashboard.render()
    return rendered


def write_all(directory: Path) -> list[Path]:
    """Write every dashboard's JSON into ``directory``; returns the paths written."""
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path) -> list[str]:
    """Dashboard files in ``directory`` that differ from (or are missing next to) the generator's output,
    and ``*.json`` files there that the generator does not make."""
    rendered = render_all()
    stale = [
        name
        for name, text in rendered.items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
    stale += sorted(path.name for path in directory.glob("*.json") if path.name not in rendered)
    return stale
