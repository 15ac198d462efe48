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


def _float(value: float) -> str:
    text = str(float(value))
    return text[:-2] if text.endswith(".0") else text


def telemetry_line(tags: DeviceTags, t: Telemetry) -> bytes:
    """The ``telemetry`` point of ``t`` (see :func:`twin.timeseries.points.telemetry_point`)."""
    if t.device_id != tags.device:
        raise ValueError(f"message of {t.device_id!r} mapped with the tags of {tags.device!r}")
    head = (
        f"{series_key(TELEMETRY, tags)}battery_percent={_float(t.battery_percent)},"
        f"current_rate_ml_per_day={_float(t.current_rate_ml_per_day)},"
        f"delivered_ml_total={_float(t.delivered_ml_total)},dose_mg_per_day={_float(t.dose_mg_per_day)},"
        f'infusing={"true" if t.infusing else "false"},motor="{t.motor.value}",'
        f"reservoir_ml={_float(t.reservoir_ml)},seq={t.seq}i,session={t.session}i"
    )
    truth = t.sim_truth
    if truth is not None:
        head += (
            f",true_actual_concentration_mg_per_ml={_float(truth.actual_concentration_mg_per_ml)},"
            f"true_actual_dose_mg_per_day={_float(truth.actual_dose_mg_per_day)},"
            f'true_catheter="{truth.catheter.value}",'
            f"true_delivered_to_patient_ml_total={_float(truth.delivered_to_patient_ml_total)},"
            f"true_lost_ml_total={_float(truth.lost_ml_total)},true_reservoir_ml={_float(truth.reservoir_ml)}"
        )
    time_ns = timestamp_ns(t.device_time, t.seq % _DEVICE_DISCRIMINATORS)
    return f"{head} {time_ns}".encode()


def device_lines(tags: DeviceTags, message: DeviceMessage) -> list[bytes]:
    """The line-protocol lines of any device message (telemetry fast, the rest by the reference)."""
    if isinstance(message, Telemetry):
        return [telemetry_line(tags, message)]
    return [point.line_protocol().encode() for point in device_points(tags, message)]
