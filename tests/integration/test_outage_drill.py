"""The outage drill: 100 pumps publishing, InfluxDB stopped, the twin restarted during the outage,
InfluxDB started again — and every point present exactly once, counted by device and sequence
number. Real Mosquitto, real influxd, the real twin service with its spool."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.mqtt import persistent_collecting
from tests.harness.servers import Influxd, Mosquitto
from tests.harness.waiting import until
from twin.contract.codec import decode_device_message
from twin.contract.messages import Telemetry
from twin.contract.topics import Channel, parse_topic, subscription
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.runtime import RunningTwin, running_twin
from twin.settings import Settings
from twin.sim.driver import SimDriver
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCH = datetime(2026, 5, 1, tzinfo=UTC)
PUMPS = 100
SPEED = 3600.0
TELEMETRY_EVERY_S = 1800.0  # two samples per pump per wall second: 200 messages/s


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Mosquitto:
    # This broker also queues QoS 0 telemetry for the twin's persistent session while the twin
    # restarts, so the drill can count *every* published sample. Production keeps telemetry
    # unqueued (broker/mosquitto.conf: a queue full of samples would push out alarms); there the
    # samples published while the twin itself is down are not stored, and everything it received
    # is, exactly once, which this drill also proves.
    server = Mosquitto(workdir=tmp_path_factory.mktemp("broker"), extra_config="queue_qos0_messages true")
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


@contextlib.asynccontextmanager
async def _twin(broker: Mosquitto, influxd: Influxd, data_dir: Path) -> AsyncIterator[RunningTwin]:
    settings = Settings()
    settings.data_dir = data_dir
    settings.http.port = 0
    settings.influx.url = influxd.url
    settings.influx.database = "drill"
    settings.influx.flush_interval_s = 0.2
    settings.influx.retry_initial_s = 0.1
    settings.influx.retry_max_s = 1.0
    settings.influx.drain_on_close_s = 1.0
    async with running_twin(settings, MqttEndpoint.parse(broker.url), client_id="drill-twin") as twin:
        await until(twin.mqtt_connected.is_set, timeout_s=10, what="the twin connecting")
        yield twin


def _stored(influxd: Influxd) -> dict[str, list[tuple[int, int]]]:
    result = influxd.query('SELECT "session", "seq" FROM "telemetry" GROUP BY "device"', db="drill")
    stored: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for series in result["results"][0].get("series", []):  # type: ignore[index, union-attr]
        device = series["tags"]["device"]
        stored[device] += [(int(session), int(seq)) for _, session, seq in series["values"]]
    return stored


async def test_outage_drill_every_point_exactly_once(broker: Mosquitto, influxd: Influxd, tmp_path: Path) -> None:
    specs = generate_fleet(PUMPS, seed=5, start=EPOCH)
    sim = FleetSimulation(
        specs, epoch=EPOCH, seed=5, sink=lambda *_: None, telemetry_interval_s=TELEMETRY_EVERY_S, clinic_refills=True
    )
    driver = SimDriver(sim, MqttEndpoint.parse(broker.url), speed=SPEED)
    data_dir = tmp_path / "twin"
    async with persistent_collecting(broker.url, subscription(Channel.TELEMETRY), identifier="drill-observer") as seen:
        runner: asyncio.Task[None] | None = None
        try:
            async with _twin(broker, influxd, data_dir) as twin:
                runner = asyncio.create_task(driver.run())
                await until(lambda: len(seen.messages) >= 400, what="telemetry flowing")
                influxd.stop(kill=True)  # InfluxDB goes away without warning
                await until(lambda: twin.writer is not None and twin.writer.stats.spooled > 0, what="spooling")
                await asyncio.sleep(1.0)
            # the twin is down (clean stop during the outage); pumps keep publishing
            published_while_down = len(seen.messages)
            await until(
                lambda: len(seen.messages) >= published_while_down + 300, what="telemetry while the twin is down"
            )
            async with _twin(broker, influxd, data_dir) as twin:
                await asyncio.sleep(1.0)  # the restarted twin spools (InfluxDB is still down)
                influxd.start()
                await asyncio.sleep(1.0)
                driver.stop()
                await runner
                runner = None
                total = len(seen.messages)
                await until(lambda: sum(t.counters.applied for t in twin.service.twins.values()) > 0, what="ingest")
                assert twin.writer is not None
                assert await twin.writer.drain(120.0), "the spool drained into InfluxDB"
                expected: dict[str, set[tuple[int, int]]] = defaultdict(set)
                for m in seen.messages[:total]:
                    message = decode_device_message(parse_topic(m.topic), m.payload)
                    assert isinstance(message, Telemetry)
                    expected[message.device_id].add((message.session, message.seq))

                def all_stored() -> bool:
                    stored = _stored(influxd)
                    return all(expected[d] <= set(stored.get(d, [])) for d in expected)

                await until(all_stored, timeout_s=120, what="every published sample stored")
                stats = twin.writer.stats
        finally:
            if runner is not None:
                driver.stop()
                await runner
    stored = _stored(influxd)
    assert len(expected) == PUMPS
    assert sum(len(v) for v in expected.values()) >= 1000
    for device, samples in expected.items():
        points = stored[device]
        assert len(points) == len(set(points)), f"{device}: a point is stored twice"
        assert set(points) == samples, f"{device}: stored {len(points)}, published {len(samples)}"
    assert stats.dead_lettered == 0
