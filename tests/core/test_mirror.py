"""The pure mirror: ordering rules, presence, predicted state, twin alerts, command tracking."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.contract import examples
from twin.contract.messages import (
    AlarmEvent,
    Birth,
    CommandStatus,
    Drug,
    InfusionMode,
    Program,
    RefillAction,
    RefillRecord,
    State,
    Telemetry,
)
from twin.mirror import commands as desk
from twin.mirror.alerts import TwinAlertCode, evaluate
from twin.mirror.device_twin import SEQ_WINDOW, DeviceTwin, Ordering, Presence, Verdict, order
from twin.mirror.prediction import forecast, predict
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


def test_silent_and_offline_devices() -> None:
    real = DeviceTwin(site=SITE, device_id=DEV, birth=birth(simulated=False), reported=state(), last_seen_at=T0)
    assert not evaluate(real, None, T0 + timedelta(days=20))  # real pumps are read monthly
    assert evaluate(real, None, T0 + timedelta(days=40))[0].code is TwinAlertCode.DEVICE_SILENT
    gone = _twin_with(state(), presence=Presence.OFFLINE, presence_reason="will")
    assert [c.code for c in evaluate(gone, None, T0)] == [TwinAlertCode.DEVICE_OFFLINE]


def test_dose_deviation_from_simulation_truth() -> None:
    sample = tele()
    assert sample.sim_truth is not None
    off = sample.model_copy(update={"sim_truth": sample.sim_truth.model_copy(update={"actual_dose_mg_per_day": 0.0})})
    assert not [
        c for c in evaluate(_twin_with(state(), telemetry=sample), None, T0) if c.code is TwinAlertCode.DOSE_DEVIATION
    ]
    assert [c for c in evaluate(_twin_with(state(), telemetry=off), None, T0) if c.code is TwinAlertCode.DOSE_DEVIATION]


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
