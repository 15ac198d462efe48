"""One ``pumptwin serve --database-url`` replica as a process: it says where it answers, serves
every partition alone, finds a site it was not told of by its pumps' births, hands everything over on SIGTERM (exit 0, leases released, gone from the
live set), and a task that fails ends it with a non-zero status (uvicorn's own 3 when the
port is taken: its ``SystemExit`` passes through the task group as it is)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.replicas import Replica, prepare_database
from tests.harness.servers import Mosquitto
from twin.cluster.partitions import partition_of
from twin.store.postgres import Database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SITES = ["ward-a", "ward-b", "ward-c"]


def _device_ids(url: str) -> set[str]:
    """The device ids ``/api/devices`` lists, signed in as a viewer."""
    import httpx

    from tests.harness.accounts import PASSWORDS
    from twin.roles import Role

    with httpx.Client(base_url=url, timeout=10) as http:
        login = http.post("/api/login", json={"username": "viewer", "password": PASSWORDS[Role.VIEWER]})
        assert login.status_code == 200, login.text
        return {d["device_id"] for d in http.get("/api/devices").json()}


def _until(condition, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


async def test_a_replica_serves_alone_and_hands_over_on_sigterm(
    postgres_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    await prepare_database(postgres_url)
    replica = Replica("solo", tmp_path, postgres_url, mosquitto.url, ttl_s=3.0, partitions=8, sites=SITES)
    replica.start()
    try:
        replica.wait_ready()
        wanted = {partition_of(s, 8) for s in SITES}
        _until(lambda: set(replica.health().get("serving", [])) >= wanted)  # type: ignore[arg-type]
        assert replica.served() == list(range(8))  # alone, it leases every partition
        async with Database(postgres_url, replica="check") as db:
            row = await db.fetchone("SELECT http_url FROM twin_replica WHERE replica = 'solo'")
            assert row == (replica.url,)
            held = await db.fetchall("SELECT partition FROM partition_lease WHERE owner = 'solo'")
            assert {r[0] for r in held} == set(range(8))
            assert replica.stop() == 0, replica.tail()
            held = await db.fetchall("SELECT partition FROM partition_lease WHERE owner IS NOT NULL")
            assert held == [], "every lease released"
            live = await db.fetchall("SELECT replica FROM twin_replica WHERE alive_until > now()")
            assert live == [], "it left the live set"
        assert "every partition handed over" in replica.log_path.read_text()
    finally:
        replica.stop()


async def test_a_failed_task_ends_the_replica_non_zero(postgres_url: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    await prepare_database(postgres_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        replica = Replica("clash", tmp_path, postgres_url, mosquitto.url, sites=SITES, port=port)
        replica.start()
        try:
            assert replica.process is not None
            assert replica.process.wait(60) != 0
        finally:
            replica.stop()
    log = replica.log_path.read_text()
    assert "task twin-http failed" in log


async def test_a_birth_on_a_site_not_configured_is_counted_and_its_partition_subscribes_it(
    postgres_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """No sites configured: the pumps' retained births are heard by the discovery subscription,
    counted, and the site's partition is served again with the site in its subscriptions, so the
    devices are mirrored (from their retained births and states) and their later messages arrive."""
    import aiomqtt

    from twin.contract.codec import encode
    from twin.contract.topics import build_topic
    from twin.sim.device import Outgoing, SimulatedDevice
    from twin.sim.fleet import generate_fleet
    from twin.sim.simulation import FleetSimulation

    await prepare_database(postgres_url)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    published: list[tuple[str, bytes, int, bool]] = []

    def sink(device: SimulatedDevice, out: Outgoing, t: float) -> None:
        topic = build_topic(device.identity.site, device.device_id, out.channel)
        published.append((topic, encode(out.message), out.qos, out.retain))

    specs = generate_fleet(3, seed=4, start=start, sites=["ward-new"])
    sim = FleetSimulation(specs, epoch=start, seed=4, sink=sink, telemetry_interval_s=600)
    sim.open_sessions(1)
    sim.run(600)
    async with aiomqtt.Client("127.0.0.1", int(mosquitto.url.rsplit(":", 1)[1])) as client:
        for topic, payload, qos, retain in published:
            await client.publish(topic, payload, qos=qos, retain=retain)
    replica = Replica("finder", tmp_path, postgres_url, mosquitto.url, ttl_s=3.0, partitions=8, sites=[])
    replica.start()
    try:
        replica.wait_ready()
        _until(lambda: replica.health().get("births_on_new_sites") == 1)
        expected = {s.device_id for s in specs}
        _until(lambda: _device_ids(replica.url) == expected)
        assert partition_of("ward-new", 8) in replica.health()["serving"]  # type: ignore[operator]
    finally:
        replica.stop()
