"""The training session dashboard."""

from __future__ import annotations

from twin.grafana.model import Dashboard, Panel, Query, annotation, query_variable
from twin.grafana.panels import (
    PRIORITY_COLORS,
    SESSION_FILTER,
    SITE_FILTER,
    STAT_OPTIONS,
    TABLE_OPTIONS,
    TIMESERIES_OPTIONS,
    TRAINEE_FILTER,
    by_name,
    color_by_name,
    colored_cells,
    organize,
    sort_by,
    thresholds,
    value_colors,
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
                "session",
                "Session",
                'SHOW TAG VALUES FROM "training" WITH KEY = "session" WHERE $timeFilter',
                sort_descending=True,
                refresh_on_time_change=True,
            ),
            query_variable(
                "trainee",
                "Trainee",
                f'SHOW TAG VALUES FROM "training" WITH KEY = "trainee" WHERE {SESSION_FILTER} AND $timeFilter',
                multi=True,
                include_all=True,
                refresh_on_time_change=True,
            ),
            query_variable(
                "site",
                "Site",
                f'SHOW TAG VALUES FROM "training" WITH KEY = "site" WHERE {SESSION_FILTER} AND $timeFilter',
                multi=True,
                include_all=True,
                refresh_on_time_change=True,
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
