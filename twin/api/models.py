"""What the HTTP API answers, as pydantic response models (the OpenAPI document is made from them).

Times are ISO 8601 with a timezone. A time is on the twin's wall clock unless its name says
``device`` (the pump's own clock: simulation time for a simulated pump). Nothing here carries the
simulator's ground truth (what really reached the patient, the true catheter state): a real
clinic cannot see it, so no trainee, viewer, dashboard or integration may. The one exception is
:class:`SimulatorTruth`, served only to instructors, labelled as such.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.mirror.prediction import HORIZON

FORECAST_DAYS: Final = HORIZON.days
"""The forecast's horizon in days (:data:`twin.mirror.prediction.HORIZON`, three years)."""


class ApiView(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeviceSummary(ApiView):
    """A device as the fleet page lists it."""

    device_id: str
    site: str
    model: str | None
    simulated: bool | None
    presence: Literal["online", "offline", "unknown"]
    presence_reason: str | None
    drug: str | None
    concentration_mg_per_ml: float | None = None
    reservoir_ml: float | None = Field(description="latest reported (state or telemetry, whichever is newer)")
    reservoir_reported_at_device: datetime | None = Field(default=None, description="device time of that report")
    capacity_ml: float | None
    battery_percent: float | None
    infusing: bool | None
    active_alarms: int
    highest_priority: Literal["high", "medium", "low"] | None
    last_seen_at: datetime | None = Field(description="wall time the twin last heard from the device")
    device_time: datetime | None = Field(description="device time of the latest message")
    as_of: datetime | None = Field(default=None, description="wall time this summary was made (the twin's clock)")
    device_now: datetime | None = Field(
        default=None, description="what the device's clock reads at `as_of` (simulation time for simulated pumps)"
    )
    clock_rate: float = Field(
        default=1.0, description="device seconds per wall second of `device_now` (0: the simulation stands still)"
    )
    reported_device_time: datetime | None = Field(default=None, description="device time of the latest state")
    report_age_s: float | None = Field(
        default=None, description="seconds of device time since the latest state (simulated time for simulated pumps)"
    )
    message_age_s: float | None = Field(
        default=None, description="seconds of device time since the latest message of any kind"
    )
    implant_date: datetime | None = None
    implant_age_days: float | None = Field(default=None, description="days of device time since the implant")
    low_reservoir_at: datetime | None = Field(default=None, description="predicted (device time)")
    empty_at: datetime | None = Field(default=None, description="predicted (device time)")
    days_to_empty: float | None = Field(
        default=None, description="days of device time from `device_now` to `empty_at` (negative: past)"
    )
    refill_due_at: datetime | None = Field(default=None, description="the pump's refill reminder (device time)")
    eri_at: datetime | None = Field(default=None, description="elective replacement indicator, reached or predicted")
    eos_at: datetime | None = Field(default=None, description="end of service, scheduled or predicted")
    forecast_days: int = Field(
        default=FORECAST_DAYS, description="how far ahead dates are forecast: a date beyond is null, not unknown"
    )
    version: int


class Prediction(ApiView):
    """The twin's prediction from the latest report to now (device time)."""

    at: datetime
    basis: str
    basis_at: datetime
    report_age_s: float
    reservoir_ml: float
    delivered_ml_total: float
    battery_percent: float
    infusing: bool
    reservoir_low_now: bool
    low_reservoir_at: datetime | None
    empty_at: datetime | None
    eri_at: datetime | None
    eos_at: datetime | None


class Counters(ApiView):
    applied: int
    duplicates: int
    gaps: int
    stale: int
    late: int
    implausible: int
    refused: int


class AlarmView(ApiView):
    key: str
    device_id: str
    site: str
    code: str
    source: str
    priority: Literal["high", "medium", "low"]
    latching: bool
    message: str
    state: str
    condition_active: bool
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    silenced_until: datetime | None
    shelved_until: datetime | None
    shelved_by: str | None
    version: int
    unacknowledged_since: datetime | None


class TransitionView(ApiView):
    key: str
    device_id: str
    site: str
    code: str
    priority: Literal["high", "medium", "low"]
    event: str
    version: int
    from_state: str | None
    to_state: str
    actor: str
    at: datetime
    comment: str | None
    time_to_ack_s: float | None
    alarm: AlarmView | None = None


class CommandView(ApiView):
    command_id: str
    device_id: str
    site: str
    action: dict[str, Any]
    actor: str
    state: str
    created_at: datetime
    answered_at: datetime | None
    sends: int
    reason: str | None
    replay: bool
    details: dict[str, Any] | None
    latency_s: float | None


class ResponseView(ApiView):
    response_id: str
    key: str
    device_id: str
    site: str
    code: str
    priority: str
    alarm_version: int
    alarm_state: str
    action: str
    note: str | None
    actor: str
    role: str
    at: datetime
    command_id: str | None
    detail: dict[str, Any]


class RespondedView(ResponseView):
    command: CommandView | None = None


class TelemetrySample(ApiView):
    """One sample as the pump reported it (its calculated figures; no simulator truth)."""

    device_time: datetime
    reservoir_ml: float
    current_rate_ml_per_day: float
    dose_mg_per_day: float
    battery_percent: float
    infusing: bool


class PredictedDate(ApiView):
    """A date the twin predicts from the last read-out, and whether it has already passed (wall clock)."""

    at: datetime | None = Field(description="null: not within the pump model's horizon (3 years)")
    passed: bool


class InterrogationOutlook(ApiView):
    """A real pump now, as the twin predicts it from its last read-out."""

    at: datetime
    reservoir_ml: float
    battery_percent: float
    low_reservoir: PredictedDate
    empty: PredictedDate
    eri: PredictedDate
    eos: PredictedDate


class NextVisit(ApiView):
    """When the pump should next be read; ``overdue`` holds exactly while the ``interrogation_overdue``
    alert's condition does (the same rule)."""

    due_at: datetime
    basis: str = Field(description="planned refill, predicted low-reservoir date or drug's stability limit")
    overdue_from: datetime = Field(description="due_at plus the clinic's grace period")
    overdue: bool


class RefillCheck(ApiView):
    """One refill of a real pump, checked against the twin's prediction from the read-out before it."""

    refill_at: datetime
    basis_at: datetime = Field(description="the interrogation the prediction started from")
    interrogated_at: datetime = Field(description="the interrogation that reported this refill")
    program_residual_ml: float = Field(description="predicted from the previous read-out's program alone")
    patient_boluses: int = Field(description="accepted patient boluses the new read-out's log shows in between")
    patient_bolus_ml: float
    bolus_log_complete: bool = Field(description="the event log reaches back to the previous read-out")
    predicted_residual_ml: float = Field(description="program_residual_ml less the logged patient boluses")
    calculated_residual_ml: float = Field(description="the pump's own calculated residual")
    measured_residual_ml: float | None
    compared_with: Literal["twin_prediction", "pump_calculation"] = Field(
        description="pump_calculation when the bolus log does not reach back (the boluses counted are a lower bound)"
    )
    difference_ml: float | None = Field(description="measured minus what it was compared with")
    unexplained_ml: float = Field(description="predicted minus the pump's calculated residual")
    tolerance_ml: float
    exceeded: bool


class Interrogation(ApiView):
    """A real pump between visits (null for a simulated pump): the last read-out and its age (wall clock),
    the twin's prediction since, the next visit, and the refill checks of consecutive read-outs."""

    last_interrogation_at: datetime
    age_s: float
    reported_reservoir_ml: float = Field(description="calculated by the pump at the last interrogation")
    next_refill_at: datetime | None = Field(description="the pump's refill reminder")
    next_visit: NextVisit
    predicted: InterrogationOutlook | None = Field(description="null when the pump model cannot start from the state")
    last_refill_check: RefillCheck | None = Field(description="the check of the last refill, if the twin made one")
    refill_checks: list[RefillCheck] = Field(description="oldest first")


class DeviceDetail(ApiView):
    """One device: identity, reported state, latest sample, prediction, side by side with their times."""

    summary: DeviceSummary
    identity: dict[str, Any] | None
    reported: dict[str, Any] | None = Field(description="the latest state, as the pump reported it")
    reported_received_at: datetime | None = Field(description="wall time that state arrived")
    telemetry: dict[str, Any] | None = Field(description="the latest sample, as the pump reported it")
    predicted: Prediction | None
    device_now: datetime | None
    clock_rate: float = Field(description="device seconds per wall second of `device_now`, as in the summary")
    report_interval_s: float | None
    session: int | None
    last_seq: int | None
    counters: Counters
    alarms: list[AlarmView]
    commands: list[CommandView]
    interrogation: Interrogation | None = Field(
        default=None, description="real pumps: the last interrogation and the twin between visits"
    )


class SimulatorTruth(ApiView):
    """**Simulator truth**, for instructors and the debrief only: what a real clinic can never see."""

    label: Literal["simulator truth: not visible to a real clinic"] = "simulator truth: not visible to a real clinic"
    device_id: str
    site: str
    device_time: datetime | None
    true_reservoir_ml: float | None
    delivered_to_patient_ml_total: float | None
    lost_ml_total: float | None
    actual_concentration_mg_per_ml: float | None
    actual_dose_mg_per_day: float | None
    catheter: str | None
