"""Line protocol for the ingest hot path: the same bytes as :meth:`InfluxPoint.line_protocol`,
without building a point.

Why this exists: encoding through ``influxdb_client``'s ``Point`` cost about 17 µs a point (a
telemetry sample's point and its line were 19 µs together, measured on main), more than
everything else the twin does with the sample. Telemetry is most of the traffic, so its line is
written here directly, without building a point: the escaped series key of each device is made
once and remembered (:func:`series_key`), and the fields are formatted as every point's are
(:func:`twin.timeseries.points.field_value`: sorted keys; a float as ``str()`` without a trailing
``.0``; an integer with ``i``; a boolean in lower case). ``tests/core/test_influx_lines.py``
checks the bytes against InfluxData's own encoder over random samples, and the integration
tests write them to a real influxd and read them back.

The simulator's ground truth of a sample goes to its own measurement, ``sim_truth``
(:func:`telemetry_lines` writes both lines of a sample; the same bytes as
:func:`twin.timeseries.points.sim_truth_point`), never
to ``telemetry``; a real pump's sample has none.

Every other message (states, alarm events, transitions, commands: a few per hundred samples)
goes through :class:`~twin.timeseries.points.InfluxPoint` (:func:`twin.timeseries.points.device_points`).

Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

from twin.contract.messages import CatheterState, DeviceMessage, MotorState, Telemetry
from twin.timeseries.points import (
    _DEVICE_DISCRIMINATORS,
    SIM_TRUTH,
    TELEMETRY,
    DeviceTags,
    _series_key,
    device_points,
)


@lru_cache(maxsize=65_536)
def series_key(measurement: str, tags: DeviceTags) -> str:
    """``measurement,tag=value,... `` for one device (escaped by the reference encoder), cached."""
    return _series_key(measurement, tuple(tags.as_tags().items()))


_MICROSECOND: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MOTOR: Final = {state: f'"{state.value}"' for state in MotorState}
_CATHETER: Final = {state: f'"{state.value}"' for state in CatheterState}
_INFUSING: Final = {True: "true", False: "false"}
if any(".0" in text for texts in (_MOTOR, _CATHETER, _INFUSING) for text in texts.values()):  # pragma: no cover
    raise ImportError("a string field's text holds '.0': telemetry_lines' float trimming would change it")


_SAMPLE_KEYS: Final[dict[int, tuple[DeviceTags, str, str]]] = {}
"""``id(tags)`` -> the tags (kept alive with it, so that the id is not reused while here) and their
``telemetry`` and ``sim_truth`` series keys: one lookup per sample without hashing the tags'
five fields (an ``lru_cache`` on the tags cost 180 ns a sample, this about 60)."""
_SAMPLE_KEYS_MAX: Final = 65_536


def _sample_keys(tags: DeviceTags) -> tuple[DeviceTags, str, str]:
    """The ``telemetry`` and ``sim_truth`` series keys of one device's tags, remembered."""
    if len(_SAMPLE_KEYS) >= _SAMPLE_KEYS_MAX:
        _SAMPLE_KEYS.clear()
    entry = _SAMPLE_KEYS[id(tags)] = (tags, series_key(TELEMETRY, tags), series_key(SIM_TRUTH, tags))
    return entry


def telemetry_lines(tags: DeviceTags, t: Telemetry) -> tuple[bytes, bytes | None]:
    """The sample's ``telemetry`` line (what the pump reports, never its ``sim_truth``) and its
    ``sim_truth`` line: ``None`` without truth, or for a pump whose birth says it is real. The same
    bytes as :func:`twin.timeseries.points.telemetry_point` and
    :func:`~twin.timeseries.points.sim_truth_point`; one device check, one timestamp and one
    cache lookup for both, each line one f-string (this runs for every sample: 5.0 µs for both
    lines against 10.1 µs built a field at a time, best of 9, same run, on the loaded 2-core
    machine)."""
    if t.device_id != tags.device:
        raise ValueError(f"message of {t.device_id!r} mapped with the tags of {tags.device!r}")
    keys = _SAMPLE_KEYS.get(id(tags))
    if keys is None or keys[0] is not tags:
        keys = _sample_keys(tags)
    _, telemetry_key, truth_key = keys
    moment = t.device_time
    if moment.tzinfo is None:
        raise ValueError("a point's time must be timezone-aware")
    seq = t.seq
    time = (moment - _EPOCH) // _MICROSECOND * 1000 + seq % _DEVICE_DISCRIMINATORS
    # sorted field keys: battery, current_rate, delivered, dose, infusing, motor, reservoir, seq, session.
    # Each float as repr() writes it (str() is the same for a float), then the ".0" of the integral
    # ones taken off (as field_value does, a value at a time) by one replace over the fields: a float's
    # text ends in ".0" only when integral (repr never writes "1.0e+16"), and a field's text can
    # hold ".0" followed by "," or " " nowhere else (names, integers, booleans and the enum texts
    # have none: checked at import). Never over the series key: a tag value may end in ".0".
    telemetry = telemetry_key + (
        f"battery_percent={float(t.battery_percent)!r}"
        f",current_rate_ml_per_day={float(t.current_rate_ml_per_day)!r}"
        f",delivered_ml_total={float(t.delivered_ml_total)!r},dose_mg_per_day={float(t.dose_mg_per_day)!r}"
        f",infusing={_INFUSING[t.infusing]},motor={_MOTOR[t.motor]},reservoir_ml={float(t.reservoir_ml)!r}"
        f",seq={seq}i,session={t.session}i {time}"
    ).replace(".0,", ",")
    truth = t.sim_truth
    if truth is None or not tags.simulated:
        return telemetry.encode(), None
    # sorted field keys: seq, session, true_actual_concentration, true_actual_dose, true_catheter,
    # true_delivered_to_patient, true_lost, true_reservoir (the last float before the time: " ")
    return telemetry.encode(), (
        truth_key
        + (
            f"seq={seq}i,session={t.session}i"
            f",true_actual_concentration_mg_per_ml={float(truth.actual_concentration_mg_per_ml)!r}"
            f",true_actual_dose_mg_per_day={float(truth.actual_dose_mg_per_day)!r}"
            f",true_catheter={_CATHETER[truth.catheter]}"
            f",true_delivered_to_patient_ml_total={float(truth.delivered_to_patient_ml_total)!r}"
            f",true_lost_ml_total={float(truth.lost_ml_total)!r}"
            f",true_reservoir_ml={float(truth.reservoir_ml)!r} {time}"
        )
        .replace(".0,", ",")
        .replace(".0 ", " ")
    ).encode()


def telemetry_line(tags: DeviceTags, t: Telemetry) -> bytes:
    """The ``telemetry`` line of ``t`` (see :func:`telemetry_lines`)."""
    return telemetry_lines(tags, t)[0]


def sim_truth_line(tags: DeviceTags, t: Telemetry) -> bytes | None:
    """The ``sim_truth`` line of ``t``, or ``None`` (see :func:`telemetry_lines`)."""
    return telemetry_lines(tags, t)[1]


def device_lines(tags: DeviceTags, message: DeviceMessage) -> list[bytes]:
    """The line-protocol lines of any device message (telemetry and its truth fast, the rest by the
    reference): the same lines, in the same order, as :func:`twin.timeseries.points.device_points`."""
    if isinstance(message, Telemetry):
        telemetry, truth = telemetry_lines(tags, message)
        return [telemetry] if truth is None else [telemetry, truth]
    return [point.line_protocol().encode() for point in device_points(tags, message)]
