"""Three lease keepers on a real PostgreSQL: they converge to the rendezvous assignment with every
partition served by exactly one replica; a clean stop hands partitions over without waiting for
the TTL; a crashed replica's partitions are taken over after it, under new epochs, and the
crashed replica's fence no longer writes. The hosts here only record what they are told to serve
(the per-partition sessions are the twin's, not under test)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from twin.cluster.keeper import LeaseKeeper
from twin.cluster.leases import LeasePolicy
from twin.cluster.partitions import assignment
from twin.store.postgres import Database, PostgresJournalStore, PostgresLeaseStore
from twin.store.protocol import Batch, Lease, Snapshot, StaleEpoch

pytestmark = pytest.mark.integration

PARTITIONS = 12
POLICY = LeasePolicy(ttl=timedelta(seconds=3))
"""A short TTL (ticks of 0.6 s) so that a take-over after a crash takes seconds, not tens."""


@dataclass
class Serving:
    """Who serves what, across the replicas of the test; records any moment two serve one partition."""

    by_partition: dict[int, str] = field(default_factory=dict)
    overlaps: list[tuple[int, str, str]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)

    def owners(self) -> dict[int, str]:
        return {p: r for p, r in self.by_partition.items() if r not in self.dead}


@dataclass
class RecordingHost:
    replica: str
    serving: Serving
    epochs: dict[int, int] = field(default_factory=dict)

    async def serve(self, lease: Lease) -> None:
        other = self.serving.by_partition.get(lease.partition)
        if other is not None and other != self.replica and other not in self.serving.dead:
            self.serving.overlaps.append((lease.partition, other, self.replica))
        self.serving.by_partition[lease.partition] = self.replica
        self.epochs[lease.partition] = lease.epoch

    async def stop(self, partition: int) -> None:
        if self.serving.by_partition.get(partition) == self.replica:
            del self.serving.by_partition[partition]


async def converged(serving: Serving, replicas: set[str], timeout_s: float) -> float:
    """Wait until the live replicas serve exactly the rendezvous assignment; return how long it took."""
    started = time.monotonic()
    want = assignment(PARTITIONS, replicas)
    while serving.owners() != want:
        assert time.monotonic() - started < timeout_s, (serving.owners(), want)
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def keepers(url: str, names: list[str], serving: Serving) -> AsyncIterator[dict[str, LeaseKeeper]]:
    async with contextlib.AsyncExitStack() as stack:
        made = {}
        for name in names:
            db = await stack.enter_async_context(Database(url, replica=name))
            made[name] = LeaseKeeper(
                PostgresLeaseStore(db), RecordingHost(name, serving), replica=name, partitions=PARTITIONS, policy=POLICY
            )
        yield made


async def _ticks_only(keeper: LeaseKeeper) -> None:
    """A replica's loop without its hand-over: cancelling it is a crash."""
    while True:
        await keeper.tick()
        await asyncio.sleep(POLICY.tick.total_seconds())


async def test_replicas_share_the_partitions_hand_over_on_stop_and_take_over_after_a_crash(postgres_url: str) -> None:
    serving = Serving()
    async with keepers(postgres_url, ["replica-a", "replica-b", "replica-c"], serving) as k:
        a = asyncio.create_task(k["replica-a"].run())
        b = asyncio.create_task(_ticks_only(k["replica-b"]))
        c = asyncio.create_task(k["replica-c"].run())
        await converged(serving, {"replica-a", "replica-b", "replica-c"}, timeout_s=15)
        assert set(serving.owners().values()) == {"replica-a", "replica-b", "replica-c"}

        k["replica-c"].stop()  # a clean stop: release, and leave the live set at once
        await asyncio.wait_for(c, 5)
        handed_over = await converged(serving, {"replica-a", "replica-b"}, timeout_s=15)
        assert handed_over < POLICY.ttl.total_seconds(), "a clean hand-over must not wait for the TTL"

        b_leases = dict(k["replica-b"].held)
        b.cancel()  # a crash: b's leases stay in the table until they run out
        serving.dead.add("replica-b")
        with contextlib.suppress(asyncio.CancelledError):
            await b
        taken_over = await converged(serving, {"replica-a"}, timeout_s=POLICY.ttl.total_seconds() * 4)
        host_a = k["replica-a"].host
        assert isinstance(host_a, RecordingHost)
        for partition, lease in b_leases.items():
            assert host_a.epochs[partition] > lease.epoch  # a new epoch at the take-over
        assert taken_over > 0

        # b wakes up (a paused process, say) and writes under its old lease: refused
        async with Database(postgres_url, replica="replica-b") as b_again:
            partition, lease = next(iter(b_leases.items()))
            with pytest.raises(StaleEpoch):
                await PostgresJournalStore(b_again).commit(
                    Batch(snapshots=(Snapshot("clinic-x", "pump-9", 1, {}),), fence=k["replica-b"].fence(partition))
                )
            assert await PostgresJournalStore(b_again).snapshots() == []

        k["replica-a"].stop()
        await asyncio.wait_for(a, 5)
    assert serving.overlaps == []
    assert serving.owners() == {}  # a stopped replica serves nothing
