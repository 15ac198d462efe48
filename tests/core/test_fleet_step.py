"""The pure fleet step: a message as bytes in, the new fleet and its effects out, never an exception."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from twin.alarms.lifecycle import AlarmState, alarm_key
from twin.contract import examples
from twin.contract.alarms import AlarmCode
from twin.contract.codec import encode
from twin.contract.messages import AlarmEventType, Drug, RefillAction
from twin.contract.topics import Channel, build_topic, site_topic
from twin.mirror import fleet as steps
from twin.mirror.commands import CommandRefused
from twin.mirror.effects import AlarmTransitions, Counted, Publish, Recorded, Rejected
from twin.mirror.fleet import Fleet, FleetConfig, Limits

T0 = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
SITE = examples.EXAMPLE_SITE
DEV = examples.EXAMPLE_DEVICE


def topic(channel: Channel, device: str = DEV, site: str = SITE) -> str:
    return build_topic(site, device, channel)


def feed(fleet: Fleet, *messages: tuple[str, bytes], start: datetime = T0) -> tuple[Fleet, list[object]]:
    effects: list[object] = []
    for i, (where, payload) in enumerate(messages):
        fleet, made = steps.apply(fleet, where, payload, start + timedelta(seconds=i))
        effects += made
    return fleet, effects


def born(fleet: Fleet | None = None, *, simulated: bool = True, site: str = SITE, device: str = DEV) -> Fleet:
    b = examples.birth().model_copy(update={"simulated": simulated, "device_id": device})
    s = examples.state().model_copy(update={"device_id": device, "active_alarms": []})
    fleet, _ = feed(
        fleet or Fleet(),
        (topic(Channel.BIRTH, device, site), encode(b)),
        (topic(Channel.STATE, device, site), encode(s)),
    )
    return fleet


def rejected(effects: list[object]) -> list[str]:
    return [e.reason for e in effects if isinstance(e, Rejected)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.one_of(
        st.sampled_from([topic(c) for c in Channel if c is not Channel.CLOCK] + [site_topic(SITE)]),
        st.text(max_size=80),
    ),
    payload=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda d: json.dumps(d).encode(),
            st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)),
        ),
    ),
)
def test_arbitrary_bytes_on_any_topic_never_raise(where: str, payload: bytes) -> None:
    fleet = born()
    new, effects = steps.apply(fleet, where, payload, T0)
    assert isinstance(new, Fleet)
    assert all(not isinstance(e, Exception) for e in effects)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(
        ["device_time", "reservoir_ml", "seq", "session", "battery_percent", "current_rate_ml_per_day"]
    ),
    value=st.one_of(
        st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1e308", "NaN"]),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
def test_valid_but_absurd_telemetry_is_refused_or_applied_never_raises(field: str, value: object) -> None:
    fleet = born()
    body = json.loads(encode(examples.telemetry()))
    body[field] = value
    new, _effects = steps.apply(fleet, topic(Channel.TELEMETRY), json.dumps(body).encode(), T0 + timedelta(minutes=1))
    new, _ticked = steps.tick(new, T0 + timedelta(hours=2))  # the clock loop must cope with whatever was kept
    assert isinstance(new, Fleet)


def test_a_deeply_nested_payload_is_one_reject_and_ingest_goes_on() -> None:
    fleet = born()
    fleet, effects = feed(
        fleet, (topic(Channel.STATE), b"[" * 60_000), (topic(Channel.TELEMETRY), encode(examples.telemetry()))
    )
    assert rejected(effects) == ["too_deep"]
    assert any(isinstance(e, Recorded) for e in effects)


def test_a_device_time_in_the_year_9999_is_refused_and_the_clock_keeps_ticking() -> None:
    fleet = born()
    body = json.loads(encode(examples.state()))
    body["device_time"] = "9999-12-31T23:59:59Z"
    body["seq"] = 5
    fleet, effects = feed(fleet, (topic(Channel.STATE), json.dumps(body).encode()))
    assert rejected(effects) == ["schema"]
    fleet, ticked = steps.tick(fleet, T0 + timedelta(days=1))
    assert not [e for e in ticked if isinstance(e, Counted) and e.what == "tick_errors"]


def test_a_birth_that_flips_a_real_pump_to_simulated_is_refused_raised_as_a_security_alarm_and_changes_nothing() -> (
    None
):
    fleet = born(simulated=False)
    flip = examples.birth().model_copy(update={"simulated": True, "session": 4})
    fleet, effects = feed(fleet, (topic(Channel.BIRTH), encode(flip)))
    assert "identity_conflict" in rejected(effects)
    twin = fleet.devices[(SITE, DEV)]
    assert twin.simulated is False
    alarm = fleet.board.alarms[alarm_key(SITE, DEV, "identity_conflict")]
    assert alarm.state is AlarmState.CLEARED_UNACKNOWLEDGED  # latched until someone acknowledges it
    with pytest.raises(CommandRefused) as refused:
        steps.send_command(
            fleet,
            (SITE, DEV),
            RefillAction(volume_ml=20, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0),
            "nurse",
            T0,
            "c-1",
        )
    assert refused.value.reason == "real_device_read_only"


def test_the_same_device_id_at_two_sites_is_two_devices_and_a_command_goes_to_its_own_site() -> None:
    fleet = born(site="clinic-a")
    fleet = born(fleet, site="clinic-b")
    assert set(fleet.devices) == {("clinic-a", DEV), ("clinic-b", DEV)}
    action = RefillAction(volume_ml=20, drug=Drug.BACLOFEN, concentration_mg_per_ml=2.0)
    fleet, _tracked, effects = steps.send_command(fleet, ("clinic-b", DEV), action, "nurse", T0, "c-1")
    assert [e.topic for e in effects if isinstance(e, Publish)] == [build_topic("clinic-b", DEV, Channel.CMD)]


def test_made_up_births_beyond_the_site_limit_are_refused_not_mirrored() -> None:
    fleet = Fleet(config=FleetConfig(limits=Limits(devices_per_site=3)))
    refusals = []
    for i in range(5):
        b = examples.birth().model_copy(update={"device_id": f"fake-{i}"})
        fleet, effects = steps.apply(fleet, topic(Channel.BIRTH, f"fake-{i}"), encode(b), T0)
        refusals += rejected(effects)
    assert len(fleet.devices) == 3
    assert refusals == ["device_limit", "device_limit"]


def test_a_repeated_alarm_event_makes_one_transition() -> None:
    fleet = born()
    raised = examples.alarm().model_copy(update={"seq": 2})
    again = raised.model_copy(update={"seq": 7})  # a device replaying its queue after a reconnect: new seq, same event
    fleet, effects = feed(
        fleet,
        (topic(Channel.ALARM), encode(raised)),
        (topic(Channel.ALARM), encode(raised)),
        (topic(Channel.ALARM), encode(again)),
    )
    transitions = [t for e in effects if isinstance(e, AlarmTransitions) for t in e.transitions]
    assert len(transitions) == 1
    assert sum(1 for e in effects if isinstance(e, AlarmTransitions) and e.device_event is not None) == 1


def test_every_state_reconciles_the_board_so_a_rebirth_repairs_it() -> None:
    fleet = born()
    raised = examples.alarm().model_copy(update={"seq": 2})
    fleet, _ = feed(fleet, (topic(Channel.ALARM), encode(raised)))
    key = alarm_key(SITE, DEV, raised.code.value)
    assert fleet.board.alarms[key].condition_active
    # the clear was lost (a gap); the device is asked for a rebirth and answers within the same session
    rebirth = examples.birth().model_copy(update={"seq": 9})
    fresh = examples.state().model_copy(update={"seq": 10, "active_alarms": []})
    fleet, _effects = feed(fleet, (topic(Channel.BIRTH), encode(rebirth)), (topic(Channel.STATE), encode(fresh)))
    assert not fleet.board.alarms[key].condition_active
    # and a state that lists an alarm the twin never heard of raises it
    listed = examples.state().model_copy(update={"seq": 11, "active_alarms": [AlarmCode.MOTOR_STALL]})
    fleet, _ = feed(fleet, (topic(Channel.STATE), encode(listed)))
    assert fleet.board.alarms[alarm_key(SITE, DEV, "motor_stall")].condition_active


def test_a_late_alarm_behind_newer_telemetry_still_raises() -> None:
    fleet = born()
    sample = examples.telemetry().model_copy(update={"seq": 12})
    late = examples.alarm().model_copy(update={"seq": 10})
    fleet, _effects = feed(fleet, (topic(Channel.TELEMETRY), encode(sample)), (topic(Channel.ALARM), encode(late)))
    assert fleet.board.alarms[alarm_key(SITE, DEV, late.code.value)].condition_active
    cleared = late.model_copy(update={"seq": 11, "event": AlarmEventType.CLEARED})
    fleet, _ = feed(fleet, (topic(Channel.ALARM), encode(cleared)))
    assert not fleet.board.alarms[alarm_key(SITE, DEV, late.code.value)].condition_active


def test_a_failed_step_leaves_the_old_fleet_untouched() -> None:
    """The service keeps the old fleet when the journal refuses the new one: that only works if a
    step never changes the fleet it was given."""
    fleet = born()
    devices, board = fleet.devices, fleet.board
    raised = examples.alarm().model_copy(update={"seq": 2})
    new, _ = feed(fleet, (topic(Channel.ALARM), encode(raised)))
    assert fleet.devices is devices
    assert fleet.board is board
    assert alarm_key(SITE, DEV, raised.code.value) not in fleet.board.alarms
    assert alarm_key(SITE, DEV, raised.code.value) in new.board.alarms


def test_births_and_states_of_real_pumps_are_never_answered_with_a_rebirth() -> None:
    fleet = born(simulated=False)
    jump = examples.telemetry().model_copy(update={"seq": 5000})
    fleet, effects = feed(fleet, (topic(Channel.TELEMETRY), encode(jump)))
    assert not [e for e in effects if isinstance(e, Publish)]


@settings(max_examples=60, deadline=None)
@given(
    reservoir_ml=st.floats(min_value=0.0, max_value=20.0),
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_a_simulated_pumps_rules_do_not_move_with_the_wall_clock_so_the_tick_leaves_them_out(
    reservoir_ml: float, later: timedelta
) -> None:
    """The clock loop skips simulated pumps (their time rules run on the site's watermark): sound
    only if evaluating one at any wall time changes nothing, which this checks by evaluating it."""
    fleet = born()
    state = examples.state().model_copy(update={"seq": 2, "reservoir_ml": reservoir_ml, "active_alarms": []})
    fleet, _ = feed(fleet, (topic(Channel.STATE), encode(state)), start=T0 + timedelta(minutes=1))
    key = (SITE, DEV)
    evaluated, made = steps._tick_device(fleet, key, fleet.devices[key], T0 + later)
    assert [e for e in made if isinstance(e, AlarmTransitions)] == []
    assert evaluated.board == fleet.board
    assert evaluated.devices[key] == fleet.devices[key]
    ticked, effects = steps.tick(fleet, T0 + later)
    assert ticked.board == fleet.board
    assert not [e for e in effects if isinstance(e, AlarmTransitions)]


def test_the_tick_still_evaluates_a_real_pump_on_the_wall_clock() -> None:
    fleet = born(simulated=False)
    _, effects = steps.tick(fleet, T0 + timedelta(days=200))  # its read-out is long overdue by now
    raised = [t for e in effects if isinstance(e, AlarmTransitions) for t in e.transitions]
    assert raised, effects


# ------------------------------------------------ the fast path for the next sample in order


@functools.cache
def _fleet_stream() -> list[tuple[str, bytes]]:
    """A recorded fleet's traffic (births, states, alarms, telemetry; low reservoirs, faults), as
    the simulator publishes it."""
    from twin.sim.device import Outgoing, SimulatedDevice
    from twin.sim.fleet import generate_fleet
    from twin.sim.simulation import FleetSimulation

    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[tuple[str, bytes]] = []

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        out.append((build_topic(device.identity.site, device.device_id, outgoing.channel), encode(outgoing.message)))

    specs = generate_fleet(16, seed=9, start=epoch)
    specs = [
        s.model_copy(update={"reservoir_ml": s.low_reservoir_threshold_ml + 0.05 * (i % 5)})
        for i, s in enumerate(specs)
    ]
    sim = FleetSimulation(specs, epoch=epoch, seed=9, sink=sink, telemetry_interval_s=600, random_faults=True)
    sim.open_sessions(1)
    sim.run(3 * 86400)
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(drop_every=0, swap_every=0, tick_every=0, gap_s=60.0)
@example(drop_every=2, swap_every=3, tick_every=50, gap_s=7200.0)
@given(
    drop_every=st.sampled_from([0, *range(2, 41)]),
    swap_every=st.sampled_from([0, *range(2, 41)]),
    tick_every=st.integers(min_value=0, max_value=300),
    gap_s=st.sampled_from([1.0, 60.0, 7200.0]),
)
def test_the_fast_path_for_the_next_sample_makes_the_same_fleet_and_effects_as_the_general_path(
    drop_every: int, swap_every: int, tick_every: int, gap_s: float
) -> None:
    """Every message of a fleet's traffic (with samples lost or swapped, so that gaps, late
    samples and rebirths happen, and the clock ticking so that silences begin and end), applied
    with the fast path and without it: the same fleet value and the same effects each time, and
    the fast path taken for most messages of the traffic as published."""
    stream = _fleet_stream()
    if drop_every:
        stream = [m for i, m in enumerate(stream) if i % drop_every != drop_every - 1]
    if swap_every:
        stream = list(stream)
        for i in range(swap_every - 1, len(stream) - 1, swap_every):
            stream[i], stream[i + 1] = stream[i + 1], stream[i]
    taken = [0]
    fast = steps._next_telemetry

    def counted(*args: object) -> object:
        made = fast(*args)  # type: ignore[arg-type]
        taken[0] += made is not None
        return made

    at = datetime(2026, 6, 1, tzinfo=UTC)
    quick = slow = Fleet(config=FleetConfig())
    with pytest.MonkeyPatch.context() as patch:
        for i, (topic, payload) in enumerate(stream):
            now = at + timedelta(seconds=i * gap_s)
            patch.setattr(steps, "_next_telemetry", counted)
            quick, quick_effects = steps.apply(quick, topic, payload, now)
            patch.setattr(steps, "_next_telemetry", lambda *args: None)
            slow, slow_effects = steps.apply(slow, topic, payload, now)
            assert quick_effects == slow_effects, (i, topic)
            assert quick == slow, (i, topic)
            if tick_every and i % tick_every == tick_every - 1:
                quick, quick_effects = steps.tick(quick, now + timedelta(hours=2))
                slow, slow_effects = steps.tick(slow, now + timedelta(hours=2))
                assert quick_effects == slow_effects
                assert quick == slow
    if not drop_every and not swap_every:  # the traffic as published: mostly the next sample in order
        assert taken[0] > len(stream) // 2
