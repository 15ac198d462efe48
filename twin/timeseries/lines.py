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

from functools import lru_cache
from typing import Final

from twin.contract.messages import DeviceMessage, Telemetry
from twin.timeseries.points import (
    _DEVICE_DISCRIMINATORS,
    SIM_TRUTH,
    TELEMETRY,
    DeviceTags,
    _series_key,
    device_points,
    timestamp_ns,
)


@lru_cache(maxsize=65_536)
def series_key(measurement: str, tags: DeviceTags) -> str:
    """``measurement,tag=value,... `` for one device (escaped by the reference encoder), cached."""
    return _series_key(measurement, tuple(tags.as_tags().items()))


_TELEMETRY_KEYS: Final = (
    "battery_percent=",
    ",current_rate_ml_per_day=",
    ",delivered_ml_total=",
    ",dose_mg_per_day=",
    ",reservoir_ml=",
)
_TRUTH_KEYS: Final = (
    "true_actual_concentration_mg_per_ml=",
    ",true_actual_dose_mg_per_day=",
    ",true_delivered_to_patient_ml_total=",
    ",true_lost_ml_total=",
    ",true_reservoir_ml=",
)


def _floats(keys: tuple[str, ...], values: tuple[float, ...]) -> str:
    """``key=value`` pairs of floats, each written as line protocol writes a float (see the module
    docstring); one comprehension instead of a call per value (this runs for every sample)."""
    texts = [str(float(v)) for v in values]
    return "".join(k + (t[:-2] if t.endswith(".0") else t) for k, t in zip(keys, texts, strict=True))


@lru_cache(maxsize=65_536)
def _sample_keys(tags: DeviceTags) -> tuple[str, str]:
    """The ``telemetry`` and ``sim_truth`` series keys of one device: one cache lookup per sample."""
    return series_key(TELEMETRY, tags), series_key(SIM_TRUTH, tags)


def telemetry_lines(tags: DeviceTags, t: Telemetry) -> tuple[bytes, bytes | None]:
    """The sample's ``telemetry`` line (what the pump reports, never its ``sim_truth``) and its
    ``sim_truth`` line: ``None`` without truth, or for a pump whose birth says it is real. The same
    bytes as :func:`twin.timeseries.points.telemetry_point` and
    :func:`~twin.timeseries.points.sim_truth_point`; one device check, one timestamp and one
    cache lookup for both (this runs for every sample)."""
    if t.device_id != tags.device:
        raise ValueError(f"message of {t.device_id!r} mapped with the tags of {tags.device!r}")
    telemetry_key, truth_key = _sample_keys(tags)
    time = f" {timestamp_ns(t.device_time, t.seq % _DEVICE_DISCRIMINATORS)}"
    counters = f"seq={t.seq}i,session={t.session}i"
    # sorted field keys: battery, current_rate, delivered, dose, infusing, motor, reservoir, seq, session
    head = _floats(
        _TELEMETRY_KEYS[:4],
        (t.battery_percent, t.current_rate_ml_per_day, t.delivered_ml_total, t.dose_mg_per_day),
    )
    head += f',infusing={"true" if t.infusing else "false"},motor="{t.motor.value}"'
    head += _floats(_TELEMETRY_KEYS[4:], (t.reservoir_ml,)) + "," + counters
    telemetry = f"{telemetry_key}{head}{time}".encode()
    truth = t.sim_truth
    if truth is None or not tags.simulated:
        return telemetry, None
    # sorted field keys: seq, session, true_actual_concentration, true_actual_dose, true_catheter,
    # true_delivered_to_patient, true_lost, true_reservoir
    body = _floats(_TRUTH_KEYS[:2], (truth.actual_concentration_mg_per_ml, truth.actual_dose_mg_per_day))
    body += f',true_catheter="{truth.catheter.value}"'
    body += _floats(_TRUTH_KEYS[2:], (truth.delivered_to_patient_ml_total, truth.lost_ml_total, truth.reservoir_ml))
    return telemetry, f"{truth_key}{counters},{body}{time}".encode()


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
