"""The fleet-year benchmark splits the fleet across worker processes (benchmarks/fleet_year.py). That
is only the fleet's run if a pump's life does not depend on which other pumps run beside it: here a
pump's every message (in order, with its time) and every clinic event is the same whether it runs
alone, in one worker's partition or in the whole fleet, with the clinic and the faults on; and the
messages the fast path produces are contract messages."""

from __future__ import annotations

from collections import defaultdict

import pytest

from benchmarks.fleet_year import partition, simulate
from twin.contract.codec import CHANNELS, decode_device_message, encode
from twin.contract.topics import TopicAddress
from twin.sim.clinic import SECONDS_PER_YEAR
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import PumpSpec, default_epoch, generate_fleet
from twin.sim.simulation import FleetEvent, FleetSimulation

SEED = 5
YEARS = 2.0

Run = tuple[dict[str, list[tuple[float, str, str]]], dict[str, list[FleetEvent]]]


def _run(specs: list[PumpSpec]) -> Run:
    """Every device's messages (time, channel, JSON) and clinic events, with the clinic and faults on."""
    messages: dict[str, list[tuple[float, str, str]]] = defaultdict(list)

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        messages[device.device_id].append((t, outgoing.channel.value, outgoing.message.model_dump_json()))

    sim = FleetSimulation(
        specs, epoch=default_epoch(), seed=SEED, sink=sink, clinic_refills=True, random_faults=True, record_events=True
    )
    sim.open_sessions(1)
    sim.run(YEARS * SECONDS_PER_YEAR)
    events: dict[str, list[FleetEvent]] = defaultdict(list)
    assert sim.events is not None
    for event in sim.events:
        events[event.device_id].append(event)
    return dict(messages), dict(events)


@pytest.fixture(scope="module")
def fleet() -> list[PumpSpec]:
    return generate_fleet(60, seed=SEED, start=default_epoch())


@pytest.fixture(scope="module")
def whole(fleet: list[PumpSpec]) -> Run:
    return _run(fleet)


def test_the_partitions_cover_the_fleet_once(fleet: list[PumpSpec]) -> None:
    for parts in (1, 2, 3, 7):
        ids = [s.device_id for i in range(parts) for s in partition(fleet, i, parts)]
        assert sorted(ids) == sorted(s.device_id for s in fleet)


def test_a_pump_does_the_same_alone_in_a_partition_and_in_the_fleet(fleet: list[PumpSpec], whole: Run) -> None:
    messages, events = whole
    assert sum(len(e) for e in events.values()) > len(fleet)  # the clinic and the hazards did things
    for index in range(3):
        part_messages, part_events = _run(partition(fleet, index, 3))
        for spec in partition(fleet, index, 3):
            assert part_messages[spec.device_id] == messages[spec.device_id], spec.device_id
            assert part_events.get(spec.device_id, []) == events.get(spec.device_id, []), spec.device_id
    # the pumps the year did most to, each alone
    busiest = sorted(events, key=lambda d: len(events[d]), reverse=True)[:3]
    for spec in (s for s in fleet if s.device_id in busiest):
        alone_messages, alone_events = _run([spec])
        assert alone_messages[spec.device_id] == messages[spec.device_id]
        assert alone_events[spec.device_id] == events[spec.device_id]


def test_the_workers_counts_add_up_to_the_fleets(fleet: list[PumpSpec], whole: Run) -> None:
    messages, events = whole
    parts = [simulate(partition(fleet, i, 2), YEARS * 365.25, SEED, tuned_gc=False) for i in range(2)]
    channels: dict[str, int] = defaultdict(int)
    for device_messages in messages.values():
        for _, channel, _ in device_messages:
            channels[channel] += 1
    assert sum((p.messages for p in parts), start=type(parts[0].messages)()) == channels
    assert sum(p.refills for p in parts) == sum(1 for e in events.values() for x in e if x.kind == "refill")


def test_the_fast_paths_messages_are_contract_messages() -> None:
    """Every message a year of a small fleet produces (states are made without validating them again)
    validates against its channel's contract model, as the twin would decode it off the wire, and
    comes back equal, with the same fields set and the same JSON."""
    specs = generate_fleet(25, seed=SEED, start=default_epoch())
    seen: dict[str, int] = defaultdict(int)

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        message = outgoing.message
        model = CHANNELS[outgoing.channel].model
        assert type(message) is model
        validated = model.model_validate(message.model_dump())
        assert validated == message
        assert encode(validated) == encode(message)  # the same JSON: floats as floats, fields in order
        # made (validated) from just the fields it says were given: the same message
        rebuilt = model(**{name: getattr(message, name) for name in message.model_fields_set})
        assert rebuilt == message
        assert rebuilt.model_fields_set == message.model_fields_set
        assert encode(rebuilt) == encode(message)
        address = TopicAddress(site=device.identity.site, device_id=device.device_id, channel=outgoing.channel)
        decoded = decode_device_message(address, encode(message))
        assert decoded == message
        assert encode(decoded) == encode(message)
        seen[outgoing.channel.value] += 1

    sim = FleetSimulation(specs, epoch=default_epoch(), seed=SEED, sink=sink, clinic_refills=True, random_faults=True)
    sim.open_sessions(1)
    sim.run(SECONDS_PER_YEAR)
    assert {"birth", "state", "status", "alarm"} <= set(seen)
    assert seen["state"] > 10 * len(specs)


def test_a_share_run_in_chunks_does_what_it_does_on_one_environment(fleet: list[PumpSpec]) -> None:
    """The benchmark's workers run their share a few pumps at a time: the same messages, refills and
    clinic tally as the share on one environment."""
    whole_share = simulate(fleet, YEARS * 365.25, SEED, tuned_gc=False)
    for chunk in (1, 7, 25):
        chunked = simulate(fleet, YEARS * 365.25, SEED, tuned_gc=True, chunk=chunk)
        assert chunked.messages == whole_share.messages
        assert chunked.refills == whole_share.refills
        assert chunked.tally == whole_share.tally
