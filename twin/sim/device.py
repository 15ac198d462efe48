"""A simulated pump as the twin sees it: the pure :class:`~twin.pump.model.Pump` behind the contract.

:class:`SimulatedDevice` is the device's firmware and radio in one pure object: it numbers its
messages (session, seq), turns the pump's effects into contract messages (alarm events, state on
every change, telemetry samples), and answers commands idempotently (a repeated ``command_id``
gets the stored result with ``replay: true`` and is not applied again; a command past its
``expires_at`` is rejected). It does no I/O: it returns :class:`Outgoing` messages for the shell
to publish, in order.

Simulation time is seconds since :attr:`SimulatedDevice.epoch` (a timezone-aware datetime).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypedDict, TypeVar

from twin.contract.alarms import ALARM_CATALOGUE
from twin.contract.codec import CHANNELS
from twin.contract.messages import (
    CONTRACT_VERSION,
    Action,
    ActiveBolus,
    AlarmEvent,
    AlarmEventType,
    Birth,
    ClearFaultAction,
    ClinicianBolusAction,
    Command,
    CommandResult,
    CommandStatus,
    DeviceLogEntry,
    DeviceLogKind,
    DeviceMessage,
    DeviceStatus,
    Drug,
    InjectFaultAction,
    InterrogateAction,
    PatientBolusAction,
    PatientBolusCounters,
    RebirthAction,
    RefillAction,
    RefillRecord,
    ReprogramAction,
    SimTruth,
    State,
    StatusReason,
    StatusState,
    Telemetry,
    WireModel,
)
from twin.contract.topics import Channel
from twin.pump.fastinit import fast_frozen_init
from twin.pump.model import AlarmChange, ClinicalEvent, Effect, LogEntry, Outcome, Pump, RefillLog

COMMAND_MEMORY: Final = 512
"""Command ids a device remembers for idempotency. A twin re-sends a pending command at most a
few times within minutes, so a few hundred ids is ample; oldest are forgotten first."""


Details = dict[str, float | int | str | bool | None]

_M = TypeVar("_M", bound=WireModel)
_set = object.__setattr__


def _unchecked(model: type[_M], values: dict[str, object], fields_set: set[str]) -> _M:
    """``model`` made from ``values`` without validating them (what pydantic's ``model_construct``
    does, without its per-field loop): ``values`` must hold every field, in the model's order, each
    in the form validation would give it; ``fields_set`` names the fields given explicitly. The
    states, log entries and refill records the simulator makes this way are checked against the
    contract in tests/core/test_fleet_partition.py (each message of a fleet-year validates, equal,
    to the same JSON).

    ``fields_set`` becomes the message's own ``__pydantic_fields_set__``, shared by every message
    made from it: wire models are frozen, so pydantic never adds to it in place (a ``model_copy``
    copies it before it adds the updated fields), and nothing else here may."""
    message = model.__new__(model)
    _set(message, "__dict__", values)
    _set(message, "__pydantic_fields_set__", fields_set)
    _set(message, "__pydantic_extra__", None)
    _set(message, "__pydantic_private__", None)
    return message


_STATE_FIELDS_SET: Final = set(State.model_fields) - {"contract_version", "kind"}
"""The fields a state was validated from (every one but the two constants)."""
_LOG_ENTRY_FIELDS_SET: Final = set(DeviceLogEntry.model_fields)
_REFILL_RECORD_FIELDS_SET: Final = set(RefillRecord.model_fields)
_AT_MEMO_SIZE: Final = 16


class Envelope(TypedDict):
    device_id: str
    device_time: datetime
    session: int
    seq: int


@dataclass(frozen=True, slots=True)
class Identity:
    """What a simulated device says about itself in its birth."""

    site: str
    device_id: str
    model: str
    serial: str
    implant_date: datetime
    firmware: str = "pumptwin-sim-1"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the shell to publish on ``channel`` of this device."""

    channel: Channel
    message: WireModel

    @property
    def qos(self) -> int:
        return CHANNELS[self.channel].qos

    @property
    def retain(self) -> bool:
        return CHANNELS[self.channel].retain


class SimulatedDevice:
    """One simulated pump behind the MQTT contract. Pure; see the module docstring."""

    def __init__(self, identity: Identity, pump: Pump, epoch: datetime) -> None:
        if epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        self.identity = identity
        self.pump = pump
        self.epoch = epoch
        self.session = 0
        self._seq = -1
        self._birth_seq = 0
        self._results: OrderedDict[str, CommandResult] = OrderedDict()
        self.clinical_log: list[ClinicalEvent] = []
        self._event_log: tuple[Pump, int, list[DeviceLogEntry]] | None = None  # pump, log serial, wire log
        self._refill_record: tuple[RefillLog, RefillRecord] | None = None  # the last refill's wire form
        self._at_memo: dict[float, datetime] = {}  # at() of the instants states keep repeating
        self.on_alarm: Callable[[SimulatedDevice, AlarmChange], None] | None = None
        """Hears every alarm the pump raises or clears, audible or not (the simulated clinic and its
        tally); what the twin hears goes through the messages only."""

    def replace_pump(self, pump: Pump, identity: Identity, t: float) -> list[Outgoing]:
        """A new pump implanted in place of the old one (same patient, same device id, same
        connection and session): the old pump's alarms end, then a birth (new serial and implant
        date) and the new pump's full state, as after a rebirth."""
        out = self._from_effects(self.pump.explant(t), t)
        self.pump = pump
        self.identity = identity
        return [*out, *self._birth(t), self.state(t)]

    # --------------------------------------------------------------------------------- time

    def at(self, t: float) -> datetime:
        return self.epoch + timedelta(seconds=t)

    def _at_memoised(self, t: float) -> datetime:
        """:meth:`at`, remembered for the last few instants asked for (a state repeats the same
        reminder, program change and ERI times until they change; datetimes are immutable)."""
        memo = self._at_memo
        moment = memo.get(t)
        if moment is None:
            if len(memo) >= _AT_MEMO_SIZE:
                memo.clear()
            moment = memo[t] = self.epoch + timedelta(seconds=t)
        return moment

    def seconds(self, moment: datetime) -> float:
        return (moment - self.epoch).total_seconds()

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def silent(self) -> bool:
        """True while a telemetry-loss fault holds the radio (the shell holds messages)."""
        return self.pump.radio_silent_until is not None

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _envelope(self, t: float) -> Envelope:
        return {
            "device_id": self.identity.device_id,
            "device_time": self.at(t),
            "session": self.session,
            "seq": self._next_seq(),
        }

    # ----------------------------------------------------------------------------- sessions

    def will(self, session: int, t: float) -> DeviceStatus:
        """The last will for a connection that will open ``session`` (set before connecting)."""
        return DeviceStatus(
            device_id=self.identity.device_id,
            device_time=self.at(t),
            session=session,
            seq=0,
            state=StatusState.OFFLINE,
            reason=StatusReason.WILL,
        )

    def open_session(self, session: int, t: float) -> list[Outgoing]:
        """Start ``session`` (a new connection): birth (seq 0), full state, status online."""
        if session <= self.session:
            raise ValueError(f"session {session} does not follow {self.session}")
        self.session = session
        self._seq = -1
        out = self._birth(t)
        out.append(self.state(t))
        out.append(self._status(t, StatusState.ONLINE, StatusReason.CONNECTED))
        return out

    def close_session(self, t: float) -> Outgoing:
        """A clean shutdown: status offline (reason shutdown)."""
        return self._status(t, StatusState.OFFLINE, StatusReason.SHUTDOWN)

    def _birth(self, t: float) -> list[Outgoing]:
        ident, cfg = self.identity, self.pump.config
        envelope = self._envelope(t)
        self._birth_seq = envelope["seq"]
        birth = Birth(
            **envelope,
            simulated=True,
            model=ident.model,
            serial=ident.serial,
            firmware=ident.firmware,
            reservoir_capacity_ml=cfg.reservoir_capacity_ml,
            implant_date=ident.implant_date,
            catheter_volume_ml=cfg.catheter_volume_ml,
            audible_alarms=cfg.audible_alarms,
        )
        return [Outgoing(Channel.BIRTH, birth)]

    def _status(self, t: float, state: StatusState, reason: StatusReason) -> Outgoing:
        status = DeviceStatus(
            device_id=self.identity.device_id,
            device_time=self.at(t),
            session=self.session,
            seq=self._birth_seq,
            state=state,
            reason=reason,
        )
        return Outgoing(Channel.STATUS, status)

    # ------------------------------------------------------------------------------ messages

    def event_log(self) -> list[DeviceLogEntry]:
        """The pump's event log as the contract carries it (each entry converted once)."""
        return list(self._event_log_entries())

    def _event_log_entries(self) -> list[DeviceLogEntry]:
        """The wire form of the pump's log, kept up to date as entries are added (at the end, with
        consecutive serials) and fall off (at the start); rebuilt if the log is anything else. A
        list, once made, is never changed (every change makes a new one)."""
        pump, log = self.pump, self.pump.log
        cached = self._event_log
        if cached is not None and cached[0] is pump:
            _, known, entries = cached
            serial = pump.log_serial
            if known == serial:
                return entries
            added = serial - known
            kept_count = len(log) - added
            if (
                0 < added <= len(log)
                and len(entries) >= kept_count
                and log[-1].serial == serial
                and log[0].serial == serial - len(log) + 1
            ):
                fresh = [self._wire_entry(log[i]) for i in range(kept_count, len(log))]
                kept = entries[len(entries) - kept_count :] if kept_count else []
                entries = [*kept, *fresh]
                self._event_log = (pump, serial, entries)
                return entries
        entries = [self._wire_entry(entry) for entry in log]
        self._event_log = (pump, pump.log_serial, entries)
        return entries

    def _wire_entry(self, e: LogEntry) -> DeviceLogEntry:
        """A log entry's wire form, made without validating it again (see :func:`_unchecked`):
        volumes and doses rounded to 6 places, concentrations as they are, each as a float."""
        kind = e.kind
        volume, expected, measured = e.volume_ml, e.expected_residual_ml, e.measured_residual_ml
        c_before, c_after = e.concentration_before_mg_per_ml, e.concentration_after_mg_per_ml
        d_before, d_after = e.dose_before_mg_per_day, e.dose_after_mg_per_day
        return _unchecked(
            DeviceLogEntry,
            {
                "at": self._at_memoised(e.at),  # the state that carries it first is made at the same instant
                "kind": kind if type(kind) is DeviceLogKind else DeviceLogKind(kind),
                "detail": str(e.detail),
                "volume_ml": None if volume is None else float(round(volume, 6)),
                "expected_residual_ml": None if expected is None else float(round(expected, 6)),
                "measured_residual_ml": None if measured is None else float(round(measured, 6)),
                "concentration_before_mg_per_ml": None if c_before is None else float(c_before),
                "concentration_after_mg_per_ml": None if c_after is None else float(c_after),
                "dose_before_mg_per_day": None if d_before is None else float(round(d_before, 6)),
                "dose_after_mg_per_day": None if d_after is None else float(round(d_after, 6)),
            },
            _LOG_ENTRY_FIELDS_SET,
        )

    def state(self, t: float) -> Outgoing:
        """The full reported state at ``t`` (the pump's clock must be at ``t``)."""
        p = self.pump
        reservoir_ml, delivered_ml_total, rate_ml_per_day, battery_percent, motor, infusing = p.reported(t)
        at = self._at_memoised
        bolus = None
        if p.bolus is not None:
            bolus = ActiveBolus(
                source="clinician" if p.bolus.source == "clinician" else "patient",
                volume_ml=p.bolus.volume_ml,
                started_at=self.at(p.bolus.start),
                ends_at=self.at(p.bolus.end),
            )
        refill = None
        if p.last_refill is not None:
            r = p.last_refill
            known = self._refill_record
            if known is not None and known[0] is r:
                refill = known[1]  # immutable: every state until the next refill carries the same one
            else:
                refill = _unchecked(
                    RefillRecord,
                    {
                        "at": at(r.at),
                        "expected_residual_ml": float(round(r.expected_residual_ml, 4)),
                        "measured_residual_ml": float(round(r.measured_residual_ml, 4)),
                        "volume_added_ml": float(r.volume_added_ml),
                        "drug": Drug(r.drug),
                        "concentration_mg_per_ml": float(r.concentration_mg_per_ml),
                    },
                    _REFILL_RECORD_FIELDS_SET,
                )
                self._refill_record = (r, refill)
        pb = None
        if p.program.patient_bolus is not None:
            last = p.last_patient_bolus_at
            pb = PatientBolusCounters(
                accepted_last_24h=p.patient_boluses_last_24h,
                refused_total=p.patient_bolus_refused,
                last_accepted_at=self.at(last) if last is not None else None,
            )
        self._seq += 1
        # every value in the form validation gives it (floats as floats, the model's own objects),
        # in the model's field order: the state is made without validating it again
        state = _unchecked(
            State,
            {
                "contract_version": CONTRACT_VERSION,
                "device_id": self.identity.device_id,
                "device_time": at(t),
                "session": self.session,
                "seq": self._seq,
                "kind": "state",
                "reservoir_ml": float(round(reservoir_ml, 4)),
                "low_reservoir_threshold_ml": float(p.low_threshold_ml),
                "unusable_residual_ml": float(p.config.unusable_residual_ml),
                "drug": p.drug,
                "concentration_mg_per_ml": float(p.concentration_mg_per_ml),
                "program": p.program,
                "current_rate_ml_per_day": float(round(rate_ml_per_day, 6)),
                "infusing": infusing,
                "stop_reason": p.stop_reason,
                "bolus": bolus,
                "motor": motor,
                "battery_percent": float(round(battery_percent, 3)),
                "battery": p.battery_status,
                "eri_at": at(p.eri_at) if p.eri_at is not None else None,
                "eos_at": at(p.eos_at) if p.eos_at is not None else None,
                "active_alarms": sorted(p.alarms) if p.alarms and p.config.audible_alarms else [],
                "delivered_ml_total": float(round(delivered_ml_total, 4)),
                "last_refill": refill,
                "refill_reminder_at": at(p.refill_reminder_at) if p.refill_reminder_at is not None else None,
                "patient_bolus": pb,
                "program_changed_at": at(p.program_changed_at) if p.program_changed_at is not None else None,
                "event_log": list(self._event_log_entries()),
            },
            _STATE_FIELDS_SET,
        )
        return Outgoing(Channel.STATE, state)

    def telemetry(self, t: float) -> Outgoing:
        """A telemetry sample at ``t`` (call after :meth:`advance`)."""
        s = self.pump.sample(t)
        message = Telemetry(
            **self._envelope(t),
            reservoir_ml=round(s.reservoir_ml, 4),
            current_rate_ml_per_day=round(s.current_rate_ml_per_day, 6),
            dose_mg_per_day=round(s.dose_mg_per_day, 6),
            delivered_ml_total=round(s.delivered_ml_total, 4),
            battery_percent=round(s.battery_percent, 3),
            motor=s.motor,
            infusing=s.infusing,
            sim_truth=SimTruth(
                reservoir_ml=round(s.true_reservoir_ml, 4),
                delivered_to_patient_ml_total=round(s.to_patient_ml, 4),
                lost_ml_total=round(s.lost_ml, 4),
                actual_concentration_mg_per_ml=s.actual_concentration_mg_per_ml,
                actual_dose_mg_per_day=round(s.actual_dose_mg_per_day, 6),
                catheter=s.catheter,
                delivered_to_patient_mg_total=round(s.to_patient_mg, 6),
            ),
        )
        return Outgoing(Channel.TELEMETRY, message)

    def _from_effects(self, effects: list[Effect], t: float, *, changed: bool = False) -> list[Outgoing]:
        """Alarm events for alarm changes (pumps with audible alarms), then one state if anything
        changed (``changed`` says a command changed the pump even without effects)."""
        out: list[Outgoing] = []
        for effect in effects:
            if isinstance(effect, AlarmChange):
                if self.on_alarm is not None:
                    self.on_alarm(self, effect)
                if not self.pump.config.audible_alarms:
                    continue
                spec = ALARM_CATALOGUE[effect.code]
                event = AlarmEvent(
                    **self._envelope(effect.at),
                    alarm_id=effect.alarm_id,
                    code=effect.code,
                    event=AlarmEventType.RAISED if effect.raised else AlarmEventType.CLEARED,
                    device_class=spec.device_class,
                    priority=spec.priority,
                    raised_at=self.at(effect.raised_at),
                    message=effect.message,
                )
                out.append(Outgoing(Channel.ALARM, event))
            else:
                self.clinical_log.append(effect)
        if effects or changed:
            out.append(self.state(t))
        return out

    # ------------------------------------------------------------------------------- driving

    def advance(self, t: float) -> list[Outgoing]:
        """Run the pump to ``t``; messages for whatever happened on the way."""
        return self._from_effects(self.pump.process_due(t), t)

    def _apply(self, action: Action, t: float) -> tuple[str | None, Details, list[Effect], list[Outgoing]]:
        """Apply ``action``: (rejection reason or None, details, effects, extra messages)."""
        pump = self.pump
        outcome: Outcome | None = None
        extra: list[Outgoing] = []
        match action:
            case RefillAction():
                reminder = self.seconds(action.refill_reminder_at) if action.refill_reminder_at else None
                outcome = pump.refill(t, action, reminder_at=reminder)
            case ReprogramAction():
                outcome = pump.reprogram(t, action)
            case ClinicianBolusAction():
                outcome = pump.clinician_bolus(t, action)
            case PatientBolusAction():
                outcome = pump.patient_bolus(t, action)
            case InterrogateAction():
                outcome = pump.interrogate(t)
            case InjectFaultAction():
                outcome = pump.inject_fault(t, action.fault)
            case ClearFaultAction():
                outcome = pump.clear_fault(t, action)
            case RebirthAction():
                extra = [*self._birth(t), self.state(t)]
        if outcome is None:
            return None, {}, [], extra
        # the outcome's own details (handle copies them into its result; perform drops them)
        return (None if outcome.applied else outcome.reason), outcome.details, outcome.effects, extra

    def handle(self, command: Command, t: float) -> list[Outgoing]:
        """Apply a command at ``t`` (after :meth:`advance` to ``t``): its result, then any alarms and state."""
        stored = self._results.get(command.command_id)
        if stored is not None:
            replay = stored.model_copy(update={**self._envelope(t), "replay": True})
            return [Outgoing(Channel.CMD_RESULT, replay)]
        if command.expires_at is not None and self.at(t) > command.expires_at:
            reason: str | None = f"expired at {command.expires_at.isoformat()}"
            details: Details = {}
            effects: list[Effect] = []
            extra: list[Outgoing] = []
        else:
            reason, details, effects, extra = self._apply(command.action, t)
        result = CommandResult(
            **self._envelope(t),
            command_id=command.command_id,
            status=CommandStatus.REJECTED if reason else CommandStatus.APPLIED,
            reason=reason,
            details=dict(details),
        )
        self._results[command.command_id] = result
        while len(self._results) > COMMAND_MEMORY:
            self._results.popitem(last=False)
        out = [Outgoing(Channel.CMD_RESULT, result), *extra]
        changed = reason is None and not isinstance(command.action, RebirthAction)
        out += self._from_effects(effects, t, changed=changed)
        return out

    def perform(self, action: Action, t: float) -> tuple[str | None, list[Outgoing]]:
        """An action done at the bedside (clinician programmer, a real fault happening): no command,
        no result; the twin sees it only through alarms and state. Returns (rejection reason, messages)."""
        reason, _, effects, extra = self._apply(action, t)
        return reason, extra + self._from_effects(effects, t, changed=reason is None)


def envelope_of(message: WireModel) -> tuple[int, int]:
    """(session, seq) of a device message."""
    assert isinstance(message, DeviceMessage)
    return message.session, message.seq
