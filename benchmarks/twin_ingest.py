"""Sustained ingest of the twin service, against a bare aiomqtt subscriber that only decodes JSON.

Both consumers drain the same backlog from a real Mosquitto, in the same run: a persistent session
is opened and closed, a fleet's worth of messages (births, states, alarms, and mostly telemetry,
recorded from a simulated fleet) is published while the consumer is away, then the consumer
reconnects and the time to take every message is measured. Queuing first keeps the publisher out
of the measurement (on 2 cores it would otherwise compete with the consumer it is feeding).
Nothing may be dropped: both must account for every message.

The twin is the real ingest path (``twin.service.mqtt_link``: decode and validate, apply to the
device twin, alarm lifecycle and journal, acknowledge after applying) with a SQLite journal and
without a time-series writer.

    python -m benchmarks.twin_ingest [--pumps 200] [--messages 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from tests.harness.inproc import count_ingest
from tests.harness.servers import Mosquitto
from twin.app.serve import settle_heap
from twin.contract.codec import encode
from twin.contract.topics import build_topic, subscription
from twin.influx.writer import InfluxWriter
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.mqtt_link import run_link
from twin.service.twin_service import TwinService
from twin.settings import InfluxSettings
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.store.local import LocalJournalStore


def recorded_stream(pumps: int, count: int) -> list[tuple[str, bytes, int]]:
    """(topic, payload, qos) of what a fleet publishes, in order, until ``count`` messages."""
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[tuple[str, bytes, int]] = []

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        topic = build_topic(device.identity.site, device.device_id, outgoing.channel)
        out.append((topic, encode(outgoing.message), outgoing.qos))

    specs = generate_fleet(pumps, seed=4, start=epoch)
    specs = [
        s.model_copy(update={"reservoir_ml": s.low_reservoir_threshold_ml + 0.05 * (i % 7)})
        for i, s in enumerate(specs)
    ]
    sim = FleetSimulation(specs, epoch=epoch, seed=4, sink=sink, telemetry_interval_s=300, random_faults=True)
    sim.open_sessions(1)
    day = 0
    while len(out) < count:
        day += 1
        sim.run(day * 86400)
    return out[:count]


async def _publish(url: str, stream: list[tuple[str, bytes, int]]) -> None:
    endpoint = MqttEndpoint.parse(url)
    async with aiomqtt.Client(endpoint.host, endpoint.port, max_queued_outgoing_messages=0) as client:
        for topic, payload, _ in stream:
            # everything at QoS 1, so that the broker queues all of it for the absent consumer
            # (Mosquitto 2.0.11 with queue_qos0_messages on kept only the in-flight window of
            # QoS 1 messages queued among QoS 0 ones, seen while writing this benchmark)
            await client.publish(topic, payload, qos=1)
        # QoS 0 messages are only handed to the socket; a QoS 1 message acknowledged after them
        # proves the broker has them all (one connection keeps order)
        await client.publish("bench/sentinel", b"done", qos=1)


async def _prime(url: str, identifier: str) -> None:
    endpoint = MqttEndpoint.parse(url)
    async with aiomqtt.Client(endpoint.host, endpoint.port, identifier=identifier, clean_session=False) as c:
        await c.subscribe(subscription(), qos=1)


async def bare(url: str, stream: list[tuple[str, bytes, int]]) -> float:
    await _prime(url, "bench-bare")
    await _publish(url, stream)
    settle_heap()  # as the twin's start-up does (below): the same collector for both
    endpoint = MqttEndpoint.parse(url)
    got = 0
    started = time.perf_counter()
    async with aiomqtt.Client(
        endpoint.host, endpoint.port, identifier="bench-bare", clean_session=False, max_queued_incoming_messages=0
    ) as client:
        async for message in client.messages:
            json.loads(message.payload)  # type: ignore[arg-type]
            got += 1
            if got == len(stream):
                break
    return time.perf_counter() - started


async def twin(
    url: str, stream: list[tuple[str, bytes, int]], data_dir: Path, *, points: bool
) -> tuple[float, dict[str, int]]:
    """The production path: the MQTT link, the fleet step, the SQLite journal and (``points``) the
    InfluxDB spool, each message acknowledged only once its batch is durable."""
    async with InfluxWriter(InfluxSettings(), data_dir / "spool") as writer:
        store = LocalJournalStore(data_dir / "journal.sqlite")
        service = TwinService(store, points=writer if points else None)
        await service.restore()
        settle_heap()  # what `pumptwin serve` does once it has started (twin.app.serve)
        endpoint = MqttEndpoint.parse(url)
        stop, connected = asyncio.Event(), asyncio.Event()
        link = asyncio.create_task(run_link(service, endpoint, stop, client_id="bench-twin", connected=connected))
        await connected.wait()
        stop.set()
        await link
        await _publish(url, stream)

        count = count_ingest(service, len(stream))
        stop, connected = asyncio.Event(), asyncio.Event()
        started = time.perf_counter()
        link = asyncio.create_task(run_link(service, endpoint, stop, client_id="bench-twin", connected=connected))
        await count.done.wait()
        elapsed = time.perf_counter() - started
        stop.set()
        await link
        await store.close()
        counts = {
            "handled": count.handled,
            "rejected": sum(service.reject_counts.values()),
            "alarm_points": len(service.fleet.board.alarms),
            "points_spooled": writer.stats.spooled,
        }
    return elapsed, counts


async def main_async(args: argparse.Namespace) -> None:
    stream = recorded_stream(args.pumps, args.messages)
    kinds: dict[str, int] = {}
    for topic, _, _ in stream:
        kind = topic.rsplit("/", 1)[1]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"stream: {len(stream)} messages from {args.pumps} pumps {kinds}")
    bare_rates, twin_rates = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            broker = Mosquitto(
                workdir=Path(tmp),
                extra_config=f"max_queued_messages 1000000\nmax_inflight_messages {args.inflight}",
            )
            broker.start()
            try:
                # The two take turns going first, so that neither always meets a warmer machine.
                if run % 2 == 0:
                    b = await bare(broker.url, stream)
                    t, counts = await twin(broker.url, stream, Path(tmp), points=not args.no_points)
                else:
                    t, counts = await twin(broker.url, stream, Path(tmp), points=not args.no_points)
                    b = await bare(broker.url, stream)
            finally:
                broker.stop()
        bare_rates.append(len(stream) / b)
        twin_rates.append(len(stream) / t)
        print(f"run {run + 1}: bare {len(stream) / b:,.0f} msg/s, twin {len(stream) / t:,.0f} msg/s {counts}")
    figure, baseline = statistics.median(twin_rates), statistics.median(bare_rates)
    # On a shared 2-core machine a run's load moves both consumers of that run: the ratio is the
    # median of each run's own twin/bare ratio (paired), the medians of the rates are shown beside it.
    paired = statistics.median(t / b for t, b in zip(twin_rates, bare_rates, strict=True))
    print(
        json.dumps(
            {
                "benchmark": "twin_ingest",
                "figure": {"name": "twin ingest, messages/s, nothing dropped", "value": round(figure)},
                "baseline": {"name": "bare aiomqtt subscriber decoding JSON, messages/s", "value": round(baseline)},
                "ratio": round(paired, 3),
                "ratio_of_medians": round(figure / baseline, 3),
                "run_ratios": [round(t / b, 3) for t, b in zip(twin_rates, bare_rates, strict=True)],
                "target_ratio": 0.9,
                "messages": len(stream),
                "runs": args.runs,
                "rates": {"twin": [round(r) for r in twin_rates], "bare": [round(r) for r in bare_rates]},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=200)
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-points", action="store_true", help="leave out the InfluxDB spool")
    parser.add_argument("--inflight", type=int, default=1000, help="the broker's max_inflight_messages")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
