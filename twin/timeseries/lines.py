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
    ",true_actual_concentration_mg_per_ml=",
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


def telemetry_line(tags: DeviceTags, t: Telemetry) -> bytes:
    """The ``telemetry`` point of ``t`` (see :func:`twin.timeseries.points.telemetry_point`)."""
    if t.device_id != tags.device:
        raise ValueError(f"message of {t.device_id!r} mapped with the tags of {tags.device!r}")
    # sorted field keys: battery, current_rate, delivered, dose, infusing, motor, reservoir, seq, session, true_*
    head = _floats(
        _TELEMETRY_KEYS[:4],
        (t.battery_percent, t.current_rate_ml_per_day, t.delivered_ml_total, t.dose_mg_per_day),
    )
    head += f',infusing={"true" if t.infusing else "false"},motor="{t.motor.value}"'
    head += _floats(_TELEMETRY_KEYS[4:], (t.reservoir_ml,)) + f",seq={t.seq}i,session={t.session}i"
    truth = t.sim_truth
    if truth is not None:
        head += _floats(_TRUTH_KEYS[:2], (truth.actual_concentration_mg_per_ml, truth.actual_dose_mg_per_day))
        head += f',true_catheter="{truth.catheter.value}"'
        head += _floats(_TRUTH_KEYS[2:], (truth.delivered_to_patient_ml_total, truth.lost_ml_total, truth.reservoir_ml))
    time_ns = timestamp_ns(t.device_time, t.seq % _DEVICE_DISCRIMINATORS)
    return f"{series_key(TELEMETRY, tags)}{head} {time_ns}".encode()


def device_lines(tags: DeviceTags, message: DeviceMessage) -> list[bytes]:
    """The line-protocol lines of any device message (telemetry fast, the rest by the reference)."""
    if isinstance(message, Telemetry):
        return [telemetry_line(tags, message)]
    return [point.line_protocol().encode() for point in device_points(tags, message)]
