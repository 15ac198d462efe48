"""The MQTT link's hot path leaves no cyclic garbage behind it, measured on a real Mosquitto.

Garbage that only the cyclic collector can free makes every young collection find and free it,
and a young collection pauses the event loop that carries every alarm to the live stream. paho's
own per-message lookup of per-filter callbacks once left a reference cycle for each message
received (``NoCycleMatcher``): 3-19 ms pauses at 1,000 msg/s in ``benchmarks/alarm_latency.py``.
This drains a queued backlog of a fleet's traffic through :func:`run_link` with the collector off,
then counts what one collection frees.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
from paho.mqtt.matcher import MQTTMatcher

from tests.harness.inproc import count_ingest
from tests.harness.servers import Mosquitto
from twin.contract.codec import encode
from twin.contract.topics import build_topic
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.mqtt_link import NoCycleMatcher, run_link
from twin.service.twin_service import TwinService
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.store.local import LocalJournalStore

MESSAGES = 2_000


def _traffic(count: int) -> list[tuple[str, bytes]]:
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[tuple[str, bytes]] = []

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        out.append((build_topic(device.identity.site, device.device_id, outgoing.channel), encode(outgoing.message)))

    sim = FleetSimulation(
        generate_fleet(20, seed=3, start=epoch), epoch=epoch, seed=3, sink=sink, telemetry_interval_s=300
    )
    sim.open_sessions(1)
    day = 0
    while len(out) < count:
        day += 1
        sim.run(day * 86400)
    return out[:count]


async def _until_connected_once(service: TwinService, endpoint: MqttEndpoint) -> None:
    """Open the link's persistent session (its subscriptions), then leave, so the broker queues."""
    stop, connected = asyncio.Event(), asyncio.Event()
    link = asyncio.create_task(run_link(service, endpoint, stop, client_id="garbage-twin", connected=connected))
    await asyncio.wait_for(connected.wait(), 10)
    stop.set()
    await link


async def test_draining_a_backlog_leaves_almost_no_cyclic_garbage(mosquitto: Mosquitto, tmp_path: Path) -> None:
    traffic = _traffic(MESSAGES)
    service = TwinService(LocalJournalStore(tmp_path / "journal.sqlite"))
    await service.restore()
    endpoint = MqttEndpoint.parse(mosquitto.url)
    await _until_connected_once(service, endpoint)
    async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
        for topic, payload in traffic:
            await publisher.publish(topic, payload, qos=1)  # QoS 1: queued for the absent twin

    count = count_ingest(service, len(traffic))
    stop, connected = asyncio.Event(), asyncio.Event()
    gc.collect()
    gc.disable()
    try:
        link = asyncio.create_task(run_link(service, endpoint, stop, client_id="garbage-twin", connected=connected))
        await asyncio.wait_for(count.done.wait(), 60)
        freed = gc.collect()
    finally:
        gc.enable()
        stop.set()
        await link
        await service.store.close()
    assert count.handled == len(traffic)
    assert sum(service.reject_counts.values()) == 0
    # paho's recursive matcher alone left six objects a message (12,000 here); a connection's
    # own start-up leaves a few hundred
    assert freed < len(traffic) // 4, f"{freed} objects of cyclic garbage for {len(traffic)} messages"


def test_the_matcher_matches_as_pahos_does_once_it_has_filters() -> None:
    ours, pahos = NoCycleMatcher(), MQTTMatcher()
    topics = ["site-a/pump-1/telemetry", "site-a/pump-1/alarm", "site-b/pump-2/state", "$SYS/broker/uptime"]
    assert [list(ours.iter_match(t)) for t in topics] == [[]] * len(topics)
    for matcher in (ours, pahos):
        matcher["site-a/+/telemetry"] = "telemetry of site-a"
        matcher["#"] = "everything"
        matcher["site-b/pump-2/state"] = "one state"
    for topic in topics:
        assert list(ours.iter_match(topic)) == list(pahos.iter_match(topic)), topic
    assert list(ours.iter_match("site-a/pump-1/telemetry")) == ["telemetry of site-a", "everything"]
