"""Contract messages and twin events as InfluxDB points, and points as line protocol.

Pure: no I/O, no clock, no randomness. Every function here maps its arguments to values; the
writer (``twin.influx.writer``) is the only place points travel anywhere.

The schema (measurements, tags, fields, units) is documented in ``docs/influx-schema.md``; the
short version:

* measurements ``telemetry``, ``state``, ``alarm``, ``command``, ``twin_health``, ``training``;
* tags are low-cardinality identity only: ``site``, ``device``, ``model``, ``drug``,
  ``simulated`` (plus ``code`` and ``priority`` on ``alarm``, ``action`` on ``command``, ``twin``
  on ``twin_health``; ``training`` has ``session``, ``trainee`` and ``site``); everything that
  varies is a field;
* every point from a device message carries that message's ``seq`` and ``session`` as integer
  fields, so "every point present exactly once" can be counted per device and sequence number;
* the timestamp is the device time (simulation time for simulated pumps) in **nanoseconds**. A
  ``datetime`` holds microseconds, so the three sub-microsecond digits are free: they carry a
  deterministic discriminator (``seq % 500`` for device messages, ``500 +`` a stable hash for
  twin events). Two messages of one device stamped with the same microsecond therefore stay two
  points (unless their ``seq`` differ by a multiple of 500) instead of the second silently
  overwriting the first, and a replayed message gets the
  very same timestamp, so InfluxDB's overwrite-on-same-key rule turns at-least-once delivery into
  exactly-once storage. Timestamps are exact to the microsecond.

Line protocol is written by :mod:`twin.timeseries.lines`, which escapes exactly as InfluxData's
own encoder (``influxdb_client``'s ``Point``) does: the tests compare the two byte for byte over
random points, and write them to a real influxd and read them back. (The client library is not
used at run time: importing it costs the pure core an ``asyncio`` import and 17 µs a point.) Two
things line protocol cannot carry faithfully in tag values were found against a real InfluxDB
1.6.7 and are normalised first (:func:`stored_tag_value`): control characters (a tab or newline
is written as a ``\\t``/``\\n`` escape that 1.x stores literally) become a space, and trailing
backslashes are dropped (a trailing ``\\`` would escape the separator). Measurement names, tag keys
and field keys are the schema's own constants, so they are checked instead (:func:`check_name`;
no backslash in measurement names and field keys, where 1.x unescapes ``\\"`` and ``\\=``). String
field values round-trip exactly, newlines and all.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final

from twin.contract.alarms import AlarmCode, Priority
from twin.contract.messages import AlarmEvent, AlarmEventType, Birth, DeviceMessage, Drug, State, Telemetry
from twin.pump.model import BatteryModel

FieldValue = float | int | bool | str
"""What a field holds. ``float`` and ``int`` are distinct InfluxDB types: a field keeps the type it
was first written with, forever (a later write of the other type is refused as a type conflict)."""

TELEMETRY: Final = "telemetry"
STATE: Final = "state"
ALARM: Final = "alarm"
COMMAND: Final = "command"
TWIN_HEALTH: Final = "twin_health"
TRAINING: Final = "training"

SHEDDABLE_MEASUREMENTS: Final = frozenset({TELEMETRY, TWIN_HEALTH})
"""Periodic samples, each superseded by the next: the only points the writer may shed when its
spool is full (counted). Alarm, state and command points are never shed."""

MAX_STRING_FIELD_BYTES: Final = 64 * 1024 - 1
"""InfluxDB 1.x refuses a string field of 64 KiB or more."""

MAX_TEXT_CHARS: Final = 4000
"""Free text (comments, reasons, messages) is cut to this many characters, marked with ``…``.
The alarm journal keeps the whole text; time series are for dashboards."""

MIN_TIME_NS: Final = -(2**63) + 2
MAX_TIME_NS: Final = 2**63 - 2
"""InfluxDB's timestamp range (1677-09-21 to 2262-04-11); outside it a write is refused."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DEVICE_DISCRIMINATORS: Final = 500
"""Sub-microsecond nanosecond values 0..499 belong to device messages, 500..999 to twin events."""


# ------------------------------------------------------------------------------------ names & values


@lru_cache(maxsize=4096)
def check_name(name: str, *, backslash: bool = False) -> str:
    """Return ``name`` if it is usable as a measurement name or field key (``backslash=False``) or a
    tag key (``backslash=True``), else raise ``ValueError``.

    Refused: empty, a control character, a leading ``_`` (reserved by InfluxDB 2.x/3.x) or ``#``
    (a comment line), a trailing backslash (it would escape the separator after it), and ``time``
    (refused by InfluxDB as a key). A backslash in a measurement name or field key is refused:
    InfluxDB 1.x reads ``\\"`` and ``\\=`` there as escapes, so such a name cannot come back as
    written. Spaces, commas, equals signs, quotes and non-ASCII are fine anywhere: they are escaped.
    """
    if not name:
        raise ValueError("an InfluxDB name cannot be empty")
    if name == "time":
        raise ValueError("'time' cannot be a measurement, tag or field name in InfluxDB")
    if name[0] in "_#":
        raise ValueError(f"InfluxDB name {name!r} cannot start with {name[0]!r}")
    if name.endswith("\\"):
        raise ValueError(f"InfluxDB name {name!r} cannot end with a backslash")
    if not backslash and "\\" in name:
        raise ValueError(f"InfluxDB measurement name or field key {name!r} cannot hold a backslash")
    if _CONTROL_CHARACTERS.search(name):
        raise ValueError(f"InfluxDB name {name!r} contains a control character")
    return name


_CONTROL_CHARACTERS: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode category Cc, exactly."""


@lru_cache(maxsize=65536)
def stored_tag_value(value: str) -> str:
    """The tag value InfluxDB will store for ``value``: identical unless ``value`` has a control
    character (each becomes a space) or ends with backslashes (dropped). Idempotent. An empty
    result means the tag is left out of the point (InfluxDB has no empty tag values)."""
    return _CONTROL_CHARACTERS.sub(" ", value).rstrip("\\")


def _check_field(key: str, value: FieldValue) -> None:
    check_name(key, backslash=False)
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"field {key!r}: integer {value} does not fit InfluxDB's signed 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"field {key!r}: InfluxDB cannot store {value}")
    elif isinstance(value, str):
        if len(value.encode()) > MAX_STRING_FIELD_BYTES:
            raise ValueError(f"field {key!r}: string longer than {MAX_STRING_FIELD_BYTES} bytes")
    else:
        raise TypeError(f"field {key!r}: {type(value).__name__} is not a field type")


@dataclass(frozen=True, slots=True)
class InfluxPoint:
    """One point: measurement, tags (identity), fields (values) and a nanosecond UTC timestamp.

    Invariants, checked at construction (``ValueError`` / ``TypeError``): names pass
    :func:`check_name`; time within :data:`MIN_TIME_NS`..:data:`MAX_TIME_NS`; at least one field; float fields finite; integers fit 64 bits; strings
    under 64 KiB; no key is both a tag and a field. Tag values may hold anything: see
    :func:`stored_tag_value` for what InfluxDB keeps.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int

    def __post_init__(self) -> None:
        check_name(self.measurement)
        if not MIN_TIME_NS <= self.time_ns <= MAX_TIME_NS:
            raise ValueError(f"time {self.time_ns} ns is outside InfluxDB's range")
        if not self.fields:
            raise ValueError(f"a {self.measurement} point needs at least one field")
        for key in self.tags:
            check_name(key, backslash=True)
        for key, value in self.fields.items():
            _check_field(key, value)
        if not self.tags.keys().isdisjoint(self.fields.keys()):
            raise ValueError(f"keys both tag and field: {sorted(set(self.tags) & set(self.fields))}")

    @property
    def sheddable(self) -> bool:
        """True for periodic samples the writer may shed (counted) when its spool is full."""
        return self.measurement in SHEDDABLE_MEASUREMENTS

    def line_protocol(self) -> str:
        """This point as one line of InfluxDB line protocol, nanosecond precision, no trailing newline.

        A string field may contain newlines (InfluxDB reads quoted newlines as part of the value),
        so split a body into points by parsing, never by ``\\n``. The escaped series key
        (measurement and tags) is the same for every point of a series, so it is encoded once
        and remembered (:func:`_series_key`); the fields and the time are encoded every time.
        """
        return _series_key(self.measurement, tuple(self.tags.items())) + field_set(self.fields) + f" {self.time_ns}"


_ESCAPE_MEASUREMENT: Final = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING: Final = str.maketrans({'"': r"\"", "\\": r"\\"})


def _escape_tag_value(value: str) -> str:
    escaped = value.translate(_ESCAPE_KEY)
    return escaped + " " if escaped.endswith("\\") else escaped


@lru_cache(maxsize=65536)
def _series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """``measurement,tag=value,... `` (sorted tags, with the trailing space), escaped as line protocol
    wants (InfluxData's rules: commas and spaces in a measurement; commas, equals signs and spaces in
    tag keys and values; an empty tag is left out)."""
    parts = [measurement.translate(_ESCAPE_MEASUREMENT)]
    for tag_key, tag_value in sorted(tags):
        key = tag_key.translate(_ESCAPE_KEY)
        value = _escape_tag_value(stored_tag_value(tag_value))
        if key and value:
            parts.append(f"{key}={value}")
    return ",".join(parts) + " "


@lru_cache(maxsize=4096)
def _field_key(key: str) -> str:
    return key.translate(_ESCAPE_KEY)


def field_value(value: FieldValue) -> str:
    """One field value as line protocol writes it: a float without a trailing ``.0``, an integer
    with ``i``, a boolean in lower case, a string quoted with ``\\`` and ``"`` escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        text = str(value)
        return text[:-2] if text.endswith(".0") else text
    return '"' + value.translate(_ESCAPE_STRING) + '"'


def field_set(fields: Mapping[str, FieldValue]) -> str:
    """``key=value,...`` in sorted key order."""
    return ",".join(f"{_field_key(k)}={field_value(fields[k])}" for k in sorted(fields))


# ------------------------------------------------------------------------------------------- time


def timestamp_ns(moment: datetime, discriminator: int) -> int:
    """Nanoseconds since the Unix epoch for an aware ``moment``, with ``discriminator`` (0..999) as
    the three sub-microsecond digits. Exact integer arithmetic: no float rounding."""
    if moment.tzinfo is None:
        raise ValueError("a point's time must be timezone-aware")
    if not 0 <= discriminator < 1000:
        raise ValueError(f"discriminator {discriminator} is not in 0..999")
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000 + discriminator


def _device_discriminator(seq: int) -> int:
    return seq % _DEVICE_DISCRIMINATORS


def _twin_discriminator(*identity: str) -> int:
    digest = zlib.crc32("\x1f".join(identity).encode())  # stable across processes, unlike hash()
    return _DEVICE_DISCRIMINATORS + digest % (1000 - _DEVICE_DISCRIMINATORS)


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT_CHARS else value[: MAX_TEXT_CHARS - 1] + "…"


# --------------------------------------------------------------------------------------- identity


@dataclass(frozen=True, slots=True)
class DeviceTags:
    """A device's identity as tags: where it is, what it is, what it infuses, whether it is simulated.

    ``site`` and ``device`` are contract ids (letters, digits, ``_ . -``). ``model`` and
    ``simulated`` come from the birth; ``drug`` from the latest state (``None`` before the first
    state: the tag is then left out).
    """

    site: str
    device: str
    model: str
    drug: Drug | None
    simulated: bool

    @classmethod
    def from_birth(cls, site: str, birth: Birth, drug: Drug | None = None) -> DeviceTags:
        return cls(site=site, device=birth.device_id, model=birth.model, drug=drug, simulated=birth.simulated)

    def as_tags(self) -> dict[str, str]:
        tags = {"site": self.site, "device": self.device, "model": self.model}
        tags["simulated"] = "true" if self.simulated else "false"
        if self.drug is not None:
            tags["drug"] = self.drug.value
        return tags

    def _check_same_device(self, site: str, device_id: str) -> None:
        if (site, device_id) != (self.site, self.device):
            raise ValueError(f"event of {site}/{device_id} mapped with the tags of {self.site}/{self.device}")


def _check_device(tags: DeviceTags, message: DeviceMessage) -> None:
    if message.device_id != tags.device:
        raise ValueError(f"message of {message.device_id!r} mapped with the tags of {tags.device!r}")


# ----------------------------------------------------------------------------------- device messages


def telemetry_point(tags: DeviceTags, telemetry: Telemetry) -> InfluxPoint:
    """``telemetry``: one periodic sample. Simulator ground truth, when present, as ``true_*`` fields."""
    _check_device(tags, telemetry)
    fields: dict[str, FieldValue] = {
        "reservoir_ml": float(telemetry.reservoir_ml),
        "current_rate_ml_per_day": float(telemetry.current_rate_ml_per_day),
        "dose_mg_per_day": float(telemetry.dose_mg_per_day),
        "delivered_ml_total": float(telemetry.delivered_ml_total),
        "battery_percent": float(telemetry.battery_percent),
        "motor": telemetry.motor.value,
        "infusing": telemetry.infusing,
        "seq": telemetry.seq,
        "session": telemetry.session,
    }
    truth = telemetry.sim_truth
    if truth is not None:
        fields["true_reservoir_ml"] = float(truth.reservoir_ml)
        fields["true_delivered_to_patient_ml_total"] = float(truth.delivered_to_patient_ml_total)
        fields["true_lost_ml_total"] = float(truth.lost_ml_total)
        fields["true_actual_concentration_mg_per_ml"] = float(truth.actual_concentration_mg_per_ml)
        fields["true_actual_dose_mg_per_day"] = float(truth.actual_dose_mg_per_day)
        fields["true_catheter"] = truth.catheter.value
    return InfluxPoint(
        TELEMETRY,
        tags.as_tags(),
        fields,
        timestamp_ns(telemetry.device_time, _device_discriminator(telemetry.seq)),
    )


def state_point(tags: DeviceTags, state: State) -> InfluxPoint:
    """``state``: the reported state at one change. The ``drug`` tag is the state's own drug.

    ``program_rate_ml_per_day`` is present in continuous mode only; ``dose_mg_per_day`` is
    concentration × current rate, as telemetry defines it.
    """
    _check_device(tags, state)
    fields: dict[str, FieldValue] = {
        "reservoir_ml": float(state.reservoir_ml),
        "low_reservoir_threshold_ml": float(state.low_reservoir_threshold_ml),
        "unusable_residual_ml": float(state.unusable_residual_ml),
        "concentration_mg_per_ml": float(state.concentration_mg_per_ml),
        "program_mode": state.program.mode.value,
        "current_rate_ml_per_day": float(state.current_rate_ml_per_day),
        "dose_mg_per_day": float(state.concentration_mg_per_ml * state.current_rate_ml_per_day),
        "infusing": state.infusing,
        "motor": state.motor.value,
        "battery_percent": float(state.battery_percent),
        "battery_status": state.battery.value,
        "active_alarm_count": len(state.active_alarms),
        "active_alarms": ",".join(code.value for code in state.active_alarms),
        "bolus_active": state.bolus is not None,
        "delivered_ml_total": float(state.delivered_ml_total),
        "seq": state.seq,
        "session": state.session,
    }
    if state.program.rate_ml_per_day is not None:
        fields["program_rate_ml_per_day"] = float(state.program.rate_ml_per_day)
    if state.stop_reason is not None:
        fields["stop_reason"] = state.stop_reason.value
    if state.refill_reminder_at is not None:
        fields["refill_reminder_at_ms"] = _epoch_ms(state.refill_reminder_at)
    fields["eri_at_ms"] = _epoch_ms(pump_eri_at(state))
    return InfluxPoint(
        STATE,
        replace(tags, drug=state.drug).as_tags(),
        fields,
        timestamp_ns(state.device_time, _device_discriminator(state.seq)),
    )


DEFAULT_BATTERY: Final = BatteryModel()
"""The battery model of the simulated pumps (its drain figures are the pump model's)."""


def pump_eri_at(state: State, battery: BatteryModel = DEFAULT_BATTERY) -> datetime:
    """The pump's elective replacement date as of ``state``: when it was reached, or, before, the
    date the battery reaches ERI at the current flow (``battery``'s drain: the base drain plus the
    share of every mL pumped). A pump that stopped still drains its base share, so the date moves
    only as the flow does. Device time."""
    if state.eri_at is not None:
        return state.eri_at
    return state.device_time + timedelta(days=battery.days_to_eri(state.battery_percent, state.current_rate_ml_per_day))


def _epoch_ms(at: datetime) -> int:
    """A date as a field: integer milliseconds since 1970 UTC (Grafana's ``dateTimeAsIso`` unit)."""
    return int(at.timestamp() * 1000)


def alarm_event_point(tags: DeviceTags, event: AlarmEvent) -> InfluxPoint:
    """``alarm``: the device raised or cleared an alarm (``event`` = ``raised`` / ``cleared``).

    ``active_s`` (seconds from raise to clear, device clock) is present on a clear.
    """
    _check_device(tags, event)
    fields: dict[str, FieldValue] = {
        "event": event.event.value,
        "alarm_id": event.alarm_id,
        "device_class": event.device_class.value,
        "actor": "device",
        "message": _text(event.message),
        "seq": event.seq,
        "session": event.session,
    }
    if event.event is AlarmEventType.CLEARED:
        fields["active_s"] = (event.device_time - event.raised_at).total_seconds()
    return InfluxPoint(
        ALARM,
        {**tags.as_tags(), "code": event.code.value, "priority": event.priority.value},
        fields,
        timestamp_ns(event.device_time, _device_discriminator(event.seq)),
    )


def device_points(tags: DeviceTags, message: DeviceMessage) -> tuple[InfluxPoint, ...]:
    """The points for any device message: telemetry, state and alarm events make one each; birth,
    status and command results make none here (a command outcome is :func:`command_point`)."""
    if isinstance(message, Telemetry):
        return (telemetry_point(tags, message),)
    if isinstance(message, State):
        return (state_point(tags, message),)
    if isinstance(message, AlarmEvent):
        return (alarm_event_point(tags, message),)
    return ()


# -------------------------------------------------------------------------------------- twin events


@dataclass(frozen=True, slots=True)
class AlarmTransitionPoint:
    """One step of the twin's alarm lifecycle (ISA-18.2 states), as the alarm module reports it.

    ``from_state``/``to_state`` are that module's state names (e.g. ``active_unacknowledged`` ->
    ``active_acknowledged``); ``actor`` is who caused it (a user, ``device``, ``twin``,
    ``scenario:<name>``); ``at`` is when, on the clock the twin uses for that device (device time
    for simulated pumps). ``time_to_ack_s`` is the seconds from raise to acknowledgement, when
    this transition is the acknowledgement and the raise time is known.
    """

    alarm_id: str
    device_id: str
    site: str
    code: AlarmCode | str
    priority: Priority
    from_state: str
    to_state: str
    actor: str
    comment: str | None
    at: datetime
    time_to_ack_s: float | None = None
    transition: str | None = None  # the lifecycle's event name: raise, clear, acknowledge, shelve ...
    version: int | None = None  # the alarm's version after this step: (alarm_id, version) is unique


def alarm_transition_point(tags: DeviceTags, transition: AlarmTransitionPoint) -> InfluxPoint:
    """``alarm`` with ``event`` = ``transition``: who moved which alarm from which state to which.

    Raises ``ValueError`` if ``tags`` describe another device than the transition.
    """
    tags._check_same_device(transition.site, transition.device_id)
    fields: dict[str, FieldValue] = {
        "event": "transition",
        "alarm_id": transition.alarm_id,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "actor": _text(transition.actor),
    }
    if transition.comment is not None:
        fields["comment"] = _text(transition.comment)
    if transition.time_to_ack_s is not None:
        fields["time_to_ack_s"] = float(transition.time_to_ack_s)
    if transition.transition is not None:
        fields["transition"] = transition.transition
    if transition.version is not None:
        fields["version"] = int(transition.version)
    code = transition.code.value if isinstance(transition.code, AlarmCode) else transition.code
    discriminator = _twin_discriminator(
        transition.alarm_id, transition.from_state, transition.to_state, str(transition.version or "")
    )
    return InfluxPoint(
        ALARM,
        {**tags.as_tags(), "code": code, "priority": transition.priority.value},
        fields,
        timestamp_ns(transition.at, discriminator),
    )


class CommandOutcome(StrEnum):
    """Where a command stands, from the twin's side."""

    PENDING = "pending"  # sent, no answer yet
    APPLIED = "applied"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"  # no answer before it expired


@dataclass(frozen=True, slots=True)
class CommandOutcomePoint:
    """A command's status change. ``action`` is the action type (``refill``, ``reprogram``...);
    ``latency_s`` is seconds from issue to answer (``None`` while pending). ``session``/``seq``
    are the device result's, when the outcome came from one."""

    command_id: str
    device_id: str
    site: str
    action: str
    status: CommandOutcome
    actor: str
    at: datetime
    latency_s: float | None = None
    reason: str | None = None
    replay: bool | None = None
    session: int | None = None
    seq: int | None = None


def command_point(tags: DeviceTags, outcome: CommandOutcomePoint) -> InfluxPoint:
    """``command``: one status of one command. Raises ``ValueError`` if ``tags`` are another device's."""
    tags._check_same_device(outcome.site, outcome.device_id)
    fields: dict[str, FieldValue] = {
        "command_id": outcome.command_id,
        "status": outcome.status.value,
        "actor": _text(outcome.actor),
    }
    if outcome.latency_s is not None:
        fields["latency_s"] = float(outcome.latency_s)
    if outcome.reason is not None:
        fields["reason"] = _text(outcome.reason)
    if outcome.replay is not None:
        fields["replay"] = outcome.replay
    if outcome.session is not None:
        fields["session"] = outcome.session
    if outcome.seq is not None:
        fields["seq"] = outcome.seq
        discriminator = _device_discriminator(outcome.seq)
    else:
        discriminator = _twin_discriminator(outcome.command_id, outcome.status.value)
    return InfluxPoint(
        COMMAND,
        {**tags.as_tags(), "action": outcome.action},
        fields,
        timestamp_ns(outcome.at, discriminator),
    )


@dataclass(frozen=True, slots=True)
class TwinHealthPoint:
    """A periodic health sample of one twin replica (``twin``: its name, e.g. the host name).

    Counters are cumulative since the replica started (use ``non_negative_derivative`` for
    rates). ``rejects_by_reason`` keys are reject reason codes (``twin.contract.codec.REJECT_REASONS``
    and the twin's own); ``lag_s`` is how far behind real time the twin's processing is.
    """

    twin: str
    at: datetime
    messages_in: int
    rejects_by_reason: Mapping[str, int] = field(default_factory=dict)
    lag_s: float | None = None
    devices_online: int = 0
    devices_known: int = 0
    gaps: int = 0
    duplicates: int = 0


def twin_health_point(health: TwinHealthPoint) -> InfluxPoint:
    """``twin_health``: tagged by ``twin`` only. ``rejects_total`` sums ``rejects_<reason>`` fields."""
    fields: dict[str, FieldValue] = {
        "messages_in": health.messages_in,
        "rejects_total": sum(health.rejects_by_reason.values()),
        "devices_online": health.devices_online,
        "devices_known": health.devices_known,
        "gaps": health.gaps,
        "duplicates": health.duplicates,
    }
    for reason, count in health.rejects_by_reason.items():
        fields[f"rejects_{reason}"] = count
    if health.lag_s is not None:
        fields["lag_s"] = float(health.lag_s)
    return InfluxPoint(TWIN_HEALTH, {"twin": health.twin}, fields, timestamp_ns(health.at, _DEVICE_DISCRIMINATORS))


# --------------------------------------------------------------------------------------- training


class TrainingVerdict(StrEnum):
    """How a trainee's response to one alarm of a training session was judged."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    MISSED = "missed"  # no response before the scenario moved on


@dataclass(frozen=True, slots=True)
class TrainingResponsePoint:
    """One trainee's response (or missed response) to one alarm of a training session.

    ``session`` is the training session id, ``trainee`` the user name, ``site`` the (simulation)
    site the session ran on. ``response`` is the action taken (``acknowledge``, ``refill``,
    ``rotor_study``, ``escalate_physician``, ... or ``none``) and ``expected_response`` the one
    the scenario asked for. ``time_to_ack_s``/``time_to_respond_s`` are seconds from the raise to
    the acknowledgement/response (``None`` when it never came, e.g. a miss). ``score`` is 0..1.
    ``at`` is when the response, or the miss, was recorded. ``device`` is the pump the alarm was on,
    when known: alarm ids are unique per device only (``a1-reservoir_low`` exists on many pumps).
    """

    session: str
    trainee: str
    site: str
    scenario: str
    alarm_id: str
    code: AlarmCode | str
    priority: Priority
    response: str
    expected_response: str
    verdict: TrainingVerdict
    score: float
    at: datetime
    time_to_ack_s: float | None = None
    time_to_respond_s: float | None = None
    device: str | None = None


def training_response_point(response: TrainingResponsePoint) -> InfluxPoint:
    """``training``: tagged by ``session``, ``trainee`` and ``site``; everything else is a field.

    Raises ``ValueError`` if ``score`` is not within 0..1 or a time is negative.
    """
    if not 0.0 <= response.score <= 1.0:
        raise ValueError(f"a training score is within 0..1, not {response.score}")
    for name, seconds in (("time_to_ack_s", response.time_to_ack_s), ("time_to_respond_s", response.time_to_respond_s)):
        if seconds is not None and seconds < 0:
            raise ValueError(f"{name} cannot be negative ({seconds})")
    code = response.code.value if isinstance(response.code, AlarmCode) else response.code
    fields: dict[str, FieldValue] = {
        "scenario": _text(response.scenario),
        "alarm_id": response.alarm_id,
        "code": code,
        "priority": response.priority.value,
        "response": _text(response.response),
        "expected_response": _text(response.expected_response),
        "verdict": response.verdict.value,
        "score": float(response.score),
    }
    if response.time_to_ack_s is not None:
        fields["time_to_ack_s"] = float(response.time_to_ack_s)
    if response.time_to_respond_s is not None:
        fields["time_to_respond_s"] = float(response.time_to_respond_s)
    if response.device is not None:
        fields["device"] = response.device
    discriminator = _twin_discriminator(response.session, response.trainee, response.device or "", response.alarm_id)
    return InfluxPoint(
        TRAINING,
        {"session": response.session, "trainee": response.trainee, "site": response.site},
        fields,
        timestamp_ns(response.at, discriminator),
    )


__all__ = [
    "ALARM",
    "COMMAND",
    "SHEDDABLE_MEASUREMENTS",
    "STATE",
    "TELEMETRY",
    "TRAINING",
    "TWIN_HEALTH",
    "AlarmTransitionPoint",
    "CommandOutcome",
    "CommandOutcomePoint",
    "DeviceTags",
    "FieldValue",
    "InfluxPoint",
    "TrainingResponsePoint",
    "TrainingVerdict",
    "TwinHealthPoint",
    "alarm_event_point",
    "alarm_transition_point",
    "check_name",
    "command_point",
    "device_points",
    "state_point",
    "stored_tag_value",
    "telemetry_point",
    "timestamp_ns",
    "training_response_point",
    "twin_health_point",
]
