"""One contract for every store back end: SQLite (today's files, through the async adapter) and a
real PostgreSQL (started by the test session). Each test runs on both unless it says why not.

The journal: batches come back exactly and in journal order; a repeat changes nothing; a conflict,
a version gap or a transition that does not fold refuses the whole batch; current alarms are the
fold of the journal; snapshots keep the newest version; restore gives what a restarted twin needs;
escalations and session pump frames keep their identity, come back in the order recorded and
filter the same way; random alarm histories committed in random batches, repeated, come back as the lifecycle made
them. The accounts: the :class:`~twin.store.users.UserStore` rules. Append-only is enforced by the
database itself (a plain client cannot update or delete). PostgreSQL-only parts (fences, leases,
the feed, the database going away) are in ``test_postgres_store.py``.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.harness.alarm_operations import START, Operation, run, sequences
from tests.harness.postgres import Postgres, fresh_database
from twin.alarms import lifecycle as lc
from twin.alarms.device_events import DeviceEventKey
from twin.alarms.escalation import Escalation, escalation_id
from twin.alarms.lifecycle import Alarm, Transition
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import AlarmCode, Priority
from twin.mirror.commands import CommandRecord
from twin.roles import Role
from twin.store.accounts import AccountStore
from twin.store.journal import JournalConflict, JournalError
from twin.store.local import LocalAccountStore, LocalJournalStore
from twin.store.postgres import Database, PostgresAccountStore, PostgresJournalStore
from twin.store.protocol import Batch, JournalStore, Snapshot
from twin.store.users import UserError
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
_examples = itertools.count()
MIN = timedelta(minutes=1)


@dataclass
class Backend:
    kind: str
    journal: JournalStore
    accounts: AccountStore
    refuse_update: Callable[[str], None]
    """Run raw SQL through a plain client of the database (not the store); raises on refusal."""


def _sqlite_raw(path: Path) -> Callable[[str], None]:
    def execute(statement: str) -> None:
        with sqlite3.connect(path, isolation_level=None) as raw:
            raw.execute(statement)

    return execute


def _postgres_raw(url: str) -> Callable[[str], None]:
    def execute(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute(statement.encode())

    return execute


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        journal = LocalJournalStore(tmp_path / "journal.sqlite")
        accounts = LocalAccountStore(tmp_path / "users.sqlite")
        yield Backend("sqlite", journal, accounts, _sqlite_raw(tmp_path / "journal.sqlite"))
        await journal.close()
        await accounts.close()
        return
    url = fresh_database(request.getfixturevalue("postgres_server"))
    async with Database(url, replica="replica-a") as db:
        yield Backend("postgres", PostgresJournalStore(db), PostgresAccountStore(db), _postgres_raw(url))


def story() -> tuple[dict[str, Alarm], list[Transition]]:
    """Two alarms on two sites: a latched motor stall acknowledged after it cleared, and a low
    reservoir shelved for a refill (the SQLite journal tests' story)."""
    stall, made = lc.raise_alarm(
        "pump-1/motor_stall", "pump-1", "clinic-a", AlarmCode.MOTOR_STALL, "device", Priority.HIGH, "Motor stall", T0
    )
    journal = list(made)
    stall, made = lc.condition_cleared(stall, T0 + MIN)
    journal += made
    stall, made = lc.acknowledge(stall, "nurse:ana", T0 + 3 * MIN, "rotor study booked")
    journal += made
    low, made = lc.raise_alarm(
        "pump-2/reservoir_low", "pump-2", "clinic-b", AlarmCode.RESERVOIR_LOW, "device", Priority.MEDIUM, "Low", T0
    )
    journal += made
    low, made = lc.shelve(low, "dr:bo", T0 + 2 * MIN, timedelta(hours=2), "refill this morning")
    journal += made
    return {stall.key: stall, low.key: low}, journal


def journal_order(transitions: Sequence[Transition]) -> list[Transition]:
    return sorted(transitions, key=lambda t: (t.at, t.key, t.version))


def command(status: str, at: datetime = T0) -> CommandRecord:
    return CommandRecord("cmd-1", "pump-1", "clinic-a", status, "nurse:ana", at, {"kind": "refill", "volume_ml": 20.0})


def response(response_id: str = "resp-1") -> AlarmResponse:
    return AlarmResponse(
        response_id=response_id,
        key="pump-1/motor_stall",
        device_id="pump-1",
        site="clinic-a",
        code="motor_stall",
        priority="high",
        alarm_version=1,
        alarm_state="active_unacknowledged",
        action="interrogate",
        note="rotor study",
        actor="nurse:ana",
        role="trainee",
        at=T0 + MIN,
        command_id=None,
        detail={"finding": "stall confirmed"},
    )


def training(event: str) -> TrainingEvent:
    return TrainingEvent("session-1", event, "dr:bo", T0, {"scenario": "motor-stall-mri-recovery"})


def escalation(
    level: int, at: datetime, *, key: str = "pump-1/motor_stall", site: str = "clinic-a", tier: str = "charge nurse"
) -> Escalation:
    """The alarm ``key`` (raised at T0, unanswered) reaching tier ``level`` of its ladder at ``at``."""
    return Escalation(
        escalation_id=escalation_id(key, T0, level),
        key=key,
        device_id=key.split("/")[0],
        site=site,
        code=key.split("/")[1],
        priority=Priority.HIGH,
        level=level,
        tier=tier,
        recipients=("role:instructor",),
        notified=("ana", "bo"),
        unacknowledged_since=T0,
        due_at=T0 + 2 * level * MIN,
        at=at,
        alarm_version=1,
        alarm_state=lc.AlarmState.ACTIVE_UNACKNOWLEDGED,
        message="Motor stall",
    )


def frame(seq: int, at: datetime, *, session: str = "session-1", device_id: str = "pump-1") -> PumpFrame:
    return PumpFrame(session, "clinic-a", device_id, seq, at, {"reservoir_ml": 20.0 - seq, "active_alarms": []})


def full_batch(transitions: Sequence[Transition]) -> Batch:
    return Batch(
        transitions=transitions,
        device_events=(DeviceEventKey("clinic-a", "pump-1", "a1", "raised", "motor_stall"),),
        commands=(command("pending"), command("applied", T0 + MIN)),
        responses=(response(),),
        training_events=(training("started"),),
        snapshots=(Snapshot("clinic-a", "pump-1", 3, {"reservoir_ml": 12.5, "status": "online"}),),
        escalations=(escalation(1, T0 + 2 * MIN),),
        frames=(frame(1, T0), frame(2, T0 + MIN)),
    )


async def everything(journal: JournalStore) -> tuple[object, ...]:
    restored = await journal.restore()
    return (
        await journal.transitions(),
        await journal.current_alarms(),
        await journal.snapshots(),
        await journal.commands(),
        await journal.responses(),
        await journal.training_events(),
        await journal.escalations(),
        await journal.frames(),
        restored.device_events,
        restored.escalations,
    )


# ------------------------------------------------------------------------------------ the journal


async def test_a_batch_comes_back_exactly_and_in_journal_order(backend: Backend) -> None:
    live, made = story()
    await backend.journal.commit(full_batch(made))
    assert await backend.journal.transitions() == journal_order(made)
    assert await backend.journal.current_alarms() == live
    assert await backend.journal.commands() == [command("pending"), command("applied", T0 + MIN)]
    assert await backend.journal.responses() == [response()]
    assert await backend.journal.training_events() == [training("started")]
    assert await backend.journal.snapshots() == [
        Snapshot("clinic-a", "pump-1", 3, {"reservoir_ml": 12.5, "status": "online"})
    ]
    restored = await backend.journal.restore()
    assert restored.alarms == live
    assert restored.device_events == {DeviceEventKey("clinic-a", "pump-1", "a1", "raised", "motor_stall")}
    assert list(restored.commands) == [command("pending"), command("applied", T0 + MIN)]
    assert await backend.journal.escalations() == [escalation(1, T0 + 2 * MIN)]
    assert list(restored.escalations) == [escalation(1, T0 + 2 * MIN)]
    assert await backend.journal.frames() == [frame(1, T0), frame(2, T0 + MIN)]


async def test_committing_a_batch_again_changes_nothing(backend: Backend) -> None:
    _, made = story()
    await backend.journal.commit(full_batch(made))
    before = await everything(backend.journal)
    await backend.journal.commit(full_batch(made))
    await backend.journal.commit(full_batch(made[1:3]))
    assert await everything(backend.journal) == before


async def test_a_batch_with_old_and_new_transitions_appends_only_the_new(backend: Backend) -> None:
    live, made = story()
    await backend.journal.commit(Batch(transitions=made[:2]))
    await backend.journal.commit(Batch(transitions=made))
    assert await backend.journal.transitions() == journal_order(made)
    assert await backend.journal.current_alarms() == live


async def test_a_conflict_refuses_the_whole_batch(backend: Backend) -> None:
    _, made = story()
    await backend.journal.commit(Batch(transitions=made[:2]))
    forged = replace(made[1], actor="someone else")
    with pytest.raises(JournalConflict, match="pump-1/motor_stall v2"):
        await backend.journal.commit(full_batch([made[2], forged]))
    assert await backend.journal.transitions() == journal_order(made[:2])
    assert (await backend.journal.restore()).device_events == frozenset()
    assert await backend.journal.commands() == []
    assert await backend.journal.responses() == []
    assert await backend.journal.snapshots() == []
    assert await backend.journal.escalations() == []
    assert await backend.journal.frames() == []


async def test_a_version_gap_refuses_the_whole_batch(backend: Backend) -> None:
    _, made = story()
    with pytest.raises(JournalError, match="v2: version 1 was never recorded"):
        await backend.journal.commit(full_batch([made[1]]))
    assert await everything(backend.journal) == ([], {}, [], [], [], [], [], [], frozenset(), [])


async def test_a_transition_that_does_not_follow_from_the_alarm_is_refused(backend: Backend) -> None:
    _, made = story()
    await backend.journal.commit(Batch(transitions=made[:1]))
    wrong = replace(made[2], version=2)  # an acknowledgement where the clear should come
    with pytest.raises(JournalError, match="does not follow"):
        await backend.journal.commit(Batch(transitions=[wrong]))
    assert await backend.journal.transitions() == made[:1]


async def test_current_alarms_and_snapshots_by_site(backend: Backend) -> None:
    live, made = story()
    await backend.journal.commit(
        Batch(
            transitions=made,
            snapshots=(Snapshot("clinic-a", "pump-1", 1, {"n": 1}), Snapshot("clinic-b", "pump-2", 1, {"n": 2})),
            escalations=(
                escalation(1, T0 + 2 * MIN),
                escalation(1, T0 + 3 * MIN, key="pump-2/reservoir_low", site="clinic-b"),
            ),
        )
    )
    assert await backend.journal.current_alarms(sites=["clinic-b"]) == {
        "pump-2/reservoir_low": live["pump-2/reservoir_low"]
    }
    assert await backend.journal.snapshots(sites={"clinic-a"}) == [Snapshot("clinic-a", "pump-1", 1, {"n": 1})]
    restored = await backend.journal.restore(sites=["clinic-a"])
    assert restored.alarms == {"pump-1/motor_stall": live["pump-1/motor_stall"]}
    assert restored.snapshots == [Snapshot("clinic-a", "pump-1", 1, {"n": 1})]
    assert list(restored.escalations) == [escalation(1, T0 + 2 * MIN)]
    elsewhere = await backend.journal.restore(sites=["clinic-b"])
    assert list(elsewhere.escalations) == [escalation(1, T0 + 3 * MIN, key="pump-2/reservoir_low", site="clinic-b")]
    assert (await backend.journal.restore(sites=["clinic-z"])).escalations == []


async def test_an_older_snapshot_never_overwrites_a_newer_one(backend: Backend) -> None:
    await backend.journal.commit(Batch(snapshots=(Snapshot("clinic-a", "pump-1", 5, {"v": 5}),)))
    await backend.journal.commit(Batch(snapshots=(Snapshot("clinic-a", "pump-1", 4, {"v": 4}),)))
    assert await backend.journal.snapshots() == [Snapshot("clinic-a", "pump-1", 5, {"v": 5})]
    await backend.journal.commit(Batch(snapshots=(Snapshot("clinic-a", "pump-1", 6, {"v": 6, "nested": [1, 2]}),)))
    assert await backend.journal.snapshots() == [Snapshot("clinic-a", "pump-1", 6, {"v": 6, "nested": [1, 2]})]


async def test_transitions_filter_and_page(backend: Backend) -> None:
    _, made = story()
    await backend.journal.commit(Batch(transitions=made))
    ordered = journal_order(made)
    assert await backend.journal.transitions(key="pump-2/reservoir_low") == [
        t for t in ordered if t.device_id == "pump-2"
    ]
    assert await backend.journal.transitions(site="clinic-a") == [t for t in ordered if t.site == "clinic-a"]
    assert await backend.journal.transitions(device_id="pump-1", since=T0 + MIN) == [
        t for t in ordered if t.device_id == "pump-1" and t.at >= T0 + MIN
    ]
    assert await backend.journal.transitions(until=T0 + MIN) == [t for t in ordered if t.at < T0 + MIN]
    assert await backend.journal.transitions(limit=2) == ordered[:2]


async def test_commands_responses_and_training_events_keep_their_identity(backend: Backend) -> None:
    await backend.journal.commit(
        Batch(commands=(command("pending"),), responses=(response("r1"),), training_events=(training("started"),))
    )
    await backend.journal.commit(
        Batch(
            commands=(command("pending"), command("applied", T0 + MIN)),
            responses=(response("r1"), response("r2")),
            training_events=(training("started"), training("completed")),
        )
    )
    assert [c.status for c in await backend.journal.commands(command_id="cmd-1")] == ["pending", "applied"]
    assert await backend.journal.commands(device_id="pump-9") == []
    assert [r.response_id for r in await backend.journal.responses()] == ["r1", "r2"]
    assert await backend.journal.responses(actor="dr:bo") == []
    assert [e.event for e in await backend.journal.training_events("session-1")] == ["started", "completed"]


async def test_escalations_and_frames_keep_their_identity(backend: Backend) -> None:
    """A repeat (the same identity again, alone or with new records) appends nothing; the record
    first written under an identity stays (a repeat is not compared, as for responses)."""
    await backend.journal.commit(Batch(escalations=(escalation(1, T0 + 2 * MIN),), frames=(frame(1, T0),)))
    await backend.journal.commit(
        Batch(
            escalations=(escalation(1, T0 + 2 * MIN), escalation(2, T0 + 5 * MIN, tier="physician on call")),
            frames=(frame(1, T0), frame(2, T0 + MIN), frame(1, T0, device_id="pump-2")),
        )
    )
    await backend.journal.commit(
        Batch(escalations=(replace(escalation(1, T0 + 2 * MIN), notified=("someone else",)),), frames=(frame(2, T0),))
    )
    assert await backend.journal.escalations() == [
        escalation(1, T0 + 2 * MIN),
        escalation(2, T0 + 5 * MIN, tier="physician on call"),
    ]
    assert await backend.journal.frames() == [frame(1, T0), frame(2, T0 + MIN), frame(1, T0, device_id="pump-2")]


async def test_escalations_and_frames_filter_and_come_back_in_the_order_recorded(backend: Backend) -> None:
    """Recorded order, not time order: the later-made record was written first here."""
    late, early = escalation(2, T0 + 6 * MIN), escalation(1, T0 + 2 * MIN)
    other = escalation(1, T0 + 4 * MIN, key="pump-2/reservoir_low", site="clinic-b")
    await backend.journal.commit(Batch(escalations=(late, other), frames=(frame(3, T0 + 2 * MIN),)))
    await backend.journal.commit(
        Batch(escalations=(early,), frames=(frame(1, T0), frame(1, T0 + MIN, session="session-2")))
    )
    assert await backend.journal.escalations() == [late, other, early]
    assert await backend.journal.escalations(key="pump-1/motor_stall") == [late, early]
    assert await backend.journal.escalations(since=T0 + 4 * MIN) == [late, other]  # since <= at
    assert await backend.journal.escalations(until=T0 + 4 * MIN) == [other, early]  # at <= until
    assert await backend.journal.escalations(key="pump-1/motor_stall", since=T0 + 3 * MIN, until=T0 + 6 * MIN) == [late]
    assert await backend.journal.escalations(key="pump-9/none") == []
    assert await backend.journal.frames() == [
        frame(3, T0 + 2 * MIN),
        frame(1, T0),
        frame(1, T0 + MIN, session="session-2"),
    ]
    assert await backend.journal.frames("session-1") == [frame(3, T0 + 2 * MIN), frame(1, T0)]
    assert await backend.journal.frames(since=T0 + MIN) == [
        frame(3, T0 + 2 * MIN),
        frame(1, T0 + MIN, session="session-2"),
    ]
    assert await backend.journal.frames("session-1", until=T0 + MIN) == [frame(1, T0)]
    assert await backend.journal.frames(since=T0 + MIN, until=T0 + MIN) == [frame(1, T0 + MIN, session="session-2")]
    assert await backend.journal.frames("session-9") == []


async def test_what_json_cannot_hold_is_refused_and_nothing_is_written(backend: Backend) -> None:
    with pytest.raises(ValueError, match=r"(?i)nan|out of range"):
        await backend.journal.commit(Batch(snapshots=(Snapshot("clinic-a", "pump-1", 1, {"x": float("nan")}),)))
    assert await backend.journal.snapshots() == []
    nan_frame = replace(frame(2, T0), state={"reservoir_ml": float("nan")})
    with pytest.raises(ValueError, match=r"(?i)nan|out of range"):
        await backend.journal.commit(
            Batch(escalations=(escalation(1, T0 + 2 * MIN),), frames=(frame(1, T0), nan_frame))
        )
    assert await backend.journal.escalations() == []
    assert await backend.journal.frames() == []


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("UPDATE alarm_journal SET actor = 'forger'", "alarm_journal"),
        ("DELETE FROM alarm_journal", "alarm_journal"),
        ("DELETE FROM device_alarm_event", "device_alarm_event"),
        ("UPDATE command_log SET status = 'applied'", "command_log"),
        ("DELETE FROM alarm_response", "alarm_response"),
        ("DELETE FROM training_event", "training_event"),
        ("UPDATE alarm_escalation SET notified = notified", "alarm_escalation"),
        ("DELETE FROM alarm_escalation WHERE level = 1", "alarm_escalation"),
        ("UPDATE training_frame SET seq = seq + 100", "training_frame"),
        ("DELETE FROM training_frame WHERE seq = 1", "training_frame"),
    ],
)
async def test_the_database_itself_refuses_to_rewrite_the_journal(backend: Backend, statement: str, table: str) -> None:
    _, made = story()
    await backend.journal.commit(full_batch(made))
    before = await everything(backend.journal)
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RestrictViolation), match=rf"{table} is append-only"):
        backend.refuse_update(statement)
    assert await everything(backend.journal) == before


@pytest.mark.parametrize(
    "table",
    [
        "alarm_journal",
        "device_alarm_event",
        "command_log",
        "alarm_response",
        "training_event",
        "alarm_escalation",
        "training_frame",
    ],
)
async def test_the_database_itself_refuses_to_empty_a_journal_table(backend: Backend, table: str) -> None:
    """Emptying a table at once: PostgreSQL's ``TRUNCATE`` (which row triggers do not see), SQLite's
    unqualified ``DELETE`` (its truncate optimisation, which a delete trigger turns off)."""
    _, made = story()
    await backend.journal.commit(full_batch(made))
    before = await everything(backend.journal)
    statement = f"TRUNCATE {table}" if backend.kind == "postgres" else f"DELETE FROM {table}"
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RestrictViolation), match=rf"{table} is append-only"):
        backend.refuse_update(statement)
    assert await everything(backend.journal) == before


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain": slow on long histories
)
@given(ops=sequences, data=st.data())
async def test_random_histories_in_random_batches_come_back_as_the_lifecycle_made_them(
    backend: Backend, ops: list[Operation], data: st.DataObject
) -> None:
    """A random alarm history, cut into random batches, each committed (some twice, some with the
    previous batch again in front): the journal holds each transition once, in order, and the
    current alarms are the lifecycle's own. One history per backend database, so keys are
    suffixed per example."""
    suffix = f"e{next(_examples)}"  # not drawn: hypothesis replays draws, and a key must be new per example
    alarms: dict[str, Alarm] = {}
    now = START
    made: list[Transition] = []
    for op in ops:
        now, alarms, step, _ = run(alarms, op, now)
        made += step
    made = [replace(t, key=f"{t.key}-{suffix}") for t in made]
    live = {f"{k}-{suffix}": replace(a, key=f"{k}-{suffix}") for k, a in alarms.items()}
    cuts = sorted(data.draw(st.lists(st.integers(0, len(made)), max_size=6), label="cuts"))
    batches = [made[a:b] for a, b in zip([0, *cuts], [*cuts, len(made)], strict=True)]
    previous: list[Transition] = []
    for batch in batches:
        repeat = data.draw(st.booleans(), label="repeat previous")
        await backend.journal.commit(Batch(transitions=[*(previous if repeat else []), *batch]))
        if data.draw(st.booleans(), label="commit twice"):
            await backend.journal.commit(Batch(transitions=batch))
        previous = batch
    keys = set(live)
    stored = [t for t in await backend.journal.transitions() if t.key in keys]
    assert stored == journal_order(made)
    current = {k: a for k, a in (await backend.journal.current_alarms()).items() if k in keys}
    assert current == live
    assert lc.replay(stored) == live


# ------------------------------------------------------------------------------------- accounts


async def test_accounts_follow_the_user_store_rules(backend: Backend) -> None:
    accounts = backend.accounts
    ana = await accounts.add("ana", Role.TRAINEE, "hash-1", actor="admin", at=T0)
    assert (ana.username, ana.role, ana.disabled) == ("ana", Role.TRAINEE, False)
    with pytest.raises(UserError) as taken:
        await accounts.add("ana", Role.ADMIN, "hash-2", actor="admin", at=T0)
    assert taken.value.reason == "user_exists"
    with pytest.raises(UserError) as bad:
        await accounts.add("Device", Role.ADMIN, "hash-2", actor="admin", at=T0)
    assert bad.value.reason == "invalid_username"
    assert not await accounts.any_admin()
    await accounts.add("bo", Role.ADMIN, "hash-3", actor="admin", at=T0)
    assert await accounts.any_admin()
    assert [u.username for u in await accounts.all()] == ["ana", "bo"]
    assert await accounts.password_hash("ana") == "hash-1"
    assert await accounts.get("nobody") is None

    token = await accounts.open_session("ana", T0, timedelta(hours=12))
    session = await accounts.session(token, T0 + timedelta(hours=1))
    assert session is not None
    assert session.user.username == "ana"
    assert session.expires_at == T0 + timedelta(hours=12)
    assert await accounts.session(token, T0 + timedelta(hours=12)) is None  # expired
    assert await accounts.session("not-a-token", T0) is None

    await accounts.update("ana", actor="bo", at=T0 + MIN, password_hash="hash-1b", rehash=True)
    assert await accounts.session(token, T0 + timedelta(hours=1)) is not None  # a rehash keeps sessions
    promoted = await accounts.update("ana", actor="bo", at=T0 + 2 * MIN, role=Role.INSTRUCTOR)
    assert (promoted.role, promoted.updated_at) == (Role.INSTRUCTOR, T0 + 2 * MIN)
    assert await accounts.session(token, T0 + timedelta(hours=1)) is None  # a new role ends sessions

    again = await accounts.open_session("ana", T0 + 3 * MIN, timedelta(hours=1))
    assert await accounts.close_session(again)
    assert not await accounts.close_session(again)
    await accounts.update("ana", actor="bo", at=T0 + 4 * MIN, disabled=True)
    assert await accounts.password_hash("ana") is None
    with pytest.raises(UserError) as disabled:
        await accounts.open_session("ana", T0 + 5 * MIN, timedelta(hours=1))
    assert disabled.value.reason == "unknown_user"
    with pytest.raises(UserError) as unknown:
        await accounts.update("nobody", actor="bo", at=T0, role=Role.ADMIN)
    assert unknown.value.reason == "unknown_user"

    events = await accounts.events("ana")
    assert [(e.change, e.actor) for e in events] == [("created", "admin"), ("role", "bo"), ("disabled", "bo")]
    assert events[1].detail == {"from": "trainee", "to": "instructor"}
    assert [e.username for e in await accounts.events()] == ["ana", "bo", "ana", "ana"]


async def test_the_account_events_are_append_only_in_the_database(backend: Backend, tmp_path: Path) -> None:
    await backend.accounts.add("ana", Role.TRAINEE, "hash-1", actor="admin", at=T0)
    raw = _sqlite_raw(tmp_path / "users.sqlite") if backend.kind == "sqlite" else backend.refuse_update
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RestrictViolation), match="append-only"):
        raw("DELETE FROM account_event")
    assert len(await backend.accounts.events()) == 1


async def test_a_postgres_database_is_shared_by_replicas(postgres_server: Postgres) -> None:
    """What one replica commits, another reads (the point of the PostgreSQL back end)."""
    url = fresh_database(postgres_server)
    live, made = story()
    async with Database(url, replica="a") as a, Database(url, replica="b") as b:
        await PostgresJournalStore(a).commit(Batch(transitions=made))
        await PostgresAccountStore(a).add("ana", Role.VIEWER, "h", actor="admin", at=T0)
        assert await PostgresJournalStore(b).current_alarms() == live
        token = await PostgresAccountStore(a).open_session("ana", T0, timedelta(hours=1))
        assert await PostgresAccountStore(b).session(token, T0) is not None
