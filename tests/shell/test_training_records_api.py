"""Whose rows each role reads, in-process through the routes: a trainee sees only their own rows
of a session report (JSON, CSV, the session list) and only their own competence record;
instructors and admins see everyone's. The sessions come from the journal, as a restarted twin
reads them."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.inproc import new_service
from tests.harness.scenario_drills import DRILL
from twin.alarms import lifecycle as lc
from twin.alarms.responses import AlarmResponse
from twin.api.app import create_app
from twin.contract.alarms import Priority
from twin.roles import Role
from twin.scenarios.runner import ScenarioRunner
from twin.scenarios.scenario_file import parse_scenario
from twin.settings import AuthSettings
from twin.store.journal import Journal
from twin.store.users import UserStore, hash_password
from twin.training.desk import TrainingDesk
from twin.training.scoring import acts, occurrences, score
from twin.training.session import TrainingSession, ended_event, started_event

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "users.sqlite")
    add_accounts(store, at=T0)
    store.add("trainee2", Role.TRAINEE, hash_password("trainee2-password"), actor="test", at=T0)
    yield store
    store.close()


def a_session(journal: Journal, n: int) -> None:
    """An ended session: a stall trainee acknowledges and answers, a memory error nobody answers."""
    start = T0 + timedelta(days=n)
    stall, made = lc.raise_alarm("w/p1/motor_stall", "p1", "w", "motor_stall", "device", Priority.HIGH, "x", start + S)
    stall, more = lc.acknowledge(stall, "trainee", start + 9 * S)
    _, memory = lc.raise_alarm("w/p2/memory_error", "p2", "w", "memory_error", "device", Priority.HIGH, "y", start + S)
    transitions = [*made, *more, *memory]
    answer = AlarmResponse(
        f"r-{n}", "w/p1/motor_stall", "p1", "w", "motor_stall", "high", 2, "active_acknowledged", "rotor_study",
        None, "trainee", "trainee", start + 12 * S, None, {},
    )  # fmt: skip
    devices = frozenset({"p1", "p2"})
    trainees = ("trainee", "trainee2")
    final = score(
        occurrences(transitions, devices, start, None),
        acts(transitions, [answer], frozenset(trainees), devices, start, None),
        trainees,
        {"w/p1/motor_stall": ("rotor_study",)},
        ended=True,
    )
    session = TrainingSession(
        f"t-{n}", "kill-switch", "Kill switch", f"run-{n}", "instructor", trainees, tuple(devices), 60, start
    )
    journal.record_training_event(started_event(session))
    ended = replace(session, status="completed", ended_at=start + 60 * S, final=final)
    journal.record_training_event(ended_event(ended, "scenario"))


@pytest.fixture
async def clients(tmp_path: Path, users: UserStore) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        a_session(journal, 0)
        a_session(journal, 1)
    service = await new_service(path, clock=lambda: T0 + timedelta(days=3))
    runner = ScenarioRunner({"kill-switch": parse_scenario(DRILL)})
    desk = TrainingDesk(runner, service, users)
    await desk.restore()
    app = create_app(service, users=users, auth=AuthSettings(), scenarios=runner, training=desk)
    transport = httpx.ASGITransport(app=app)
    out: dict[str, httpx.AsyncClient] = {}
    for name in ("trainee", "trainee2", "instructor", "admin", "viewer"):
        client = httpx.AsyncClient(transport=transport, base_url="http://twin")
        await client.__aenter__()
        if name == "trainee2":
            answer = await client.post("/api/login", json={"username": name, "password": "trainee2-password"})
            assert answer.status_code == 200
        else:
            await sign_in(client, Role(name))
        out[name] = client
    yield out
    for client in out.values():
        await client.__aexit__(None, None, None)
    await service.store.close()


async def test_a_trainee_reads_only_their_own_rows_of_a_report_instructors_read_all(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    for who, seen in (("trainee", {"trainee"}), ("trainee2", {"trainee2"}), ("viewer", set())):
        body = (await clients[who].get("/api/training/sessions/t-0")).json()
        assert {r["trainee"] for r in body["report"]["alarms"]} == seen, who
        assert {t["trainee"] for t in body["report"]["trainees"]} == seen, who
        assert {a["trainee"] for a in body["report"]["actions"]} <= seen, who
        assert body["report"]["team"]["acknowledged"] == 1  # the team's figure is everyone's
        download = (await clients[who].get("/api/training/sessions/t-0/report.json")).json()
        assert {r["trainee"] for r in download["report"]["alarms"]} == seen, who
        table = list(
            csv.DictReader(io.StringIO((await clients[who].get("/api/training/sessions/t-0/report.csv")).text))
        )
        assert {r["trainee"] for r in table} == seen, who
        listed = (await clients[who].get("/api/training/sessions")).json()
        assert {t["trainee"] for s in listed for t in s["report"]["trainees"]} == seen, who
    for who in ("instructor", "admin"):
        body = (await clients[who].get("/api/training/sessions/t-0")).json()
        assert {r["trainee"] for r in body["report"]["alarms"]} == {"trainee", "trainee2"}, who
        table = (await clients[who].get("/api/training/sessions/t-0/report.csv")).text
        assert {r["trainee"] for r in csv.DictReader(io.StringIO(table))} == {"trainee", "trainee2"}


async def test_a_trainee_opens_only_their_own_record_instructors_open_any(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    own = await clients["trainee"].get("/api/training/trainees/trainee/record")
    assert own.status_code == 200
    record = own.json()
    assert [s["session_id"] for s in record["sessions"]] == ["t-0", "t-1"]
    assert [(c["code"], c["alarms"], c["correct"], c["missed"]) for c in record["by_code"]] == [
        ("memory_error", 2, 0, 2),
        ("motor_stall", 2, 2, 0),
    ]
    for path in ("/api/training/trainees/trainee/record", "/api/training/trainees/trainee/record.csv"):
        refused = await clients["trainee2"].get(path)
        assert (refused.status_code, refused.json()["reason"]) == (403, "not_your_record"), path
        assert (await clients["viewer"].get(path)).status_code == 403
    mine = (await clients["trainee2"].get("/api/training/trainees/trainee2/record")).json()
    assert {c["code"]: c["correct"] for c in mine["by_code"]} == {"memory_error": 0, "motor_stall": 0}
    for who in ("instructor", "admin"):
        body = (await clients[who].get("/api/training/trainees/trainee2/record")).json()
        assert body == mine, who
    table = await clients["instructor"].get("/api/training/trainees/trainee/record.csv")
    assert table.headers["content-disposition"] == 'attachment; filename="record-trainee.csv"'
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert {(r["session_id"], r["code"], r["verdict"]) for r in rows} == {
        (s, c, v) for s in ("t-0", "t-1") for c, v in (("motor_stall", "correct"), ("memory_error", "missed"))
    }
    missing = await clients["instructor"].get("/api/training/trainees/nobody/record")
    assert (missing.status_code, missing.json()["reason"]) == (404, "unknown_trainee")
    # a viewer's own record: nothing to show, but theirs to open
    assert (await clients["viewer"].get("/api/training/trainees/viewer/record")).json()["sessions"] == []
