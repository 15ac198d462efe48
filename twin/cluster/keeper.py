"""The loop that keeps a replica's partition leases: :class:`LeaseKeeper`. The shell around
:func:`twin.cluster.leases.decide`.

Each tick (every :attr:`~twin.cluster.leases.LeasePolicy.tick`): heartbeat (the answer is the live
replicas), read the lease table, decide, then act in the decisions' order: stop serving what is
dropped; stop serving and release what is handed over; acquire or renew the rest, and start
serving each partition gained (or regained under a new epoch). Serving is the
:class:`PartitionHost`'s business (the per-partition MQTT session, loading the partition's
snapshots and journal tail); the keeper only says when, and hands out the :class:`Fence` every
batch of that partition must carry.

When the store is unavailable the tick still drops the leases about to run out, so a replica cut
off from the database stops serving before another may take over. On :meth:`LeaseKeeper.stop`
(or cancellation of :meth:`run`) it stops serving everything, releases every lease and says it is
leaving (a heartbeat with a zero TTL), so the others take its partitions over at their next tick
instead of after the TTL.

Failure modes: a :class:`PartitionHost` call that raises is logged and the partition is dropped
(released if the store answers), so one broken partition does not stop the others; store errors
never leave :meth:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from twin.cluster.leases import Decisions, LeasePolicy, decide
from twin.store.protocol import Fence, Lease, LeaseStore, StoreUnavailable

log = logging.getLogger(__name__)


class PartitionHost(Protocol):
    """What serves partitions in a replica (the lead's per-partition sessions)."""

    async def serve(self, lease: Lease) -> None:
        """Start serving ``lease.partition`` under ``lease.epoch`` (load, subscribe)."""
        ...

    async def stop(self, partition: int) -> None:
        """Stop serving ``partition`` (flush what is pending, unsubscribe); idempotent."""
        ...


def wall_clock() -> datetime:
    return datetime.now(UTC)


class LeaseKeeper:
    """Keeps the leases of ``replica`` over ``partitions`` partitions in ``store``."""

    def __init__(
        self,
        store: LeaseStore,
        host: PartitionHost,
        *,
        replica: str,
        partitions: int,
        policy: LeasePolicy | None = None,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.store = store
        self.host = host
        self.replica = replica
        self.partitions = partitions
        self.policy = policy or LeasePolicy()
        self.clock = clock
        self.held: dict[int, Lease] = {}
        self.last: Decisions = Decisions()
        self.live: list[str] = []
        self._stopping = asyncio.Event()

    def fence(self, partition: int) -> Fence | None:
        """The fence for a batch of ``partition``, or None if this replica does not hold it."""
        lease = self.held.get(partition)
        return None if lease is None else Fence(partition, lease.epoch)

    def stop(self) -> None:
        """Ask :meth:`run` to hand everything over and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Tick until :meth:`stop` (or cancellation), then hand over."""
        try:
            while not self._stopping.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.policy.tick.total_seconds())
        finally:
            await asyncio.shield(self.hand_over())

    async def tick(self) -> Decisions:
        """One round: heartbeat, read, decide, act. Returns the decisions it acted on."""
        now = self.clock()
        live: list[str] | None
        table: list[Lease] | None
        try:
            live = await self.store.heartbeat(self.replica, now, self.policy.ttl)
            table = await self.store.leases()
        except StoreUnavailable as error:
            log.warning("leases: store unavailable (%s); keeping leases until they run short", error)
            live = table = None
        decisions = decide(
            self.replica,
            live=live,
            table=table,
            held=self.held,
            partitions=self.partitions,
            now=now,
            policy=self.policy,
        )
        if live is not None:
            self.live = live
        for partition in decisions.drop:
            log.warning("leases: partition %d dropped (its lease is running out or was taken over)", partition)
            await self._stop_serving(partition)
            self.held.pop(partition, None)
        for lease in decisions.release:
            log.info("leases: handing partition %d over", lease.partition)
            await self._stop_serving(lease.partition)
            self.held.pop(lease.partition, None)
            with contextlib.suppress(StoreUnavailable):
                await self.store.release(lease)
        for partition in decisions.acquire:
            await self._acquire(partition, now)
        self.last = decisions
        return decisions

    async def _acquire(self, partition: int, now: datetime) -> None:
        try:
            lease = await self.store.acquire(partition, self.replica, now, self.policy.ttl)
        except StoreUnavailable as error:
            log.warning("leases: partition %d not acquired (%s)", partition, error)
            return
        previous = self.held.get(partition)
        if lease is None:
            if previous is not None:  # someone else has it now
                await self._stop_serving(partition)
                self.held.pop(partition, None)
            return
        self.held[partition] = lease
        if previous is not None and previous.epoch == lease.epoch:
            return  # a renewal
        if previous is not None:
            await self._stop_serving(partition)
        log.info("leases: serving partition %d (epoch %d)", partition, lease.epoch)
        try:
            await self.host.serve(lease)
        except Exception:
            log.exception("leases: partition %d could not be served; giving it up", partition)
            self.held.pop(partition, None)
            await self._stop_serving(partition)
            with contextlib.suppress(StoreUnavailable):
                await self.store.release(lease)

    async def _stop_serving(self, partition: int) -> None:
        try:
            await self.host.stop(partition)
        except Exception:
            log.exception("leases: stopping partition %d failed", partition)

    async def hand_over(self) -> None:
        """Stop serving and release every lease, then say this replica is leaving."""
        for partition, lease in sorted(self.held.items()):
            await self._stop_serving(partition)
            with contextlib.suppress(StoreUnavailable):
                await self.store.release(lease)
        self.held.clear()
        with contextlib.suppress(StoreUnavailable):
            await self.store.heartbeat(self.replica, self.clock(), timedelta(0))


__all__ = ["LeaseKeeper", "PartitionHost", "wall_clock"]
