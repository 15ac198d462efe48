"""What the gateway publishes for a read-out: the contract's messages, deterministic, in the right order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from twin.contract.codec import CHANNELS, decode_device_message
from twin.contract.messages import (
    MAX_EVENT_LOG_ENTRIES,
    AlarmEvent,
    AlarmEventType,
    Birth,
    DeviceLogKind,
    DeviceStatus,
    InfusionMode,
    MotorState,
    State,
    StatusReason,
)
from twin.contract.topics import Channel, parse_topic
from twin.gateway.publication import (
    SESSION_SLOT,
    alarm_id,
    birth_of,
    publications,
    rate_at,
    session_of,
    state_of,
)
from twin.gateway.readout import EARLIEST_INTERROGATION, Interrogation, PatientBolusEvent
from twin.gateway.readout_file import load_readout
from twin.mirror.device_twin import MAX_SESSION_JUMP
from twin.mirror.prediction import predict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
SERIES = sorted(EXAMPLES.glob("itb-0412-*.interrogation.yaml"))


def _readout(name: str) -> Interrogation:
    return load_readout(EXAMPLES / name)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*interrogation*")), ids=lambda p: p.name)
def test_every_publication_is_a_valid_contract_message_on_its_channel(path: Path) -> None:
    readout = load_readout(path)
    messages = publications(readout)
    kinds = [parse_topic(m.topic).channel for m in messages]
    alarms = sum(1 for k in kinds if k is Channel.ALARM)
    assert kinds == [Channel.BIRTH, *[Channel.ALARM] * alarms, Channel.STATE, Channel.STATUS]
    for message in messages:
        address = parse_topic(message.topic)
        assert address.site == readout.site
        assert address.device_id == readout.device_id
        decoded = decode_device_message(address, message.payload)
        assert decoded == message.message
        assert (message.qos, message.retain) == (CHANNELS[address.channel].qos, CHANNELS[address.channel].retain)
        assert decoded.session == session_of(readout)
    birth = messages[0].message
    assert isinstance(birth, Birth)
    assert birth.simulated is False
    assert [m.message.seq for m in messages] == [0, *range(1, alarms + 2), 0]  # status carries the birth's seq
    status = messages[-1].message
    assert isinstance(status, DeviceStatus)
    assert status.reason is StatusReason.SHUTDOWN


def test_publishing_is_deterministic_and_sessions_grow_with_the_visits() -> None:
    series = [load_readout(p) for p in SERIES]
    assert [m.payload for m in publications(series[3])] == [m.payload for m in publications(load_readout(SERIES[3]))]
    sessions = [session_of(r) for r in series]
    assert sessions == sorted(sessions)
    assert len(set(sessions)) == len(sessions)
    assert all(0 < s < 2**31 for s in sessions)


def test_an_alarm_in_two_read_outs_logs_has_one_id() -> None:
    first, later = (
        _readout(n) for n in ("itb-0412-2026-09-07.interrogation.yaml", "itb-0412-2026-11-02.interrogation.yaml")
    )
    ids = [{m.message.alarm_id for m in publications(r) if isinstance(m.message, AlarmEvent)} for r in (first, later)]
    assert ids[0] == ids[1]
    assert len(ids[0]) == 1
    events = [m.message for m in publications(first) if isinstance(m.message, AlarmEvent)]
    assert [e.event for e in events] == [AlarmEventType.RAISED, AlarmEventType.CLEARED]
    assert events[0].alarm_id == alarm_id("itb-0412", "reservoir_low", events[0].raised_at)


def test_the_state_says_what_the_programmer_read() -> None:
    readout = _readout("pain-0097-2026-09-14.interrogation.json")
    state = state_of(readout)
    assert state.reservoir_ml == 40.0
    assert state.low_reservoir_threshold_ml == 3.0
    assert state.drug.value == "morphine"
    assert state.concentration_mg_per_ml == 10.0
    assert state.battery.value == "eri"
    assert state.eos_at == readout.battery.end_of_service_at
    assert state.active_alarms == ["battery_eri"]
    assert state.last_refill is not None
    assert state.last_refill.measured_residual_ml == readout.last_refill.measured_residual_ml
    assert state.patient_bolus is not None
    assert state.patient_bolus.refused_total == 1  # the activation in lockout
    assert state.patient_bolus.accepted_last_24h == 2  # 12:30 and 19:40 the day before; 07:55 is 27 h back
    assert state.delivered_ml_total == 921.4
    assert state.infusing
    assert state.current_rate_ml_per_day == 0.4


def test_a_flexible_program_runs_the_step_of_the_local_time() -> None:
    readout = _readout("itb-0412-2026-06-29.interrogation.yaml")
    assert readout.program.mode is InfusionMode.FLEXIBLE
    at = readout.interrogated_at  # 10:05 local: the day step
    assert rate_at(readout.program, at) == 0.22
    assert rate_at(readout.program, at.replace(hour=23)) == 0.32
    assert rate_at(readout.program, at.replace(hour=3)) == 0.32


def test_a_projected_replacement_date_gives_the_charge_that_predicts_it() -> None:
    readout = _readout("itb-0412-2026-01-12.interrogation.yaml")
    state = state_of(readout)
    assert 80.0 < state.battery_percent < 95.0
    projected = readout.battery.elective_replacement_date
    assert projected is not None
    eri = predict(None, state, None, state.device_time).eri_at
    # beyond the prediction horizon (3 years) no date is given; advance to within it and look again
    late = predict(None, state, None, state.device_time + timedelta(days=3 * 365)).eri_at
    assert eri is None or abs((eri.date() - projected).days) <= 1
    assert late is not None
    assert abs((late.date() - projected).days) <= 1


def test_a_stalled_or_failed_pump_is_reported_not_infusing() -> None:
    readout = _readout("itb-0412-2026-03-09.interrogation.yaml")
    stalled = readout.model_copy(update={"drive": readout.drive.model_copy(update={"state": MotorState.STALLED})})
    state: State = state_of(stalled)
    assert not state.infusing
    assert state.stop_reason is not None
    assert state.stop_reason.value == "motor_stall"
    assert state.current_rate_ml_per_day == 0.0


def test_the_event_log_goes_into_the_state_as_the_contract_carries_it() -> None:
    readout = _readout("pain-0097-2026-09-14.interrogation.json")
    log = state_of(readout).event_log
    assert len(log) == min(len(readout.events), MAX_EVENT_LOG_ENTRIES)
    assert [e.at for e in log] == [e.at for e in readout.events[-len(log) :]]  # the latest, oldest first
    boluses = [e for e in readout.events if isinstance(e, PatientBolusEvent)]
    accepted = [e for e in log if e.kind is DeviceLogKind.PATIENT_BOLUS]
    refused = [e for e in log if e.kind is DeviceLogKind.PATIENT_BOLUS_REFUSED]
    assert len(accepted) == sum(1 for e in boluses if e.accepted)
    assert [e.detail for e in refused] == [e.reason for e in boluses if not e.accepted]
    assert {e.volume_ml for e in accepted} == {0.02}
    refills = [e for e in log if e.kind is DeviceLogKind.REFILL]
    last = readout.last_refill
    assert last is not None
    assert refills[-1].measured_residual_ml == last.measured_residual_ml
    assert refills[-1].expected_residual_ml == last.calculated_residual_ml
    assert refills[-1].concentration_after_mg_per_ml == last.concentration_mg_per_ml
    # a refill carries the concentration of the refill before it: what the concentration check compares
    series = _readout("itb-0412-2026-05-11.interrogation.yaml")
    logged = [e for e in state_of(series).event_log if e.kind is DeviceLogKind.REFILL]
    assert logged[0].concentration_before_mg_per_ml is None
    assert {e.concentration_before_mg_per_ml for e in logged[1:]} == {2.0}
    assert [e.kind for e in state_of(series).event_log][-1] is DeviceLogKind.REPROGRAM


def test_sessions_are_slots_the_twin_believes_and_follow_the_held_birth() -> None:
    first, second = (load_readout(p) for p in SERIES[:2])
    assert session_of(first) == (first.interrogated_at - EARLIEST_INTERROGATION) // SESSION_SLOT
    assert 0 < session_of(second) - session_of(first) <= MAX_SESSION_JUMP
    held = birth_of(first)
    assert session_of(first, held) == held.session  # the same interrogation again: the same session
    assert session_of(second, held) == session_of(second)  # the next visit: its own slot
    # read again three minutes later (the same slot): the next session
    after = first.model_copy(update={"interrogated_at": first.interrogated_at + timedelta(minutes=3)})
    assert session_of(after) == session_of(first)
    assert session_of(after, held) == held.session + 1
    # a pump unread for three years: beyond what the twin believes, so kept within its jump
    late = first.model_copy(update={"interrogated_at": first.interrogated_at + timedelta(days=3 * 365)})
    assert session_of(late) - held.session > MAX_SESSION_JUMP
    assert session_of(late, held) == held.session + MAX_SESSION_JUMP
    assert all(m.message.session == held.session + 1 for m in publications(after, session_of(after, held)))
