"""The escalator on a real twin service and journal (clock ticks driven by the test), its routes
in-process, and the paging webhook against a real HTTP receiver on a loopback port: retries on
503 with the same body and idempotency key, no retry on 400, giving up on a receiver that is not
there, and a restart that never sends a tier twice."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.http_receiver import http_receiver
from tests.harness.inproc import new_service
from tests.harness.servers import free_port
from twin.alarms import lifecycle as lc
from twin.alarms.escalation import DEFAULT_POLICY
from twin.api.app import create_app
from twin.contract.alarms import Priority
from twin.roles import Role
from twin.service.escalator import Escalator
from twin.service.events import Notice, TwinEvent
from twin.service.paging_webhook import BODY_KIND, PagingWebhook
from twin.service.twin_service import TwinService
from twin.settings import AuthSettings, EscalationSettings
from twin.store.journal import Journal
from twin.store.users import UserStore

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
KEY = "ward/p1/motor_stall"


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "users.sqlite")
    add_accounts(store, at=T0)
    yield store
    store.close()


async def service_with_a_stall(path: Path, *, at: datetime = T0, fresh: bool = True) -> TwinService:
    """A twin whose journal holds an unanswered high stall and a low reminder, both raised at T0
    (``fresh``: written now; else the journal at ``path`` is reopened as it is)."""
    if fresh:
        with Journal(path) as journal:
            _, made = lc.raise_alarm(KEY, "p1", "ward", "motor_stall", "device", Priority.HIGH, "Motor stall", T0)
            _, quiet = lc.raise_alarm(
                "ward/p2/refill_reminder", "p2", "ward", "refill_reminder", "device", Priority.LOW, "reminder", T0
            )
            journal.record([*made, *quiet])
    return await new_service(path, clock=lambda: at)


async def escalator_of(service: TwinService, users: UserStore, sinks: list[object] | None = None) -> Escalator:
    escalator = Escalator(service, DEFAULT_POLICY, users=users, sinks=sinks or [])  # type: ignore[arg-type]
    await escalator.restore()
    return escalator


async def test_an_unanswered_stall_is_journaled_streamed_and_handed_on_at_each_tier_and_never_twice(
    tmp_path: Path, users: UserStore
) -> None:
    path = tmp_path / "journal.sqlite"
    handed: list[str] = []
    service = await service_with_a_stall(path)
    notices: list[TwinEvent] = []
    service.hub.listen(notices.append)
    escalator = await escalator_of(service, users, [lambda e: handed.append(e.escalation_id)])
    assert await escalator.tick(T0 + 2 * MIN - timedelta(seconds=1)) == []
    await escalator.tick(T0 + 2 * MIN + timedelta(milliseconds=400))
    (first,) = await service.store.escalations()
    assert (first.key, first.level, first.due_at, first.notified) == (KEY, 1, T0 + 2 * MIN, ("instructor",))
    assert [n.data["level"] for n in notices if isinstance(n, Notice) and n.kind == "escalation"] == [1]
    assert handed == [first.escalation_id]
    assert [e.key for e in escalator.live_for("instructor")] == [KEY]
    assert escalator.live_for("trainee") == []
    await escalator.tick(T0 + 3 * MIN)
    assert len(await service.store.escalations()) == 1  # once per tier
    assert {e.key for e in await service.store.escalations()} == {KEY}  # the low reminder never escalates
    counted = service.metrics.registry.get_sample_value(
        "pumptwin_alarm_escalations_total", {"priority": "high", "level": "1"}
    )
    assert counted == 1.0
    await service.store.close()

    # a restart: the ladder goes on from the journal, tier 1 is not made again
    service = await service_with_a_stall(path, at=T0 + 6 * MIN, fresh=False)
    escalator = await escalator_of(service, users, [lambda e: handed.append(e.escalation_id)])
    await escalator.tick(T0 + 6 * MIN)
    assert [e.level for e in await service.store.escalations()] == [1, 2]
    assert len(handed) == 2
    # told at tier 1, still told after tier 2 told the admin
    assert [e.level for e in escalator.live_for("instructor")] == [1]
    assert [e.level for e in escalator.live_for("admin")] == [2]
    # an acknowledgement ends it
    service.clock = lambda: T0 + 7 * MIN
    await service.alarm_action(KEY, "acknowledge", "trainee")
    assert escalator.live() == []
    await escalator.tick(T0 + 60 * MIN)
    assert len(await service.store.escalations()) == 2
    await service.store.close()


async def test_the_routes_show_each_user_what_was_escalated_to_them(tmp_path: Path, users: UserStore) -> None:
    service = await service_with_a_stall(tmp_path / "journal.sqlite", at=T0 + 3 * MIN)
    escalator = await escalator_of(service, users)
    await escalator.tick(T0 + 3 * MIN)
    app = create_app(service, users=users, auth=AuthSettings(), escalator=escalator)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://twin") as instructor,
        httpx.AsyncClient(transport=transport, base_url="http://twin") as trainee,
        httpx.AsyncClient(transport=transport, base_url="http://twin") as nobody,
    ):
        await sign_in(instructor, Role.INSTRUCTOR)
        await sign_in(trainee, Role.TRAINEE)
        assert (await nobody.get("/api/escalations/mine")).status_code == 401
        (mine,) = (await instructor.get("/api/escalations/mine")).json()
        assert (mine["key"], mine["level"], mine["tier"], mine["waited_s"]) == (KEY, 1, "charge nurse", 120.0)
        assert (await trainee.get("/api/escalations/mine")).json() == []
        assert [e["key"] for e in (await trainee.get("/api/escalations/live")).json()] == [KEY]
        recorded = (await trainee.get("/api/escalations", params={"key": KEY})).json()
        assert [e["escalation_id"] for e in recorded] == [mine["escalation_id"]]
        policy = (await trainee.get("/api/escalations/policy")).json()
        assert [t["after_s"] for t in policy["high"]] == [120.0, 300.0]
        bad = await trainee.get("/api/escalations", params={"since": "0001-01-01T00:00:00+07:04"})
        assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_time")


def test_settings_give_the_default_ladders_and_refuse_a_bad_one() -> None:
    assert EscalationSettings().policy() == DEFAULT_POLICY
    assert EscalationSettings(enabled=False).policy().ladder(Priority.HIGH) == ()
    with pytest.raises(ValueError, match="longer than the tier before"):
        EscalationSettings(
            high=[{"name": "a", "after_s": 60, "notify": ["x"]}, {"name": "b", "after_s": 30, "notify": ["y"]}]
        )  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no role"):
        EscalationSettings(high=[{"name": "a", "after_s": 60, "notify": ["role:nurse"]}])  # type: ignore[list-item]


async def test_the_webhook_retries_a_503_with_the_same_body_and_key_until_the_receiver_takes_it(
    tmp_path: Path, users: UserStore
) -> None:
    service = await service_with_a_stall(tmp_path / "journal.sqlite")
    async with http_receiver() as receiver:
        receiver.script = [503, 503]
        receiver.retry_after = "0"
        async with PagingWebhook(
            receiver.url, token="s3cret", retry_initial_s=0.05, retry_max_s=0.2, rng=random.Random(1)
        ) as hook:
            await (await escalator_of(service, users, [hook.submit])).tick(T0 + 2 * MIN)
            assert await hook.drained(10.0)
            stats = hook.stats()
        (made,) = await service.store.escalations()
        assert [r.status for r in receiver.requests] == [503, 503, 200]
        assert [r.headers["x-pumptwin-attempt"] for r in receiver.requests] == ["1", "2", "3"]
        assert {r.headers["idempotency-key"] for r in receiver.requests} == {made.escalation_id}
        assert {r.headers["authorization"] for r in receiver.requests} == {"Bearer s3cret"}
        assert len({str(r.body) for r in receiver.requests}) == 1  # every attempt the same JSON
        body = receiver.requests[-1].body
        assert (body["kind"], body["version"], body["key"], body["level"], body["notified"]) == (
            BODY_KIND,
            1,
            KEY,
            1,
            ["instructor"],
        )
        assert body["due_at"] == (T0 + 2 * MIN).isoformat()
        assert (stats.delivered, stats.retries, stats.failed, stats.queued) == (1, 2, 0, 0)


async def test_the_webhook_does_not_retry_a_request_the_receiver_refuses(tmp_path: Path, users: UserStore) -> None:
    service = await service_with_a_stall(tmp_path / "journal.sqlite")
    async with http_receiver() as receiver:
        receiver.script = [400]
        async with PagingWebhook(receiver.url, retry_initial_s=0.01) as hook:
            # both tiers at once: two deliveries, in order
            await (await escalator_of(service, users, [hook.submit])).tick(T0 + 6 * MIN)
            assert await hook.drained(10.0)
            stats = hook.stats()
        assert [(r.status, r.body["level"]) for r in receiver.requests] == [(400, 1), (200, 2)]
        assert (stats.delivered, stats.failed, stats.retries) == (1, 1, 0)


async def test_the_webhook_gives_up_on_a_receiver_that_is_not_there_after_its_attempts(
    tmp_path: Path, users: UserStore
) -> None:
    service = await service_with_a_stall(tmp_path / "journal.sqlite")
    url = f"http://127.0.0.1:{free_port()}/page"  # nothing listens there
    async with PagingWebhook(url, attempts=3, retry_initial_s=0.01, retry_max_s=0.02, timeout_s=1.0) as hook:
        await (await escalator_of(service, users, [hook.submit])).tick(T0 + 2 * MIN)
        assert await hook.drained(10.0)
        assert (hook.stats().failed, hook.stats().retries, hook.stats().delivered) == (1, 2, 0)
    assert len(await service.store.escalations()) == 1  # the record stands, whatever the delivery
