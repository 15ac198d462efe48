"""The training desk and its routes in-process (no broker): who may do what (401/403/422), the
journal's training events (append-only, once each), and a session cut short by a restart."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.inproc import new_service
from tests.harness.scenario_drills import DRILL
from twin.alarms.lifecycle import acknowledge, raise_alarm
from twin.api.app import create_app
from twin.contract.alarms import Priority
from twin.roles import Role
from twin.scenarios.runner import ScenarioRunner
from twin.scenarios.scenario_file import parse_scenario
from twin.service.twin_service import TwinService
from twin.settings import AuthSettings
from twin.store.journal import Journal
from twin.store.users import UserStore
from twin.training.desk import RESTARTED, TrainingDesk
from twin.training.events import TrainingEvent
from twin.training.scoring import Verdict
from twin.training.session import TrainingSession, started_event

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "users.sqlite")
    add_accounts(store)
    yield store
    store.close()


@pytest.fixture
def runner() -> ScenarioRunner:
    return ScenarioRunner({"kill-switch": parse_scenario(DRILL)})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite") as journal:
        yield journal


def _client(service: TwinService, users: UserStore, runner: ScenarioRunner, desk: TrainingDesk) -> httpx.AsyncClient:
    app = create_app(service, users=users, auth=AuthSettings(), scenarios=runner, training=desk)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin")


async def _desk(runner: ScenarioRunner, users: UserStore, path: Path, clock: Callable[[], datetime]) -> TrainingDesk:
    desk = TrainingDesk(runner, await new_service(path, clock=clock), users)
    await desk.restore()
    return desk


@pytest.fixture
async def as_role(
    journal: Journal, users: UserStore, runner: ScenarioRunner
) -> AsyncIterator[dict[Role | None, httpx.AsyncClient]]:
    assert journal.path is not None
    desk = await _desk(runner, users, journal.path, lambda: datetime.now(UTC))
    clients: dict[Role | None, httpx.AsyncClient] = {}
    for role in (None, *Role):
        client = _client(desk.service, users, runner, desk)
        await client.__aenter__()
        if role is not None:
            await sign_in(client, role)
        clients[role] = client
    yield clients
    for client in clients.values():
        await client.__aexit__(None, None, None)


START = {"scenario": "kill-switch", "trainees": ["trainee"], "speed": 60}


async def test_only_instructors_and_admins_start_and_steer_sessions(
    as_role: dict[Role | None, httpx.AsyncClient],
) -> None:
    assert (await as_role[None].get("/api/training/sessions")).status_code == 401
    assert (await as_role[None].post("/api/training/sessions", json=START)).status_code == 401
    for role in (Role.VIEWER, Role.TRAINEE):
        refused = await as_role[role].post("/api/training/sessions", json=START)
        assert (refused.status_code, refused.json()["reason"]) == (403, "forbidden"), role
        assert (await as_role[role].post("/api/training/sessions/t-1/abort", json={})).status_code == 403
        assert (await as_role[role].get("/api/training/trainees")).status_code == 403
        assert (await as_role[role].get("/api/training/sessions")).json() == []
        assert (await as_role[role].get("/api/training/current")).json() == {"session": None}
    for role in (Role.INSTRUCTOR, Role.ADMIN):
        assert (await as_role[role].get("/api/training/trainees")).json() == [
            {"username": "trainee", "role": "trainee"}
        ]
        # allowed past the role check: refused for what the request asks, not for who asks
        unattached = await as_role[role].post("/api/training/sessions", json=START)
        assert (unattached.status_code, unattached.json()["reason"]) == (503, "not_attached")


async def test_a_session_is_for_active_trainee_accounts_only(as_role: dict[Role | None, httpx.AsyncClient]) -> None:
    instructor = as_role[Role.INSTRUCTOR]
    cases = [
        ({**START, "trainees": ["nobody"]}, 422, "unknown_trainee"),
        ({**START, "trainees": ["viewer"]}, 422, "not_a_trainee"),
        ({**START, "trainees": ["trainee", "instructor"]}, 422, "not_a_trainee"),
    ]
    for body, status, reason in cases:
        answer = await instructor.post("/api/training/sessions", json=body)
        assert (answer.status_code, answer.json()["reason"]) == (status, reason), body
    assert (await instructor.post("/api/training/sessions", json={**START, "trainees": []})).status_code == 422
    assert (await instructor.post("/api/training/sessions", json={**START, "extra": 1})).status_code == 422
    missing = await instructor.get("/api/training/sessions/t-nope")
    assert (missing.status_code, missing.json()["reason"]) == (404, "unknown_session")
    assert (await instructor.get("/api/training/sessions/t-nope/report.csv")).status_code == 404


def test_training_events_are_recorded_once_and_sqlite_refuses_to_change_them(journal: Journal) -> None:
    session = TrainingSession("t-1", "kill-switch", "Kill switch", "run-1", "instructor", ("trainee",), ("p1",), 60, T0)
    assert journal.record_training_event(started_event(session))
    assert not journal.record_training_event(started_event(session))
    assert journal.record_training_event(TrainingEvent("t-1", "paused-1", "instructor", T0, {}))
    assert [e.event for e in journal.training_events("t-1")] == ["started", "paused-1"]
    raw = sqlite3.connect(journal.path)
    try:
        for statement in ("UPDATE training_event SET actor = 'x'", "DELETE FROM training_event"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)
    finally:
        raw.close()


async def test_a_session_running_when_the_twin_stopped_ends_aborted_and_scored_at_restart(
    journal: Journal, users: UserStore, runner: ScenarioRunner
) -> None:
    session = TrainingSession("t-1", "kill-switch", "Kill switch", "run-1", "instructor", ("trainee",), ("p2",), 60, T0)
    journal.record_training_event(started_event(session))
    alarm, made = raise_alarm(
        "s1/p2/motor_stall", "p2", "s1", "motor_stall", "device", Priority.HIGH, "x", T0 + timedelta(seconds=5)
    )
    alarm, more = acknowledge(alarm, "trainee", T0 + timedelta(seconds=17))
    journal.record([*made, *more])

    restart = T0 + timedelta(minutes=10)
    assert journal.path is not None
    desk = await _desk(runner, users, journal.path, lambda: restart)
    ended = desk.get("t-1")
    assert (ended.status, ended.aborted_reason, ended.ended_at) == ("aborted", RESTARTED, restart)
    assert ended.final is not None
    (row,) = ended.final.alarms
    # the DRILL lists no responses for the stall: the acknowledgement alone decides
    assert (row.time_to_ack_s, row.verdict) == (12.0, Verdict.CORRECT)

    again = await _desk(runner, users, journal.path, lambda: restart + timedelta(hours=1))
    assert again.get("t-1") == ended  # the frozen report is read back, not recomputed
    assert [e.event for e in journal.training_events("t-1")] == ["started", "aborted"]
