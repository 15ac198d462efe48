"""Partition leases and replica heartbeats in PostgreSQL: :class:`PostgresLeaseStore`.

Each call is one statement, atomic on the lease's row; the rule it applies is the pure
:func:`twin.cluster.leases.grant` (the tests check the two agree):

* ``acquire`` takes a partition that nobody holds (never leased, released, or expired at the
  caller's ``now``) with a *new epoch*, renews it for its holder with the *same* epoch, and
  otherwise returns ``None``;
* ``release`` gives the partition up only if the caller still holds that lease (owner and epoch);
  the row stays, with its epoch, so the next owner's epoch is higher than every earlier one;
* triggers refuse an epoch that goes back, a new owner under an old epoch and a deleted lease row
  (see the migration), whatever the client.

Time is the caller's (``now`` is an argument, as everywhere in the twin), so the replicas' clocks
must agree to well within the TTL (NTP does: milliseconds). A heartbeat with a zero TTL says the
replica is leaving: it is no longer live, and the others re-hash its partitions at once instead
of after its TTL.

Failure modes: :class:`~twin.store.protocol.StoreUnavailable`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection

from twin.store.postgres.database import Database
from twin.store.protocol import Lease

FORGET_REPLICAS_AFTER: Final = timedelta(days=1)
"""A replica silent this long is deleted from ``twin_replica`` (heartbeats are not an audit trail)."""

_ACQUIRE: Final = """
INSERT INTO partition_lease AS l (partition, owner, epoch, expires_at, acquired_at)
VALUES (%(partition)s, %(replica)s, 1, %(until)s, %(now)s)
ON CONFLICT (partition) DO UPDATE SET
    owner = excluded.owner,
    epoch = CASE WHEN l.owner = excluded.owner THEN l.epoch ELSE l.epoch + 1 END,
    expires_at = excluded.expires_at,
    acquired_at = CASE WHEN l.owner = excluded.owner THEN l.acquired_at ELSE excluded.acquired_at END
WHERE l.owner IS NULL OR l.owner = excluded.owner OR l.expires_at <= %(now)s
RETURNING partition, owner, epoch, expires_at
"""


def _lease(row: tuple[Any, ...]) -> Lease:
    partition, owner, epoch, expires_at = row
    return Lease(partition=partition, owner=owner, epoch=epoch, expires_at=expires_at.astimezone(UTC))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone")
    return at


class PostgresLeaseStore:
    """:class:`~twin.store.protocol.LeaseStore` on the :class:`Database` ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def heartbeat(self, replica: str, now: datetime, ttl: timedelta) -> list[str]:
        async def beat(conn: AsyncConnection) -> list[str]:
            await conn.execute(
                "INSERT INTO twin_replica (replica, alive_until, seen_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (replica) DO UPDATE SET alive_until = excluded.alive_until, seen_at = excluded.seen_at",
                (replica, _aware(now) + ttl, now),
            )
            await conn.execute("DELETE FROM twin_replica WHERE alive_until < %s", (now - FORGET_REPLICAS_AFTER,))
            cursor = await conn.execute(
                "SELECT replica FROM twin_replica WHERE alive_until > %s ORDER BY replica", (now,)
            )
            return [str(row[0]) for row in await cursor.fetchall()]

        return await self.db.run(beat)

    async def acquire(self, partition: int, replica: str, now: datetime, ttl: timedelta) -> Lease | None:
        async def take(conn: AsyncConnection) -> Lease | None:
            cursor = await conn.execute(
                _ACQUIRE, {"partition": partition, "replica": replica, "now": _aware(now), "until": now + ttl}
            )
            row = await cursor.fetchone()
            return None if row is None else _lease(row)

        return await self.db.run(take)

    async def release(self, lease: Lease) -> None:
        async def give_up(conn: AsyncConnection) -> None:
            await conn.execute(
                "UPDATE partition_lease SET owner = NULL WHERE partition = %s AND owner = %s AND epoch = %s",
                (lease.partition, lease.owner, lease.epoch),
            )

        await self.db.run(give_up)

    async def leases(self) -> list[Lease]:
        rows = await self.db.fetchall(
            "SELECT partition, owner, epoch, expires_at FROM partition_lease WHERE owner IS NOT NULL ORDER BY partition"
        )
        return [_lease(row) for row in rows]


__all__ = ["FORGET_REPLICAS_AFTER", "PostgresLeaseStore"]
