"""The lease rules and a replica's lease decisions, as pure functions of what it knows. Pure.

**The rule a lease table follows** (:func:`grant`, :func:`release`; the PostgreSQL store runs the
same rule in one SQL statement, and the tests check the two agree): a partition that nobody holds
(never leased, released, or whose lease expired) goes to whoever asks, with an epoch one higher
than the partition ever had; its holder renews it with the same epoch; anyone else is refused
while the lease runs. So at any instant at most one replica holds a partition, and the epochs of
a partition's successive owners grow, which is what fences a stale owner's writes.

**A replica's decisions each tick** (:func:`decide`), from the live replicas (its heartbeat's
answer), the lease table and the leases it holds:

* it should own the partitions that rendezvous hashing gives it among the live replicas;
* a held lease with less than :attr:`LeasePolicy.stop_when_left` to run is *dropped*: the replica
  stops serving it without waiting to hear (it may not be able to renew: the database may be
  gone), so it never serves past its lease;
* a held lease the table shows in another's hands (taken over while this replica was paused) is
  dropped too;
* a held lease of a partition that is now another live replica's is *released*: a clean
  hand-over (stop serving, then release; the new owner takes it at its next tick, no TTL wait);
* a held lease it should keep is *renewed* once less than :attr:`LeasePolicy.renew_when_left`
  is left: well inside the TTL, with several ticks to spare before it would drop it;
* a partition it should own and does not hold is *acquired* if the table shows it free or
  expired; while another replica's lease runs it waits (that replica hands it over when it sees
  the same live set, or its lease runs out: a dead replica's partitions are taken after the TTL).

Replica ids must be unique per process (a restarted process takes a new one): a holder renews
with the same epoch, so two processes under one id would share a fence.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from twin.cluster.partitions import owner_of
from twin.store.protocol import Lease

DEFAULT_TTL: Final = timedelta(seconds=10)
"""How long a lease and a heartbeat last unless renewed [A]: the time from a replica's death to
its partitions being taken over is at most this plus a tick. Shorter makes take-over faster and
puts a pause of the replica (a long garbage collection, a stopped VM) closer to losing its
partitions; 10 s is far above the twin's pauses measured here (ingest batches of milliseconds)
and far below a clinic's tolerance for an alarm shown late (DOMAIN: minutes)."""


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """The lease timing. Fractions of the TTL so that one setting scales them all [A]:

    * ``tick``: a fifth of the TTL between two rounds of decisions;
    * ``renew_when_left``: renew once two thirds or less of the TTL is left (one tick after the
      last renewal, in practice every other tick), so two or three failed renewals in a row still
      leave time before ``stop_when_left``;
    * ``stop_when_left``: stop serving with a fifth of the TTL left (one tick before it runs out),
      so a replica that cannot renew stops before anyone else may take over."""

    ttl: timedelta = DEFAULT_TTL
    tick_fraction: float = 0.2
    renew_fraction: float = 2 / 3
    stop_fraction: float = 0.2

    @property
    def tick(self) -> timedelta:
        return self.ttl * self.tick_fraction

    @property
    def renew_when_left(self) -> timedelta:
        return self.ttl * self.renew_fraction

    @property
    def stop_when_left(self) -> timedelta:
        return self.ttl * self.stop_fraction


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A partition's row in the lease table: ``owner`` is None once released (the epoch stays)."""

    partition: int
    owner: str | None
    epoch: int
    expires_at: datetime

    def held(self, now: datetime) -> bool:
        return self.owner is not None and self.expires_at > now

    def lease(self) -> Lease:
        assert self.owner is not None
        return Lease(self.partition, self.owner, self.epoch, self.expires_at)


def grant(row: LeaseRow | None, partition: int, replica: str, now: datetime, ttl: timedelta) -> LeaseRow | None:
    """The row after ``replica`` asks for ``partition`` at ``now``; None if refused (another
    holds it and its lease runs past ``now``)."""
    until = now + ttl
    if row is None:
        return LeaseRow(partition, replica, 1, until)
    if row.owner == replica:
        return replace(row, expires_at=until)
    if row.owner is None or row.expires_at <= now:
        return LeaseRow(partition, replica, row.epoch + 1, until)
    return None


def release(row: LeaseRow, lease: Lease) -> LeaseRow:
    """The row after the holder of ``lease`` gives it up (unchanged if ``lease`` is not the row's)."""
    if row.owner == lease.owner and row.epoch == lease.epoch:
        return replace(row, owner=None)
    return row


@dataclass(frozen=True, slots=True)
class Decisions:
    """What to do this tick, in this order: ``drop`` (stop serving, no release), ``release``
    (stop serving, then release), ``acquire`` (take or renew: ``store.acquire``)."""

    drop: tuple[int, ...] = ()
    release: tuple[Lease, ...] = ()
    acquire: tuple[int, ...] = ()
    owned: frozenset[int] = field(default_factory=frozenset)
    """The partitions this replica should own among the live replicas (for health and logs)."""


def should_own(replica: str, live: Collection[str], partitions: int) -> frozenset[int]:
    """The partitions rendezvous hashing gives ``replica`` among ``live`` (none if it is not live)."""
    if replica not in live:
        return frozenset()
    return frozenset(p for p in range(partitions) if owner_of(p, live) == replica)


def decide(
    replica: str,
    *,
    live: Collection[str] | None,
    table: Sequence[Lease] | None,
    held: Mapping[int, Lease],
    partitions: int,
    now: datetime,
    policy: LeasePolicy,
) -> Decisions:
    """This tick's decisions (see the module docstring). ``live`` and ``table`` are None when
    the store could not be read this tick: then only the drops are decided."""
    drop: list[int] = []
    for partition, lease in sorted(held.items()):
        if lease.expires_at - now <= policy.stop_when_left:
            drop.append(partition)
    if live is None or table is None:
        return Decisions(drop=tuple(drop))
    by_partition = {lease.partition: lease for lease in table}
    owned = should_own(replica, live, partitions)
    release_: list[Lease] = []
    acquire: list[int] = []
    for partition, lease in sorted(held.items()):
        if partition in drop:
            continue
        current = by_partition.get(partition)
        if current is None or current.owner != replica or current.epoch != lease.epoch:
            drop.append(partition)  # released or taken over behind this replica's back
        elif partition not in owned:
            release_.append(lease)
        elif lease.expires_at - now <= policy.renew_when_left:
            acquire.append(partition)
    for partition in sorted(owned):
        if partition in held and partition not in drop:
            continue
        current = by_partition.get(partition)
        if current is None or current.owner == replica or current.expires_at <= now:
            acquire.append(partition)
    return Decisions(drop=tuple(drop), release=tuple(release_), acquire=tuple(sorted(acquire)), owned=owned)


__all__ = [
    "DEFAULT_TTL",
    "Decisions",
    "LeasePolicy",
    "LeaseRow",
    "decide",
    "grant",
    "release",
    "should_own",
]
