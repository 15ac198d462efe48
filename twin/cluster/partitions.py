"""Which partition a site is in, and which live replica should own a partition. Pure.

Sites, not devices, are the unit: a site's devices share a broker topic subtree
(``pumptwin/v1/{site}/#``), so one subscription per site serves them all, and one owner per site
keeps every device of a clinic on one replica.

* **Site -> partition**: the first 8 bytes of BLAKE2b of the site's UTF-8 name, big-endian,
  modulo P. Stable across processes, machines and Python versions (Python's ``hash()`` is salted
  per process and would not be). P is fixed for a deployment (:data:`DEFAULT_PARTITIONS`,
  ``PUMPTWIN_CLUSTER__PARTITIONS``): changing it re-homes almost every site, as modulo hashing
  does, so it is chosen once, far above the number of replicas.
* **Partition -> replica**: rendezvous (highest-random-weight) hashing. Each replica's weight for
  a partition is a hash of both; the highest weight wins (ties, which a 64-bit hash all but never
  has, go to the greater replica id). Every replica computes the same owner from the same live
  set with no coordination, and when a replica joins only the partitions it now wins move to it;
  when one leaves only its own partitions move, each to its next-highest replica (Thaler &
  Ravishankar, "Using name-based mappings to increase hit rates", IEEE/ACM ToN 6(1), 1998).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from typing import Final

DEFAULT_PARTITIONS: Final = 64
"""P, the number of partitions [A]. Large enough that a handful of replicas each own many
(64 over 3 replicas: about 21 each, so one more or one fewer replica moves about a third or a
quarter of the sites, not all of them) and that the work evens out; small enough that a replica
holds few MQTT sessions and leases (one each per partition)."""


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def partition_of(site: str, partitions: int) -> int:
    """The partition (0 to ``partitions`` - 1) of ``site``."""
    if partitions < 1:
        raise ValueError(f"there must be at least one partition, not {partitions}")
    return _hash64(site) % partitions


def weight(partition: int, replica: str) -> int:
    """``replica``'s rendezvous weight for ``partition`` (a 64-bit hash of both)."""
    return _hash64(f"{partition}\x00{replica}")


def owner_of(partition: int, replicas: Iterable[str]) -> str | None:
    """The replica that should own ``partition`` among ``replicas`` (None if there are none)."""
    return max(replicas, key=lambda replica: (weight(partition, replica), replica), default=None)


def assignment(partitions: int, replicas: Collection[str]) -> dict[int, str]:
    """Every partition's owner among ``replicas`` (empty if there are none)."""
    if not replicas:
        return {}
    return {p: owner for p in range(partitions) if (owner := owner_of(p, replicas)) is not None}


def sites_in(partition: int, sites: Iterable[str], partitions: int) -> list[str]:
    """The ``sites`` of ``partition``, sorted."""
    return sorted(site for site in sites if partition_of(site, partitions) == partition)


__all__ = ["DEFAULT_PARTITIONS", "assignment", "owner_of", "partition_of", "sites_in", "weight"]
