"""The device dashboard."""

from __future__ import annotations

from twin.grafana.model import Dashboard, Panel, Query, annotation, query_variable
from twin.grafana.panels import (
    DEVICE_DASHBOARD_UID,
    DEVICE_FILTER,
    ERI_PERCENT,
    PRIORITY_COLORS,
    RAISED_OR_CLEARED,
    SITE_FILTER,
    STAT_OPTIONS,
    STATE_LOOKBACK_DAYS,
    STATE_WINDOW,
    TABLE_OPTIONS,
    TIMESERIES_OPTIONS,
    by_name,
    colored_cells,
    organize,
    site_variable,
    thresholds,
    value_colors,
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
                    'last("motor") AS "motor", last("active_alarms") AS "active_alarms", '
                    'last("refill_reminder_at_ms") AS "next_refill", last("eri_at_ms") AS "eri_date" '
                    f'FROM "state" WHERE {DEVICE_FILTER} AND {STATE_WINDOW} GROUP BY "site", "model", "drug"',
                    result_format="table",
                )
            ],
            f"The pump's latest reported state (up to {STATE_LOOKBACK_DAYS} days before the end of the range: a "
            "pump reports its state only when it changes): what it infuses and how, its motor, the alarms it "
            "lists, the planned refill (its refill reminder) and its elective replacement date (reached, or "
            "estimated from the battery and the current flow). A refill date past, or an ERI within 90 days, "
            "needs a booking.",
            width=24,
            height=4,
            overrides=[by_name("next_refill", unit="dateTimeAsIso"), by_name("eri_date", unit="dateTimeAsIso")],
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
                (
                    "Reservoir (latest)",
                    "reservoir_ml",
                    "reservoir",
                    "mL",
                    "The volume the pump calculates it holds, from its latest telemetry in the range: it counts its "
                    "own strokes and cannot see a leak or an occlusion; compare with the residual measured at refill.",
                ),
                (
                    "Rate (latest)",
                    "current_rate_ml_per_day",
                    "rate",
                    "mL/day",
                    "The flow now, a running bolus included: 0 means the pump is not infusing (stall, stop, empty).",
                ),
                (
                    "Dose (latest)",
                    "dose_mg_per_day",
                    "dose",
                    "mg/day",
                    "The programmed dose now, concentration × rate: what the prescription says the patient gets.",
                ),
                (
                    "Battery (latest)",
                    "battery_percent",
                    "battery",
                    "percent",
                    f"The battery now; at {ERI_PERCENT:g} % the pump signals ERI and end of service follows in about "
                    "90 days.",
                ),
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
            f"Battery percentage. At {ERI_PERCENT:g} % the pump signals the elective replacement indicator (ERI): "
            "end of service follows in about 90 days, so plan the replacement surgery now; a steeper line than "
            "usual means more flow or more boluses, and an earlier ERI.",
            defaults={
                "unit": "percent",
                "thresholds": thresholds("red", (ERI_PERCENT, "green")),
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
                f'SHOW TAG VALUES FROM "telemetry" WITH KEY = "device" WHERE {SITE_FILTER} AND $timeFilter',
                refresh_on_time_change=True,
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
