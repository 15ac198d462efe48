"""The fleet overview dashboard."""

from __future__ import annotations

from typing import Final

from twin.grafana.model import Dashboard, Panel, Query, custom_variable
from twin.grafana.panels import (
    ACTIVE_ALARMS_DESCRIPTION,
    ERI_SOON_DAYS,
    ERI_URGENT_DAYS,
    MS_PER_DAY,
    PRIORITY_COLORS,
    REFILL_SOON_DAYS,
    REFILL_URGENT_DAYS,
    SILENCE_WINDOWS_H,
    SITE_FILTER,
    STAT_OPTIONS,
    STATE_LOOKBACK_DAYS,
    STATE_WINDOW,
    TABLE_OPTIONS,
    active_alarms_by_priority,
    binary,
    by_name,
    color_by_name,
    colored_cells,
    device_link,
    organize,
    site_variable,
    sort_by,
    thresholds,
    value_colors,
)

# ------------------------------------------------------------------------------------ fleet overview

_SILENCE_COUNTS: Final = (
    'SELECT moving_average(count("seq"), $silence_hours) * $silence_hours AS "samples" FROM "telemetry" '
    f'WHERE {SITE_FILTER} AND $timeFilter GROUP BY time(1h), "site", "device" fill(0)'
)
"""Telemetry samples per device in the last ``$silence_hours`` hourly buckets, at every hour."""


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
            [Query(active_alarms_by_priority(), alias="$tag_priority")],
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
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "device") WHERE "infusing" = false'
                )
            ],
            "Pumps whose latest reported state says they are not infusing: stopped by program, motor stall, memory "
            "error, end of service, or an empty reservoir. Each one is a patient without their drug: abrupt "
            "withdrawal (baclofen above all) can be life-threatening within hours, so every one needs a call. "
            f"The latest state is read up to {STATE_LOOKBACK_DAYS} days back (a pump reports on change only).",
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
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "device") WHERE "active" > 0'
                )
            ],
            "Pumps whose latest reported state lists at least one active alarm, in the pump's own view (its alarm "
            "log): a pump may keep an alarm active that the twin's list shows acknowledged. Read up to "
            f"{STATE_LOOKBACK_DAYS} days back.",
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
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "device"',
                    ref_id="B",
                    result_format="table",
                ),
            ],
            "Days until the pump runs dry at its current rate: (latest calculated reservoir − unusable residual) ÷ "
            f"current rate, from the latest telemetry sample. Red under {REFILL_URGENT_DAYS} days: a refill visit "
            f"is booked about a week ahead, so book now; orange under {REFILL_SOON_DAYS}. "
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
                    'SELECT last("battery_percent") AS "battery_percent", last("eri_at_ms") AS "eri_date", '
                    f'(last("eri_at_ms") - ${{__to}}) / {MS_PER_DAY} AS "days_to_eri" FROM "state" '
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "Days from the end of the range to each pump's elective replacement indicator (ERI), from its latest "
            "state: the date it was reached (negative days: past ERI), or the date its battery reaches ERI at the "
            f"current flow. End of service follows ERI by about 90 days: red under {ERI_URGENT_DAYS} days (the "
            f"replacement surgery is late), orange under {ERI_SOON_DAYS} (plan it now). Sorted by Grafana.",
            height=10,
            defaults={
                "decimals": 1,
                "thresholds": thresholds("red", (ERI_URGENT_DAYS, "orange"), (ERI_SOON_DAYS, "green")),
            },
            overrides=[
                colored_cells("days_to_eri", unit="d"),
                by_name("battery_percent", unit="percent"),
                by_name("eri_date", unit="dateTimeAsIso"),
                device_link(),
            ],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",)), sort_by("days_to_eri")],
        ),
        Panel(
            "Planned refill: days to the next refill, soonest first",
            "table",
            [
                Query(
                    'SELECT last("refill_reminder_at_ms") AS "next_refill", '
                    f'(last("refill_reminder_at_ms") - ${{__to}}) / {MS_PER_DAY} AS "days_to_refill" FROM "state" '
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "The refill each pump has planned (its refill reminder, the alarm clock set at the last refill) and "
            "the days from the end of the range to it; negative: the date has passed without a refill. Compare "
            "with days to empty: a pump that empties before its planned refill needs the refill brought forward. "
            "Pumps without a reminder are not listed.",
            height=10,
            defaults={
                "decimals": 1,
                "thresholds": thresholds("red", (0, "orange"), (REFILL_URGENT_DAYS, "green")),
            },
            overrides=[
                colored_cells("days_to_refill", unit="d"),
                by_name("next_refill", unit="dateTimeAsIso"),
                device_link(),
            ],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",)), sort_by("days_to_refill")],
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
            "Per pump: telemetry samples in the last $silence_hours hourly buckets of the range. A red 0 is a silent "
            "pump: the twin has only predicted it since (check the gateway or the link; a real pump keeps infusing "
            "while it is silent). InfluxQL cannot compare a point's time with now, so silence is counted in hourly "
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
            "When each pump last sent telemetry in the range (shown relative to now). The oldest first: the pumps at "
            "the top are the ones the twin has heard nothing from for longest, whose figures are predictions.",
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
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "device") '
                    'WHERE "battery_status" <> \'ok\' GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "Pumps whose latest reported state says the battery reached the elective replacement indicator (eri: "
            "schedule the replacement surgery within about 90 days) or end of service (eos: the pump has stopped "
            f"infusing; replace it now and manage withdrawal). Read up to {STATE_LOOKBACK_DAYS} days back.",
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
                    f'WHERE {SITE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "device") '
                    'WHERE "active_alarm_count" > 0 GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "The alarms each pump lists as active in its latest reported state, with its program mode and motor: a "
            "stalled motor or a minimum-rate program next to an alarm says the patient is not getting the dose. "
            f"Read up to {STATE_LOOKBACK_DAYS} days back.",
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
        ],
        time_from="now-30d",
    )
