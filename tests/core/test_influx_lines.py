"""The hot-path line encoder writes exactly what the reference encoder (influxdb_client's Point) writes."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.contract.messages import CatheterState, Drug, MotorState, SimTruth, Telemetry
from twin.timeseries.lines import device_lines, telemetry_line
from twin.timeseries.points import DeviceTags, telemetry_point

NASTY = st.sampled_from([" ", ",", "=", '"', "\\", "\n", "\t", "é", "µ", "😀", "\x00"])
TAG_TEXT = st.text(st.one_of(NASTY, st.characters(codec="utf-8")), min_size=1, max_size=12)
VOLUME = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False) | st.integers(0, 1000).map(float)
RATE = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@st.composite
def samples(draw: st.DrawFn) -> tuple[DeviceTags, Telemetry]:
    device = draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}\Z"))
    tags = DeviceTags(
        site=draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}\Z")),
        device=device,
        model=draw(TAG_TEXT),
        drug=draw(st.none() | st.sampled_from(list(Drug))),
        simulated=draw(st.booleans()),
    )
    truth = draw(
        st.none()
        | st.builds(
            SimTruth,
            reservoir_ml=VOLUME,
            delivered_to_patient_ml_total=VOLUME,
            lost_ml_total=VOLUME,
            actual_concentration_mg_per_ml=st.floats(0.0, 100.0),
            actual_dose_mg_per_day=RATE,
            catheter=st.sampled_from(list(CatheterState)),
        )
    )
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
    assert telemetry_line(tags, sample) == telemetry_point(tags, sample).line_protocol().encode()
    assert device_lines(tags, sample) == [telemetry_line(tags, sample)]


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
    try:
        telemetry_line(tags, sample)
    except ValueError as exc:
        assert "pump-a" in str(exc)
    else:
        raise AssertionError("a sample of another device was encoded")
