"""The instructor's dashboard: the simulator's ground truth beside what the pump reports.

The only dashboard that reads the ``sim_truth`` measurement (the ``true_*`` fields): what really
is in the reservoir, what reaches the patient, what is lost to tissue, the catheter's true state.
No real pump, gateway or clinic can see any of it (issue 12: truth stays behind the glass), so it
is for instructors only, labelled so in its title and in every panel's, and provisioned into its
own Grafana folder (``dashboards/instructor/``, ``dashboards/provisioning/dashboards/
pumptwin-instructor.yaml``) whose permissions the operator restricts to instructors
(``dashboards/instructor/README.md``). It carries :data:`~twin.grafana.model.INSTRUCTOR_TAG`, not
the standard dashboards' tag, so none of them links to it.
"""

from __future__ import annotations

from typing import Final

from twin.grafana.model import INSTRUCTOR_TAG, Dashboard, Panel, Query, query_variable
from twin.grafana.panels import (
    DEVICE_FILTER,
    SITE_FILTER,
    TABLE_OPTIONS,
    TIMESERIES_OPTIONS,
    by_name,
    colored_cells,
    organize,
    site_variable,
    value_colors,
)

INSTRUCTOR_DASHBOARD_UID: Final = "pumptwin-instructor"

TRUTH_LABEL: Final = "simulator truth: not visible to a real clinic"
"""In the dashboard's title and in every panel's: whoever sees a figure of it knows what it is."""

CATHETER_COLORS: Final = {
    "patent": "green",
    "partially_occluded": "orange",
    "occluded": "red",
    "leaking": "red",
    "disconnected": "dark-red",
}


def _labelled(title: str) -> str:
    return f"{title} ({TRUTH_LABEL})"


def instructor() -> Dashboard:
    truth = f'FROM "sim_truth" WHERE {DEVICE_FILTER} AND $timeFilter GROUP BY time($__interval) fill(none)'
    reported = f'FROM "telemetry" WHERE {DEVICE_FILTER} AND $timeFilter GROUP BY time($__interval) fill(none)'
    panels = [
        Panel(
            _labelled("Every simulated pump, latest truth"),
            "table",
            [
                Query(
                    'SELECT last("true_catheter") AS "catheter", last("true_reservoir_ml") AS "true_reservoir_ml", '
                    'last("true_actual_dose_mg_per_day") AS "dose_reaching_patient_mg_per_day", '
                    'last("true_lost_ml_total") AS "lost_to_tissue_ml" '
                    f'FROM "sim_truth" WHERE {SITE_FILTER} AND $timeFilter GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            "For each simulated pump, its latest ground truth in the range: the catheter's true state, the volume "
            "really in the reservoir, the dose that reaches the intrathecal space and the drug lost to tissue since "
            "implant. A trainee must find these faults the way staff do (symptoms, the refill residual, the pump's "
            "alarms, an interrogation): never show this to one during a session.",
            width=24,
            height=7,
            defaults={"mappings": value_colors(CATHETER_COLORS)},
            overrides=[
                colored_cells("catheter"),
                by_name("true_reservoir_ml", unit="mL"),
                by_name("dose_reaching_patient_mg_per_day", unit="mg/day"),
                by_name("lost_to_tissue_ml", unit="mL"),
            ],
            options=TABLE_OPTIONS,
            transformations=[organize(hide=("Time",))],
        ),
        Panel(
            _labelled("Reservoir: the pump's figure and the true volume"),
            "timeseries",
            [
                Query(f'SELECT mean("reservoir_ml") AS "calculated by the pump" {reported}'),
                Query(f'SELECT mean("true_reservoir_ml") AS "true volume (simulator)" {truth}', ref_id="B"),
            ],
            "The volume the pump calculates (it counts its own strokes) and the volume really there: they part on "
            "a leak, an occlusion, a flow error or a pocket fill. At the next refill the measured residual tells "
            "staff the same, late.",
            defaults={"unit": "mL", "custom": {"lineWidth": 2}},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            _labelled("Dose: programmed and reaching the patient"),
            "timeseries",
            [
                Query(f'SELECT mean("dose_mg_per_day") AS "programmed" {reported}'),
                Query(
                    f'SELECT mean("true_actual_dose_mg_per_day") AS "reaching the patient (simulator)" {truth}',
                    ref_id="B",
                ),
            ],
            "The programmed dose and the dose that reaches the intrathecal space: lower on an occlusion, a leak or "
            "a disconnection; different after a refill with the wrong concentration. The patient feels it as "
            "returning pain or withdrawal.",
            defaults={"unit": "mg/day"},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            _labelled("Drug delivered to the patient and lost to tissue"),
            "timeseries",
            [
                Query(f'SELECT max("true_delivered_to_patient_ml_total") AS "to the patient" {truth}'),
                Query(f'SELECT max("true_lost_ml_total") AS "lost to tissue" {truth}', ref_id="B"),
            ],
            "Cumulative volumes since implant: what reached the intrathecal space, and what went into tissue "
            "instead (a catheter leak, a pocket fill at refill).",
            defaults={"unit": "mL"},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            _labelled("Concentration really in the reservoir"),
            "timeseries",
            [
                Query(f'SELECT mean("true_actual_concentration_mg_per_ml") AS "in the reservoir (simulator)" {truth}'),
                Query(
                    'SELECT last("concentration_mg_per_ml") AS "programmed" FROM "state" '
                    f"WHERE {DEVICE_FILTER} AND $timeFilter GROUP BY time($__interval) fill(previous)",
                    ref_id="B",
                ),
            ],
            "The concentration the pump is programmed with and the one really in its reservoir: they differ after "
            "a refill with the wrong drug or strength, or a mixture of old and new drug.",
            defaults={"unit": "mg/mL"},
            options=TIMESERIES_OPTIONS,
        ),
        Panel(
            _labelled("Catheter: true state, and the motor as reported"),
            "state-timeline",
            [
                Query(f'SELECT last("true_catheter") AS "catheter (simulator)" {truth}'),
                Query(f'SELECT last("motor") AS "motor (reported)" {reported}', ref_id="B"),
            ],
            "The catheter's true state (a real pump cannot see it) under the motor as the pump reports it: a "
            "running motor over an occluded or disconnected catheter is the fault trainees must find.",
            width=24,
            height=5,
            defaults={
                "mappings": value_colors(CATHETER_COLORS | {"running": "green", "stopped": "orange", "stalled": "red"})
            },
            options={"mergeValues": True, "showValue": "auto", "rowHeight": 0.8},
        ),
    ]
    return Dashboard(
        uid=INSTRUCTOR_DASHBOARD_UID,
        title=f"PumpTwin instructor: {TRUTH_LABEL}",
        description=(
            "Instructors only: the simulator's ground truth of simulated pumps (true reservoir, dose reaching the "
            "patient, lost volume, catheter state) beside what the pump reports. A real clinic never has it; keep "
            "this folder's permissions to instructors (dashboards/instructor/README.md)."
        ),
        panels=panels,
        variables=[
            site_variable(measurement="sim_truth"),
            query_variable(
                "device",
                "Device",
                f'SHOW TAG VALUES FROM "sim_truth" WITH KEY = "device" WHERE {SITE_FILTER} AND $timeFilter',
                refresh_on_time_change=True,
            ),
        ],
        tags=(INSTRUCTOR_TAG,),
    )
