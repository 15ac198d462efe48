"""What only the PostgreSQL back end does, against a real server started by the tests: fenced
commits, the lease table (checked against the pure rule), heartbeats, the commit feed between
replicas, the schema's migrations, and the database going away (killed, paused, read-only) and
coming back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.postgres import Postgres, fresh_database
from tests.integration.test_store_contract import escalation, full_batch, journal_order, story
from twin.alarms import lifecycle as lc
from twin.cluster.leases import LeaseRow, grant
from twin.cluster.leases import release as released
from twin.contract.alarms import AlarmCode, Priority
from twin.store.feed import Committed, FeedEvent, Resync
from twin.store.postgres import Database, Limits, PostgresCommitFeed, PostgresJournalStore, PostgresLeaseStore
from twin.store.postgres.journal import ALARM_COLUMNS, TRANSITION_COLUMNS, alarm_row, transition_row
from twin.store.postgres.schema import MIGRATIONS_DIR, head, migrate, migrate_sync
from twin.store.protocol import Batch, Fence, Snapshot, StaleEpoch, StoreUnavailable

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)
MIN = timedelta(minutes=1)
QUICK = Limits(call_timeout_s=2.0, statement_timeout_s=1.5, lock_timeout_s=1.0, connect_timeout_s=1.0)
"""Short limits for tests that take the server away: a call fails within seconds."""


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    async with Database(postgres_url, replica="replica-a") as opened:
        yield opened


# ----------------------------------------------------------------------------------------- fences


async def test_a_fenced_commit_needs_the_current_epoch(db: Database) -> None:
    journal, leases = PostgresJournalStore(db), PostgresLeaseStore(db)
    _, made = story()
    first = await leases.acquire(3, "replica-a", T0, TTL)
    assert first is not None
    assert first.epoch == 1
    await journal.commit(Batch(transitions=made[:2], fence=Fence(3, 1)))

    taken = await leases.acquire(3, "replica-b", T0 + TTL, TTL)  # a's lease ran out: b takes over
    assert taken is not None
    assert taken.epoch == 2
    with pytest.raises(StaleEpoch, match="partition 3: the batch is fenced by epoch 1, the partition has epoch 2"):
        await journal.commit(Batch(transitions=made[2:], fence=Fence(3, 1)))
    assert await journal.transitions() == journal_order(made[:2])  # nothing of the stale batch

    await journal.commit(Batch(transitions=made[2:], fence=Fence(3, 2)))
    assert await journal.transitions() == journal_order(made)


async def test_a_stale_fence_writes_nothing_of_any_kind(db: Database) -> None:
    journal, leases = PostgresJournalStore(db), PostgresLeaseStore(db)
    await leases.acquire(5, "replica-a", T0, TTL)
    await leases.acquire(5, "replica-b", T0 + TTL, TTL)
    _, made = story()
    with pytest.raises(StaleEpoch):
        await journal.commit(replace(full_batch(made), fence=Fence(5, 1)))
    restored = await journal.restore()
    assert (restored.alarms, restored.snapshots, restored.device_events, restored.commands) == ({}, [], frozenset(), [])
    assert await journal.responses() == []
    assert await journal.training_events() == []
    assert (await journal.escalations(), await journal.frames(), restored.escalations) == ([], [], [])


async def test_no_lease_or_a_released_lease_fences_everything_out(db: Database) -> None:
    journal, leases = PostgresJournalStore(db), PostgresLeaseStore(db)
    snapshot = Batch(snapshots=(Snapshot("clinic-a", "pump-1", 1, {"n": 1}),), fence=Fence(9, 1))
    with pytest.raises(StaleEpoch, match="no lease"):
        await journal.commit(snapshot)
    lease = await leases.acquire(9, "replica-a", T0, TTL)
    assert lease is not None
    await leases.release(lease)
    with pytest.raises(StaleEpoch, match="held by nobody"):
        await journal.commit(snapshot)
    assert await journal.snapshots() == []


async def test_a_take_over_waits_for_a_fenced_commit_in_flight(db: Database, postgres_url: str) -> None:
    """The fence's row lock: a commit that checked its epoch holds the lease row ``FOR SHARE``
    until it ends, so the take-over that would make it stale has to wait for it."""
    leases = PostgresLeaseStore(db)
    await leases.acquire(2, "replica-a", T0, TTL)
    async with await psycopg.AsyncConnection.connect(postgres_url) as in_flight:
        await in_flight.execute("SELECT epoch FROM partition_lease WHERE partition = 2 FOR SHARE")
        take_over = asyncio.create_task(leases.acquire(2, "replica-b", T0 + TTL, TTL))
        await asyncio.sleep(0.5)
        assert not take_over.done()
        await in_flight.commit()
        taken = await asyncio.wait_for(take_over, 5)
    assert taken is not None
    assert taken.epoch == 2


# ----------------------------------------------------------------------------------------- leases


async def test_leases_and_heartbeats(db: Database) -> None:
    leases = PostgresLeaseStore(db)
    a = await leases.acquire(1, "replica-a", T0, TTL)
    assert a is not None
    assert (a.owner, a.epoch, a.expires_at) == ("replica-a", 1, T0 + TTL)
    assert await leases.acquire(1, "replica-b", T0 + TTL / 2, TTL) is None
    renewed = await leases.acquire(1, "replica-a", T0 + TTL / 2, TTL)
    assert renewed is not None
    assert (renewed.epoch, renewed.expires_at) == (1, T0 + TTL * 1.5)
    await leases.release(replace(a, epoch=7))
    assert [lease.owner for lease in await leases.leases()] == ["replica-a"]  # a wrong epoch releases nothing
    await leases.release(renewed)
    assert await leases.leases() == []
    b = await leases.acquire(1, "replica-b", T0 + TTL / 2, TTL)
    assert b is not None
    assert b.epoch == 2

    assert await leases.heartbeat("replica-b", T0, TTL) == ["replica-b"]
    assert await leases.heartbeat("replica-a", T0 + timedelta(seconds=1), TTL) == ["replica-a", "replica-b"]
    assert await leases.heartbeat("replica-a", T0 + timedelta(seconds=10), TTL) == ["replica-a"]  # b ran out
    assert await leases.heartbeat("replica-a", T0 + timedelta(seconds=11), timedelta(0)) == []  # a leaves


async def test_the_database_refuses_an_epoch_that_goes_back_or_a_deleted_lease(db: Database, postgres_url: str) -> None:
    await PostgresLeaseStore(db).acquire(4, "replica-a", T0, TTL)
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        for statement in (
            "UPDATE partition_lease SET epoch = 0 WHERE partition = 4",
            "UPDATE partition_lease SET owner = 'replica-z' WHERE partition = 4",
            "DELETE FROM partition_lease",
            "TRUNCATE partition_lease",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation):
                raw.execute(statement.encode())
    [lease] = await PostgresLeaseStore(db).leases()
    assert (lease.owner, lease.epoch) == ("replica-a", 1)


lease_calls = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "acquire", "release"]),
        st.integers(0, 2),  # partition
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 4),  # seconds to wait first
    ),
    max_size=25,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=lease_calls)
async def test_the_lease_table_follows_the_pure_rule(
    postgres_server: Postgres, calls: list[tuple[str, int, str, int]]
) -> None:
    url = fresh_database(postgres_server)
    ttl = timedelta(seconds=5)
    rows: dict[int, LeaseRow] = {}
    now = T0
    async with Database(url, replica="rule") as database:
        leases = PostgresLeaseStore(database)
        for kind, partition, replica, wait in calls:
            now += timedelta(seconds=wait)
            if kind == "acquire":
                expected = grant(rows.get(partition), partition, replica, now, ttl)
                got = await leases.acquire(partition, replica, now, ttl)
                assert got == (None if expected is None else expected.lease())
                if expected is not None:
                    rows[partition] = expected
            elif partition in rows and rows[partition].owner == replica:
                lease = rows[partition].lease()
                await leases.release(lease)
                rows[partition] = released(rows[partition], lease)
        held = sorted(
            (row.lease() for row in rows.values() if row.owner is not None), key=lambda lease: lease.partition
        )
        assert await leases.leases() == held


# ------------------------------------------------------------------------------------- the feed


async def _collect(feed: PostgresCommitFeed, into: asyncio.Queue[FeedEvent]) -> None:
    async for event in feed.events():
        await into.put(event)


@contextlib.asynccontextmanager
async def listening(feed: PostgresCommitFeed) -> AsyncIterator[asyncio.Queue[FeedEvent]]:
    queue: asyncio.Queue[FeedEvent] = asyncio.Queue()
    task = asyncio.create_task(_collect(feed, queue))
    try:
        await asyncio.wait_for(feed.listening.wait(), 10)
        yield queue
    finally:
        feed.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_replica_hears_what_another_commits_once(postgres_url: str) -> None:
    live, made = story()
    async with (
        Database(postgres_url, replica="a") as a,
        Database(postgres_url, replica="b") as b,
        listening(PostgresCommitFeed(a)) as heard,
    ):
        await PostgresJournalStore(a).commit(Batch(transitions=made[:1]))  # a's own: not echoed
        await PostgresJournalStore(b).commit(full_batch(made))
        event = await asyncio.wait_for(heard.get(), 10)
        assert isinstance(event, Committed)
        assert event.origin == "b"
        assert list(event.transitions) == journal_order(made[1:])  # made[0] was a's: not new
        assert dict(event.alarms) == live
        assert [c.status for c in event.commands] == ["pending", "applied"]
        assert [r.response_id for r in event.responses] == ["resp-1"]
        assert [e.event for e in event.training_events] == ["started"]
        assert [s.device_id for s in event.snapshots] == ["pump-1"]
        assert [e.level for e in event.escalations] == [1]
        await PostgresJournalStore(b).commit(full_batch(made))  # a repeat: nothing new, nothing heard
        climbed = escalation(2, T0 + timedelta(minutes=5))
        await PostgresJournalStore(b).commit(Batch(escalations=(climbed,)))  # the stream shows escalations too
        event = await asyncio.wait_for(heard.get(), 10)
        assert isinstance(event, Committed)
        assert list(event.escalations) == [climbed]
        await PostgresJournalStore(b).commit(Batch(escalations=(climbed,)))  # a repeat is not announced
        await PostgresJournalStore(b).commit(Batch(snapshots=(Snapshot("clinic-b", "pump-2", 1, {"n": 2}),)))
        event = await asyncio.wait_for(heard.get(), 10)
        assert isinstance(event, Committed)
        assert [(s.site, s.device_id) for s in event.snapshots] == [("clinic-b", "pump-2")]
        assert event.transitions == []


async def test_a_big_commit_is_heard_whole_in_several_notices(postgres_url: str) -> None:
    made: list[lc.Transition] = []
    for i in range(400):
        _, step = lc.raise_alarm(
            f"pump-{i:04d}/reservoir_low", f"pump-{i:04d}", "clinic-a", AlarmCode.RESERVOIR_LOW, "device",
            Priority.MEDIUM, "Low", T0,
        )  # fmt: skip
        made += step
    async with (
        Database(postgres_url, replica="a") as a,
        Database(postgres_url, replica="b") as b,
        listening(PostgresCommitFeed(a)) as heard,
    ):
        await PostgresJournalStore(b).commit(Batch(transitions=made))
        got: list[lc.Transition] = []
        notices = 0
        while len(got) < len(made):
            event = await asyncio.wait_for(heard.get(), 10)
            assert isinstance(event, Committed)
            got += event.transitions
            notices += 1
    assert sorted(t.key for t in got) == sorted(t.key for t in made)
    assert notices > 1  # 400 keys do not fit in one 8,000-byte notice


# ---------------------------------------------------------------------------- the database going away


async def test_the_database_killed_mid_run_then_back(postgres: Postgres) -> None:
    """SIGKILL to the postmaster and every backend mid-run: calls fail with StoreUnavailable (not
    a hang, not another error), what was committed before is there after the restart, the same
    store objects work again, and the feed says Resync once it listens again."""
    url = postgres.create_database("twin")
    migrate_sync(url)
    live, made = story()
    async with Database(url, replica="a", limits=QUICK) as a, Database(url, replica="b", limits=QUICK) as b:
        journal = PostgresJournalStore(b)
        async with listening(PostgresCommitFeed(a)) as heard:
            await journal.commit(Batch(transitions=made[:3]))
            assert isinstance(await asyncio.wait_for(heard.get(), 10), Committed)

            postgres.stop(kill=True)
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await journal.commit(Batch(transitions=made[3:]))
            with pytest.raises(StoreUnavailable):
                await journal.current_alarms()
            assert time.monotonic() - started < 3 * QUICK.call_timeout_s

            postgres.start()
            # the feed listens again and says what it cannot know: commits made meanwhile are not heard
            assert isinstance(await asyncio.wait_for(heard.get(), 20), Resync)
            deadline = time.monotonic() + 20
            while True:
                try:
                    await journal.commit(Batch(transitions=made[3:]))
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline, "the store did not come back after the restart"
                    await asyncio.sleep(0.2)
            assert await journal.transitions() == journal_order(made)
            assert await journal.current_alarms() == live
            event = await asyncio.wait_for(heard.get(), 10)
            assert isinstance(event, Committed)
            assert list(event.transitions) == journal_order(made[3:])


async def test_a_paused_database_fails_calls_within_the_call_timeout(postgres: Postgres) -> None:
    url = postgres.create_database("twin")
    migrate_sync(url)
    _, made = story()
    async with Database(url, replica="a", limits=QUICK) as a:
        journal = PostgresJournalStore(a)
        await journal.commit(Batch(transitions=made[:1]))
        postgres.pause()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await journal.commit(Batch(transitions=made[1:]))
            assert time.monotonic() - started < QUICK.call_timeout_s + 1.0
        finally:
            postgres.resume()
        await journal.commit(Batch(transitions=made[1:]))  # a retry after the timeout: idempotent
        assert await journal.transitions() == journal_order(made)


async def test_a_read_only_database_is_unavailable_for_writes(postgres_server: Postgres) -> None:
    url = fresh_database(postgres_server)
    name = url.rsplit("/", 1)[1]
    postgres_server.psql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    _, made = story()
    async with Database(url, replica="a") as a:
        with pytest.raises(StoreUnavailable, match="ReadOnlySqlTransaction"):
            await PostgresJournalStore(a).commit(Batch(transitions=made))
        assert await PostgresJournalStore(a).transitions() == []  # reads still work


async def test_no_server_at_all_is_unavailable_not_a_crash() -> None:
    from tests.harness.servers import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    with pytest.raises(StoreUnavailable):
        await migrate(url)
    async with Database(url, replica="a", limits=QUICK) as a:
        with pytest.raises(StoreUnavailable):
            await PostgresJournalStore(a).current_alarms()


# --------------------------------------------------------------------------------------- migrations


async def test_replicas_starting_together_migrate_once(postgres_server: Postgres) -> None:
    """Three processes migrating one new database at the same moment (the advisory lock orders
    them; the later ones find the schema at head), and three tasks of one process."""
    name = f"concurrent_{time.monotonic_ns()}"
    url = postgres_server.create_database(name)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from twin.store.postgres.schema import migrate_sync; print(migrate_sync(sys.argv[1]))",
            url,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [(await p.communicate())[0].decode().strip() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0]
    assert outputs == [head()] * 3
    assert await asyncio.gather(*(migrate(url) for _ in range(3))) == [head()] * 3
    assert postgres_server.psql("SELECT version_num FROM alembic_version", database=name) == head()


def _latched_histories() -> list[lc.Transition]:
    """Latching alarms left shelved or out of service in every way that decides their latch, and
    one non-latching: the key says what the lifecycle makes of each."""
    made: list[lc.Transition] = []
    at = T0

    def step(result: tuple[lc.Alarm, list[lc.Transition]]) -> lc.Alarm:
        made.extend(result[1])
        return result[0]

    def raised(key: str, *, latching: bool = True) -> lc.Alarm:
        return step(
            lc.raise_alarm(
                key, "pump-1", "clinic-a", AlarmCode.MOTOR_STALL, "device", Priority.HIGH, key, at, latching=latching
            )
        )

    shelf = timedelta(hours=4)
    a = raised("owes/shelved-from-au")
    a = step(lc.shelve(a, "nurse:ana", at + MIN, shelf, "MRI"))
    step(lc.condition_cleared(a, at + 2 * MIN))
    a = raised("owes/returned-while-shelved")
    a = step(lc.acknowledge(a, "nurse:ana", at + MIN))
    a = step(lc.condition_cleared(a, at + 2 * MIN))
    a = step(lc.shelve(a, "nurse:ana", at + 3 * MIN, shelf, "refill"))
    a = step(lc.condition_returned(a, at + 4 * MIN))
    step(lc.condition_cleared(a, at + 5 * MIN))
    a = raised("owes/shelved-then-out-of-service")
    a = step(lc.shelve(a, "nurse:ana", at + MIN, shelf, "MRI"))
    a = step(lc.remove_from_service(a, "dr:bo", at + 2 * MIN, "pump explanted"))
    step(lc.condition_cleared(a, at + 3 * MIN))
    a = raised("settled/acknowledged-before-the-shelf")
    a = step(lc.acknowledge(a, "nurse:ana", at + MIN))
    a = step(lc.condition_cleared(a, at + 2 * MIN))
    step(lc.shelve(a, "nurse:ana", at + 3 * MIN, shelf, "refill"))
    a = raised("settled/an-earlier-shelf-owed-it")
    a = step(lc.shelve(a, "nurse:ana", at + MIN, shelf, "MRI"))
    a = step(lc.unshelve(a, "nurse:ana", at + 2 * MIN))
    a = step(lc.acknowledge(a, "nurse:ana", at + 3 * MIN))
    a = step(lc.condition_cleared(a, at + 4 * MIN))
    step(lc.remove_from_service(a, "dr:bo", at + 5 * MIN, "pump explanted"))
    a = raised("settled/not-latching", latching=False)
    a = step(lc.shelve(a, "nurse:ana", at + MIN, shelf, "MRI"))
    step(lc.condition_cleared(a, at + 2 * MIN))
    return made


async def test_an_upgrade_from_0001_fills_the_latch_of_suppressed_alarms_from_the_journal(
    postgres_server: Postgres, tmp_path: Path
) -> None:
    """Revision 0001 kept no ``latch_pending``: a database written then is upgraded with each
    alarm's latch folded from its journal, so the next unshelve comes back as the lifecycle says."""
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {MIGRATIONS_DIR}\n")
    name = f"from_0001_{time.monotonic_ns()}"
    url = postgres_server.create_database(name)
    env = {**os.environ, "PUMPTWIN_DATABASE__URL": url}
    alembic = str(Path(sys.executable).parent / "alembic")
    upgrade = await asyncio.create_subprocess_exec(alembic, "-c", str(ini), "upgrade", "0001", env=env)
    assert await upgrade.wait() == 0
    made = _latched_histories()
    live = lc.replay(made)
    assert {k for k, a in live.items() if a.latch_pending} == {k for k in live if k.startswith("owes/")}
    journal_columns = ", ".join([*(n for n, _ in TRANSITION_COLUMNS), "recorded_at", "recorded_by"])
    alarm_columns = ", ".join(n for n, _ in ALARM_COLUMNS if n != "latch_pending")  # 0001's columns
    async with await psycopg.AsyncConnection.connect(url) as raw:
        for t in made:
            row = (*transition_row(t), T0, "replica-0001")
            await raw.execute(
                f"INSERT INTO alarm_journal ({journal_columns}) VALUES ({', '.join(['%s'] * len(row))})".encode(), row
            )
        for alarm in live.values():
            row = alarm_row(alarm)[:-1]
            await raw.execute(
                f"INSERT INTO current_alarm ({alarm_columns}) VALUES ({', '.join(['%s'] * len(row))})".encode(), row
            )

    assert await migrate(url) == head()
    async with Database(url, replica="replica-a") as db:
        journal = PostgresJournalStore(db)
        assert await journal.current_alarms() == live
        later = T0 + timedelta(hours=1)
        resumed = [
            *lc.unshelve(live["owes/shelved-from-au"], "nurse:ana", later)[1],
            *lc.return_to_service(live["owes/shelved-then-out-of-service"], "dr:bo", later)[1],
            *lc.unshelve(live["settled/acknowledged-before-the-shelf"], "nurse:ana", later)[1],
        ]
        await journal.commit(Batch(transitions=resumed))
        after = await journal.current_alarms()
    assert after["owes/shelved-from-au"].state is lc.AlarmState.CLEARED_UNACKNOWLEDGED
    assert after["owes/shelved-then-out-of-service"].state is lc.AlarmState.CLEARED_UNACKNOWLEDGED
    assert after["settled/acknowledged-before-the-shelf"].state is lc.AlarmState.NORMAL
    assert after == lc.replay([*made, *resumed])
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
        with pytest.raises(psycopg.errors.CheckViolation, match="current_alarm_latch_pending"):
            await raw.execute(
                "UPDATE current_alarm SET latch_pending = true, version = version + 1 WHERE key = 'settled/not-latching'"
            )


def test_an_operator_runs_the_same_migrations_with_alembic(postgres_server: Postgres, tmp_path: Path) -> None:
    """``alembic upgrade head --sql`` writes SQL a DBA can review and run with psql; the result is
    the schema the twin makes (append-only triggers included), and the twin then finds it at head."""
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {MIGRATIONS_DIR}\n")
    name = f"operator_{time.monotonic_ns()}"
    url = postgres_server.create_database(name)
    alembic = str(Path(sys.executable).parent / "alembic")
    env = {**os.environ, "PUMPTWIN_DATABASE__URL": url}
    offline = subprocess.run(
        [alembic, "-c", str(ini), "upgrade", "head", "--sql"], env=env, capture_output=True, text=True, check=True
    )
    postgres_server.psql(offline.stdout, database=name)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        postgres_server.psql("TRUNCATE alarm_journal", database=name)
    assert "alarm_journal is append-only (TRUNCATE refused)" in refused.value.stderr
    current = subprocess.run([alembic, "-c", str(ini), "current"], env=env, capture_output=True, text=True, check=True)
    assert f"{head()} (head)" in current.stdout
    assert migrate_sync(url) == head()


async def test_a_replica_frozen_inside_a_transaction_does_not_hold_a_lease_row_for_ever(postgres_url: str) -> None:
    """A replica stopped (SIGSTOP, a paused VM) inside a lease transaction keeps its row lock
    until the server ends its idle session (``idle_in_transaction_session_timeout``, which every
    replica connection sets); until then a take-over fails fast on ``lock_timeout``, after it
    the take-over goes through. Seen in the replicas drill: a live replica's every acquire of that
    partition timed out while the other one was paused."""
    limits = Limits(lock_timeout_s=0.5, idle_in_transaction_s=1.5)
    async with Database(postgres_url, replica="replica-a", limits=limits) as db:
        leases = PostgresLeaseStore(db)
        await leases.acquire(3, "replica-a", T0, TTL)
        frozen = await psycopg.AsyncConnection.connect(postgres_url, **db.conninfo())
        try:
            await frozen.execute("SELECT epoch FROM partition_lease WHERE partition = 3 FOR UPDATE")
            # ...and the replica that holds it says nothing more (frozen)
            with pytest.raises(StoreUnavailable):  # the lock is still held: a quick, clear refusal
                await leases.acquire(3, "replica-b", T0 + TTL, TTL)
            await asyncio.sleep(2.0)  # past the idle limit: the server ends the frozen session
            taken = await leases.acquire(3, "replica-b", T0 + TTL, TTL)
            assert taken is not None
            assert (taken.owner, taken.epoch) == ("replica-b", 2)
        finally:
            with contextlib.suppress(psycopg.Error):
                await frozen.close()
