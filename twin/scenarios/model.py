"""The scenario file format, as pydantic v2 models (the single source of ``docs/scenario.schema.json``).

A scenario is a small, reproducible story told to a simulated fleet: which pumps (``fleet``), what
happens to them and when (``timeline``), what the twin is expected to raise in answer (``expect``)
and when to stop early (``abort_when``). Example::

    name: catheter-kink
    title: Catheter kink
    description: A kink blocks a baclofen catheter; the pump notices nothing, the patient does.
    learning_objectives: [Suspect the catheter when the pump is normal and the patient is not]
    seed: 7
    duration: 3d
    fleet:
      kind: inline
      pumps:
        - {device_id: itb-01, site: rehab, drug: baclofen, concentration_mg_per_ml: 2.0,
           program: {mode: continuous, rate_ml_per_day: 0.3}, reservoir_ml: 18}
    timeline:
      - {at: 2h, id: kink, step: inject_fault, devices: {ids: [itb-01]},
         fault: {fault: catheter_occlusion, fraction: 1.0}}
      - {at: 1d, id: itch, step: patient_symptom, devices: {ids: [itb-01]},
         symptom: Itching without a rash, severity: moderate}
    expect:
      - {kind: alarm, code: patient_report, devices: {ids: [itb-01]}, after: itch, within: 1m,
         responses: [interrogate, xray, side_port_aspiration, dye_study]}

Conventions:

* **Durations** (``at``, ``duration``, ``within``, ``longer_than``...) are text like ``90s``, ``15m``,
  ``2h``, ``3d``, ``1d12h``, or a plain number of seconds. They are *simulation* time, counted from
  the start of the run; held here as :class:`~datetime.timedelta`.
* **Device selections** (``devices``) pick pumps by ``ids``, ``sites``, ``drugs`` and ``index``
  (0-based position in the fleet sorted by device id); every criterion given must match (a list
  matches any of its values). ``all: true`` picks every pump. A selection that names an unknown
  pump, site or index, or matches nothing, is an error (:mod:`twin.scenarios.timeline`).
* **Alarm codes** in expectations are the pump's own codes (:class:`~twin.contract.alarms.AlarmCode`)
  and the twin's derived alerts (:class:`~twin.mirror.alerts.TwinAlertCode`), see :class:`AlarmPointCode`.

Validation happens in two layers, both reporting a location (a path of field names and list
indexes, which :mod:`twin.scenarios.scenario_file` turns into a YAML line): these models check the
shape (unknown fields, types, unknown faults, ranges); :func:`twin.scenarios.timeline.expand` checks
the meaning (offsets beyond the duration, unknown step references, selections that match nothing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from twin.contract.alarms import AlarmCode, Priority
from twin.contract.messages import DeviceId, Drug, Fault, FaultKind, Program
from twin.mirror.alerts import TwinAlertCode
from twin.scenarios.hazards import Hazard
from twin.sim.fleet import PumpSpec

SCHEMA_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "scenario.schema.json"
"""Where the generated JSON Schema lives (kept in sync by a test; ``pumptwin scenario schema``)."""

MAX_DURATION: Final = timedelta(days=3 * 365)
"""Longest scenario: a battery's life to ERI is the slowest story worth telling (years)."""

MAX_GENERATED_PUMPS: Final = 500
"""Largest generated fleet: a scenario is a lesson, not a benchmark (``pumptwin sim`` is for load)."""

# ---------------------------------------------------------------------------------- durations

_DURATION_UNITS: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
DURATION_PATTERN: Final = r"^\s*(\d+(\.\d+)?[dhms])+\s*$"
"""A duration as text: one or more number-unit pairs, e.g. ``90s``, ``15m``, ``2h``, ``3d``, ``1d12h``."""


def duration_seconds(value: object) -> float:
    """Seconds in a duration: text like ``2h``/``1d12h`` or a number of seconds. Raises ``ValueError``
    for anything else, and for negative or non-finite numbers."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration like 90s, 15m, 2h, 3d or 1d12h")
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 2h, 3d or 1d12h")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be zero or positive and finite, not {value!r}")
    return seconds


def _to_timedelta(value: object) -> timedelta:
    return timedelta(seconds=duration_seconds(value))


def duration_text(value: timedelta) -> str:
    """A duration as a scenario file writes it, exactly: ``1d12h``, ``90s``, ``0.5s``, ``0s``."""
    left = value.total_seconds()
    if left < 0:
        raise ValueError("a duration is never negative")
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count = int(left // size)
        if count:
            parts.append(f"{count}{unit}")
            left -= count * size
    if left or not parts:
        parts.append(format(left, ".6f").rstrip("0").rstrip(".") + "s")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(duration_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "simulation time: text like 90s, 15m, 2h, 3d, 1d12h, or seconds",
        }
    ),
]


def format_duration(seconds: float) -> str:
    """Seconds as the shortest text a person reads easily: ``1d 2h``, ``45m``, ``30s``, ``0s``."""
    sign = "-" if seconds < 0 else ""
    left = round(abs(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return sign + (" ".join(parts[:2]) if parts else "0s")


# ------------------------------------------------------------------------------------- vocabulary


class AlarmPointCode(StrEnum):
    """Every alarm code an expectation may name: the pump's own (``AlarmCode``) and the twin's
    derived alerts (``TwinAlertCode``). A test keeps it equal to their union."""

    RESERVOIR_LOW = "reservoir_low"
    RESERVOIR_EMPTY = "reservoir_empty"
    MOTOR_STALL = "motor_stall"
    MEMORY_ERROR = "memory_error"
    BATTERY_ERI = "battery_eri"
    BATTERY_EOS = "battery_eos"
    LOW_BATTERY_RESET = "low_battery_reset"
    REFILL_REMINDER = "refill_reminder"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_SILENT = "device_silent"
    INTERROGATION_OVERDUE = "interrogation_overdue"
    REFILL_DISCREPANCY = "refill_discrepancy"
    EMPTY_BEFORE_REFILL = "empty_before_refill"
    CONCENTRATION_CHANGED = "concentration_changed"
    DOSE_ESCALATION = "dose_escalation"
    INFUSION_STOPPED = "infusion_stopped"
    RESERVOIR_LOW_PREDICTED = "reservoir_low_predicted"
    RESERVOIR_EMPTY_PREDICTED = "reservoir_empty_predicted"
    BATTERY_ERI_PREDICTED = "battery_eri_predicted"
    BATTERY_EOS_PREDICTED = "battery_eos_predicted"
    PATIENT_REPORT = "patient_report"
    IDENTITY_CONFLICT = "identity_conflict"


DEVICE_CODES: Final = frozenset(code.value for code in AlarmCode)
TWIN_CODES: Final = frozenset(code.value for code in TwinAlertCode)


class StaffResponse(StrEnum):
    """What staff are expected to do about an alarm (DOMAIN.md, DOMAIN-RESEARCH §4.4 and §8).

    A fixed vocabulary so that a training score can compare what a trainee chose with what the
    scenario expects. :data:`STAFF_RESPONSES` says what each means."""

    INTERROGATE = "interrogate"
    REINTERROGATE = "reinterrogate"
    REFILL = "refill"
    SCHEDULE_REFILL = "schedule_refill"
    CHECK_NEEDLE_PLACEMENT = "check_needle_placement"
    ROTOR_STUDY = "rotor_study"
    SIDE_PORT_ASPIRATION = "side_port_aspiration"
    DYE_STUDY = "dye_study"
    XRAY = "xray"
    IMAGING = "imaging"
    CATHETER_REVISION = "catheter_revision"
    REPLACE_PUMP = "replace_pump"
    SCHEDULE_REPLACEMENT = "schedule_replacement"
    CONTACT_MANUFACTURER = "contact_manufacturer"
    BRIDGE_THERAPY = "bridge_therapy"
    BRIDGE_BOLUS = "bridge_bolus"
    REPLACE_DRUG = "replace_drug"
    EMPTY_PUMP = "empty_pump"
    WITHDRAWAL_MANAGEMENT = "withdrawal_management"
    NALOXONE = "naloxone"
    AIRWAY_SUPPORT = "airway_support"
    OBSERVE_PATIENT = "observe_patient"
    ASPIRATE_POCKET = "aspirate_pocket"
    VERIFY_PRESCRIPTION = "verify_prescription"
    REPROGRAM = "reprogram"
    REDUCE_RATE = "reduce_rate"
    STOP_INFUSION = "stop_infusion"
    ESCALATE_PHYSICIAN = "escalate_physician"
    CHECK_CONNECTIVITY = "check_connectivity"
    TRIAGE_BY_PRIORITY = "triage_by_priority"
    FIND_COMMON_CAUSE = "find_common_cause"


STAFF_RESPONSES: Final[dict[StaffResponse, str]] = {
    StaffResponse.INTERROGATE: "read the pump with the clinician programmer: alarms, event log, drug, rate, reservoir",
    StaffResponse.REINTERROGATE: "interrogate again later (a stall recovery may only show at a second read-out)",
    StaffResponse.REFILL: "refill the reservoir now",
    StaffResponse.SCHEDULE_REFILL: "book a refill before the predicted empty date",
    StaffResponse.CHECK_NEEDLE_PLACEMENT: "confirm the needle is in the reservoir septum (pocket-fill risk)",
    StaffResponse.ROTOR_STUDY: "fluoroscopy before and after a small bolus: does the rotor turn?",
    StaffResponse.SIDE_PORT_ASPIRATION: "aspirate CSF through the catheter access port",
    StaffResponse.DYE_STUDY: "contrast through the side port: leak, blockage or free flow at the tip",
    StaffResponse.XRAY: "plain radiographs of the catheter path (most catheter problems show)",
    StaffResponse.IMAGING: "MRI with contrast or CT myelogram at the catheter tip",
    StaffResponse.CATHETER_REVISION: "surgical revision of the catheter",
    StaffResponse.REPLACE_PUMP: "urgent pump replacement",
    StaffResponse.SCHEDULE_REPLACEMENT: "plan replacement surgery (within about 90 days of ERI)",
    StaffResponse.CONTACT_MANUFACTURER: "report to and consult the manufacturer",
    StaffResponse.BRIDGE_THERAPY: "oral or alternative drug until intrathecal delivery is restored",
    StaffResponse.BRIDGE_BOLUS: "a bolus of the catheter's volume to re-prime it (after side-port access or a new drug)",
    StaffResponse.REPLACE_DRUG: "empty the reservoir and refill with freshly prepared drug (a compounding error)",
    StaffResponse.EMPTY_PUMP: "withdraw the whole reservoir (a Prometra before MRI; a drug that must not reach the patient)",
    StaffResponse.WITHDRAWAL_MANAGEMENT: "assess and treat withdrawal (baclofen: emergency protocol)",
    StaffResponse.NALOXONE: "opioid reversal",
    StaffResponse.AIRWAY_SUPPORT: "airway and breathing support",
    StaffResponse.OBSERVE_PATIENT: "observe the patient for over- or under-dose",
    StaffResponse.ASPIRATE_POCKET: "aspirate drug from the pump pocket",
    StaffResponse.VERIFY_PRESCRIPTION: "check the prescription against the syringe label and the programmed concentration",
    StaffResponse.REPROGRAM: "correct the pump's program",
    StaffResponse.REDUCE_RATE: "reduce the infusion rate",
    StaffResponse.STOP_INFUSION: "stop the infusion (program the pump to stop or to minimum rate)",
    StaffResponse.ESCALATE_PHYSICIAN: "call the responsible physician",
    StaffResponse.CHECK_CONNECTIVITY: "check the gateway or network that carries the pumps' reports",
    StaffResponse.TRIAGE_BY_PRIORITY: "in a flood, deal with high-priority alarms first",
    StaffResponse.FIND_COMMON_CAUSE: "in a flood, look for the one cause behind many alarms",
}


class Severity(StrEnum):
    """How bad a patient-reported symptom is."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"
    LIFE_THREATENING = "life_threatening"


SYMPTOM_PRIORITY: Final[dict[Severity, Priority]] = {
    Severity.MILD: Priority.LOW,
    Severity.MODERATE: Priority.MEDIUM,
    Severity.SEVERE: Priority.HIGH,
    Severity.LIFE_THREATENING: Priority.HIGH,
}
"""Priority of the ``patient_report`` alert a symptom becomes once the clinic records it. [A] by the
urgency of the response (IEC 60601-1-8): a severe symptom needs someone now."""

StepKind = Literal["inject_fault", "clear_fault", "patient_symptom", "refill", "reprogram", "bolus", "interrogate"]

ScenarioName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
StepId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=300)]

START: Final = "start"
"""The reference every ``after`` defaults to: the start of the run (a step may not take this id)."""


class ScenarioModel(BaseModel):
    """Base of every scenario model: unknown fields, NaN and infinities are refused; immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -------------------------------------------------------------------------------------- selection


class DeviceSelection(ScenarioModel):
    """Which pumps: every criterion given must match; a list matches any of its values."""

    ids: list[DeviceId] | None = Field(default=None, min_length=1, description="device ids")
    sites: list[DeviceId] | None = Field(default=None, min_length=1, description="site ids")
    drugs: list[Drug] | None = Field(default=None, min_length=1)
    index: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, min_length=1, description="0-based positions in the fleet sorted by device id"
    )
    all: bool = Field(default=False, description="every pump of the fleet (alone: no other criterion)")

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        criteria = [self.ids, self.sites, self.drugs, self.index]
        given = [c for c in criteria if c is not None]
        if self.all and given:
            raise ValueError("all: true selects every pump; give it alone, without ids, sites, drugs or index")
        if not self.all and not given:
            raise ValueError("a selection needs ids, sites, drugs or index (or all: true)")
        return self


# ------------------------------------------------------------------------------------------ fleet


class PumpChanges(ScenarioModel):
    """Settings an override changes on generated pumps (the rest of :class:`~twin.sim.fleet.PumpSpec`)."""

    site: DeviceId | None = None
    model: str | None = None
    reservoir_capacity_ml: float | None = Field(default=None, gt=0, le=100)
    audible_alarms: bool | None = None
    drug: Drug | None = None
    concentration_mg_per_ml: float | None = Field(default=None, gt=0, le=100)
    program: Program | None = None
    reservoir_ml: float | None = Field(default=None, ge=0, le=100)
    low_reservoir_threshold_ml: float | None = Field(default=None, ge=0, le=20)
    battery_percent: float | None = Field(default=None, gt=0, le=100)


class PumpOverride(ScenarioModel):
    """Change the selected generated pumps before the run (e.g. a reservoir that is nearly empty)."""

    devices: DeviceSelection
    changes: PumpChanges


class GeneratedFleet(ScenarioModel):
    """A realistic fleet from a seed (:func:`twin.sim.fleet.generate_fleet`), then overrides in order."""

    kind: Literal["generated"]
    pumps: int = Field(ge=1, le=MAX_GENERATED_PUMPS)
    seed: int | None = Field(default=None, description="fleet seed; default: the scenario's seed")
    sites: list[DeviceId] | None = Field(default=None, min_length=1, description="site ids, pumps dealt round-robin")
    overrides: list[PumpOverride] = Field(default_factory=list)


class InlineFleet(ScenarioModel):
    """Pumps written out one by one, as in a fleet file (``pumptwin sim --fleet``)."""

    kind: Literal["inline"]
    pumps: list[PumpSpec] = Field(min_length=1, max_length=MAX_GENERATED_PUMPS)


Fleet = Annotated[GeneratedFleet | InlineFleet, Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------- steps


class StepBase(ScenarioModel):
    at: Duration = Field(description="when, after the start of the run")
    id: StepId | None = Field(default=None, description="name for expectations' `after` (not 'start')")
    devices: DeviceSelection
    note: ShortText | None = Field(default=None, description="for the trainer: what this step stands for")


class InjectFaultStep(StepBase):
    """A fault happens to the selected pumps (sent by the twin as ``inject_fault``; real pumps refuse)."""

    step: Literal["inject_fault"]
    fault: Fault


class ClearFaultStep(StepBase):
    """A fault goes away (``all``: every fault, the safe baseline)."""

    step: Literal["clear_fault"]
    fault: FaultKind | Literal["all"]


class PatientSymptomStep(StepBase):
    """The patient with the selected pump reports a symptom. Recorded in the run as a clinical event
    and shown to trainees; the pump knows nothing of it."""

    step: Literal["patient_symptom"]
    symptom: Text
    severity: Severity
    responses: list[StaffResponse] = Field(default_factory=list, description="what staff should do about it")


class RefillStep(StepBase):
    """A refill with the given volume. ``drug`` and ``concentration_mg_per_ml`` (what is *entered*)
    default to the pump's from the fleet. Bedside errors for this refill: ``pocket_fill_fraction``
    (that share of the volume goes into the pocket); ``syringe_concentration_mg_per_ml`` (the syringe
    really holds this, whatever is entered); ``residual_withdrawn_fraction`` (only that share of the
    residual is withdrawn, the rest stays); ``into_catheter_access_port`` (the needle is in the side
    port: the whole volume goes down the catheter)."""

    step: Literal["refill"]
    volume_ml: float = Field(gt=0, le=40)
    drug: Drug | None = None
    concentration_mg_per_ml: float | None = Field(default=None, gt=0, le=100)
    pocket_fill_fraction: float | None = Field(default=None, gt=0, le=1)
    syringe_concentration_mg_per_ml: float | None = Field(default=None, gt=0, le=100)
    residual_withdrawn_fraction: float | None = Field(default=None, ge=0, lt=1)
    into_catheter_access_port: bool = False
    low_reservoir_threshold_ml: float | None = Field(default=None, ge=0, le=20)
    refill_reminder_after: Duration | None = Field(default=None, description="refill alarm clock, after the refill")


class ReprogramStep(StepBase):
    step: Literal["reprogram"]
    program: Program
    concentration_mg_per_ml: float | None = Field(default=None, gt=0, le=100)
    low_reservoir_threshold_ml: float | None = Field(default=None, ge=0, le=20)


class BolusStep(StepBase):
    """A clinician bolus (``volume_ml`` over ``duration_minutes``) or a patient's activation of the
    handheld therapy manager (``source: patient``: the pump's programmed bolus, lockout applies)."""

    step: Literal["bolus"]
    source: Literal["clinician", "patient"] = "clinician"
    volume_ml: float | None = Field(default=None, gt=0, le=5)
    duration_minutes: float | None = Field(default=None, gt=0, le=1440)

    @model_validator(mode="after")
    def _source_fields(self) -> Self:
        if self.source == "clinician" and (self.volume_ml is None or self.duration_minutes is None):
            raise ValueError("a clinician bolus needs volume_ml and duration_minutes")
        if self.source == "patient" and (self.volume_ml is not None or self.duration_minutes is not None):
            raise ValueError("a patient bolus uses the pump's programmed bolus: no volume_ml or duration_minutes")
        return self


class InterrogateStep(StepBase):
    """A clinician interrogates the selected pumps with the programmer (a visit, a post-MRI check)."""

    step: Literal["interrogate"]


Step = Annotated[
    InjectFaultStep | ClearFaultStep | PatientSymptomStep | RefillStep | ReprogramStep | BolusStep | InterrogateStep,
    Field(discriminator="step"),
]


# ---------------------------------------------------------------------------------- expectations


class AlarmExpectation(ScenarioModel):
    """Every selected pump gets alarm ``code`` (``event: clear``: sees it end) within ``within`` of
    ``after`` (a step id or ``start``; without ``within``: by the end of the run). ``responses``:
    what staff should do about it (for training scores)."""

    kind: Literal["alarm"]
    code: AlarmPointCode
    event: Literal["raise", "clear"] = "raise"
    devices: DeviceSelection
    after: StepId = START
    within: Duration | None = None
    responses: list[StaffResponse] = Field(default_factory=list)
    note: ShortText | None = None


class NoAlarmExpectation(ScenarioModel):
    """No selected pump gets alarm ``code`` (or sees it end, ``event: clear``) in the window from
    ``after`` for ``within`` (default: to the end of the run)."""

    kind: Literal["no_alarm"]
    code: AlarmPointCode
    event: Literal["raise", "clear"] = "raise"
    devices: DeviceSelection
    after: StepId = START
    within: Duration | None = None
    note: ShortText | None = None


class AlarmFloodExpectation(ScenarioModel):
    """An ISA-18.2 alarm flood (more than 10 annunciations within 10 minutes) starts at ``site``
    within ``within`` of ``after``. Counted on simulation time, over every alarm of the site."""

    kind: Literal["alarm_flood"]
    site: DeviceId
    after: StepId = START
    within: Duration | None = None
    responses: list[StaffResponse] = Field(default_factory=list)
    note: ShortText | None = None


Expectation = Annotated[
    AlarmExpectation | NoAlarmExpectation | AlarmFloodExpectation,
    Field(discriminator="kind"),
]


# -------------------------------------------------------------------------------- abort conditions


class UnacknowledgedAlarmAbort(ScenarioModel):
    """Abort when an alarm of ``priority`` (or higher) on a selected pump asks for acknowledgement
    for longer than ``longer_than`` (simulation time; at speed 1, staff time)."""

    kind: Literal["unacknowledged_alarm"]
    priority: Priority = Priority.HIGH
    longer_than: Duration
    devices: DeviceSelection | None = Field(default=None, description="default: every pump of the run")


class NoDeliveryAbort(ScenarioModel):
    """Abort when no drug has reached a selected patient for longer than ``longer_than`` (the
    simulator's truth, sampled at every telemetry report)."""

    kind: Literal["no_delivery"]
    longer_than: Duration
    devices: DeviceSelection | None = Field(default=None, description="default: every pump of the run")


AbortCondition = Annotated[UnacknowledgedAlarmAbort | NoDeliveryAbort, Field(discriminator="kind")]


# -------------------------------------------------------------------------------------- scenario


class Scenario(ScenarioModel):
    """One scenario file. See the module docstring."""

    name: ScenarioName = Field(description="machine name; the catalogue's file is <name>.yaml")
    title: ShortText
    description: Text
    learning_objectives: list[ShortText] = Field(min_length=1)
    hazards: list[Hazard] = Field(
        default_factory=list,
        description="the hazards of docs/hazards.md this scenario trains (every catalogue scenario names one or more)",
    )
    seed: int = Field(default=1, description="seed of the fleet, the flow errors and the clinic")
    start: AwareDatetime | None = Field(
        default=None, description="simulation start of a headless run; default 2026-01-01T00:00Z"
    )
    speed: float = Field(default=60.0, gt=0, le=1_000_000, description="default speed of a live run, x real time")
    duration: Duration
    telemetry_every: Duration = Field(
        default=timedelta(minutes=10),
        description="simulated time between telemetry samples (headless runs)",
        json_schema_extra={"default": "10m"},  # pydantic writes a timedelta default as ISO 8601, which files do not use
    )
    clinic_refills: bool = Field(default=False, description="let the simulated clinic refill after alarms")
    fleet: Fleet
    timeline: list[Step] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)
    abort_when: list[AbortCondition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _durations(self) -> Self:
        if self.duration <= timedelta(0) or self.duration > MAX_DURATION:
            raise ValueError(f"duration must be positive and at most {MAX_DURATION.days} days")
        if self.telemetry_every < timedelta(seconds=1):
            raise ValueError("telemetry_every must be at least 1s")
        return self


# ----------------------------------------------------------------------------------------- problems


Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ScenarioProblem:
    """One thing wrong with a scenario: where (field names and list indexes) and what."""

    loc: Location
    message: str

    @property
    def path(self) -> str:
        """``timeline[2].fault.fraction``."""
        return format_location(self.loc)


class ScenarioInvalid(ValueError):
    """A scenario that cannot be run; ``problems`` says where and why (at least one)."""

    def __init__(self, problems: list[ScenarioProblem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


def format_location(loc: Location) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(scenario)"


# ----------------------------------------------------------------------------------------- schema


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (draft 2020-12, as pydantic writes it)."""
    schema = Scenario.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pumptwin.example/schemas/scenario.schema.json",
        **schema,
    }


def render_schema() -> str:
    """The schema as ``docs/scenario.schema.json`` holds it (stable key order, trailing newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
