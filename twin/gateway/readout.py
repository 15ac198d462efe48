"""The interrogation read-out format: one telemetry session of one real pump, as pydantic v2 models.

A clinician programmer reads an implanted pump at each visit (every 1–3 months, DOMAIN.md "What a real
pump reports"); this is what it read, in a file the gateway publishes. The models are the single source
of ``docs/interrogation.schema.json`` (kept in sync by a test; ``pumptwin gateway schema``). Example
(YAML; JSON works the same)::

    format: pumptwin-interrogation/1
    site: st-olaf-clinic
    device_id: itb-0412
    interrogated_at: 2026-02-09T10:05:00+01:00
    pump: {manufacturer: Medtronic, model: SynchroMed II, model_number: 8637-20, serial: NGP204512H,
           implant_date: 2025-03-18, reservoir_capacity_ml: 20, drive: peristaltic_motor,
           audible_alarms: true, catheter_volume_ml: 0.25}
    drugs: [{drug: baclofen, concentration_mg_per_ml: 2.0}]
    program: {mode: continuous, rate_ml_per_day: 0.25}
    reservoir: {calculated_ml: 19.6, low_threshold_ml: 2.0, next_refill_at: 2026-04-06T10:00:00+02:00}
    battery: {status: ok, elective_replacement_date: 2031-01-15}
    alarms: {active: [], log: [{code: reservoir_low, raised_at: ..., cleared_at: ...}]}
    drive: {state: running}
    self_check: {status: passed}
    events:
      - {event: refill, at: 2026-02-09T09:50:00+01:00, calculated_residual_ml: 5.1,
         measured_residual_ml: 5.0, volume_added_ml: 15.0, drug: baclofen, concentration_mg_per_ml: 2.0}

Conventions (the contract's, :mod:`twin.contract.messages`): units in field names, drug amounts in mg
(baclofen 2,000 µg/mL is ``2.0``), times timezone-aware. ``interrogated_at`` is when the programmer read
the pump; everything in the file is the pump as it stood then, after whatever the visit did before it
(a refill, a reprogramming), and every event and alarm in the logs happened at or before it.

The reservoir volume is the pump's *calculated* figure (a pump has no level sensor, DOMAIN-RESEARCH §1.2);
the residual a clinician withdraws and measures at a refill is the only measured volume, and it is
written with the syringe's error, as measured.

Two layers of checks, both with a location (a path of field names and list indexes, which
:mod:`twin.gateway.readout_file` turns into a line of the file): these models check the shape (unknown
fields, types, ranges); :func:`check` checks the meaning (events after the interrogation or out of order,
a volume beyond the reservoir, an alarm open in the log but not active, a known model with the wrong
capacity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from twin.contract.alarms import AlarmCode
from twin.contract.messages import BatteryStatus, DeviceId, Drug, MotorState, Program, TotalVolume, Volume

FORMAT: Final = "pumptwin-interrogation/1"
"""The format name and version every read-out carries; another value is refused."""

SCHEMA_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "interrogation.schema.json"
"""Where the generated JSON Schema lives (kept in sync by a test; ``pumptwin gateway schema``)."""

MAX_EVENTS: Final = 5000
"""Most event-log entries in one read-out. A pump logs a refill every 1–3 months and at most a few patient
boluses a day; a year of a busy pump's log is about 2,000 entries."""

MAX_ALARM_LOG: Final = 500
"""Most alarm-log entries in one read-out (a pump's own alarm log keeps far fewer)."""

EARLIEST_INTERROGATION: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""No read-out is older (the SynchroMed II came later); the gateway numbers sessions in seconds from here."""

MAX_DRUGS: Final = 3
"""Most drugs in one admixture (e.g. an opioid, bupivacaine and clonidine; DOMAIN.md drug table)."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ReadoutModel(BaseModel):
    """Base of the read-out models: unknown fields, NaN and infinities are refused; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=2000)


class DriveKind(StrEnum):
    """How the pump meters its drug."""

    PERISTALTIC_MOTOR = "peristaltic_motor"  # SynchroMed II: a motor-driven peristaltic pump [V-S9, S10]
    VALVE_PAIR = "valve_pair"  # Prometra: an inlet and an outlet valve on a pressurised reservoir [V-S18, S19]


class SelfCheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # memory or CRC fault: the pump stops infusing (DOMAIN.md "memory error / pump fault")


# ------------------------------------------------------------------------------------------ parts


class PumpIdentity(ReadoutModel):
    """What the programmer reads about the pump itself, plus what the implant record adds."""

    manufacturer: ShortText
    model: ShortText = Field(description="pump model name, e.g. 'SynchroMed II' or 'Prometra II'")
    model_number: ShortText = Field(description="manufacturer's model or REF number, e.g. '8637-20', '13827'")
    serial: ShortText
    firmware: ShortText | None = Field(default=None, description="pump software version, when the programmer shows it")
    implant_date: date
    reservoir_capacity_ml: float = Field(gt=0.0, le=100.0, description="usable reservoir capacity, mL")
    drive: DriveKind
    audible_alarms: bool = Field(description="false for pumps without audible alarms (Prometra)")
    catheter_volume_ml: float = Field(
        ge=0.0, le=2.0, description="volume of the implanted catheter, mL (implant record: 0.0026 mL/cm × length)"
    )


class DrugEntry(ReadoutModel):
    drug: Drug
    concentration_mg_per_ml: float = Field(gt=0.0, le=100.0, description="programmed concentration, mg/mL")


class ReservoirReading(ReadoutModel):
    calculated_ml: Volume = Field(description="the pump's calculated (not measured) reservoir volume, mL")
    low_threshold_ml: Volume = Field(description="programmed low-reservoir alarm threshold, mL")
    unusable_residual_ml: Volume | None = Field(
        default=None, description="volume left when the pump reports empty, mL; default: a few tenths (0.3 mL)"
    )
    next_refill_at: AwareDatetime | None = Field(
        default=None, description="programmed refill date (the pump's alarm clock, or the PTC's next-refill date)"
    )
    delivered_since_implant_ml: TotalVolume | None = Field(
        default=None,
        description="the pump's delivered-volume counter, when the programmer shows it; without it the gateway "
        "publishes what the refill log accounts for (a lower bound)",
    )


class BatteryReading(ReadoutModel):
    status: BatteryStatus
    percent: float | None = Field(
        default=None, ge=0.0, le=100.0, description="remaining charge, when the programmer shows one"
    )
    elective_replacement_date: date | None = Field(
        default=None, description="the replacement (ERI) date the programmer projects from the battery and the program"
    )
    eri_reached_at: AwareDatetime | None = Field(default=None, description="when ERI was reached (status eri or eos)")
    end_of_service_at: AwareDatetime | None = Field(
        default=None, description="end of service, reached or scheduled (90 days after ERI)"
    )


class AlarmOccurrence(ReadoutModel):
    """One entry of the pump's alarm log: a raise, and its clear when it ended."""

    code: AlarmCode
    raised_at: AwareDatetime
    cleared_at: AwareDatetime | None = Field(default=None, description="null while the alarm is still active")


class AlarmReading(ReadoutModel):
    active: list[AlarmCode] = Field(default_factory=list, max_length=len(AlarmCode), description="alarm status now")
    log: list[AlarmOccurrence] = Field(default_factory=list, max_length=MAX_ALARM_LOG)


class DriveReading(ReadoutModel):
    state: MotorState = Field(
        description="motor (SynchroMed) or metering valves (Prometra: running while they cycle; no rotor to stall)"
    )


class SelfCheck(ReadoutModel):
    status: SelfCheckStatus
    detail: ShortText | None = None


# ------------------------------------------------------------------------------------- event log


class RefillEvent(ReadoutModel):
    """A refill: the residual withdrawn (and measured), then the new drug filled. Where the pump's belief
    (``calculated_residual_ml``) and the truth (``measured_residual_ml``) meet."""

    event: Literal["refill"] = "refill"
    at: AwareDatetime
    calculated_residual_ml: Volume = Field(description="the pump's calculated reservoir volume just before the refill")
    measured_residual_ml: Volume | None = Field(description="volume withdrawn and measured by syringe; null if not")
    volume_added_ml: float = Field(gt=0.0, le=100.0, description="volume filled, as entered in the programmer")
    drug: Drug
    concentration_mg_per_ml: float = Field(gt=0.0, le=100.0)


class ProgrammingChange(StrEnum):
    PROGRAM = "program"
    CONCENTRATION = "concentration"
    LOW_THRESHOLD = "low_threshold"
    REFILL_DATE = "refill_date"
    THERAPY_MANAGER = "therapy_manager"


class ProgrammingEvent(ReadoutModel):
    """A programming session changed the pump (the programmer's Finish screen, DOMAIN-RESEARCH §2)."""

    event: Literal["programming"] = "programming"
    at: AwareDatetime
    change: ProgrammingChange
    summary: ShortText = Field(description="what changed, old to new, as the programmer shows it")


class ClinicianBolusEvent(ReadoutModel):
    event: Literal["clinician_bolus"] = "clinician_bolus"
    at: AwareDatetime
    volume_ml: float = Field(gt=0.0, le=5.0)
    duration_minutes: float = Field(gt=0.0, le=1440.0)


class PatientBolusEvent(ReadoutModel):
    """An activation of the handheld therapy manager; refused activations (lockout, daily maximum) are logged too."""

    event: Literal["patient_bolus"] = "patient_bolus"
    at: AwareDatetime
    volume_ml: float = Field(gt=0.0, le=1.0)
    accepted: bool
    reason: ShortText | None = Field(default=None, description="why a refused activation was refused")


class MotorEvent(ReadoutModel):
    """A motor stall and its recovery are written to the event log [V-S11]."""

    event: Literal["motor_stall", "motor_stall_recovery"]
    at: AwareDatetime


Event = Annotated[
    RefillEvent | ProgrammingEvent | ClinicianBolusEvent | PatientBolusEvent | MotorEvent,
    Field(discriminator="event"),
]


# ------------------------------------------------------------------------------------ the read-out


class Interrogation(ReadoutModel):
    """One interrogation of one real pump. ``(device_id, interrogated_at)`` identifies it: the gateway derives
    every id it publishes from them, so publishing the same read-out twice changes nothing."""

    format: Literal["pumptwin-interrogation/1"] = Field(description="format name and version")
    site: DeviceId = Field(description="the clinic or hospital (a topic level); never a simulation site")
    device_id: DeviceId = Field(description="the twin's id of this pump (a topic level)")
    interrogated_at: AwareDatetime = Field(description="when the programmer read the pump (its clock)")
    programmer: ShortText | None = Field(default=None, description="the programmer and its software, for the record")
    pump: PumpIdentity
    drugs: list[DrugEntry] = Field(
        min_length=1, max_length=MAX_DRUGS, description="the drug(s) in the reservoir; the first is the one dosed"
    )
    program: Program = Field(description="mode, rates or schedule, and the therapy manager's bolus limits")
    reservoir: ReservoirReading
    battery: BatteryReading
    alarms: AlarmReading
    drive: DriveReading
    self_check: SelfCheck
    events: list[Event] = Field(default_factory=list, max_length=MAX_EVENTS, description="the event log, oldest first")

    @property
    def refills(self) -> list[RefillEvent]:
        return [e for e in self.events if isinstance(e, RefillEvent)]

    @property
    def last_refill(self) -> RefillEvent | None:
        refills = self.refills
        return refills[-1] if refills else None


# ------------------------------------------------------------------------------------ the catalogue


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a known model number fixes; a read-out that says otherwise is refused."""

    reservoir_capacity_ml: float
    drive: DriveKind
    audible_alarms: bool
    source: str


KNOWN_MODELS: Final[dict[str, ModelSpec]] = {
    "8637-20": ModelSpec(20.0, DriveKind.PERISTALTIC_MOTOR, True, "SynchroMed II 20 mL [V-S13]; alarms [V-S1, S11]"),
    "8637-40": ModelSpec(40.0, DriveKind.PERISTALTIC_MOTOR, True, "SynchroMed II 40 mL [V-S13]; alarms [V-S1, S11]"),
    "11827": ModelSpec(20.0, DriveKind.VALVE_PAIR, False, "Prometra 20 mL [V-S19]; no audible alarm [U] §10"),
    "13827": ModelSpec(20.0, DriveKind.VALVE_PAIR, False, "Prometra II 20 mL [V-S19]; no audible alarm [U] §10"),
    "16827": ModelSpec(40.0, DriveKind.VALVE_PAIR, False, "Prometra 40 mL [V-S19]; no audible alarm [U] §10"),
}
"""Model numbers whose capacity, drive and alarms are known (DOMAIN-RESEARCH §1.1). Other numbers are accepted
as they are written (a model the table does not know yet)."""


# ---------------------------------------------------------------------------------- meaning checks

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ReadoutProblem:
    """A mistake at ``loc`` (field names and list indexes from the top of the read-out)."""

    loc: Location
    message: str


def check(readout: Interrogation) -> list[ReadoutProblem]:
    """Everything wrong with the meaning of a well-shaped read-out (empty: it can be published)."""
    out: list[ReadoutProblem] = []
    pump = readout.pump
    at = readout.interrogated_at
    if at < EARLIEST_INTERROGATION:
        out.append(ReadoutProblem(("interrogated_at",), f"before {EARLIEST_INTERROGATION:%Y-%m-%d}: a clock not set?"))
    capacity = pump.reservoir_capacity_ml
    spec = KNOWN_MODELS.get(pump.model_number)
    if spec is not None:
        for field, want in (
            ("reservoir_capacity_ml", spec.reservoir_capacity_ml),
            ("drive", spec.drive),
            ("audible_alarms", spec.audible_alarms),
        ):
            got = getattr(pump, field)
            if got != want:
                out.append(
                    ReadoutProblem(
                        ("pump", field),
                        f"model {pump.model_number} has {field} {_shown(want)}, not {_shown(got)} ({spec.source})",
                    )
                )
    if pump.implant_date > at.date():
        out.append(ReadoutProblem(("pump", "implant_date"), "the implant date is after the interrogation"))
    if pump.drive is DriveKind.VALVE_PAIR and readout.drive.state is MotorState.STALLED:
        out.append(ReadoutProblem(("drive", "state"), "a valve-gated pump has no rotor that could stall"))

    reservoir = readout.reservoir
    for field in ("calculated_ml", "low_threshold_ml"):
        if getattr(reservoir, field) > capacity:
            out.append(ReadoutProblem(("reservoir", field), f"more than the reservoir's capacity ({capacity:g} mL)"))

    battery = readout.battery
    if battery.status is BatteryStatus.OK and battery.percent is None and battery.elective_replacement_date is None:
        out.append(ReadoutProblem(("battery", "percent"), "give the charge or the elective_replacement_date"))
    if battery.status is not BatteryStatus.OK and battery.eri_reached_at is None:
        out.append(ReadoutProblem(("battery", "eri_reached_at"), f"battery status {battery.status.value} needs it"))
    if battery.eri_reached_at is not None and battery.eri_reached_at > at:
        out.append(ReadoutProblem(("battery", "eri_reached_at"), "ERI reached after the interrogation"))
    if battery.status is BatteryStatus.EOS and battery.end_of_service_at is not None and battery.end_of_service_at > at:
        out.append(ReadoutProblem(("battery", "end_of_service_at"), "end of service reached after the interrogation"))

    drugs = {d.drug for d in readout.drugs}
    if len(drugs) != len(readout.drugs):
        out.append(ReadoutProblem(("drugs",), "a drug is listed twice"))

    alarms = readout.alarms
    if len(set(alarms.active)) != len(alarms.active):
        out.append(ReadoutProblem(("alarms", "active"), "an alarm is listed twice"))
    for i, occurrence in enumerate(alarms.log):
        where: Location = ("alarms", "log", i)
        if occurrence.raised_at > at:
            out.append(ReadoutProblem((*where, "raised_at"), "raised after the interrogation"))
        if occurrence.cleared_at is not None:
            if occurrence.cleared_at < occurrence.raised_at:
                out.append(ReadoutProblem((*where, "cleared_at"), "cleared before it was raised"))
            elif occurrence.cleared_at > at:
                out.append(ReadoutProblem((*where, "cleared_at"), "cleared after the interrogation"))
        elif occurrence.code not in alarms.active:
            out.append(
                ReadoutProblem(
                    (*where, "cleared_at"), f"{occurrence.code.value} is open in the log but not in alarms.active"
                )
            )
        if i and occurrence.raised_at < alarms.log[i - 1].raised_at:
            out.append(ReadoutProblem((*where, "raised_at"), "the alarm log must be in time order (oldest first)"))

    previous: datetime | None = None
    for i, event in enumerate(readout.events):
        where = ("events", i)
        if event.at > at:
            out.append(ReadoutProblem((*where, "at"), "after the interrogation"))
        if event.at.date() < pump.implant_date:
            out.append(ReadoutProblem((*where, "at"), "before the implant date"))
        if previous is not None and event.at < previous:
            out.append(ReadoutProblem((*where, "at"), "the event log must be in time order (oldest first)"))
        previous = event.at
        if isinstance(event, RefillEvent):
            for field in ("calculated_residual_ml", "measured_residual_ml", "volume_added_ml"):
                value = getattr(event, field)
                if value is not None and value > capacity:
                    out.append(ReadoutProblem((*where, field), f"more than the reservoir's capacity ({capacity:g} mL)"))
            if event.drug not in drugs:
                out.append(ReadoutProblem((*where, "drug"), f"{event.drug.value} is not among the read-out's drugs"))
        if isinstance(event, MotorEvent) and pump.drive is DriveKind.VALVE_PAIR:
            out.append(ReadoutProblem((*where, "event"), "a valve-gated pump has no motor to stall"))
    return out


def _shown(value: object) -> str:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ----------------------------------------------------------------------------------------- schema


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a read-out file (draft 2020-12, as pydantic writes it)."""
    schema = Interrogation.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pumptwin.example/schemas/interrogation.schema.json",
        **schema,
    }


def render_schema() -> str:
    """The schema as ``docs/interrogation.schema.json`` holds it (stable key order, trailing newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
