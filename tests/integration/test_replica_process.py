"""One ``pumptwin serve --database-url`` replica as a process: it says where it answers, serves
every partition alone, hands everything over on SIGTERM (exit 0, leases released, gone from the
live set), and a task that fails ends it with a non-zero status (uvicorn's own 3 when the
port is taken: its ``SystemExit`` passes through the task group as it is)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.harness.replicas import Replica, prepare_database
from tests.harness.servers import Mosquitto
from twin.cluster.partitions import partition_of
from twin.store.postgres import Database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SITES = ["ward-a", "ward-b", "ward-c"]


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
