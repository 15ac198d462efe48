"""The pure mirror: ordering rules, presence, predicted state, twin alerts, command tracking."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.contract import examples
from twin.contract.alarms import Priority
from twin.contract.messages import (
    ActiveBolus,
    AlarmEvent,
    BatteryStatus,
    Birth,
    CommandStatus,
    DeviceLogEntry,
    DeviceLogKind,
    Drug,
    InfusionMode,
    MotorState,
    Program,
    RefillAction,
    RefillRecord,
    State,
    StopReason,
    Telemetry,
)
from twin.mirror import commands as desk
from twin.mirror.alerts import AlertPolicy, PatientReport, TwinAlertCode, evaluate
from twin.mirror.device_twin import (
    HEARD,
    SEQ_WINDOW,
    SILENT,
    DeviceTwin,
    Ordering,
    Presence,
    Verdict,
    mark_silent,
    order,
    order_in_general,
)
from twin.mirror.prediction import Forecast, forecast, predict
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import PumpSpec
from twin.sim.simulation import FleetSimulation

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SITE = examples.EXAMPLE_SITE
DEV = examples.EXAMPLE_DEVICE


def run(messages: list, start: DeviceTwin | None = None, dt: float = 1.0) -> tuple[DeviceTwin, list[Ordering]]:
    twin = start or DeviceTwin(SITE, DEV)
    outcomes = []
    for i, message in enumerate(messages):
        outcome = order(twin, message, T0 + timedelta(seconds=i * dt))
        twin = outcome.twin
        outcomes.append(outcome)
    return twin, outcomes


def birth(session: int = 3, seq: int = 0, simulated: bool = True, **changes: object) -> Birth:
    return examples.birth().model_copy(update={"session": session, "seq": seq, "simulated": simulated, **changes})


def state(session: int = 3, seq: int = 1, **changes: object) -> State:
    return examples.state().model_copy(update={"session": session, "seq": seq, **changes})


def tele(session: int = 3, seq: int = 2, **changes: object) -> Telemetry:
    return examples.telemetry().model_copy(update={"session": session, "seq": seq, **changes})


def alarm(session: int = 3, seq: int = 3, **changes: object) -> AlarmEvent:
    return examples.alarm().model_copy(update={"session": session, "seq": seq, **changes})


def test_in_order_messages_apply_and_bump_the_version() -> None:
    twin, outcomes = run([birth(), state(), tele()])
    assert twin.version == 3
    assert twin.birth == birth()
    assert twin.reported == state()
    assert twin.presence is Presence.ONLINE
    assert outcomes[0].new_session
    assert all(o.verdict is Verdict.APPLIED for o in outcomes)
    assert not [o for o in outcomes if o.missing or o.rebirth]


def test_duplicates_are_dropped_and_counted() -> None:
    twin, _ = run([birth(), state()])
    twin2, outcomes = run([state(), birth()], twin)
    assert twin2.version == twin.version
    assert twin2.counters.duplicates == 2
    assert [o.verdict for o in outcomes] == [Verdict.DUPLICATE, Verdict.DUPLICATE]


def test_a_qos0_sample_that_overtakes_a_queued_alarm_does_not_drop_the_alarm() -> None:
    # the drill on main: once > 20 QoS 1 messages wait, QoS 0 telemetry (seq 12) overtakes the alarm (seq 10)
    twin, _ = run([birth(), state()])
    twin, outcomes = run([tele(seq=12), alarm(seq=10), state(seq=11, reservoir_ml=1.5)], twin)
    assert [o.verdict for o in outcomes] == [Verdict.APPLIED, Verdict.APPLIED, Verdict.APPLIED]
    assert outcomes[1].passes_on == alarm(seq=10)  # the late alarm is passed on, not discarded
    assert twin.reported is not None
    assert twin.reported.seq == 11
    assert twin.counters.missing == 0  # nothing was lost: the numbers below 12 all came
    assert twin.counters.late == 2


def test_a_late_state_older_than_the_reported_one_is_history_only() -> None:
    twin, _ = run([birth(), state(seq=1), state(seq=5, reservoir_ml=3.0)])
    twin, outcomes = run([state(seq=4, reservoir_ml=9.0)], twin)
    assert outcomes[0].verdict is Verdict.HISTORY
    assert twin.reported is not None
    assert twin.reported.seq == 5


def test_numbers_that_leave_the_window_unseen_are_counted_missing_once_and_answered_with_one_rebirth() -> None:
    twin, _ = run([birth(), state()])
    twin, outcomes = run([tele(seq=5)], twin)
    assert twin.counters.missing == 0  # 2, 3 and 4 may still come
    far = 5 + SEQ_WINDOW + 2  # the window now covers far - 1023 .. far
    twin, outcomes = run([tele(seq=far)], twin)
    assert twin.counters.missing == 5  # 2, 3, 4 and 6, 7 left the window unseen
    twin, more = run([tele(seq=far + 1)], twin)
    assert twin.counters.missing == 6  # 8 left it too: every number that never came is counted once
    assert [o.rebirth is not None for o in outcomes + more] == [True, False]  # one request, backed off


def test_real_devices_are_never_asked_for_a_rebirth() -> None:
    twin, _ = run([birth(simulated=False), state()])
    twin, outcomes = run([tele(seq=SEQ_WINDOW + 50)], twin)
    assert twin.counters.missing > 0
    assert outcomes[0].rebirth is None


def test_a_forged_sequence_number_near_2_to_the_31_does_not_mute_the_device() -> None:
    twin, _ = run([birth(), state()])
    twin, outcomes = run([alarm(seq=2**31 - 1), tele(seq=2), state(seq=3, reservoir_ml=4.0)], twin)
    assert outcomes[0].verdict is Verdict.IMPLAUSIBLE
    assert outcomes[0].passes_on is not None  # its alarm still reaches the board, deduplicated by its own id
    assert outcomes[0].rebirth is not None
    assert [o.verdict for o in outcomes[1:]] == [Verdict.APPLIED, Verdict.APPLIED]
    assert twin.high_seq == 3
    assert twin.counters.implausible == 1


def test_a_birth_that_contradicts_the_pinned_identity_is_refused_with_its_session() -> None:
    twin, _ = run([birth(simulated=False), state()])
    twin, outcomes = run([birth(session=4, simulated=True), state(session=4), alarm(session=4, seq=2)], twin)
    assert outcomes[0].verdict is Verdict.REFUSED
    assert outcomes[0].conflict is not None
    assert outcomes[0].conflict.field == "simulated"
    assert twin.simulated is False  # a message can never make a real pump simulated
    assert twin.session == 3
    assert outcomes[1].verdict is Verdict.REFUSED  # the refused session changes nothing
    assert outcomes[2].passes_on is not None  # ...but its alarm events still pass
    other_model, _ = run([birth(session=5, model="Prometra II")], twin)
    assert other_model.birth is not None
    assert other_model.birth.model == birth().model


def test_stale_session_state_is_history_but_alarms_and_results_pass() -> None:
    twin, _ = run([birth(session=4), state(session=4)])
    old_alarm = alarm(session=3, seq=40)
    old_result = examples.command_result().model_copy(update={"session": 3, "seq": 41})
    twin2, outcomes = run([state(session=3, seq=9), old_alarm, old_result], twin)
    assert twin2.reported == twin.reported
    assert twin2.counters.stale == 3
    assert [o.verdict for o in outcomes] == [Verdict.STALE] * 3
    assert outcomes[1].passes_on == old_alarm
    assert outcomes[2].passes_on == old_result


def test_a_new_session_without_birth_asks_for_one_and_a_late_birth_still_applies() -> None:
    twin, _ = run([birth(session=3), state(session=3)])
    twin, outcomes = run([tele(session=5, seq=12)], twin)
    assert twin.session == 5
    assert outcomes[0].rebirth is not None
    twin, outcomes = run([birth(session=5, seq=0)], twin)  # the session's birth, overtaken by the sample
    assert outcomes[0].verdict is Verdict.APPLIED
    assert twin.birth is not None
    assert twin.birth.session == 5


def test_late_will_of_an_old_session_does_not_mark_a_new_session_offline() -> None:
    twin, _ = run([birth(session=5), state(session=5)])
    will = examples.status_will().model_copy(update={"session": 4})
    twin, _ = run([will], twin)
    assert twin.presence is Presence.ONLINE
    current_will = examples.status_will().model_copy(update={"session": 5})
    twin, _ = run([current_will], twin)
    assert twin.presence is Presence.OFFLINE
    assert twin.presence_reason == "will"


def test_clock_rate_and_reporting_interval_are_estimated_from_reports() -> None:
    twin, _ = run([birth(), state()])
    # device clock runs 3600 times faster than the wall: 10 wall seconds = 10 device hours
    samples = [tele(seq=2 + i, device_time=examples.EXAMPLE_TIME + timedelta(hours=10 * (i + 1))) for i in range(12)]
    twin, _ = run(samples, twin, dt=10.0)
    assert twin.clock_rate == pytest.approx(3600, rel=0.05)
    assert twin.report_interval_s == pytest.approx(36_000, rel=0.01)
    assert twin.last_seen_at is not None
    later = twin.device_now(twin.last_seen_at + timedelta(seconds=1))
    assert later is not None
    assert twin.last_device_time is not None
    assert (later - twin.last_device_time).total_seconds() == pytest.approx(3600, rel=0.05)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=SEQ_WINDOW + 5), min_size=1, max_size=30),
    st.floats(min_value=0.0, max_value=7200.0),
)
def test_the_fast_path_for_the_next_sample_agrees_with_the_general_rules(jumps: list[int], wall_step: float) -> None:
    twin, _ = run([birth(), state(), tele(seq=2)])
    seq, at = 2, T0
    for i, jump in enumerate(jumps):
        seq += jump
        at += timedelta(seconds=wall_step)
        sample = tele(seq=seq, device_time=examples.EXAMPLE_TIME + timedelta(minutes=10 * (i + 1)))
        twin = order(twin, sample, at).twin  # jumps leave holes in the window
        following = tele(seq=seq + 1, device_time=examples.EXAMPLE_TIME + timedelta(minutes=10 * (i + 1), seconds=5))
        assert order(twin, following, at + timedelta(seconds=1)) == order_in_general(
            twin, following, at + timedelta(seconds=1)
        )


MESSAGES = st.lists(
    st.tuples(st.sampled_from(["state", "telemetry", "alarm"]), st.integers(min_value=1, max_value=60)),
    min_size=1,
    max_size=40,
    unique_by=lambda m: m[1],
)


@settings(max_examples=300, deadline=None)
@given(MESSAGES, st.randoms(use_true_random=False), st.integers(min_value=0, max_value=5))
def test_in_any_order_with_repeats_every_message_is_seen_once_and_the_newest_state_wins(
    messages: list[tuple[str, int]], rng: random.Random, repeats: int
) -> None:
    """A device's session as MQTT may deliver it: any order (QoS 0 overtakes QoS 1), some messages
    twice (QoS 1 redelivery). Each message is passed on or recorded exactly once, the reported state
    is the newest one sent, and nothing is counted missing."""
    make = {"state": state, "telemetry": tele, "alarm": alarm}
    sent = [make[kind](seq=seq) for kind, seq in messages]
    delivered = list(sent) + [rng.choice(sent) for _ in range(repeats)]
    rng.shuffle(delivered)
    twin, _ = run([birth()])
    twin, outcomes = run(delivered, twin)
    firsts = [
        (m.seq, o.verdict) for m, o in zip(delivered, outcomes, strict=True) if o.verdict is not Verdict.DUPLICATE
    ]
    assert sorted(seq for seq, _ in firsts) == sorted(m.seq for m in sent)
    states = [m for m in sent if isinstance(m, State)]
    if states:
        assert twin.reported == max(states, key=lambda m: m.seq)
    passed = [o.passes_on for o in outcomes if o.passes_on is not None]
    assert sorted(a.seq for a in passed) == sorted(m.seq for m in sent if isinstance(m, AlarmEvent))
    assert twin.counters.missing == 0
    assert twin.high_seq == max(m.seq for m in sent)


# ------------------------------------------------------------------------------------ prediction


def _spec(**changes: object) -> PumpSpec:
    base = {
        "device_id": DEV,
        "site": SITE,
        "drug": Drug.MORPHINE,
        "concentration_mg_per_ml": 10.0,
        "program": Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.5),
        "reservoir_ml": 12.0,
        "battery_percent": 60.0,
    }
    return PumpSpec.model_validate(base | changes)


class _Log:
    def __init__(self) -> None:
        self.items: list[Outgoing] = []

    def __call__(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        self.items.append(outgoing)


@pytest.mark.parametrize(
    "program",
    [
        Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.5),
        Program.model_validate(
            {
                "mode": "flexible",
                "steps": [{"start_minute": 0, "rate_ml_per_day": 0.2}, {"start_minute": 480, "rate_ml_per_day": 0.9}],
            }
        ),
    ],
)
def test_prediction_from_one_report_matches_what_the_pump_then_does(program: Program) -> None:
    """The twin predicts from a single state report; the simulator (no flow error) then reaches
    low reservoir and empty at those very times."""
    log = _Log()
    sim = FleetSimulation([_spec(program=program)], epoch=T0, seed=1, sink=log, clinic_refills=False)
    sim.open_sessions(1)
    report = next(o.message for o in log.items if isinstance(o.message, State))
    first_birth = next(o.message for o in log.items if isinstance(o.message, Birth))
    prediction = predict(first_birth, report, None, T0 + timedelta(days=3))
    sim.run(40 * 86400)
    raised = {
        e.code.value: e.raised_at
        for e in (o.message for o in log.items)
        if isinstance(e, AlarmEvent) and e.event.value == "raised"
    }
    assert prediction.low_reservoir_at is not None
    assert prediction.empty_at is not None
    # the simulated pump has a per-refill flow error on its truth only; its belief follows the program
    assert abs((prediction.low_reservoir_at - raised["reservoir_low"]).total_seconds()) < 1.0
    assert abs((prediction.empty_at - raised["reservoir_empty"]).total_seconds()) < 1.0
    assert prediction.report_age_s == pytest.approx(3 * 86400)


def test_prediction_of_a_stopped_pump_keeps_its_volume() -> None:
    report = state(program=Program(mode=InfusionMode.STOPPED), infusing=False, current_rate_ml_per_day=0.0)
    prediction = predict(examples.birth(), report, None, examples.EXAMPLE_TIME + timedelta(days=30))
    assert prediction.reservoir_ml == report.reservoir_ml
    assert prediction.empty_at is None


# ---------------------------------------------------------------------------------------- alerts


def _twin_with(reported: State, *, capacity: float = 20.0, **changes: object) -> DeviceTwin:
    b = birth().model_copy(update={"reservoir_capacity_ml": capacity})
    fields: dict[str, object] = {"presence": Presence.ONLINE, "last_seen_at": T0} | changes
    return DeviceTwin(site=SITE, device_id=DEV, birth=b, reported=reported, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("capacity", "expected", "measured", "alert"),
    [
        (20.0, 10.0, 10.8, False),  # within 1 mL and 8 %
        (20.0, 3.0, 3.9, True),  # within 1 mL but 30 % of the expected residual
        (20.0, 1.0, 1.5, False),  # too little expected for a share to mean anything; within 1 mL
        (20.0, 3.0, 4.2, True),  # occlusion-like: more left
        (20.0, 3.0, 1.9, True),  # leak / pocket fill: less left
        (40.0, 10.0, 11.9, False),  # within 2 mL and 19 %
        (40.0, 10.0, 12.5, True),
        (40.0, 4.0, 2.5, True),  # within 2 mL but 37.5 %
    ],
)
def test_refill_discrepancy_tolerance(capacity: float, expected: float, measured: float, alert: bool) -> None:
    refill = RefillRecord(
        at=T0,
        expected_residual_ml=expected,
        measured_residual_ml=measured,
        volume_added_ml=20,
        drug=Drug.BACLOFEN,
        concentration_mg_per_ml=2.0,
    )
    conditions = evaluate(_twin_with(state(last_refill=refill), capacity=capacity), None, T0)
    found = [c for c in conditions if c.code is TwinAlertCode.REFILL_DISCREPANCY]
    assert bool(found) == alert
    if found:
        assert ("under-infusion" in found[0].message) == (measured > expected)


def test_a_simulated_pump_is_silent_after_six_hours_of_its_own_clock_whatever_the_wall_says() -> None:
    twin = _twin_with(state(), last_device_time=T0)
    wall = T0 + timedelta(seconds=72)  # a 12 h outage at 600x lasts 72 s of wall time
    assert evaluate(twin, None, wall, device_now=T0 + timedelta(hours=5)) == []
    silent = evaluate(twin, None, wall, device_now=T0 + timedelta(hours=6, minutes=1))
    assert [c.code for c in silent] == [TwinAlertCode.DEVICE_SILENT]
    assert "simulated" in silent[0].message
    # paused: hours of wall time, a minute of simulated time: not silent
    assert evaluate(twin, None, T0 + timedelta(hours=3), device_now=T0 + timedelta(minutes=1)) == []
    # a pump that reports every 4 simulated hours is silent only after missing three reports
    slow = _twin_with(state(), last_device_time=T0, report_interval_s=4 * 3600.0)
    assert evaluate(slow, None, wall, device_now=T0 + timedelta(hours=11)) == []
    assert [c.code for c in evaluate(slow, None, wall, device_now=T0 + timedelta(hours=12, minutes=1))] == [
        TwinAlertCode.DEVICE_SILENT
    ]


def test_a_pump_marked_silent_is_online_again_at_its_next_message_in_order() -> None:
    twin, _ = run([birth(), state()])
    silent = mark_silent(twin, T0 + timedelta(hours=7))
    assert (silent.presence, silent.presence_reason) == (Presence.OFFLINE, SILENT)
    late = order(silent, tele(seq=1), T0 + timedelta(hours=8))  # a repeat of seq 1: not news of the pump
    assert late.verdict is Verdict.DUPLICATE
    assert late.twin.presence is Presence.OFFLINE
    first = order(silent, tele(seq=2), T0 + timedelta(hours=8))  # the first sample: the general path
    assert (first.twin.presence, first.twin.presence_reason) == (Presence.ONLINE, HEARD)
    silent = mark_silent(first.twin, T0 + timedelta(hours=15))
    back = order(silent, tele(seq=3), T0 + timedelta(hours=16))  # the next sample in order: not its fast path
    assert (back.twin.presence, back.twin.presence_reason) == (Presence.ONLINE, HEARD)
    assert back.presence_changed
    assert back.twin.presence_since == T0 + timedelta(hours=16)
    assert back.twin.version == silent.version + 1
    # an offline the pump's broker said (its last will) is not ended by the twin's guess
    gone = order(twin, examples.status_will().model_copy(update={"session": 3, "seq": 3}), T0 + timedelta(hours=1))
    assert (gone.twin.presence, gone.twin.presence_reason) == (Presence.OFFLINE, "will")
    after = order(gone.twin, tele(seq=4), T0 + timedelta(hours=2))
    assert after.twin.presence is Presence.OFFLINE
    assert not after.presence_changed


def test_offline_devices() -> None:
    gone = _twin_with(state(), presence=Presence.OFFLINE, presence_reason="will")
    assert [c.code for c in evaluate(gone, None, T0)] == [TwinAlertCode.DEVICE_OFFLINE]


def _real(report: State) -> DeviceTwin:
    return DeviceTwin(
        site=SITE,
        device_id=DEV,
        birth=birth(simulated=False),
        reported=report,
        last_seen_at=examples.EXAMPLE_TIME,
        last_device_time=examples.EXAMPLE_TIME,
    )


def test_a_real_pump_is_overdue_from_its_planned_refill_plus_a_grace_period_never_silent() -> None:
    planned = examples.EXAMPLE_TIME + timedelta(days=60)
    twin = _real(state(refill_reminder_at=planned, drug=Drug.MORPHINE))
    grace = AlertPolicy().interrogation_grace
    assert evaluate(twin, None, planned + grace - timedelta(hours=1)) == []  # 67 days without a read-out: fine
    (late,) = evaluate(twin, None, planned + grace + timedelta(hours=1))
    assert late.code is TwinAlertCode.INTERROGATION_OVERDUE
    assert late.priority is Priority.MEDIUM
    assert "planned refill" in late.message
    baclofen = evaluate(_real(state(refill_reminder_at=planned)), None, planned + grace + timedelta(hours=1))
    assert [(c.code, c.priority) for c in baclofen] == [(TwinAlertCode.INTERROGATION_OVERDUE, Priority.HIGH)]
    # no planned date: the worst-case low-reservoir date of the forecast
    unplanned = state(refill_reminder_at=None, drug=Drug.MORPHINE)
    outlook = forecast(birth(simulated=False), unplanned)
    assert outlook.worst_low_reservoir_at is not None
    due = outlook.worst_low_reservoir_at + grace

    def overdue(when: datetime) -> bool:
        return TwinAlertCode.INTERROGATION_OVERDUE in {c.code for c in evaluate(_real(unplanned), outlook, when)}

    assert not overdue(due - timedelta(hours=1))
    assert overdue(due + timedelta(hours=1))


def test_the_forecast_counts_every_allowed_patient_bolus_and_the_bolus_in_progress() -> None:
    report = state(reservoir_ml=10.0)  # 0.25-0.4 mL/day flexible program, boluses of 0.02 mL, 4 a day
    plain = forecast(examples.birth(), report)
    assert plain.empty_at is not None
    assert plain.worst_empty_at is not None
    assert plain.worst_empty_at < plain.empty_at
    mean = (0.25 * 7 + 0.4 * 15 + 0.25 * 2) / 24
    days = (plain.empty_at - plain.basis_at).total_seconds() / 86400
    worst_days = (plain.worst_empty_at - plain.basis_at).total_seconds() / 86400
    assert days == pytest.approx(9.7 / mean, rel=0.01)
    assert worst_days == pytest.approx(9.7 / (mean + 4 * 0.02), rel=0.01)
    started = examples.EXAMPLE_TIME - timedelta(minutes=10)
    bolus = ActiveBolus(source="clinician", volume_ml=2.0, started_at=started, ends_at=started + timedelta(hours=1))
    boosted = forecast(examples.birth(), report.model_copy(update={"bolus": bolus}))
    assert boosted.empty_at is not None
    shift = (plain.empty_at - boosted.empty_at).total_seconds() / 86400
    assert shift == pytest.approx(2.0 * 50 / 60 / mean, rel=0.02)  # the 5/6 of the bolus still to come


def test_empty_before_refill_counts_the_worst_case_and_escalates_for_baclofen() -> None:
    planned = examples.EXAMPLE_TIME + timedelta(days=24)
    report = state(reservoir_ml=9.0, refill_reminder_at=planned)  # empty in ~27 d, ~23 d if every bolus is used
    outlook = forecast(examples.birth(), report)
    assert outlook.empty_at is not None
    assert outlook.worst_empty_at is not None
    assert outlook.worst_empty_at < planned < outlook.empty_at
    (alert,) = [c for c in evaluate(_twin_with(report), outlook, T0) if c.code is TwinAlertCode.EMPTY_BEFORE_REFILL]
    assert "every patient bolus" in alert.message
    assert alert.priority is Priority.HIGH  # baclofen: withdrawal risk
    morphine = report.model_copy(update={"drug": Drug.MORPHINE})
    (plain,) = [c for c in evaluate(_twin_with(morphine), outlook, T0) if c.code is TwinAlertCode.EMPTY_BEFORE_REFILL]
    assert plain.priority is Priority.MEDIUM


def _entry(kind: DeviceLogKind, days: float, **fields: float) -> DeviceLogEntry:
    return DeviceLogEntry(at=examples.EXAMPLE_TIME + timedelta(days=days), kind=kind, **fields)  # type: ignore[arg-type]


def _at(days: float) -> datetime:
    """Wall time when the twin's estimate of the example pump's clock reads EXAMPLE_TIME + days."""
    return T0 + timedelta(days=days)


def test_a_concentration_change_is_checked_for_a_day_and_a_rate_only_reprogram_keeps_the_check() -> None:
    refill = _entry(
        DeviceLogKind.REFILL,
        0,
        concentration_before_mg_per_ml=1.0,
        concentration_after_mg_per_ml=2.0,
        dose_before_mg_per_day=0.5,
        dose_after_mg_per_day=1.0,
    )
    rate = _entry(
        DeviceLogKind.REPROGRAM,
        0.01,
        concentration_before_mg_per_ml=2.0,
        concentration_after_mg_per_ml=2.0,
        dose_before_mg_per_day=1.0,
        dose_after_mg_per_day=0.5,
    )
    report = state(event_log=[refill, rate], drug=Drug.MORPHINE)
    twin = _twin_with(report, last_device_time=examples.EXAMPLE_TIME)
    (check,) = [c for c in evaluate(twin, None, _at(0.5)) if c.code is TwinAlertCode.CONCENTRATION_CHANGED]
    assert "1 -> 2 mg/mL" in check.message
    assert "0.5 -> 0.5 mg/day" in check.message
    assert "0.5 x" in check.message  # what the patient gets if the syringe still holds 1 mg/mL
    assert check.priority is Priority.MEDIUM
    assert not [c for c in evaluate(twin, None, _at(1.5)) if c.code is TwinAlertCode.CONCENTRATION_CHANGED]
    doubled = state(event_log=[refill], drug=Drug.MORPHINE)  # the rate was not adjusted: the dose doubled
    (high,) = [
        c
        for c in evaluate(_twin_with(doubled, last_device_time=examples.EXAMPLE_TIME), None, _at(0.1))
        if c.code is TwinAlertCode.CONCENTRATION_CHANGED
    ]
    assert high.priority is Priority.HIGH


def test_an_opioid_dose_escalation_trend_points_to_a_granuloma() -> None:
    def reprogram(days: float, before: float, after: float) -> DeviceLogEntry:
        return _entry(DeviceLogKind.REPROGRAM, days, dose_before_mg_per_day=before, dose_after_mg_per_day=after)

    log = [reprogram(-100, 4.0, 5.0), reprogram(-40, 5.0, 6.5)]
    hydromorphone = state(event_log=log, drug=Drug.HYDROMORPHONE)
    twin = _twin_with(hydromorphone, last_device_time=examples.EXAMPLE_TIME)
    (trend,) = [c for c in evaluate(twin, None, T0) if c.code is TwinAlertCode.DOSE_ESCALATION]
    assert "4 -> 6.5 mg/day (+62%)" in trend.message
    assert not [c for c in evaluate(twin, None, _at(100)) if c.code is TwinAlertCode.DOSE_ESCALATION]  # old news
    baclofen = _twin_with(state(event_log=log), last_device_time=examples.EXAMPLE_TIME)
    assert not [c for c in evaluate(baclofen, None, T0) if c.code is TwinAlertCode.DOSE_ESCALATION]
    modest = _twin_with(state(event_log=log[:1], drug=Drug.MORPHINE), last_device_time=examples.EXAMPLE_TIME)
    assert not [c for c in evaluate(modest, None, T0) if c.code is TwinAlertCode.DOSE_ESCALATION]  # +25 %


def test_a_pump_left_stopped_after_a_programming_session() -> None:
    stopped_at = examples.EXAMPLE_TIME
    report = state(program=Program(mode=InfusionMode.STOPPED), infusing=False, program_changed_at=stopped_at)
    twin = _twin_with(report, last_device_time=examples.EXAMPLE_TIME)
    assert not [c for c in evaluate(twin, None, T0 + timedelta(minutes=20)) if c.code is TwinAlertCode.INFUSION_STOPPED]
    (alert,) = [c for c in evaluate(twin, None, T0 + timedelta(minutes=40)) if c.code is TwinAlertCode.INFUSION_STOPPED]
    assert alert.priority is Priority.HIGH  # baclofen


def test_a_pump_without_audible_alarms_gets_the_twins_empty_eri_and_eos_alerts() -> None:
    prometra = birth().model_copy(update={"audible_alarms": False})
    report = state(reservoir_ml=1.0, program=Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.5))
    outlook = forecast(prometra, report)

    def codes(r: State, when: datetime, ahead: Forecast | None = outlook) -> set[TwinAlertCode]:
        twin = DeviceTwin(
            site=SITE, device_id=DEV, birth=prometra, reported=r, last_seen_at=T0, last_device_time=r.device_time
        )
        return {c.code for c in evaluate(twin, ahead, when)}

    assert TwinAlertCode.RESERVOIR_LOW_PREDICTED in codes(report, T0)
    assert TwinAlertCode.RESERVOIR_EMPTY_PREDICTED not in codes(report, T0)
    assert TwinAlertCode.RESERVOIR_EMPTY_PREDICTED in codes(report, T0 + timedelta(days=1.5))
    assert TwinAlertCode.RESERVOIR_LOW_PREDICTED not in codes(report, T0 + timedelta(days=1.5))  # empty says more
    eri = state(battery=BatteryStatus.ERI, eri_at=T0, eos_at=T0 + timedelta(days=90), battery_percent=9.0)
    assert TwinAlertCode.BATTERY_ERI_PREDICTED in codes(eri, T0, forecast(prometra, eri))
    eos = eri.model_copy(
        update={"battery": BatteryStatus.EOS, "infusing": False, "stop_reason": StopReason.END_OF_SERVICE}
    )
    found = codes(eos, T0, forecast(prometra, eos))
    assert TwinAlertCode.BATTERY_EOS_PREDICTED in found
    assert TwinAlertCode.BATTERY_ERI_PREDICTED not in found
    failed = state(infusing=False, stop_reason=StopReason.MEMORY_ERROR, motor=MotorState.STOPPED)
    assert TwinAlertCode.INFUSION_STOPPED in codes(failed, T0, None)
    # a pump with audible alarms sounds these itself: the twin does not duplicate them
    audible = _twin_with(report, last_device_time=report.device_time)
    assert not {c.code for c in evaluate(audible, outlook, T0 + timedelta(days=1.5))} & {
        TwinAlertCode.RESERVOIR_EMPTY_PREDICTED,
        TwinAlertCode.RESERVOIR_LOW_PREDICTED,
    }


def test_a_patient_report_is_an_alert_for_a_day_with_its_own_priority() -> None:
    twin = _twin_with(state(), presence_reason="shutdown")  # (no silence alert beside the reports)
    reports = [
        PatientReport(T0, "itching without a rash", Priority.LOW),
        PatientReport(T0 + timedelta(hours=5), "fever 39 °C, rigid", Priority.HIGH),
    ]
    (first,) = evaluate(twin, None, T0 + timedelta(seconds=10), reports=reports[:1])
    assert (first.code, first.priority, first.message) == (
        TwinAlertCode.PATIENT_REPORT,
        Priority.LOW,
        "Patient: itching without a rash",
    )
    (latest,) = evaluate(twin, None, T0 + timedelta(hours=6), reports=reports)
    assert (latest.priority, latest.instance != first.instance) == (Priority.HIGH, True)
    assert evaluate(twin, None, T0 + timedelta(hours=30), reports=reports) == []


def test_no_alert_reads_the_simulators_truth() -> None:
    """The same reports with and without sim_truth (any dose, any catheter) give the same alerts."""
    sample = tele()
    assert sample.sim_truth is not None
    for truth in (
        sample.sim_truth,
        sample.sim_truth.model_copy(update={"actual_dose_mg_per_day": 0.0, "catheter": "disconnected"}),
        sample.sim_truth.model_copy(update={"actual_dose_mg_per_day": 99.0, "reservoir_ml": 0.0}),
    ):
        for when in (T0, T0 + timedelta(minutes=5), T0 + timedelta(days=60)):
            told = _twin_with(state(), telemetry=sample.model_copy(update={"sim_truth": truth}))
            blind = _twin_with(state(), telemetry=sample.model_copy(update={"sim_truth": None}))
            outlook = forecast(examples.birth(), state())
            assert evaluate(told, outlook, when) == evaluate(blind, outlook, when)


def test_empty_before_planned_refill() -> None:
    report = state(reservoir_ml=2.5, refill_reminder_at=examples.EXAMPLE_TIME + timedelta(days=30))
    codes = [c.code for c in evaluate(_twin_with(report), forecast(examples.birth(), report), T0)]
    assert TwinAlertCode.EMPTY_BEFORE_REFILL in codes
    fine = state(reservoir_ml=19.0, refill_reminder_at=examples.EXAMPLE_TIME + timedelta(days=30))
    assert TwinAlertCode.EMPTY_BEFORE_REFILL not in [
        c.code for c in evaluate(_twin_with(fine), forecast(examples.birth(), fine), T0)
    ]


# -------------------------------------------------------------------------------------- commands


def _command() -> object:
    return examples.command().model_copy(update={"expires_at": None})


def test_commands_to_real_or_unknown_devices_are_refused() -> None:
    action = RefillAction(volume_ml=20, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0)
    with pytest.raises(desk.CommandRefused) as unknown:
        desk.check_allowed(None, action)
    assert unknown.value.reason == "unknown_device"
    real = DeviceTwin(site=SITE, device_id=DEV, birth=birth(simulated=False))
    with pytest.raises(desk.CommandRefused, match="read-only") as refused:
        desk.check_allowed(real, action)
    assert refused.value.reason == "real_device_read_only"


def test_command_lifecycle_with_an_offline_device() -> None:
    twin = DeviceTwin(site=SITE, device_id=DEV, birth=birth(), presence=Presence.OFFLINE)
    tracked = desk.track(twin, examples.command(), T0)
    assert tracked.state is desk.CommandState.PENDING
    assert desk.expire(tracked, T0 + timedelta(hours=5)).state is desk.CommandState.PENDING  # waits for the device
    tracked = desk.device_online(tracked, T0 + timedelta(hours=6))
    assert desk.expire(tracked, T0 + timedelta(hours=6, seconds=30)).state is desk.CommandState.PENDING
    assert desk.expire(tracked, T0 + timedelta(hours=6, minutes=3)).state is desk.CommandState.TIMED_OUT
    result = examples.command_result()
    done = desk.answered(tracked, result, T0 + timedelta(hours=6, seconds=1))
    assert done.state is desk.CommandState.APPLIED
    assert done.latency_s == pytest.approx(6 * 3600 + 1)
    replayed = desk.answered(done, result.model_copy(update={"replay": True}), T0 + timedelta(hours=7))
    assert replayed is done
    rejected = desk.answered(tracked, result.model_copy(update={"status": CommandStatus.REJECTED, "reason": "no"}), T0)
    assert rejected.state is desk.CommandState.REJECTED
