"""What the gateway publishes for one read-out, exactly as the contract says: pure, deterministic.

A read-out becomes one device *session* of the contract (:mod:`twin.contract.messages`):

1. ``birth`` (retained, QoS 1) with ``simulated: false`` — seq 0;
2. one ``alarm`` event (QoS 1) per raise and per clear in the pump's alarm log, oldest first — seq 1…n;
3. the full ``state`` (retained, QoS 1) — seq n + 1;
4. ``status`` offline, reason ``shutdown`` (retained, QoS 1), carrying the birth's seq: the telemetry
   session is over, the pump is out of reach until the next visit. The twin counts this as a clean end,
   never as a lost connection, and raises no silence alert for it.

The alarm events come before the state so that the twin's reconciliation of the state's active alarms
(done on a session's first state) finds every raise already applied, with the pump's own message.

Idempotent per interrogation: the session number is the interrogation time in slots of
:data:`SESSION_SLOT` since :data:`~twin.gateway.readout.EARLIEST_INTERROGATION` (it grows with every visit, as
the contract wants, and is the same every time the same read-out is published; :func:`session_of` says how
two read-outs in one slot and a pump unread for years still get sessions the twin believes), sequence numbers
follow the fixed order above, and an alarm id is a hash of the pump, the alarm code and its raise time, so an
occurrence that two read-outs' logs both hold gets the same id. Publishing a read-out twice therefore
publishes the same messages twice; the twin drops the repeats (same session and seq; same alarm id and event).

Figures the contract needs and a programmer may not show are derived, and the docstrings say how:
the battery charge from the projected replacement date, the delivered total from the refill log.

The read-out's event log goes into the state's ``event_log`` (:func:`event_log_of`), its latest
:data:`~twin.contract.messages.MAX_EVENT_LOG_ENTRIES` entries as the contract carries them: the twin's
refill check subtracts the logged patient boluses, and its programming checks (concentration changed at a
refill) read the refill entries, as they do for a simulated pump's log.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final

from twin.contract.alarms import ALARM_CATALOGUE
from twin.contract.codec import CHANNELS, encode
from twin.contract.messages import (
    MAX_EVENT_LOG_ENTRIES,
    MIN_RATE_ML_PER_DAY,
    AlarmEvent,
    AlarmEventType,
    BatteryStatus,
    Birth,
    DeviceLogEntry,
    DeviceLogKind,
    DeviceMessage,
    DeviceStatus,
    InfusionMode,
    MotorState,
    PatientBolusCounters,
    Program,
    RefillRecord,
    State,
    StatusReason,
    StatusState,
    StopReason,
)
from twin.contract.topics import Channel, build_topic
from twin.gateway.readout import (
    EARLIEST_INTERROGATION,
    AlarmOccurrence,
    ClinicianBolusEvent,
    Event,
    Interrogation,
    MotorEvent,
    PatientBolusEvent,
    ProgrammingEvent,
    RefillEvent,
    SelfCheckStatus,
)
from twin.mirror.device_twin import MAX_SESSION_JUMP
from twin.pump.model import UNUSABLE_RESIDUAL_ML, BatteryModel

SESSION_SLOT: Final = timedelta(minutes=10)
"""A read-out's session counts these slots from 2000-01-01 UTC to its interrogation. The twin does not believe a
session more than :data:`~twin.mirror.device_twin.MAX_SESSION_JUMP` (100,000) ahead of the one it holds (a
forged number must not mute a pump): 100,000 slots of 10 minutes are 694 days between two visits, longer than
any refill interval (1–6 months, DOMAIN.md); seconds, as the first gateway counted, passed it in 28 hours."""

PATIENT_BOLUS_WINDOW: Final = timedelta(hours=24)
"""The therapy manager's daily maximum counts activations in a rolling 24 h (as the pump model does)."""

IMPLANT_CLOCK_TIME: Final = time(12, 0)
"""The contract's implant date is a moment; a read-out's is a day. Noon on that day, at the clinic's offset, is
the same calendar day on every clock within ±11 hours of it (a browser far away shows the right date)."""

BATTERY: Final = BatteryModel()
"""The battery model the twin predicts with (``twin.pump.model``): used to turn a projected replacement
date into the charge the contract carries, so that the twin's own prediction lands on that date."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One MQTT message: topic, payload and the channel's delivery rules."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    message: DeviceMessage


def slot_of(readout: Interrogation) -> int:
    """Whole :data:`SESSION_SLOT` s from 2000-01-01 UTC to the interrogation."""
    return (readout.interrogated_at - EARLIEST_INTERROGATION) // SESSION_SLOT


def session_of(readout: Interrogation, held: Birth | None = None) -> int:
    """The contract session of a read-out, given the birth the broker holds for its pump (``held``, read back by
    the publisher; None: none held, or not known).

    * none held: the read-out's slot (:func:`slot_of`);
    * ``held`` is this interrogation (its device time is the interrogation time): its session, so publishing
      again repeats the same messages;
    * ``held`` is an older interrogation: the slot, kept above the held session (two read-outs in one slot, a
      reading before and after a refill, get consecutive sessions) and at most
      :data:`~twin.mirror.device_twin.MAX_SESSION_JUMP` above it (a pump unread for longer than the slots span
      stays believable to the twin).

    A held birth of a *newer* interrogation is the publisher's to refuse (it never publishes over one); for it
    this answers the slot."""
    slot = slot_of(readout)
    if held is None or held.device_time > readout.interrogated_at:
        return slot
    if held.device_time == readout.interrogated_at:
        return held.session
    return min(max(slot, held.session + 1), held.session + MAX_SESSION_JUMP)


def alarm_id(device_id: str, code: str, raised_at: datetime) -> str:
    """The same id for the same occurrence in every read-out whose log holds it."""
    key = f"{device_id}|{code}|{raised_at.astimezone(UTC).isoformat()}"
    return "ro-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def mean_rate_ml_per_day(program: Program) -> float:
    """The program's average flow over a day, mL/day (a flexible schedule weighted by each step's length)."""
    match program.mode:
        case InfusionMode.CONTINUOUS:
            return program.rate_ml_per_day or 0.0
        case InfusionMode.MINIMUM_RATE:
            return MIN_RATE_ML_PER_DAY
        case InfusionMode.STOPPED:
            return 0.0
        case InfusionMode.FLEXIBLE:
            steps = program.steps
            total = 0.0
            for i, step in enumerate(steps):
                end = steps[i + 1].start_minute if i + 1 < len(steps) else 1440 + steps[0].start_minute
                total += step.rate_ml_per_day * (end - step.start_minute)
            return total / 1440.0


def rate_at(program: Program, moment: datetime) -> float:
    """The programmed flow at ``moment`` (its own local time of day for a flexible schedule), mL/day."""
    if program.mode is InfusionMode.FLEXIBLE:
        minute = moment.hour * 60 + moment.minute
        current = program.steps[-1]  # before the first step of the day, the last one of yesterday runs
        for step in program.steps:
            if step.start_minute <= minute:
                current = step
        return current.rate_ml_per_day
    return mean_rate_ml_per_day(program)


def battery_percent(readout: Interrogation) -> float:
    """The charge: as read, or derived from the projected replacement date with :data:`BATTERY` at the
    program's mean flow (what makes the twin predict ERI on that date); 0 past ERI."""
    battery = readout.battery
    if battery.percent is not None:
        return battery.percent
    if battery.status is not BatteryStatus.OK or battery.elective_replacement_date is None:
        return 0.0
    days = (battery.elective_replacement_date - readout.interrogated_at.date()).days
    drain = BATTERY.base_percent_per_day + BATTERY.percent_per_ml * mean_rate_ml_per_day(readout.program)
    return min(100.0, BATTERY.eri_percent + max(days, 0) * drain + 1e-6)


def delivered_total_ml(readout: Interrogation) -> float:
    """The pump's delivered-volume counter, as read; without it, what the refill log accounts for: from each
    refill to the next (filled minus the next calculated residual) and from the last one to now. A lower bound
    (nothing before the oldest refill in the log)."""
    if readout.reservoir.delivered_since_implant_ml is not None:
        return readout.reservoir.delivered_since_implant_ml
    refills = readout.refills
    total = 0.0
    for before, after in itertools.pairwise(refills):
        total += max(0.0, before.volume_added_ml - after.calculated_residual_ml)
    if refills:
        total += max(0.0, refills[-1].volume_added_ml - readout.reservoir.calculated_ml)
    return round(total, 6)


def birth_of(readout: Interrogation, session: int | None = None) -> Birth:
    pump = readout.pump
    at = readout.interrogated_at
    return Birth(
        device_id=readout.device_id,
        device_time=at,
        session=session if session is not None else session_of(readout),
        seq=0,
        simulated=False,
        model=f"{pump.model} {pump.model_number}",
        serial=pump.serial,
        firmware=pump.firmware or "not read",
        reservoir_capacity_ml=pump.reservoir_capacity_ml,
        implant_date=datetime.combine(pump.implant_date, IMPLANT_CLOCK_TIME, tzinfo=at.tzinfo),
        catheter_volume_ml=pump.catheter_volume_ml,
        audible_alarms=pump.audible_alarms,
    )


def alarm_events_of(readout: Interrogation, session: int | None = None) -> list[AlarmEvent]:
    """Every raise and clear of the alarm log as contract events, oldest first, seq 1…n."""
    happenings: list[tuple[datetime, int, AlarmEventType, AlarmOccurrence]] = []
    for n, occurrence in enumerate(readout.alarms.log):
        happenings.append((occurrence.raised_at, n, AlarmEventType.RAISED, occurrence))
        if occurrence.cleared_at is not None:
            happenings.append((occurrence.cleared_at, n, AlarmEventType.CLEARED, occurrence))
    happenings.sort(key=lambda h: (h[0], h[1], h[2] is AlarmEventType.CLEARED))
    session = session if session is not None else session_of(readout)
    out = []
    for seq, (at, _, kind, occurrence) in enumerate(happenings, start=1):
        code = occurrence.code
        raised_at = occurrence.raised_at
        spec = ALARM_CATALOGUE[code]
        stamp = readout.interrogated_at.strftime("%Y-%m-%d %H:%M")
        out.append(
            AlarmEvent(
                device_id=readout.device_id,
                device_time=at,
                session=session,
                seq=seq,
                alarm_id=alarm_id(readout.device_id, code.value, raised_at),
                code=code,
                event=kind,
                device_class=spec.device_class,
                priority=spec.priority,
                raised_at=raised_at,
                message=f"{spec.title} (pump log, read at the interrogation of {stamp})",
            )
        )
    return out


def state_of(readout: Interrogation, seq: int | None = None, session: int | None = None) -> State:
    """The contract state of the pump as the programmer read it (``seq`` defaults to the one it is published with,
    ``session`` to :func:`session_of` without a held birth)."""
    at = readout.interrogated_at
    program = readout.program
    reservoir = readout.reservoir
    battery = readout.battery
    unusable = reservoir.unusable_residual_ml if reservoir.unusable_residual_ml is not None else UNUSABLE_RESIDUAL_ML
    failed = readout.self_check.status is SelfCheckStatus.FAILED
    stop_reason: StopReason | None = None
    if failed:
        stop_reason = StopReason.MEMORY_ERROR
    elif battery.status is BatteryStatus.EOS:
        stop_reason = StopReason.END_OF_SERVICE
    elif readout.drive.state is MotorState.STALLED:
        stop_reason = StopReason.MOTOR_STALL
    elif program.mode is InfusionMode.STOPPED:
        stop_reason = StopReason.PROGRAMMED
    infusing = (
        stop_reason is None and readout.drive.state is MotorState.RUNNING and reservoir.calculated_ml > unusable + 1e-9
    )
    eri_at = battery.eri_reached_at
    eos_at = battery.end_of_service_at
    if eri_at is not None and eos_at is None:
        eos_at = eri_at + timedelta(days=BATTERY.eri_to_eos_days)
    primary = readout.drugs[0]
    refill = readout.last_refill
    programming = [e for e in readout.events if isinstance(e, ProgrammingEvent)]
    counters: PatientBolusCounters | None = None
    if program.patient_bolus is not None:
        boluses = [e for e in readout.events if isinstance(e, PatientBolusEvent)]
        accepted = [e for e in boluses if e.accepted]
        counters = PatientBolusCounters(
            accepted_last_24h=sum(1 for e in accepted if at - e.at <= PATIENT_BOLUS_WINDOW),
            refused_total=sum(1 for e in boluses if not e.accepted),
            last_accepted_at=accepted[-1].at if accepted else None,
        )
    return State(
        device_id=readout.device_id,
        device_time=at,
        session=session if session is not None else session_of(readout),
        seq=seq if seq is not None else len(alarm_events_of(readout)) + 1,
        reservoir_ml=reservoir.calculated_ml,
        low_reservoir_threshold_ml=reservoir.low_threshold_ml,
        unusable_residual_ml=unusable,
        drug=primary.drug,
        concentration_mg_per_ml=primary.concentration_mg_per_ml,
        program=program,
        current_rate_ml_per_day=rate_at(program, at) if infusing else 0.0,
        infusing=infusing,
        stop_reason=stop_reason,
        motor=readout.drive.state,
        battery_percent=battery_percent(readout),
        battery=battery.status,
        eri_at=eri_at,
        eos_at=eos_at,
        active_alarms=sorted(set(readout.alarms.active)),
        delivered_ml_total=delivered_total_ml(readout),
        last_refill=_refill_record(refill) if refill is not None else None,
        refill_reminder_at=reservoir.next_refill_at,
        patient_bolus=counters,
        program_changed_at=programming[-1].at if programming else None,
        event_log=event_log_of(readout),
    )


def log_entry_of(event: Event, concentration_before: float | None) -> DeviceLogEntry:
    """One event of the read-out's log as the contract's log entry. A refill carries the concentration before
    it (``concentration_before``: the refill before it in the log, None for the first) and after it; a
    programming entry carries what the programmer showed as text (a read-out has no dose figures, so the twin's
    dose-escalation trend, which needs them, does not run on read-outs)."""
    match event:
        case RefillEvent():
            return DeviceLogEntry(
                at=event.at,
                kind=DeviceLogKind.REFILL,
                detail=f"refill {event.volume_added_ml:g} mL {event.drug.value} {event.concentration_mg_per_ml:g} mg/mL",
                volume_ml=event.volume_added_ml,
                expected_residual_ml=event.calculated_residual_ml,
                measured_residual_ml=event.measured_residual_ml,
                concentration_before_mg_per_ml=concentration_before,
                concentration_after_mg_per_ml=event.concentration_mg_per_ml,
            )
        case ProgrammingEvent():
            return DeviceLogEntry(
                at=event.at,
                kind=DeviceLogKind.REPROGRAM,
                detail=f"{event.change.value}: {event.summary}"[:200],
            )
        case ClinicianBolusEvent():
            return DeviceLogEntry(
                at=event.at,
                kind=DeviceLogKind.CLINICIAN_BOLUS,
                detail=f"{event.volume_ml:g} mL over {event.duration_minutes:g} min",
                volume_ml=event.volume_ml,
            )
        case PatientBolusEvent():
            if event.accepted:
                return DeviceLogEntry(
                    at=event.at,
                    kind=DeviceLogKind.PATIENT_BOLUS,
                    detail=f"{event.volume_ml:g} mL",
                    volume_ml=event.volume_ml,
                )
            return DeviceLogEntry(at=event.at, kind=DeviceLogKind.PATIENT_BOLUS_REFUSED, detail=event.reason or "")
        case MotorEvent():
            kind = DeviceLogKind.MOTOR_STALL if event.event == "motor_stall" else DeviceLogKind.MOTOR_STALL_RECOVERY
            return DeviceLogEntry(at=event.at, kind=kind, detail=event.event.replace("_", " "))


def event_log_of(readout: Interrogation) -> list[DeviceLogEntry]:
    """The read-out's event log as the state carries it: every event mapped (:func:`log_entry_of`), the latest
    :data:`~twin.contract.messages.MAX_EVENT_LOG_ENTRIES`, oldest first."""
    entries = []
    concentration: float | None = None
    for event in readout.events:
        entries.append(log_entry_of(event, concentration))
        if isinstance(event, RefillEvent):
            concentration = event.concentration_mg_per_ml
    return entries[-MAX_EVENT_LOG_ENTRIES:]


def _refill_record(refill: RefillEvent) -> RefillRecord:
    return RefillRecord(
        at=refill.at,
        expected_residual_ml=refill.calculated_residual_ml,
        measured_residual_ml=refill.measured_residual_ml,
        volume_added_ml=refill.volume_added_ml,
        drug=refill.drug,
        concentration_mg_per_ml=refill.concentration_mg_per_ml,
    )


def status_of(readout: Interrogation, session: int | None = None) -> DeviceStatus:
    return DeviceStatus(
        device_id=readout.device_id,
        device_time=readout.interrogated_at,
        session=session if session is not None else session_of(readout),
        seq=0,
        state=StatusState.OFFLINE,
        reason=StatusReason.SHUTDOWN,
    )


def publications(readout: Interrogation, session: int | None = None) -> list[Publication]:
    """Everything one read-out publishes, in order (see the module docstring), in ``session`` (default:
    :func:`session_of` without a held birth)."""
    session = session if session is not None else session_of(readout)
    alarms = alarm_events_of(readout, session)
    messages: list[tuple[Channel, DeviceMessage]] = [
        (Channel.BIRTH, birth_of(readout, session)),
        *((Channel.ALARM, event) for event in alarms),
        (Channel.STATE, state_of(readout, len(alarms) + 1, session)),
        (Channel.STATUS, status_of(readout, session)),
    ]
    out = []
    for channel, message in messages:
        spec = CHANNELS[channel]
        topic = build_topic(readout.site, readout.device_id, channel)
        out.append(Publication(topic, encode(message), spec.qos, spec.retain, message))
    return out
