"""``alerts.next_change``: when the twin must look at a simulated pump again. Property-tested against
brute force: evaluating the rules on a fine grid of device times never finds a change before the
deadline it gave, and wherever the rules change, a deadline came no later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.contract import examples
from twin.contract.alarms import Priority
from twin.contract.messages import (
    BatteryStatus,
    DeviceLogEntry,
    DeviceLogKind,
    Drug,
    InfusionMode,
    RefillRecord,
    State,
)
from twin.mirror.alerts import AlertPolicy, PatientReport, evaluate, next_change
from twin.mirror.device_twin import DeviceTwin, Presence
from twin.mirror.prediction import forecast

T0 = examples.EXAMPLE_TIME
WALL = datetime(2026, 12, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = AlertPolicy()


def _twin(
    report: State, *, simulated: bool, audible: bool, last_heard_h: float, interval_h: float | None
) -> DeviceTwin:
    birth = examples.birth().model_copy(update={"simulated": simulated, "audible_alarms": audible})
    return DeviceTwin(
        site=examples.EXAMPLE_SITE,
        device_id=examples.EXAMPLE_DEVICE,
        birth=birth,
        reported=report,
        presence=Presence.ONLINE,
        last_seen_at=WALL,
        last_device_time=T0 + timedelta(hours=last_heard_h),
        report_interval_s=None if interval_h is None else interval_h * 3600,
    )


def _entry(kind: DeviceLogKind, hours: float, c_before: float, c_after: float, d_before: float, d_after: float):
    return DeviceLogEntry(
        at=T0 + timedelta(hours=hours),
        kind=kind,
        concentration_before_mg_per_ml=c_before,
        concentration_after_mg_per_ml=c_after,
        dose_before_mg_per_day=d_before,
        dose_after_mg_per_day=d_after,
    )


entries = st.builds(
    _entry,
    st.sampled_from([DeviceLogKind.REFILL, DeviceLogKind.REPROGRAM]),
    st.floats(-24 * 200, 24, allow_nan=False),
    st.sampled_from([1.0, 2.0]),
    st.sampled_from([1.0, 2.0, 4.0]),
    st.sampled_from([0.5, 1.0]),
    st.sampled_from([0.5, 1.0, 2.0]),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[DeviceTwin, list[PatientReport], datetime]:
    simulated = draw(st.booleans())
    audible = draw(st.booleans())
    log = sorted(draw(st.lists(entries, max_size=3)), key=lambda e: e.at)
    refill = None
    if draw(st.booleans()):
        refill = RefillRecord(
            at=T0 + timedelta(hours=draw(st.floats(-24 * 10, 0))),
            expected_residual_ml=3.0,
            measured_residual_ml=draw(st.sampled_from([3.0, 4.5, 1.0])),
            volume_added_ml=15.0,
            drug=Drug.MORPHINE,
            concentration_mg_per_ml=10.0,
        )
    stopped = draw(st.booleans())
    changes: dict[str, object] = {
        "event_log": log,
        "drug": draw(st.sampled_from([Drug.MORPHINE, Drug.BACLOFEN])),
        "reservoir_ml": draw(st.floats(0.5, 18)),
        "last_refill": refill,
        "refill_reminder_at": draw(st.none() | st.just(T0 + timedelta(days=draw(st.integers(1, 60))))),
        "battery": draw(st.sampled_from([BatteryStatus.OK, BatteryStatus.ERI])),
    }
    if stopped:
        changes["program"] = examples.state().program.model_copy(update={"mode": InfusionMode.STOPPED})
        changes["program_changed_at"] = T0 + timedelta(minutes=draw(st.integers(-120, 60)))
    report = examples.state().model_copy(update=changes)
    twin = _twin(
        report,
        simulated=simulated,
        audible=audible,
        last_heard_h=draw(st.floats(-12, 0)),
        interval_h=draw(st.none() | st.sampled_from([0.5, 4.0])),
    )
    reports = [
        PatientReport(T0 + timedelta(hours=h), "pain returns", Priority.MEDIUM)
        for h in draw(st.lists(st.floats(-30, 30), max_size=2))
    ]
    start = T0 + timedelta(hours=draw(st.floats(-2, 2)))
    return twin, reports, start


def _seen(twin: DeviceTwin, reports: list[PatientReport], device_now: datetime) -> set[tuple[str, str, str]]:
    outlook = forecast(twin.birth, twin.reported) if twin.reported is not None else None
    found = evaluate(twin, outlook, WALL, POLICY, device_now=device_now, reports=reports)
    return {(c.code.value, c.instance, c.priority.value) for c in found}


@settings(max_examples=150, deadline=None)
@given(cases())
def test_the_rules_never_change_before_the_deadline_and_a_change_always_has_one(
    case: tuple[DeviceTwin, list[PatientReport], datetime],
) -> None:
    twin, reports, start = case
    outlook = forecast(twin.birth, twin.reported) if twin.reported is not None else None
    deadline = next_change(twin, outlook, WALL, POLICY, device_now=start, reports=reports)
    assert deadline is None or deadline > start
    before = _seen(twin, reports, start)
    # brute force: every 10 simulated minutes over 400 days, and just before the deadline
    grid = [start + timedelta(minutes=10 * k) for k in range(1, 6 * 24 * 400, 7)]
    if deadline is not None:
        grid.append(deadline - timedelta(microseconds=1))
    for t in sorted(grid):
        if _seen(twin, reports, t) != before:
            assert deadline is not None, f"the rules changed at {t} but next_change said never"
            assert t >= deadline, f"the rules changed at {t}, before the deadline {deadline}"
            break


def test_a_silent_pump_is_looked_at_again_when_its_six_hours_run_out_on_the_device_clock() -> None:
    twin = _twin(examples.state(), simulated=True, audible=True, last_heard_h=0, interval_h=None)
    deadline = next_change(twin, None, WALL, POLICY, device_now=T0 + HOUR)
    assert deadline == T0 + timedelta(hours=6, microseconds=1)
    assert _seen(twin, [], deadline - timedelta(microseconds=1)) == set()
    assert {code for code, _, _ in _seen(twin, [], deadline)} == {"device_silent"}


def test_a_patient_report_on_a_simulated_pump_runs_on_the_device_clock() -> None:
    twin = _twin(examples.state(), simulated=True, audible=True, last_heard_h=0, interval_h=None)
    report = PatientReport(T0 + HOUR, "pain returns", Priority.MEDIUM)
    assert next_change(twin, None, WALL, POLICY, device_now=T0 + 2 * HOUR, reports=[report]) == T0 + 6 * HOUR + (
        timedelta(microseconds=1)
    )  # the silence comes first
    assert {c for c, _, _ in _seen(twin, [report], T0 + 2 * HOUR)} == {"patient_report"}
    assert {c for c, _, _ in _seen(twin, [report], T0 + 25 * HOUR)} == {"device_silent"}  # a simulated day later
