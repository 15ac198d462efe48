"""Our line-protocol encoder writes exactly what InfluxData's own encoder (influxdb_client's Point) writes:
the fast telemetry line, the fast ``sim_truth`` line of a simulated pump's sample, and every point."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point  # the oracle: InfluxData's encoder
from influxdb_client.domain.write_precision import WritePrecision

from twin.contract.messages import CatheterState, Drug, MotorState, SimTruth, Telemetry
from twin.timeseries import lines as lines_module
from twin.timeseries.lines import device_lines, sim_truth_line, telemetry_line
from twin.timeseries.points import (
    TRUTH_FIELD_PREFIX,
    DeviceTags,
    InfluxPoint,
    device_points,
    sim_truth_point,
    stored_tag_value,
    telemetry_point,
)


def reference(point: InfluxPoint) -> str:
    ref = Point(point.measurement)
    for key, value in point.tags.items():
        ref.tag(key, stored_tag_value(value))
    for key, value in point.fields.items():
        ref.field(key, value)
    ref.time(point.time_ns, WritePrecision.NS)
    line: str = ref.to_line_protocol()
    return line


NASTY = st.sampled_from([" ", ",", "=", '"', "\\", "\n", "\t", "é", "µ", "😀", "\x00"])
TAG_TEXT = st.text(st.one_of(NASTY, st.characters(codec="utf-8")), min_size=1, max_size=12)
VOLUME = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False) | st.integers(0, 1000).map(float)
RATE = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


TRUTHS = st.builds(
    SimTruth,
    reservoir_ml=VOLUME,
    delivered_to_patient_ml_total=VOLUME,
    lost_ml_total=VOLUME,
    actual_concentration_mg_per_ml=st.floats(0.0, 100.0),
    actual_dose_mg_per_day=RATE,
    catheter=st.sampled_from(list(CatheterState)),
)


@st.composite
def samples(draw: st.DrawFn, *, simulated_with_truth: bool = False) -> tuple[DeviceTags, Telemetry]:
    """A device's tags and one sample; ``simulated_with_truth``: always a simulated pump with truth."""
    device = draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}\Z"))
    tags = DeviceTags(
        site=draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}\Z")),
        device=device,
        model=draw(TAG_TEXT),
        drug=draw(st.none() | st.sampled_from(list(Drug))),
        simulated=True if simulated_with_truth else draw(st.booleans()),
    )
    truth = draw(TRUTHS if simulated_with_truth else st.none() | TRUTHS)
    moment = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(microseconds=draw(st.integers(0, 6 * 10**15)))
    sample = Telemetry(
        device_id=device,
        device_time=moment,
        session=draw(st.integers(0, 2**31)),
        seq=draw(st.integers(0, 2**40)),
        reservoir_ml=draw(VOLUME),
        current_rate_ml_per_day=draw(RATE),
        dose_mg_per_day=draw(RATE),
        delivered_ml_total=draw(VOLUME),
        battery_percent=draw(st.floats(0.0, 100.0)),
        motor=draw(st.sampled_from(list(MotorState))),
        infusing=draw(st.booleans()),
        sim_truth=truth,
    )
    return tags, sample


@settings(max_examples=400)
@given(samples())
def test_the_fast_telemetry_line_is_the_reference_line(case: tuple[DeviceTags, Telemetry]) -> None:
    tags, sample = case
    point = telemetry_point(tags, sample)
    assert telemetry_line(tags, sample) == point.line_protocol().encode() == reference(point).encode()
    assert not [key for key in point.fields if key.startswith(TRUTH_FIELD_PREFIX)]  # truth never in telemetry
    assert device_lines(tags, sample) == [p.line_protocol().encode() for p in device_points(tags, sample)]
    if sample.sim_truth is None or not tags.simulated:  # a real pump has no truth, and a claim of one is ignored
        assert sim_truth_line(tags, sample) is None
        assert sim_truth_point(tags, sample) is None
        assert device_lines(tags, sample) == [telemetry_line(tags, sample)]


@settings(max_examples=400)
@given(samples(simulated_with_truth=True))
def test_the_fast_sim_truth_line_is_the_reference_line(case: tuple[DeviceTags, Telemetry]) -> None:
    tags, sample = case
    truth = sim_truth_point(tags, sample)
    assert truth is not None
    assert sim_truth_line(tags, sample) == truth.line_protocol().encode() == reference(truth).encode()
    assert truth.measurement == "sim_truth"
    assert truth.tags == telemetry_point(tags, sample).tags
    assert truth.time_ns == telemetry_point(tags, sample).time_ns  # lines up with its sample
    assert device_lines(tags, sample) == [telemetry_line(tags, sample), sim_truth_line(tags, sample)]


ANY_FLOAT = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1.0, -3.0, 10.0, 100.0, 1e15, 1e16, 1e17, 1e22, 1e300, 5e-324, 1e-5, 0.05, 10.05, 100.5, 2.0**53]
)
TELEMETRY_FLOATS = (
    "battery_percent",
    "current_rate_ml_per_day",
    "delivered_ml_total",
    "dose_mg_per_day",
    "reservoir_ml",
)
TRUTH_FLOATS = (
    "actual_concentration_mg_per_ml",
    "actual_dose_mg_per_day",
    "delivered_to_patient_ml_total",
    "lost_ml_total",
    "reservoir_ml",
)


@settings(max_examples=400)
@given(
    case=samples(simulated_with_truth=True),
    values=st.lists(ANY_FLOAT | st.integers(-(2**60), 2**60), min_size=10, max_size=10),
    tag_text=st.sampled_from(["Model 1.0", "lab1.0", "1.0,x", "v1.0 beta", "2.0"]),
)
def test_the_fast_lines_write_any_number_as_the_point_encoder_does(
    case: tuple[DeviceTags, Telemetry], values: list[float], tag_text: str
) -> None:
    """Whatever the numbers (outside the contract's ranges too: huge, tiny, negative, integral,
    integers where floats belong, as an unvalidated message may hold) and tag values ending in
    ``.0`` (never trimmed): the same bytes as :func:`telemetry_point` and :func:`sim_truth_point`."""
    tags, sample = case
    tags = DeviceTags(tag_text, sample.device_id, tag_text, tags.drug, True)
    assert sample.sim_truth is not None
    truth = sample.sim_truth.model_copy(update=dict(zip(TRUTH_FLOATS, values[5:], strict=True)))
    sample = sample.model_copy(update={**dict(zip(TELEMETRY_FLOATS, values[:5], strict=True)), "sim_truth": truth})
    truth_point = sim_truth_point(tags, sample)
    assert truth_point is not None
    assert telemetry_line(tags, sample) == telemetry_point(tags, sample).line_protocol().encode()
    assert sim_truth_line(tags, sample) == truth_point.line_protocol().encode()


KEYS = st.sampled_from(["site", "device", "model", "drug", "code", "priority", "a b", "x,y", "k=v", "ü"])
FIELD_KEYS = st.sampled_from(["reservoir_ml", "message", "seq", "infusing", "comment", "a b", "x,y", "k=v"])
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(st.one_of(NASTY, st.characters(codec="utf-8")), max_size=20),
)


@settings(max_examples=500)
@given(
    measurement=st.sampled_from(
        ["telemetry", "sim_truth", "state", "alarm", "command", "twin_health", "training", "a b,c"]
    ),
    tags=st.dictionaries(KEYS, TAG_TEXT, max_size=5),
    fields=st.dictionaries(FIELD_KEYS, VALUES, min_size=1, max_size=6),
    time_ns=st.integers(min_value=0, max_value=2**62),
)
def test_every_point_is_encoded_as_influxdata_encodes_it(
    measurement: str, tags: dict[str, str], fields: dict[str, object], time_ns: int
) -> None:
    fields = {k: v for k, v in fields.items() if k not in tags}
    if not fields:
        return
    point = InfluxPoint(measurement, tags, fields, time_ns)  # type: ignore[arg-type]
    assert point.line_protocol() == reference(point)


SIM_TRUTH = SimTruth(
    reservoir_ml=1.0,
    delivered_to_patient_ml_total=0.0,
    lost_ml_total=0.0,
    actual_concentration_mg_per_ml=2.0,
    actual_dose_mg_per_day=0.2,
    catheter=CatheterState.PATENT,
)


def test_a_sample_of_another_device_is_refused() -> None:
    tags = DeviceTags("s", "pump-a", "m", None, True)
    sample = Telemetry(
        device_id="pump-b",
        device_time=datetime(2026, 1, 1, tzinfo=UTC),
        session=1,
        seq=1,
        reservoir_ml=1.0,
        current_rate_ml_per_day=0.1,
        dose_mg_per_day=0.1,
        delivered_ml_total=0.0,
        battery_percent=50.0,
        motor=MotorState.RUNNING,
        infusing=True,
    )
    with pytest.raises(ValueError, match="pump-a"):
        telemetry_line(tags, sample)
    with pytest.raises(ValueError, match="pump-a"):
        sim_truth_line(tags, sample.model_copy(update={"sim_truth": SIM_TRUTH}))


def test_series_keys_are_remembered_per_tags_object_and_never_confused() -> None:
    """The keys are found by the tags' id: tags made again (the same id, maybe, once the old ones are
    gone) get their own keys, and the memory is cleared when full."""
    sample = Telemetry(
        device_id="pump-a",
        device_time=datetime(2026, 1, 1, tzinfo=UTC),
        session=1,
        seq=1,
        reservoir_ml=1.0,
        current_rate_ml_per_day=0.1,
        dose_mg_per_day=0.1,
        delivered_ml_total=0.0,
        battery_percent=50.0,
        motor=MotorState.RUNNING,
        infusing=True,
    )
    for index in range(lines_module._SAMPLE_KEYS_MAX + 10):
        tags = DeviceTags(f"site-{index % 7}", "pump-a", f"m{index}", None, index % 2 == 0)
        assert telemetry_line(tags, sample) == telemetry_point(tags, sample).line_protocol().encode()
        del tags
    assert len(lines_module._SAMPLE_KEYS) <= lines_module._SAMPLE_KEYS_MAX
