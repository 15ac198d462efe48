"""Partitioning and leases, pure: sites hash stably into P partitions; rendezvous hashing moves only
what it must when a replica joins or leaves; the lease rule never lets two replicas hold one
partition; and replicas that follow :func:`~twin.cluster.leases.decide` tick after tick, through
random joins, clean leaves, crashes and pauses, end with every partition held by exactly one live
replica (its rendezvous owner), epochs growing at every change of owner."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.cluster.leases import LeasePolicy, LeaseRow, decide, grant, release
from twin.cluster.partitions import assignment, owner_of, partition_of, sites_in
from twin.store.protocol import Lease

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
POLICY = LeasePolicy()

replica_ids = st.text("abcdefghij0123456789-", min_size=1, max_size=12)
replica_sets = st.sets(replica_ids, min_size=1, max_size=8)


# ------------------------------------------------------------------------------- sites -> partitions


def test_a_site_hashes_to_the_same_partition_everywhere() -> None:
    """Golden values: a change here re-homes every site of a running deployment."""
    assert [partition_of(s, 64) for s in ("clinic-a", "clinic-b", "ward-7", "hôpital-nord")] == [56, 16, 35, 38]
    assert partition_of("clinic-a", 12) == 4


@given(st.text(min_size=1), st.integers(1, 512))
def test_every_site_lands_in_a_partition(site: str, partitions: int) -> None:
    assert 0 <= partition_of(site, partitions) < partitions
    assert site in sites_in(partition_of(site, partitions), [site, f"{site}x"], partitions) or partitions == 1


def test_sites_spread_over_the_partitions() -> None:
    counts = [0] * 64
    for i in range(6400):
        counts[partition_of(f"site-{i}", 64)] += 1
    assert min(counts) > 50  # 100 expected each; binomial spread keeps every one well above 50
    assert max(counts) < 150


def test_no_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_of("clinic-a", 0)


# --------------------------------------------------------------------------- partitions -> replicas


@given(replica_sets, st.integers(1, 128))
def test_every_replica_computes_the_same_owner_whatever_the_order(replicas: set[str], partitions: int) -> None:
    ordered = sorted(replicas)
    shuffled = ordered[:]
    random.Random(partitions).shuffle(shuffled)
    assert assignment(partitions, ordered) == assignment(partitions, shuffled)
    assert set(assignment(partitions, ordered).values()) <= replicas


@given(replica_sets, replica_ids, st.integers(1, 128))
def test_a_joining_replica_takes_only_what_it_now_wins(replicas: set[str], joiner: str, partitions: int) -> None:
    if joiner in replicas:
        return
    before = assignment(partitions, replicas)
    after = assignment(partitions, replicas | {joiner})
    moved = {p for p in range(partitions) if before[p] != after[p]}
    assert moved == {p for p in range(partitions) if after[p] == joiner}


@given(replica_sets, st.integers(1, 128), st.data())
def test_a_leaving_replica_gives_up_only_its_own(replicas: set[str], partitions: int, data: st.DataObject) -> None:
    if len(replicas) < 2:
        return
    leaver = data.draw(st.sampled_from(sorted(replicas)))
    before = assignment(partitions, replicas)
    after = assignment(partitions, replicas - {leaver})
    moved = {p for p in range(partitions) if before[p] != after[p]}
    assert moved == {p for p in range(partitions) if before[p] == leaver}


def test_the_partitions_even_out_over_the_replicas() -> None:
    owners = list(assignment(64 * 50, ["replica-a", "replica-b", "replica-c"]).values())
    shares = [owners.count(r) / len(owners) for r in ("replica-a", "replica-b", "replica-c")]
    assert all(0.28 < share < 0.39 for share in shares), shares


def test_no_live_replica_no_owner() -> None:
    assert owner_of(3, []) is None
    assert assignment(8, []) == {}


# ----------------------------------------------------------------------------------- the lease rule


def test_the_lease_rule() -> None:
    ttl = timedelta(seconds=10)
    first = grant(None, 7, "a", T0, ttl)
    assert first == LeaseRow(7, "a", 1, T0 + ttl)
    assert grant(first, 7, "b", T0 + timedelta(seconds=9), ttl) is None  # a runs
    renewed = grant(first, 7, "a", T0 + timedelta(seconds=5), ttl)
    assert renewed == LeaseRow(7, "a", 1, T0 + timedelta(seconds=15))  # same epoch
    taken = grant(renewed, 7, "b", T0 + timedelta(seconds=15), ttl)
    assert taken == LeaseRow(7, "b", 2, T0 + timedelta(seconds=25))  # expired: new owner, new epoch
    assert release(taken, Lease(7, "a", 1, T0)) == taken  # not a's to release any more
    freed = release(taken, taken.lease())
    assert freed == LeaseRow(7, None, 2, T0 + timedelta(seconds=25))
    assert grant(freed, 7, "b", T0 + timedelta(seconds=16), ttl) == LeaseRow(7, "b", 3, T0 + timedelta(seconds=26))


# -------------------------------------------------------------------------- replicas deciding together


@dataclass
class Replica:
    name: str
    held: dict[int, Lease] = field(default_factory=dict)
    paused_until: int = -1
    gone: bool = False


@dataclass
class Cluster:
    """Replicas following ``decide`` against one lease table that follows ``grant``/``release``
    (the rule the database applies), ticking in a random order each step."""

    partitions: int
    rng: random.Random
    replicas: dict[str, Replica] = field(default_factory=dict)
    rows: dict[int, LeaseRow] = field(default_factory=dict)
    alive_until: dict[str, datetime] = field(default_factory=dict)
    epochs: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    step_no: int = 0

    @property
    def now(self) -> datetime:
        return T0 + POLICY.tick * self.step_no

    def live(self) -> list[str]:
        return sorted(r for r, until in self.alive_until.items() if until > self.now)

    def tick(self, replica: Replica) -> None:
        now = self.now
        self.alive_until[replica.name] = now + POLICY.ttl
        table = [row.lease() for row in self.rows.values() if row.owner is not None]
        decisions = decide(
            replica.name,
            live=self.live(),
            table=table,
            held=replica.held,
            partitions=self.partitions,
            now=now,
            policy=POLICY,
        )
        for p in decisions.drop:
            replica.held.pop(p, None)
        for lease in decisions.release:
            replica.held.pop(lease.partition, None)
            self.rows[lease.partition] = release(self.rows[lease.partition], lease)
        for p in decisions.acquire:
            row = grant(self.rows.get(p), p, replica.name, now, POLICY.ttl)
            if row is None:
                replica.held.pop(p, None)
                continue
            self.rows[p] = row
            replica.held[p] = row.lease()
            history = self.epochs.setdefault(p, [])
            if not history or history[-1] != (row.epoch, row.owner):
                history.append((row.epoch, replica.name))

    def leave(self, replica: Replica) -> None:
        for lease in replica.held.values():
            self.rows[lease.partition] = release(self.rows[lease.partition], lease)
        replica.held.clear()
        self.alive_until[replica.name] = self.now  # a zero-TTL heartbeat
        replica.gone = True

    def step(self) -> None:
        order = [r for r in self.replicas.values() if not r.gone and r.paused_until < self.step_no]
        self.rng.shuffle(order)
        for replica in order:
            self.tick(replica)
        self.check_safety()
        self.step_no += 1

    def check_safety(self) -> None:
        """Never two running replicas that serve one partition (a lease in hand)."""
        for p in range(self.partitions):
            serving = [
                r.name for r in self.replicas.values() if not r.gone and r.paused_until < self.step_no and p in r.held
            ]
            assert len(serving) <= 1, (p, serving, self.now)


events = st.lists(
    st.tuples(st.sampled_from(["join", "join", "leave", "crash", "pause"]), st.integers(0, 30)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(events, st.integers(1, 40), st.integers(0, 2**32))
def test_replicas_converge_to_one_live_owner_per_partition(
    script: list[tuple[str, int]], partitions: int, seed: int
) -> None:
    cluster = Cluster(partitions, random.Random(seed))
    cluster.replicas["r0"] = Replica("r0")
    names = iter(f"r{i}" for i in range(1, 100))
    for kind, steps in script:
        for _ in range(steps):
            cluster.step()
        running = [r for r in cluster.replicas.values() if not r.gone]
        if kind == "join" or not running:
            name = next(names)
            cluster.replicas[name] = Replica(name)
        elif kind == "leave":
            cluster.leave(cluster.rng.choice(running))
        elif kind == "crash":
            cluster.rng.choice(running).gone = True  # no hand-over: its leases must run out
        else:  # a pause longer than the TTL: the others take over, it must notice on waking
            cluster.rng.choice(running).paused_until = cluster.step_no + 2 * int(POLICY.ttl / POLICY.tick)
    if all(r.gone for r in cluster.replicas.values()):
        name = next(names)
        cluster.replicas[name] = Replica(name)
    # quiet time: TTL for dead leases and heartbeats to run out, plus ticks to act on it
    for _ in range(3 * int(POLICY.ttl / POLICY.tick) + 3):
        cluster.step()
    live = cluster.live()
    running = sorted(r.name for r in cluster.replicas.values() if not r.gone)
    assert live == running
    for p in range(partitions):
        holders = [r.name for r in cluster.replicas.values() if not r.gone and p in r.held]
        assert holders == [owner_of(p, live)], (p, holders)
        assert cluster.rows[p].owner == holders[0]
    for history in cluster.epochs.values():
        epochs = [epoch for epoch, _ in history]
        assert epochs == sorted(set(epochs))  # a new epoch at every change of owner, never reused


def test_a_replica_cut_off_from_the_store_stops_serving_before_its_lease_runs_out() -> None:
    lease = Lease(3, "a", 4, T0 + POLICY.ttl)
    held = {3: lease}
    keep = decide("a", live=None, table=None, held=held, partitions=8, now=T0 + POLICY.tick, policy=POLICY)
    assert keep.drop == ()
    late = T0 + POLICY.ttl - POLICY.stop_when_left
    assert decide("a", live=None, table=None, held=held, partitions=8, now=late, policy=POLICY).drop == (3,)


def test_renewal_comes_well_inside_the_ttl() -> None:
    assert POLICY.stop_when_left < POLICY.renew_when_left < POLICY.ttl
    # ticks between the first chance to renew and the drop: several tries before giving up
    assert (POLICY.renew_when_left - POLICY.stop_when_left) / POLICY.tick >= 2


def test_a_lease_taken_over_behind_a_replicas_back_is_dropped_even_before_it_runs_out() -> None:
    """Defence in depth: with one clock a take-over comes only after expiry, which the drop rule
    covers; with clocks apart (or an operator's hand in the table) the table is the word."""
    mine = Lease(3, "a", 4, T0 + POLICY.ttl)
    theirs = Lease(3, "b", 5, T0 + POLICY.ttl)
    decisions = decide("a", live=["a"], table=[theirs], held={3: mine}, partitions=4, now=T0, policy=POLICY)
    assert decisions.drop == (3,)
    assert 3 not in decisions.acquire  # b's lease runs: wait for it


def test_a_replica_hands_over_what_a_new_replica_wins_and_takes_what_is_free() -> None:
    live = ["a", "b"]
    owned_by_b = next(p for p in range(16) if owner_of(p, live) == "b")
    owned_by_a = next(p for p in range(16) if owner_of(p, live) == "a")
    held = {owned_by_b: Lease(owned_by_b, "a", 1, T0 + POLICY.ttl)}
    table = list(held.values())
    decisions = decide("a", live=live, table=table, held=held, partitions=16, now=T0, policy=POLICY)
    assert decisions.release == (held[owned_by_b],)
    assert owned_by_a in decisions.acquire
    assert owned_by_b not in decisions.acquire
    assert (
        decide("b", live=live, table=table, held={}, partitions=16, now=T0, policy=POLICY).acquire.count(owned_by_b)
        == 0
    )
