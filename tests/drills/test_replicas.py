"""The replica drill (issue 15's Done when): PostgreSQL, Mosquitto, three ``pumptwin serve
--database-url`` replicas as processes, and a simulated fleet over 12 sites with random faults.
Mid-run one replica is killed (SIGKILL) and another paused (SIGSTOP) past its lease; afterwards
every device is mirrored, every alarm the fleet raised is journaled exactly once, and any
replica's ``/api/devices`` and ``/api/journal`` show the whole fleet. Along the way: an alarm
action sent to a replica that does not serve the alarm is forwarded to the one that does, and the
first replica's live stream carries what the other committed.

What "exactly once" is checked against: every alarm message the pumps published, as a separate
persistent QoS 1 subscriber received it (so nothing the fleet raised escapes the count). Each
raise has a unique ``alarm_id``: the database must hold its device-event mark (durable, one row
per event by its key), and each alarm point's journal must hold exactly as many device raises
as the fleet published for it, with versions 1..n and no gap (a lost transition leaves a gap or
a missing raise; one applied twice leaves an extra raise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.harness import postgres as postgres_harness
from tests.harness.accounts import PASSWORDS
from tests.harness.mqtt import persistent_collecting
from tests.harness.replicas import Replica, prepare_database
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.cluster.partitions import partition_of
from twin.contract.codec import decode_device_message
from twin.contract.messages import AlarmEvent, AlarmEventType
from twin.contract.topics import Channel, parse_topic, subscription
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.sim.clinic import HazardRates
from twin.sim.driver import SimDriver
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.store.postgres import Database, PostgresJournalStore

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

EPOCH = datetime(2026, 6, 1, tzinfo=UTC)
SITES = [f"ward-{i:02d}" for i in range(12)]
PUMPS = 96
PARTITIONS = 16
TTL_S = 3.0
SPEED = 3600.0  # a simulated hour a wall second
TELEMETRY_EVERY_S = 3600.0  # one sample per pump per wall second
FAULTS = HazardRates(  # far above the published rates, so a short run has faults to count
    motor_stall_per_year=40.0,
    motor_stall_off_label_per_year=80.0,
    catheter_first_year_per_year=40.0,
    catheter_later_per_year=40.0,
)


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(workdir=tmp_path_factory.mktemp("broker"))
    server.start()
    yield server
    server.stop()


def _partitions_with_sites() -> set[int]:
    return {partition_of(site, PARTITIONS) for site in SITES}


async def _served(replicas: list[Replica]) -> dict[str, list[int]]:
    async def one(r: Replica) -> tuple[str, list[int]]:
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                body = (await client.get(r.url + "/healthz")).json()
            return r.name, [int(p) for p in body.get("partitions", [])]
        except httpx.HTTPError:
            return r.name, []

    return dict(await asyncio.gather(*(one(r) for r in replicas)))


async def _covered(replicas: list[Replica]) -> bool:
    served = await _served(replicas)
    everything = [p for ps in served.values() for p in ps]
    return len(everything) == len(set(everything)) and set(everything) >= _partitions_with_sites()


async def _wait_covered(replicas: list[Replica], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    deadline = started + timeout_s
    while not await _covered(replicas):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r.name}\n{r.tail(20)}" for r in replicas)
            raise AssertionError(f"{what}: partitions not all served: {await _served(replicas)}\n{logs}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def _signed_in(replica: Replica):  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=replica.url, timeout=20.0) as client:
        answer = await client.post("/api/login", json={"username": "admin", "password": PASSWORDS[Role.ADMIN]})
        assert answer.status_code == 200, answer.text
        yield client


@pytest.mark.timeout(400)
async def test_three_replicas_lose_nothing_when_one_is_killed_and_one_paused(
    postgres_server: postgres_harness.Postgres, broker: Mosquitto, tmp_path: Path
) -> None:
    url = postgres_harness.fresh_database(postgres_server)
    await prepare_database(url)
    replicas = [
        Replica(name, tmp_path, url, broker.url, ttl_s=TTL_S, partitions=PARTITIONS, sites=SITES)
        for name in ("replica-a", "replica-b", "replica-c")
    ]
    specs = generate_fleet(PUMPS, seed=15, start=EPOCH, sites=SITES)
    sim = FleetSimulation(
        specs,
        epoch=EPOCH,
        seed=15,
        sink=lambda *_: None,
        telemetry_interval_s=TELEMETRY_EVERY_S,
        clinic_refills=True,
        random_faults=True,
        hazards=FAULTS,
    )
    driver = SimDriver(sim, MqttEndpoint.parse(broker.url), speed=SPEED)
    runner: asyncio.Task[None] | None = None
    try:
        for r in replicas:
            r.start()
        await asyncio.gather(*(asyncio.to_thread(r.wait_ready) for r in replicas))
        await _wait_covered(replicas, 30, "at start")
        async with persistent_collecting(broker.url, subscription(Channel.ALARM), identifier="drill-alarms") as seen:
            runner = asyncio.create_task(driver.run())
            await asyncio.sleep(15)

            served = await _served(replicas)
            victim = max(replicas, key=lambda r: len(set(served[r.name]) & _partitions_with_sites()))
            victim.kill()  # no hand-over: its partitions wait out their leases
            alive = [r for r in replicas if r is not victim]
            taken = await _wait_covered(alive, 30, "after the SIGKILL")
            print(f"SIGKILL {victim.name}: its partitions served again after {taken:.1f} s")
            await asyncio.sleep(8)

            served = await _served(alive)
            sleeper = max(alive, key=lambda r: len(set(served[r.name]) & _partitions_with_sites()))
            awake = next(r for r in alive if r is not sleeper)
            sleeper.pause()
            await _wait_covered([awake], 30, "while one replica is paused")
            await asyncio.sleep(TTL_S * 2)  # well past its lease: the other took everything over
            sleeper.resume()  # it wakes holding leases that are no longer its own
            await asyncio.sleep(3)
            await _wait_covered(alive, 30, "after the paused replica woke")
            await asyncio.sleep(8)

            driver.stop()
            await runner
            runner = None
            await asyncio.sleep(1)
            published = list(seen.messages)

        raised: Counter[str] = Counter()
        raised_ids: set[tuple[str, str, str]] = set()
        for m in published:
            address = parse_topic(m.topic)
            message = decode_device_message(address, m.payload)
            assert isinstance(message, AlarmEvent)
            if (
                message.event is AlarmEventType.RAISED
                and (address.site, message.device_id, message.alarm_id) not in raised_ids
            ):
                raised_ids.add((address.site, message.device_id, message.alarm_id))
                raised[f"{address.site}/{message.device_id}/{message.code.value}"] += 1
        assert len(raised_ids) >= 10, f"only {len(raised_ids)} alarms raised: the drill needs faults to count"

        async with Database(url, replica="drill-check") as db:
            journal = PostgresJournalStore(db)

            async def marks() -> set[tuple[str, str, str]]:
                rows = await db.fetchall(
                    "SELECT site, device_id, alarm_id FROM device_alarm_event WHERE event = 'raised'"
                )
                return {(str(s), str(d), str(a)) for s, d, a in rows}

            deadline = time.monotonic() + 60
            while not raised_ids <= await marks():
                if time.monotonic() > deadline:
                    missing = sorted(raised_ids - await marks())[:10]
                    logs = "\n".join(f"--- {r.name}\n{r.tail(30)}" for r in replicas)
                    raise AssertionError(f"raised alarms never journaled, e.g. {missing}\n{logs}")
                await asyncio.sleep(0.5)
            transitions = await journal.transitions()

        print(f"{len(raised_ids)} alarms raised by the fleet; {len(transitions)} transitions journaled")
        by_key: dict[str, list[int]] = {}
        device_raises: Counter[str] = Counter()
        for t in transitions:
            by_key.setdefault(t.key, []).append(t.version)
            if str(t.source) == "device" and t.event.value in ("raise", "reraise"):
                device_raises[t.key] += 1
        for key, versions in by_key.items():
            assert sorted(versions) == list(range(1, len(versions) + 1)), f"{key}: versions {sorted(versions)}"
        assert dict(device_raises) == dict(raised), "each raise journaled exactly once"

        # any replica shows the whole fleet: the two that lived, and the killed one started again
        victim.start()
        await asyncio.to_thread(victim.wait_ready)
        journal_keys = {(t.key, t.version) for t in transitions}
        for r in replicas:
            async with _signed_in(r) as client:
                devices = (await client.get("/api/devices", params={"limit": 5000})).json()
                assert {(d["site"], d["device_id"]) for d in devices} == {(s.site, s.device_id) for s in specs}, r.name
                rows = (await client.get("/api/journal", params={"limit": 10_000})).json()
                assert {(row["key"], row["version"]) for row in rows} >= journal_keys, r.name

        # an action sent to a replica that does not serve the alarm is forwarded to the one that does,
        # and the asking replica's live stream carries the transition the owner committed
        await _wait_covered(replicas, 30, "after the restart")
        served = await _served(replicas)
        asker = replicas[0]
        mine = set(served[asker.name])
        async with _signed_in(asker) as client:
            alarms = (await client.get("/api/alarms", params={"state": "active_unacknowledged"})).json()
            elsewhere = [a for a in alarms if partition_of(a["site"], PARTITIONS) not in mine]
            assert elsewhere, "an unacknowledged alarm served by another replica"
            target = elsewhere[0]
            stream_seen: list[dict[str, object]] = []

            async def listen() -> None:
                async with client.stream("GET", "/api/stream", timeout=None) as events:
                    kind = None
                    async for line in events.aiter_lines():
                        if line.startswith("event:"):
                            kind = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and kind == "alarm":
                            stream_seen.append(json.loads(line.split(":", 1)[1]))

            listener = asyncio.create_task(listen())
            await asyncio.sleep(1.0)
            answer = await client.post(
                f"/api/alarms/{target['key']}/acknowledge", json={"comment": "forwarded by the drill"}
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers.get("x-pumptwin-served-by") not in (None, asker.name)
            assert answer.json()["state"] == "active_acknowledged"

            def acknowledged_on_stream() -> bool:
                return any(
                    json.dumps(e).find(target["key"]) >= 0 and "acknowledge" in json.dumps(e) for e in stream_seen
                )

            try:
                await until(acknowledged_on_stream, timeout_s=15, what="the owner's transition on the asker's stream")
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        for r in replicas:
            assert r.stop() == 0, f"{r.name} did not hand over cleanly:\n{r.tail(30)}"
    finally:
        if runner is not None:
            driver.stop()
            await runner
        for r in replicas:
            r.stop()
