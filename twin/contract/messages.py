"""Every message of the PumpTwin MQTT contract, as pydantic v2 models.

These models are the single source of the JSON Schemas and of ``docs/asyncapi.yaml``.

Device messages (birth, state, telemetry, alarm, status, command result) share an envelope:

* ``contract_version`` — the contract's version; a consumer refuses a version it does not know.
* ``device_id`` — must equal the device id in the topic (a mismatch is refused).
* ``device_time`` — the device's clock, timezone-aware (simulated devices: simulation time).
* ``session`` — the birth/death session number (as Sparkplug B's ``bdSeq``): it grows by one
  every time the device connects and publishes a birth; the last will carries the number of the
  session it ends, so a late will from an old session can never mark a newer session offline.
* ``seq`` — per-device sequence number within a session: the birth is ``0``, every later
  birth/state/telemetry/alarm/command-result message adds one. ``(session, seq)`` orders a
  device's messages; a repeat is a duplicate, a jump is a gap, and the twin answers a gap with a
  ``rebirth`` command. Status messages do not consume numbers: they carry the birth's ``seq``.

Commands flow the other way (twin -> device) and carry a ``command_id`` that makes them
idempotent: a device answers a repeated id with the stored result and does not apply it again.

Units are in field names (``_ml``, ``_ml_per_day``, ``_mg_per_ml``, ``_mg_per_day``, ``_percent``,
``_s``, ``_minutes``). Drug amounts are milligrams even for drugs usually written in micrograms
(baclofen 2,000 µg/mL is ``concentration_mg_per_ml: 2.0``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from twin.contract.alarms import AlarmCode, DeviceAlarmClass, Priority
from twin.contract.topics import ID_MAX_LENGTH

CONTRACT_VERSION: Final = "1.0"
"""Version every message carries. Consumers refuse any other value (reason ``unknown_contract_version``)."""

MAX_PAYLOAD_BYTES: Final = 64 * 1024
"""Largest payload a consumer accepts. The largest legitimate message (a state with a 24-step
schedule and every alarm active) is under 4 KiB; the margin leaves room for growth, not for abuse."""

MIN_RATE_ML_PER_DAY: Final = 0.048
"""Smallest programmable flow (SynchroMed II, [V-S26] DOMAIN-RESEARCH §1.2)."""

MINIMUM_RATE_MODE_ML_PER_DAY: Final = 0.006
"""Flow of the minimum-rate *mode*: the state a pump enters for storage and after a low-battery
reset, where the flow falls to "a very low level" ([V-S1]; the 0.006 mL/day figure is [U],
DOMAIN-RESEARCH §1.3 and §2). Distinct from, and far below, the minimum programmable flow."""

MAX_EVENT_LOG_ENTRIES: Final = 32
"""Most event-log entries a state carries: the latest ones, newest last. [A] a read-out's recent
history (a year of monthly refills with their programming), small enough for every state."""

MAX_RATE_ML_PER_DAY: Final = 24.0
"""Largest programmable flow (about 24 mL/day; unconfirmed, DOMAIN-RESEARCH §1.2)."""

MAX_FLEX_STEPS: Final = 24
"""Most steps in a flexible daily schedule (unconfirmed upper bound, DOMAIN-RESEARCH §2)."""

DeviceId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"),
]
"""A site or device id, safe as one MQTT topic level (see ``twin.contract.topics``)."""

EARLIEST_TIME: Final = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_TIME: Final = datetime(2200, 1, 1, tzinfo=UTC)
"""Every time in a message lies in this window. Implantable programmable pumps date from the 1990s;
2200 leaves room for any simulation run ahead of today while keeping the twin's date arithmetic
(forecasts run three years ahead) far from Python's year 9999 and InfluxDB's 2262 limits. A
device clock outside it (a reset to year 0, a forged year 9999) is refused with reason ``schema``
instead of breaking the forecasts of the whole fleet."""


Time = Annotated[AwareDatetime, Field(ge=EARLIEST_TIME, lt=LATEST_TIME)]
"""A timezone-aware time inside :data:`EARLIEST_TIME` .. :data:`LATEST_TIME` (pydantic-core's own
bounds: checked in the same pass as the parse, where a Python validator cost a call per time of
every message, 2.4 % of the ingest in a profile)."""

ShortText = Annotated[str, StringConstraints(max_length=200)]
Volume = Annotated[float, Field(ge=0.0, le=1000.0)]
TotalVolume = Annotated[float, Field(ge=0.0, le=1_000_000.0)]
"""A running total over a pump's life (years at up to 24 mL/day)."""


class WireModel(BaseModel):
    """Base of every wire model: unknown fields, NaN and infinities are refused; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=2000)


# --------------------------------------------------------------------------------------------- enums


class Drug(StrEnum):
    """Intrathecal drugs the contract knows (DOMAIN.md). Doses are mg even where µg is customary."""

    MORPHINE = "morphine"
    HYDROMORPHONE = "hydromorphone"
    FENTANYL = "fentanyl"
    ZICONOTIDE = "ziconotide"
    BUPIVACAINE = "bupivacaine"
    CLONIDINE = "clonidine"
    BACLOFEN = "baclofen"


class InfusionMode(StrEnum):
    CONTINUOUS = "continuous"  # one rate
    FLEXIBLE = "flexible"  # daily schedule of steps
    MINIMUM_RATE = "minimum_rate"  # keeps the catheter patent
    STOPPED = "stopped"  # delivery off


class MotorState(StrEnum):
    RUNNING = "running"
    STALLED = "stalled"
    STOPPED = "stopped"  # not commanded to turn (stopped program, end of service, memory error, empty)


class BatteryStatus(StrEnum):
    OK = "ok"
    ERI = "eri"  # elective replacement indicator: end of service in about 90 days
    EOS = "eos"  # end of service: the pump no longer infuses


class StopReason(StrEnum):
    """Why a pump is not infusing."""

    PROGRAMMED = "programmed"
    MOTOR_STALL = "motor_stall"
    MEMORY_ERROR = "memory_error"
    END_OF_SERVICE = "end_of_service"


class CatheterState(StrEnum):
    """Ground truth of the catheter; only simulated devices know it (a real pump cannot see it)."""

    PATENT = "patent"
    PARTIALLY_OCCLUDED = "partially_occluded"
    OCCLUDED = "occluded"
    LEAKING = "leaking"
    DISCONNECTED = "disconnected"


class AlarmEventType(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class StatusState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class StatusReason(StrEnum):
    CONNECTED = "connected"  # published by the device after its birth
    WILL = "will"  # the broker's last will: the connection was lost
    SHUTDOWN = "shutdown"  # the device disconnected on purpose


class CommandStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"


# ------------------------------------------------------------------------------------- value models


class FlexStep(WireModel):
    """One step of a flexible schedule: from ``start_minute`` after local midnight until the next step."""

    start_minute: int = Field(ge=0, le=1439, description="minutes after midnight (device time) the step starts")
    rate_ml_per_day: float = Field(ge=MIN_RATE_ML_PER_DAY, le=MAX_RATE_ML_PER_DAY, description="flow, mL/day")


class PatientBolusSettings(WireModel):
    """Patient-activated bolus (handheld therapy manager) limits, set by the clinician."""

    volume_ml: float = Field(gt=0.0, le=1.0, description="volume of one activation, mL")
    duration_minutes: float = Field(gt=0.0, le=600.0, description="time over which one activation is delivered")
    lockout_minutes: float = Field(ge=0.0, le=1440.0, description="minimum time between accepted activations")
    max_per_day: int = Field(ge=1, le=24, description="most accepted activations in a rolling 24 h")


class Program(WireModel):
    """The infusion program. Continuous needs ``rate_ml_per_day``; flexible needs ``steps``."""

    mode: InfusionMode
    rate_ml_per_day: float | None = Field(
        default=None, ge=MIN_RATE_ML_PER_DAY, le=MAX_RATE_ML_PER_DAY, description="continuous flow, mL/day"
    )
    steps: list[FlexStep] = Field(default_factory=list, max_length=MAX_FLEX_STEPS)
    patient_bolus: PatientBolusSettings | None = None

    @model_validator(mode="after")
    def _mode_fields(self) -> Self:
        if self.mode is InfusionMode.CONTINUOUS and self.rate_ml_per_day is None:
            raise ValueError("a continuous program needs rate_ml_per_day")
        if self.mode is InfusionMode.FLEXIBLE:
            if not self.steps:
                raise ValueError("a flexible program needs at least one step")
            starts = [s.start_minute for s in self.steps]
            if starts != sorted(set(starts)):
                raise ValueError("flexible steps must be in increasing start_minute order, without repeats")
        if self.mode is not InfusionMode.FLEXIBLE and self.steps:
            raise ValueError(f"steps are only allowed in flexible mode, not {self.mode.value}")
        if self.mode is not InfusionMode.CONTINUOUS and self.rate_ml_per_day is not None:
            raise ValueError(f"rate_ml_per_day is only allowed in continuous mode, not {self.mode.value}")
        return self


class ActiveBolus(WireModel):
    """A bolus being delivered on top of the base program."""

    source: Literal["clinician", "patient"]
    volume_ml: float = Field(gt=0.0, le=20.0, description="whole bolus volume, mL")
    started_at: Time
    ends_at: Time


class RefillRecord(WireModel):
    """The last refill: where the pump's belief and the measured truth meet."""

    at: Time
    expected_residual_ml: Volume = Field(description="pump's calculated reservoir volume just before the refill")
    measured_residual_ml: Volume | None = Field(
        description="volume withdrawn and measured by the clinician; null if not measured"
    )
    volume_added_ml: Volume = Field(description="volume the clinician entered as filled")
    drug: Drug
    concentration_mg_per_ml: float = Field(gt=0.0, le=100.0)


class PatientBolusCounters(WireModel):
    accepted_last_24h: int = Field(ge=0)
    refused_total: int = Field(ge=0)
    last_accepted_at: Time | None = None


class DeviceLogKind(StrEnum):
    """What the pump's own event log records (DOMAIN-RESEARCH §6: refills, programming, boluses,
    motor stall and recovery, resets). Only what the device itself knows: a pocket fill or a
    catheter fault never appears here."""

    REFILL = "refill"
    REPROGRAM = "reprogram"
    CLINICIAN_BOLUS = "clinician_bolus"
    PATIENT_BOLUS = "patient_bolus"  # an accepted patient activation
    PATIENT_BOLUS_REFUSED = "patient_bolus_refused"
    MOTOR_STALL = "motor_stall"
    MOTOR_STALL_RECOVERY = "motor_stall_recovery"
    TELEMETRY_MODE_HOLD = "telemetry_mode_hold"  # MRI during an alarm: infusion waits for an interrogation
    LOW_BATTERY_RESET = "low_battery_reset"
    MEMORY_ERROR = "memory_error"
    BATTERY_ERI = "battery_eri"
    BATTERY_EOS = "battery_eos"
    INTERROGATION = "interrogation"


class DeviceLogEntry(WireModel):
    """One entry of the pump's event log, as an interrogation reads it. Programming entries
    (refill, reprogram) carry the programmed concentration and mean daily dose before and after,
    as the programmer's Finish screen compares them ([V-S4])."""

    at: Time
    kind: DeviceLogKind
    detail: ShortText = ""
    volume_ml: Volume | None = Field(default=None, description="refill or bolus volume, mL")
    expected_residual_ml: Volume | None = Field(default=None, description="refill: the pump's calculated residual")
    measured_residual_ml: Volume | None = Field(default=None, description="refill: the residual withdrawn, as read")
    concentration_before_mg_per_ml: float | None = Field(default=None, gt=0.0, le=100.0)
    concentration_after_mg_per_ml: float | None = Field(default=None, gt=0.0, le=100.0)
    dose_before_mg_per_day: float | None = Field(default=None, ge=0.0, description="programmed mean daily dose before")
    dose_after_mg_per_day: float | None = Field(default=None, ge=0.0, description="programmed mean daily dose after")


class SimTruth(WireModel):
    """What only a simulator knows: the truth behind the pump's calculated figures."""

    reservoir_ml: Volume = Field(description="true volume in the reservoir")
    delivered_to_patient_ml_total: TotalVolume = Field(description="drug that reached the intrathecal space, mL")
    lost_ml_total: TotalVolume = Field(description="drug lost to tissue: catheter leak or pocket fill, mL")
    actual_concentration_mg_per_ml: float = Field(ge=0.0, le=100.0)
    actual_dose_mg_per_day: float = Field(ge=0.0, description="dose now reaching the patient, mg/day")
    catheter: CatheterState
    delivered_to_patient_mg_total: float | None = Field(
        default=None,
        ge=0.0,
        description="drug that reached the intrathecal space, mg (through the catheter's dead space)",
    )


# ---------------------------------------------------------------------------------- device messages


class DeviceMessage(WireModel):
    """Envelope fields every device-to-twin message carries."""

    contract_version: Literal["1.0"] = CONTRACT_VERSION
    device_id: DeviceId
    device_time: Time = Field(description="the device's clock; simulation time for simulated devices")
    session: int = Field(ge=0, description="birth/death session number; grows by one at every birth")
    seq: int = Field(ge=0, description="per-device sequence number in the session; the birth is 0")


class Birth(DeviceMessage):
    """Identity of a device, published (retained) when it connects. Followed by a full ``state``."""

    kind: Literal["birth"] = "birth"
    simulated: bool = Field(description="true for a simulated pump; false for a real pump read by a gateway")
    model: ShortText = Field(description="pump model, e.g. 'SynchroMed II 8637-20'")
    serial: ShortText
    firmware: ShortText
    reservoir_capacity_ml: float = Field(gt=0.0, le=100.0, description="usable reservoir capacity, mL")
    implant_date: Time
    catheter_volume_ml: float = Field(ge=0.0, le=2.0, description="volume of the implanted catheter, mL")
    audible_alarms: bool = Field(default=True, description="false for pumps without audible alarms (Prometra)")


class State(DeviceMessage):
    """The full reported state, published (retained) on every change."""

    kind: Literal["state"] = "state"
    reservoir_ml: Volume = Field(description="calculated (not measured) reservoir volume, mL")
    low_reservoir_threshold_ml: Volume = Field(description="low-reservoir alarm threshold, mL")
    unusable_residual_ml: Volume = Field(description="volume left when the pump reports empty, mL")
    drug: Drug
    concentration_mg_per_ml: float = Field(gt=0.0, le=100.0, description="programmed concentration, mg/mL")
    program: Program
    current_rate_ml_per_day: float = Field(ge=0.0, description="flow now, bolus included, mL/day")
    infusing: bool
    stop_reason: StopReason | None = None
    bolus: ActiveBolus | None = None
    motor: MotorState
    battery_percent: float = Field(ge=0.0, le=100.0)
    battery: BatteryStatus
    eri_at: Time | None = Field(default=None, description="when the ERI was reached")
    eos_at: Time | None = Field(default=None, description="end of service: reached or scheduled")
    active_alarms: list[AlarmCode] = Field(default_factory=list, max_length=len(AlarmCode))
    delivered_ml_total: TotalVolume = Field(description="volume the pump believes it has delivered since implant")
    last_refill: RefillRecord | None = None
    refill_reminder_at: Time | None = Field(default=None, description="alarm clock for the next refill")
    patient_bolus: PatientBolusCounters | None = None
    program_changed_at: Time | None = None
    event_log: list[DeviceLogEntry] = Field(
        default_factory=list,
        max_length=MAX_EVENT_LOG_ENTRIES,
        description="the latest entries of the pump's event log, oldest first (what an interrogation shows)",
    )


class Telemetry(DeviceMessage):
    """A periodic sample, taken at its publish time."""

    kind: Literal["telemetry"] = "telemetry"
    reservoir_ml: Volume = Field(description="calculated reservoir volume, mL")
    current_rate_ml_per_day: float = Field(ge=0.0, description="flow now, bolus included, mL/day")
    dose_mg_per_day: float = Field(ge=0.0, description="programmed dose rate now: concentration × flow, mg/day")
    delivered_ml_total: TotalVolume = Field(description="calculated delivered volume since implant, mL")
    battery_percent: float = Field(ge=0.0, le=100.0)
    motor: MotorState
    infusing: bool
    sim_truth: SimTruth | None = Field(default=None, description="simulated devices only")


class AlarmEvent(DeviceMessage):
    """A device alarm was raised or cleared. ``alarm_id`` ties a clear to its raise."""

    kind: Literal["alarm"] = "alarm"
    alarm_id: DeviceId = Field(description="unique per raise; the clear repeats it")
    code: AlarmCode
    event: AlarmEventType
    device_class: DeviceAlarmClass
    priority: Priority
    raised_at: Time
    message: ShortText


class DeviceStatus(DeviceMessage):
    """Online/offline, retained. The offline message with reason ``will`` is the MQTT last will."""

    kind: Literal["status"] = "status"
    state: StatusState
    reason: StatusReason


class CommandResult(DeviceMessage):
    """The device's answer to one command."""

    kind: Literal["command_result"] = "command_result"
    command_id: DeviceId
    status: CommandStatus
    reason: ShortText | None = Field(default=None, description="why it was rejected")
    replay: bool = Field(default=False, description="true when the command id was seen before: not applied again")
    details: dict[Annotated[str, StringConstraints(max_length=64)], float | int | str | bool | None] = Field(
        default_factory=dict, max_length=32, description="command-specific outcome, e.g. measured_residual_ml"
    )


class SimClock(WireModel):
    """The clock of a simulation at one site (retained, QoS 1, published by the simulator on every
    start, pause, resume and change of speed, and every few seconds of wall time while it runs).

    A twin runs every time threshold of a simulated pump (silence, forecasts) on this clock, so a
    pump simulated at 600x is silent after the same *simulated* time as in a headless run, and a
    paused simulation makes nothing look silent. ``speed`` is simulated seconds per wall second
    (0 while paused; ``null`` when running as fast as possible, where only ``sim_time`` counts).
    """

    contract_version: Literal["1.0"] = CONTRACT_VERSION
    kind: Literal["clock"] = "clock"
    site: DeviceId
    sim_time: Time = Field(description="the simulation's time when the message was published")
    speed: float | None = Field(ge=0.0, le=1e9, description="simulated seconds per wall second; 0 when paused")
    seq: int = Field(ge=0, description="grows by one with every clock message of this simulation run")
    run: ShortText = Field(description="identifies the simulation run; a new run restarts seq")


# ----------------------------------------------------------------------------------------- commands


class RefillAction(WireModel):
    """Refill: the residual is withdrawn (and measured), then ``volume_ml`` of drug is filled."""

    type: Literal["refill"] = "refill"
    volume_ml: float = Field(gt=0.0, le=40.0, description="volume filled, mL")
    drug: Drug
    concentration_mg_per_ml: float = Field(gt=0.0, le=100.0, description="concentration entered, mg/mL")
    measured_residual_ml: Volume | None = Field(
        default=None, description="residual withdrawn, as measured; simulated pumps measure it themselves"
    )
    low_reservoir_threshold_ml: Volume | None = None
    refill_reminder_at: Time | None = Field(default=None, description="next refill date (alarm clock)")


class ReprogramAction(WireModel):
    type: Literal["reprogram"] = "reprogram"
    program: Program
    low_reservoir_threshold_ml: Volume | None = None
    concentration_mg_per_ml: float | None = Field(default=None, gt=0.0, le=100.0)


class ClinicianBolusAction(WireModel):
    type: Literal["clinician_bolus"] = "clinician_bolus"
    volume_ml: float = Field(gt=0.0, le=5.0)
    duration_minutes: float = Field(gt=0.0, le=1440.0)


class PatientBolusAction(WireModel):
    """A patient's activation of the handheld therapy manager; refused in lockout or over the daily limit."""

    type: Literal["patient_bolus"] = "patient_bolus"


class InterrogateAction(WireModel):
    """A clinician programmer session reads the pump. The device answers with its full state (event
    log included) and logs the session; a pump held in telemetry mode by an MRI scan during an alarm
    resumes infusion only now ([V-S14])."""

    type: Literal["interrogate"] = "interrogate"


class RebirthAction(WireModel):
    """Ask the device to publish birth and full state again (sent by the twin when it sees a gap)."""

    type: Literal["rebirth"] = "rebirth"


class CatheterOcclusionFault(WireModel):
    """Part of the flow cannot leave the pump (kink, tip mass). The pump does not notice."""

    fault: Literal["catheter_occlusion"] = "catheter_occlusion"
    fraction: float = Field(gt=0.0, le=1.0, description="share of the flow blocked; 1 is a full occlusion")


class CatheterLeakFault(WireModel):
    """Part of the flow goes to tissue instead of the CSF (leak, fracture; 1 is a disconnection)."""

    fault: Literal["catheter_leak"] = "catheter_leak"
    fraction: float = Field(gt=0.0, le=1.0)


class MotorStallFault(WireModel):
    fault: Literal["motor_stall"] = "motor_stall"
    cause: Literal["wear", "mri", "particle", "corrosion"] = "wear"
    recover_after_s: float | None = Field(default=None, ge=0.0, description="null: the stall is permanent")


class MemoryErrorFault(WireModel):
    fault: Literal["memory_error"] = "memory_error"


class LowBatteryResetFault(WireModel):
    """Premature battery failure: settings reset, minimum rate, critical alarm."""

    fault: Literal["low_battery_reset"] = "low_battery_reset"


class BatteryDepletionFault(WireModel):
    """Battery jumps to ERI now (premature ERI); end of service follows after ``eos_after_days``."""

    fault: Literal["battery_depletion"] = "battery_depletion"
    eos_after_days: float = Field(default=90.0, ge=0.0, le=365.0)


class PocketFillFault(WireModel):
    """Armed: at the next refill this share of the filled volume goes into the pocket, not the reservoir."""

    fault: Literal["pocket_fill"] = "pocket_fill"
    fraction: float = Field(gt=0.0, le=1.0)


class WrongConcentrationFault(WireModel):
    """Armed: the next refill's syringe holds this concentration, whatever is entered."""

    fault: Literal["wrong_concentration"] = "wrong_concentration"
    actual_concentration_mg_per_ml: float = Field(gt=0.0, le=100.0)


class IncompleteWithdrawalFault(WireModel):
    """Armed: at the next refill only ``withdrawn_fraction`` of the residual is withdrawn (and
    measured); the rest stays in the reservoir and mixes with the new drug (DOMAIN-RESEARCH §5)."""

    fault: Literal["incomplete_withdrawal"] = "incomplete_withdrawal"
    withdrawn_fraction: float = Field(ge=0.0, lt=1.0)


class CatheterAccessPortInjectionFault(WireModel):
    """Armed: the next refill's needle is in the catheter access (side) port, not the reservoir
    septum. Nothing can be withdrawn, and the whole filled volume goes down the catheter into the
    CSF at once: a massive overdose ([V-S33, S23]). The pump believes it was refilled."""

    fault: Literal["catheter_access_port_injection"] = "catheter_access_port_injection"


class MriValveOpeningFault(WireModel):
    """A valve-gated pump (Prometra) in an MRI scanner without being emptied first: the field opens
    both valves and the reservoir empties into the patient during the scan ([V-S18, S19]). The pump's
    calculated volume does not change. Refused by pumps that are not valve-gated."""

    fault: Literal["mri_valve_opening"] = "mri_valve_opening"


class FlowErrorFault(WireModel):
    """The pump delivers this share more (positive) or less (negative) than programmed."""

    fault: Literal["flow_error"] = "flow_error"
    bias: float = Field(ge=-0.9, le=2.0)


class TelemetryLossFault(WireModel):
    """The device stops publishing (and answering) for ``duration_s``; it keeps infusing."""

    fault: Literal["telemetry_loss"] = "telemetry_loss"
    duration_s: float = Field(gt=0.0, le=30 * 86400.0)


FaultModel = (
    CatheterOcclusionFault
    | CatheterLeakFault
    | MotorStallFault
    | MemoryErrorFault
    | LowBatteryResetFault
    | BatteryDepletionFault
    | PocketFillFault
    | WrongConcentrationFault
    | FlowErrorFault
    | TelemetryLossFault
    | IncompleteWithdrawalFault
    | CatheterAccessPortInjectionFault
    | MriValveOpeningFault
)
Fault = Annotated[FaultModel, Field(discriminator="fault")]

FaultKind = Literal[
    "catheter_occlusion",
    "catheter_leak",
    "motor_stall",
    "memory_error",
    "low_battery_reset",
    "battery_depletion",
    "pocket_fill",
    "wrong_concentration",
    "flow_error",
    "telemetry_loss",
    "incomplete_withdrawal",
    "catheter_access_port_injection",
    "mri_valve_opening",
]


class InjectFaultAction(WireModel):
    """Simulated devices only. Real devices (``simulated: false``) refuse it, and the twin never sends it."""

    type: Literal["inject_fault"] = "inject_fault"
    fault: Fault


class ClearFaultAction(WireModel):
    """Simulated devices only: remove one fault, or every fault (``all``), returning to a safe baseline."""

    type: Literal["clear_fault"] = "clear_fault"
    fault: FaultKind | Literal["all"]


Action = Annotated[
    RefillAction
    | ReprogramAction
    | ClinicianBolusAction
    | PatientBolusAction
    | InterrogateAction
    | RebirthAction
    | InjectFaultAction
    | ClearFaultAction,
    Field(discriminator="type"),
]

SIMULATION_ONLY_ACTIONS: Final = frozenset({"inject_fault", "clear_fault"})
"""Action types a real device must never receive."""


class Command(WireModel):
    """A request to a device. QoS 1, not retained; ``command_id`` makes a repeat harmless."""

    contract_version: Literal["1.0"] = CONTRACT_VERSION
    kind: Literal["command"] = "command"
    command_id: DeviceId = Field(description="unique id; a repeat is answered with replay=true and not applied")
    device_id: DeviceId
    issued_at: Time
    expires_at: Time | None = Field(default=None, description="the device rejects it after this time")
    actor: ShortText = Field(description="who asked: a user name, 'twin', or 'scenario:<name>'")
    action: Action


AnyDeviceMessage = Annotated[
    Birth | State | Telemetry | AlarmEvent | DeviceStatus | CommandResult,
    Field(discriminator="kind"),
]


def utc_iso(moment: datetime) -> str:
    """A datetime as the contract writes it (ISO 8601, UTC, ``Z``)."""
    return moment.isoformat().replace("+00:00", "Z")
