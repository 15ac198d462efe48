"""The SimPy fleet and the device layer, without any I/O."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.contract.alarms import AlarmCode
from twin.contract.codec import decode_device_message, encode
from twin.contract.messages import (
    AlarmEvent,
    AlarmEventType,
    Birth,
    ClearFaultAction,
    Command,
    CommandResult,
    CommandStatus,
    DeviceMessage,
    Drug,
    InfusionMode,
    InjectFaultAction,
    MotorStallFault,
    PatientBolusSettings,
    Program,
    RebirthAction,
    RefillAction,
    ReprogramAction,
    State,
    Telemetry,
    TelemetryLossFault,
)
from twin.contract.topics import TopicAddress
from twin.sim.clinic import ClinicPolicy
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import FleetFile, PumpSpec, generate_fleet
from twin.sim.simulation import FleetSimulation

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0


class Log:
    """A sink that keeps every message with its device and time."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Outgoing, float]] = []

    def __call__(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        self.entries.append((device.device_id, outgoing, t))

    def of(self, kind: type, device_id: str | None = None) -> list:
        return [o.message for d, o, _ in self.entries if isinstance(o.message, kind) and device_id in (None, d)]


def _sim(specs: list[PumpSpec], log: Log, **kwargs: object) -> FleetSimulation:
    sim = FleetSimulation(specs, epoch=EPOCH, seed=3, sink=log, **kwargs)  # type: ignore[arg-type]
    sim.open_sessions(1)
    return sim


def _spec(**changes: object) -> PumpSpec:
    base = {
        "device_id": "p1",
        "site": "s1",
        "drug": Drug.BACLOFEN,
        "concentration_mg_per_ml": 2.0,
        "program": Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=1.0),
        "reservoir_ml": 5.0,
        "battery_percent": 80.0,
    }
    return PumpSpec.model_validate(base | changes)


def _command(action: object, command_id: str = "c1", device_id: str = "p1", **kw: object) -> Command:
    return Command(
        command_id=command_id,
        device_id=device_id,
        issued_at=EPOCH,
        actor="test",
        action=action,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_every_message_is_valid_on_the_wire_and_numbered_in_order() -> None:
    log = Log()
    sim = _sim(generate_fleet(30, seed=5, start=EPOCH), log, telemetry_interval_s=3600, random_faults=True)
    sim.run(60 * DAY)
    last: dict[str, tuple[int, int]] = {}
    for device_id, outgoing, _ in log.entries:
        decoded = decode_device_message(
            TopicAddress(sim.sites[device_id], device_id, outgoing.channel), encode(outgoing.message)
        )
        assert decoded == outgoing.message
        assert isinstance(decoded, DeviceMessage)
        if outgoing.channel.value == "status":
            continue
        key = (decoded.session, decoded.seq)
        assert key > last.get(device_id, (-1, -1)), f"{device_id} seq went backwards"
        if device_id in last and last[device_id][0] == decoded.session:
            assert decoded.seq == last[device_id][1] + 1, "no gaps within a session"
        last[device_id] = key
    kinds = Counter(type(o.message).__name__ for _, o, _ in log.entries)
    assert kinds["Birth"] == 30
    assert kinds["Telemetry"] >= 30 * 24 * 59
    assert kinds["AlarmEvent"] > 0


def test_same_seed_gives_the_same_event_log() -> None:
    def run() -> list[bytes]:
        log = Log()
        sim = _sim(generate_fleet(25, seed=9, start=EPOCH), log, telemetry_interval_s=6 * 3600, random_faults=True)
        sim.run(120 * DAY)
        return [encode(o.message) for _, o, _ in log.entries]

    first, second = run(), run()
    assert first == second
    assert len(first) > 1000


def test_generated_fleet_is_realistic_and_reproducible() -> None:
    fleet = generate_fleet(200, seed=1, start=EPOCH)
    assert fleet == generate_fleet(200, seed=1, start=EPOCH)
    assert fleet != generate_fleet(200, seed=2, start=EPOCH)
    assert len({p.site for p in fleet}) == 8
    drugs = Counter(p.drug for p in fleet)
    assert drugs[Drug.BACLOFEN] > drugs[Drug.ZICONOTIDE]
    for p in fleet:
        assert 0.048 <= p.mean_rate_ml_per_day <= 1.6
        assert p.low_reservoir_threshold_ml < p.reservoir_ml <= p.reservoir_capacity_ml
        assert p.implant_date is not None
        assert p.implant_date <= EPOCH
    assert any(p.program.mode is InfusionMode.FLEXIBLE for p in fleet)
    assert any(p.program.patient_bolus is not None for p in fleet)
    assert any(not p.audible_alarms for p in fleet)
    FleetFile(pumps=fleet)  # a generated fleet is a valid fleet file


def test_the_clinic_refills_before_the_low_reservoir_alarm_and_sets_the_alarm_clock_after_the_appointment() -> None:
    log = Log()
    steady = ClinicPolicy(dose_adjustment_per_visit=0.0, missed_appointment_rate=0.0)
    sim = _sim([_spec(reservoir_ml=3.0)], log, clinic=steady)  # 1 mL/day: the threshold 18 days after a fill
    sim.run(60 * DAY)
    raised = [a.code for a in log.of(AlarmEvent) if a.event is AlarmEventType.RAISED]
    assert raised == [], "no low reservoir, no empty, no reminder: every refill came first"
    fills = [r for r in {s.last_refill for s in log.of(State)} if r is not None]
    fills.sort(key=lambda r: r.at)
    assert [round((b.at - a.at).total_seconds() / DAY, 3) for a, b in itertools.pairwise(fills)] == [11.0] * (
        len(fills) - 1
    )  # 18 days to the threshold less the 7-day margin
    assert (fills[0].at - EPOCH).total_seconds() / DAY == 0.5  # nearly empty at the start: the soonest slot
    state = log.of(State)[-1]
    assert state.refill_reminder_at is not None
    assert state.last_refill is not None
    assert (state.refill_reminder_at - state.last_refill.at).total_seconds() / DAY == pytest.approx(12.0)
    assert sim.refills_done == len(fills) >= 5
    assert sim.tally["refill"] + sim.tally["refill:discrepancy"] == sim.refills_done


def test_refills_count_every_allowed_patient_bolus_and_respect_the_drugs_stability() -> None:
    bolus = PatientBolusSettings(volume_ml=0.25, duration_minutes=10, lockout_minutes=240, max_per_day=4)
    with_boluses = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=1.0, patient_bolus=bolus)
    slow = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.05)
    specs = [
        _spec(device_id="pb", reservoir_ml=20.0, program=with_boluses, drug=Drug.MORPHINE, concentration_mg_per_ml=10),
        _spec(device_id="cl", reservoir_ml=20.0, program=slow, drug=Drug.CLONIDINE, concentration_mg_per_ml=0.5),
    ]
    sim = _sim(specs, Log())
    # worst case 1 + 4 x 0.25 = 2 mL/day: 18 mL to the threshold in 9 days, less the 7-day margin
    assert sim.patients["pb"].refill_at == pytest.approx(2 * DAY)
    # 0.05 mL/day would last a year; clonidine's stability caps it at 90 days
    assert sim.patients["cl"].refill_at == pytest.approx(90 * DAY)


def test_a_prometra_is_refilled_by_its_own_date_at_3_ml_and_never_sounds() -> None:
    log = Log()
    prometra = _spec(reservoir_ml=20.0, audible_alarms=False, valve_gated=True, model="Prometra II 13827")
    sim = _sim([prometra], log, clinic=ClinicPolicy(dose_adjustment_per_visit=0.0, missed_appointment_rate=0.0))
    assert sim.patients["p1"].refill_at == pytest.approx(17 * DAY)  # (20 - 3.0) mL at 1 mL/day, no margin
    sim.run(120 * DAY)
    assert not log.of(AlarmEvent)
    assert sim.refills_done >= 6
    assert all(s.reservoir_ml >= 3.0 - 1e-9 for s in log.of(State))


def test_only_a_missed_appointment_empties_a_reservoir() -> None:
    specs = [_spec(device_id=f"p{i}", reservoir_ml=20.0) for i in range(5)]
    kept = _sim(specs, Log(), clinic=ClinicPolicy(missed_appointment_rate=0.0))
    kept.run(400 * DAY)
    assert not [k for k in kept.tally if k.startswith("alarm:reservoir_empty") or "missed" in k]
    missed = _sim(specs, Log(), clinic=ClinicPolicy(missed_appointment_rate=0.7))
    missed.run(400 * DAY)
    empties = {k: v for k, v in missed.tally.items() if k.startswith("alarm:reservoir_empty")}
    assert list(empties) == ["alarm:reservoir_empty:after_missed_appointment"]
    assert missed.tally["appointment_missed:refill"] > 0


def test_a_pump_past_eri_is_replaced_within_the_window_unless_the_surgery_is_missed() -> None:
    near_eri = [_spec(device_id=f"p{i}", reservoir_ml=20.0, battery_percent=10.3) for i in range(4)]
    log = Log()
    sim = _sim(near_eri, log, clinic=ClinicPolicy(missed_appointment_rate=0.0))
    sim.run(200 * DAY)
    assert sim.tally["replacement:battery_eri"] == 4
    assert not [k for k in sim.tally if "battery_eos" in k]
    births = log.of(Birth)
    assert len({b.serial for b in births}) == 8  # a new pump with a new serial in each patient
    eri = {
        a.device_id: a.raised_at
        for a in log.of(AlarmEvent)
        if a.code is AlarmCode.BATTERY_ERI and a.event.value == "raised"
    }
    for device_id, patient in sim.patients.items():
        assert patient.pumps == 2
        replaced = EPOCH + timedelta(seconds=patient.pump_starts[1][0])
        assert timedelta(days=14) <= replaced - eri[device_id] <= timedelta(days=60)  # inside the 90-day window
    assert not [a for a in log.of(AlarmEvent) if a.code is AlarmCode.BATTERY_ERI and a.event.value == "raised"][4:]
    stays_missed = _sim(near_eri, Log(), clinic=ClinicPolicy(missed_appointment_rate=1.0))
    stays_missed.run(300 * DAY)
    assert stays_missed.tally["alarm:battery_eos:after_missed_replacement"] == 4
    assert not [k for k in stays_missed.tally if k.endswith("unexplained")]


def test_commands_apply_once_and_repeat_as_replay() -> None:
    log = Log()
    sim = _sim([_spec()], log, clinic_refills=False)
    sim.run(DAY)
    refill = _command(RefillAction(volume_ml=18.0, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0))
    sim.command("p1", refill)
    sim.command("p1", refill)
    results = log.of(CommandResult)
    assert [r.status for r in results] == [CommandStatus.APPLIED, CommandStatus.APPLIED]
    assert [r.replay for r in results] == [False, True]
    states = log.of(State)
    assert states[-1].reservoir_ml == 18.0
    assert sum(1 for s in states if s.last_refill is not None) == 1  # applied once


def test_expired_and_impossible_commands_are_rejected_with_a_reason() -> None:
    log = Log()
    sim = _sim([_spec()], log)
    sim.run(DAY)
    sim.command("p1", _command(RebirthAction(), "old", expires_at=EPOCH + timedelta(hours=1)))
    sim.command("p1", _command(RefillAction(volume_ml=40.0, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0), "big"))
    first, second = log.of(CommandResult)
    assert first.status is CommandStatus.REJECTED
    assert "expired" in (first.reason or "")
    assert second.status is CommandStatus.REJECTED
    assert "exceeds" in (second.reason or "")


def test_reprogram_and_rebirth() -> None:
    log = Log()
    sim = _sim([_spec()], log)
    sim.run(DAY)
    program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.25)
    sim.command("p1", _command(ReprogramAction(program=program), "r1"))
    assert log.of(State)[-1].program == program
    births_before = len(log.of(Birth))
    sim.command("p1", _command(RebirthAction(), "rb"))
    births = log.of(Birth)
    assert len(births) == births_before + 1
    assert births[-1].session == births[0].session
    assert births[-1].seq > births[0].seq  # a rebirth continues the session's numbering


def test_telemetry_loss_holds_messages_and_commands_until_the_radio_returns() -> None:
    log = Log()
    sim = _sim([_spec()], log, telemetry_interval_s=600)
    sim.run(DAY)
    sim.command("p1", _command(InjectFaultAction(fault=TelemetryLossFault(duration_s=6 * 3600)), "loss"))
    silenced_at = len(log.entries)
    sim.command("p1", _command(InjectFaultAction(fault=MotorStallFault()), "stall"))
    sim.run(DAY + 5 * 3600)
    assert len(log.entries) == silenced_at, "nothing is published while the radio is down"
    sim.run(DAY + 7 * 3600)
    after = [o.message for _, o, _ in log.entries[silenced_at:]]
    assert any(isinstance(m, CommandResult) and m.command_id == "stall" for m in after)
    assert any(isinstance(m, AlarmEvent) and m.code is AlarmCode.MOTOR_STALL for m in after)
    gap = [m for m in after if isinstance(m, Telemetry)]
    assert gap
    assert (gap[0].device_time - EPOCH).total_seconds() >= DAY + 6 * 3600 - 600
    sim.command("p1", _command(ClearFaultAction(fault="all"), "clear"))
    assert AlarmCode.MOTOR_STALL not in sim.devices["p1"].pump.alarms


@pytest.mark.parametrize("silent", [False, True])
def test_prometra_pumps_have_no_audible_alarms(silent: bool) -> None:
    log = Log()
    sim = _sim([_spec(audible_alarms=not silent, reservoir_ml=2.5)], log, clinic_refills=False)
    sim.run(5 * DAY)
    alarms = log.of(AlarmEvent)
    assert bool(alarms) is not silent
    assert log.of(Birth)[0].audible_alarms is not silent


def test_every_states_event_log_is_the_pumps_log_converted_afresh() -> None:
    """The device keeps its wire event log up to date entry by entry; ten years of refills and
    reprogrammings (the log wraps at its capacity several times, pumps are replaced) carry, in
    every state, exactly the pump's log converted afresh when the state is made."""
    specs = generate_fleet(6, seed=11, start=EPOCH)
    made = SimulatedDevice.state
    checked = 0

    def state(device: SimulatedDevice, t: float) -> Outgoing:
        nonlocal checked
        outgoing = made(device, t)
        assert isinstance(outgoing.message, State)
        assert outgoing.message.event_log == [device._wire_entry(e) for e in device.pump.log]
        checked += 1
        return outgoing

    with patch.object(SimulatedDevice, "state", state):
        sim = FleetSimulation(specs, epoch=EPOCH, seed=2, sink=Log(), clinic_refills=True, random_faults=True)
        sim.open_sessions(1)
        sim.run(10 * 365.25 * DAY)
    assert checked > 6 * 10 * 8
    assert sum(v for k, v in sim.tally.items() if k.startswith("replacement:")) >= 1


@settings(max_examples=300, deadline=None)
@given(
    volume=st.floats(min_value=-1.0, max_value=45.0) | st.sampled_from([20.0, 40.0, 0.0]) | st.integers(1, 40),
    drug=st.sampled_from(list(Drug)),
    concentration=st.floats(min_value=-1.0, max_value=101.0) | st.integers(1, 100),
    seconds=st.floats(min_value=-2e10, max_value=7e9),
    offset_h=st.integers(min_value=-12, max_value=12),
)
def test_the_clinics_refill_action_is_the_validated_one(
    volume: float, drug: Drug, concentration: float, seconds: float, offset_h: int
) -> None:
    """The refill action the clinic makes without validation is the validated action (same values,
    fields set and JSON); what validation refuses is refused the same way."""
    from pydantic import ValidationError

    from twin.sim.simulation import refill_action

    try:
        reminder = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=offset_h))) + timedelta(seconds=seconds)
    except OverflowError:
        return
    refused: list[object] | None = None
    try:
        want = RefillAction(
            volume_ml=volume, drug=drug, concentration_mg_per_ml=concentration, refill_reminder_at=reminder
        )
    except ValidationError as error:
        refused = list(error.errors(include_context=False))
    if refused is not None:
        with pytest.raises(ValidationError) as again:
            refill_action(volume, drug, concentration, reminder)
        assert list(again.value.errors(include_context=False)) == refused
        return
    got = refill_action(volume, drug, concentration, reminder)
    assert got == want
    assert got.model_fields_set == want.model_fields_set
    assert got.model_dump_json() == want.model_dump_json()
    assert [type(v) for v in got.__dict__.values()] == [type(v) for v in want.__dict__.values()]
    assert list(got.__dict__) == list(want.__dict__)
