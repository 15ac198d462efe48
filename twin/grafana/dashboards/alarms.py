"""The alarms dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from twin.grafana.model import Dashboard, Panel, Query, custom_variable
from twin.grafana.panels import (
    ACTIVE_ALARMS_DESCRIPTION,
    FLOOD_ALARMS_PER_10_MIN,
    PRIORITY_COLORS,
    PRIORITY_FILTER,
    RAISED_OR_CLEARED,
    SITE_FILTER,
    STAT_OPTIONS,
    STATE_LOOKBACK_DAYS,
    STATE_WINDOW,
    TABLE_OPTIONS,
    TIMESERIES_OPTIONS,
    active_alarms_by_priority,
    by_name,
    color_by_name,
    colored_cells,
    device_link,
    organize,
    site_variable,
    thresholds,
    value_colors,
)

# -------------------------------------------------------------------------------------------- alarms


def alarms() -> Dashboard:
    where = f"{SITE_FILTER} AND {PRIORITY_FILTER} AND $timeFilter"
    latest = f"{SITE_FILTER} AND {PRIORITY_FILTER} AND {STATE_WINDOW}"  # an alarm's latest step, wherever it fell
    acks = f'FROM "alarm" WHERE "event" = \'transition\' AND {where}'

    def lifecycle_count(title: str, states: Sequence[str], description: str, color: str) -> Panel:
        wanted = " OR ".join(f"\"state\" = '{state}'" for state in states)
        return Panel(
            title,
            "stat",
            [
                Query(
                    'SELECT count("state") AS "alarms" FROM (SELECT last("to_state") AS "state" FROM "alarm" '
                    f'WHERE "event" = \'transition\' AND {latest} GROUP BY "site", "device", "code", "priority") '
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
            [Query(active_alarms_by_priority(f"{PRIORITY_FILTER} AND "), alias="$tag_priority")],
            ACTIVE_ALARMS_DESCRIPTION,
            width=8,
            height=5,
            overrides=[color_by_name(priority, color) for priority, color in PRIORITY_COLORS.items()],
            options=STAT_OPTIONS,
        ),
        lifecycle_count(
            "Unacknowledged alarms by priority",
            ("active_unacknowledged", "cleared_unacknowledged"),
            "Alarms whose latest lifecycle step left them unacknowledged (ISA-18.2: active, or cleared but latched "
            "until someone acknowledges): nobody has taken charge of them yet. Each alarm's latest step is read up "
            f"to {STATE_LOOKBACK_DAYS} days before the end of the range.",
            "orange",
        ),
        lifecycle_count(
            "Shelved alarms by priority",
            ("shelved",),
            "Alarms whose latest lifecycle step shelved them: suppressed until the shelf expires, so nobody hears "
            "them meanwhile; ISA-18.2 wants each shelf justified and short. Read up to "
            f"{STATE_LOOKBACK_DAYS} days back.",
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
