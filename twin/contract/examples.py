"""One valid example of every contract message: used in ``docs/asyncapi.yaml`` and as test fixtures.

Fixed values (no clock, no randomness), so the generated document is reproducible byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode
from twin.contract.messages import (
    AlarmEvent,
    AlarmEventType,
    BatteryStatus,
    Birth,
    CatheterState,
    Command,
    CommandResult,
    CommandStatus,
    DeviceStatus,
    Drug,
    FlexStep,
    InfusionMode,
    MotorState,
    PatientBolusCounters,
    PatientBolusSettings,
    Program,
    RefillAction,
    RefillRecord,
    SimClock,
    SimTruth,
    State,
    StatusReason,
    StatusState,
    Telemetry,
    WireModel,
)

EXAMPLE_SITE = "st-olaf-clinic"
EXAMPLE_DEVICE = "pump-0001"
EXAMPLE_TIME = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
_SESSION = 3

EXAMPLE_PROGRAM = Program(
    mode=InfusionMode.FLEXIBLE,
    steps=[
        FlexStep(start_minute=0, rate_ml_per_day=0.25),
        FlexStep(start_minute=7 * 60, rate_ml_per_day=0.4),
        FlexStep(start_minute=22 * 60, rate_ml_per_day=0.25),
    ],
    patient_bolus=PatientBolusSettings(volume_ml=0.02, duration_minutes=10, lockout_minutes=120, max_per_day=4),
)


def birth() -> Birth:
    return Birth(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=0,
        simulated=True,
        model="SynchroMed II 8637-20",
        serial="NGP123456H",
        firmware="sim-1.0",
        reservoir_capacity_ml=20.0,
        implant_date=datetime(2023, 5, 2, tzinfo=UTC),
        catheter_volume_ml=0.25,
    )


def state() -> State:
    return State(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=1,
        reservoir_ml=6.42,
        low_reservoir_threshold_ml=2.0,
        unusable_residual_ml=0.3,
        drug=Drug.BACLOFEN,
        concentration_mg_per_ml=2.0,
        program=EXAMPLE_PROGRAM,
        current_rate_ml_per_day=0.4,
        infusing=True,
        motor=MotorState.RUNNING,
        battery_percent=71.5,
        battery=BatteryStatus.OK,
        active_alarms=[],
        delivered_ml_total=301.7,
        last_refill=RefillRecord(
            at=EXAMPLE_TIME - timedelta(days=40),
            expected_residual_ml=3.1,
            measured_residual_ml=2.9,
            volume_added_ml=20.0,
            drug=Drug.BACLOFEN,
            concentration_mg_per_ml=2.0,
        ),
        refill_reminder_at=EXAMPLE_TIME + timedelta(days=14),
        patient_bolus=PatientBolusCounters(accepted_last_24h=1, refused_total=2, last_accepted_at=EXAMPLE_TIME),
        program_changed_at=EXAMPLE_TIME - timedelta(days=40),
    )


def telemetry() -> Telemetry:
    return Telemetry(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=2,
        reservoir_ml=6.42,
        current_rate_ml_per_day=0.4,
        dose_mg_per_day=0.8,
        delivered_ml_total=301.7,
        battery_percent=71.5,
        motor=MotorState.RUNNING,
        infusing=True,
        sim_truth=SimTruth(
            reservoir_ml=6.51,
            delivered_to_patient_ml_total=305.2,
            lost_ml_total=0.0,
            actual_concentration_mg_per_ml=2.0,
            actual_dose_mg_per_day=0.81,
            catheter=CatheterState.PATENT,
        ),
    )


def alarm() -> AlarmEvent:
    spec = ALARM_CATALOGUE[AlarmCode.RESERVOIR_LOW]
    return AlarmEvent(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=3,
        alarm_id="pump-0001-reservoir_low-7",
        code=spec.code,
        event=AlarmEventType.RAISED,
        device_class=spec.device_class,
        priority=spec.priority,
        raised_at=EXAMPLE_TIME,
        message="Low reservoir: 2.00 mL left",
    )


def status_online() -> DeviceStatus:
    return DeviceStatus(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=0,
        state=StatusState.ONLINE,
        reason=StatusReason.CONNECTED,
    )


def status_will() -> DeviceStatus:
    return DeviceStatus(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=0,
        state=StatusState.OFFLINE,
        reason=StatusReason.WILL,
    )


def command() -> Command:
    return Command(
        command_id="cmd-5f1c2a",
        device_id=EXAMPLE_DEVICE,
        issued_at=EXAMPLE_TIME,
        expires_at=EXAMPLE_TIME + timedelta(hours=1),
        actor="nurse.jones",
        action=RefillAction(volume_ml=20.0, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0),
    )


def command_result() -> CommandResult:
    return CommandResult(
        device_id=EXAMPLE_DEVICE,
        device_time=EXAMPLE_TIME,
        session=_SESSION,
        seq=4,
        command_id="cmd-5f1c2a",
        status=CommandStatus.APPLIED,
        details={"expected_residual_ml": 2.0, "measured_residual_ml": 2.1, "reservoir_ml": 20.0},
    )


def clock() -> SimClock:
    return SimClock(site=EXAMPLE_SITE, sim_time=EXAMPLE_TIME, speed=600.0, seq=12, run="run-7c21")


def all_examples() -> dict[str, WireModel]:
    """Name -> example, one per message type (two for status)."""
    return {
        "birth": birth(),
        "state": state(),
        "telemetry": telemetry(),
        "alarm": alarm(),
        "status_online": status_online(),
        "status_will": status_will(),
        "command": command(),
        "command_result": command_result(),
        "clock": clock(),
    }
