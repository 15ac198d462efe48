"""Sign-in, sessions, roles and response actions of the HTTP API, in process (no broker: the
service is fed MQTT messages directly). Each role's rights are checked against
``twin.roles.GRANTS`` route by route, and every ``/api`` route is proven to need a session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr

from tests.harness.accounts import PASSWORDS, add_accounts, sign_in
from tests.harness.inproc import feed, new_service
from twin.api.app import create_app
from twin.api.auth import PERMISSION_MARK, PUBLIC_API_ROUTES, SESSION_COOKIE
from twin.contract import examples
from twin.contract.topics import Channel
from twin.roles import GRANTS, Permission, Role
from twin.service.twin_service import TwinService
from twin.settings import AuthSettings
from twin.store.journal import Journal
from twin.store.local import LocalJournalStore
from twin.store.users import UserStore

SITE, DEVICE = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
ALARM_KEY = f"{SITE}/{DEVICE}/reservoir_low"
START = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Twin:
    app: FastAPI
    service: TwinService
    users: UserStore
    clock: Clock

    @property
    def journal(self) -> Journal:
        store = self.service.store
        assert isinstance(store, LocalJournalStore)
        return store.journal


async def _feed(service: TwinService, *, simulated: bool = True, device: str = DEVICE) -> None:
    """A device with a birth, a state and a raised low-reservoir alarm."""
    birth = examples.birth().model_copy(update={"simulated": simulated, "device_id": device})
    state = examples.state().model_copy(update={"device_id": device})
    alarm = examples.alarm().model_copy(update={"device_id": device, "alarm_id": f"{device}-low-1"})
    await feed(service, SITE, device, [(Channel.BIRTH, birth), (Channel.STATE, state), (Channel.ALARM, alarm)])


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[Twin]:
    clock = Clock()
    users = UserStore(tmp_path / "users.sqlite")
    service = await new_service(tmp_path / "journal.sqlite", clock=clock)
    await _feed(service)
    add_accounts(users, at=clock.now)
    app = create_app(service, users=users, auth=AuthSettings(session_hours=12))
    yield Twin(app, service, users, clock)
    users.close()
    await service.store.close()


@pytest.fixture
async def anonymous(twin: Twin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=twin.app), base_url="http://twin.test") as client:
        yield client


def _client(twin: Twin) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=twin.app), base_url="http://twin.test")


# ------------------------------------------------------------------------- every route is guarded


def _api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    return [
        (method, route.path, route)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api")
        for method in sorted(route.methods)
    ]


def _marks(route: APIRoute) -> list[Any]:
    found = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if hasattr(dependency.call, PERMISSION_MARK):
            found.append(getattr(dependency.call, PERMISSION_MARK))
        stack.extend(dependency.dependencies)
    return found


def test_every_api_route_but_sign_in_and_out_depends_on_a_permission(twin: Twin) -> None:
    routes = _api_routes(twin.app)
    assert len(routes) > 15
    unguarded = [(m, p) for m, p, r in routes if not _marks(r) and (m, p) not in PUBLIC_API_ROUTES]
    assert unguarded == []
    assert {(m, p) for m, p, r in routes if not _marks(r)} == set(PUBLIC_API_ROUTES)


async def test_every_api_operation_in_the_openapi_document_answers_401_without_a_session(
    anonymous: httpx.AsyncClient,
) -> None:
    """Behaviour, not structure: this also covers routes added later through included routers
    (which ``app.routes`` does not list one by one)."""
    document = (await anonymous.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/api"):
            continue
        for method in operations:
            if (method.upper(), path) in PUBLIC_API_ROUTES:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: "acknowledge" if m.group(1) == "action" else "x", path)
            answer = await anonymous.request(method.upper(), url, json={} if method != "get" else None)
            assert answer.status_code == 401, (method, url, answer.status_code, answer.text)
            assert answer.json()["reason"] == "not_signed_in"
            checked += 1
    assert checked >= 20


# ------------------------------------------------------------------------------------ the matrix


def _role_matrix() -> list[tuple[str, str, dict[str, Any] | None, Permission]]:
    """(method, path, body, permission) of one call per kind of act."""
    refill = {
        "type": "refill",
        "volume_ml": 18.0,
        "drug": "baclofen",
        "concentration_mg_per_ml": 2.0,
    }
    return [
        ("GET", "/api/devices", None, Permission.READ),
        ("GET", f"/api/devices/{DEVICE}", None, Permission.READ),
        ("GET", "/api/alarms", None, Permission.READ),
        ("GET", f"/api/alarms/{ALARM_KEY}/journal", None, Permission.READ),
        ("GET", f"/api/alarms/{ALARM_KEY}/responses", None, Permission.READ),
        ("GET", "/api/me", None, Permission.READ),
        ("POST", f"/api/alarms/{ALARM_KEY}/silence", {"minutes": 2}, Permission.SILENCE),
        ("POST", f"/api/alarms/{ALARM_KEY}/acknowledge", {}, Permission.ACKNOWLEDGE),
        ("POST", f"/api/alarms/{ALARM_KEY}/responses", {"action": "assess_withdrawal"}, Permission.RESPOND),
        ("POST", f"/api/alarms/{ALARM_KEY}/shelve", {"comment": "drill", "minutes": 5}, Permission.SHELVE),
        ("POST", f"/api/alarms/{ALARM_KEY}/unshelve", {}, Permission.SHELVE),
        ("POST", f"/api/devices/{DEVICE}/commands", {"action": refill}, Permission.COMMAND),
        (
            "POST",
            f"/api/devices/{DEVICE}/commands",
            {"action": {"type": "inject_fault", "fault": {"fault": "motor_stall"}}},
            Permission.COMMAND,
        ),
        (
            "POST",
            f"/api/alarms/{ALARM_KEY}/remove-from-service",
            {"comment": "sensor swap"},
            Permission.REMOVE_FROM_SERVICE,
        ),
        ("POST", f"/api/alarms/{ALARM_KEY}/return-to-service", {}, Permission.REMOVE_FROM_SERVICE),
        ("GET", "/api/users", None, Permission.MANAGE_USERS),
        (
            "POST",
            "/api/users",
            {"username": "new.nurse", "role": "trainee", "password": "a-long-password"},
            Permission.MANAGE_USERS,
        ),
    ]


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_may_do_exactly_what_the_grants_say(twin: Twin, role: Role) -> None:
    """A role below a permission's grant gets 403 ``forbidden``; a role at or above it is let
    through (the act may still be refused for the alarm's state: 409, never 401 or 403)."""
    async with _client(twin) as client:
        await sign_in(client, role)
        for method, path, body, permission in _role_matrix():
            answer = await client.request(method, path, json=body)
            if role.includes(GRANTS[permission]):
                assert answer.status_code in (200, 201, 202, 409), (role, method, path, answer.text)
            else:
                assert answer.status_code == 403, (role, method, path, answer.text)
                assert answer.json()["reason"] == "forbidden"


async def test_a_trainee_cannot_inject_a_fault_shelve_or_manage_users_and_an_instructor_can_fault_and_shelve(
    twin: Twin,
) -> None:
    fault = {"action": {"type": "inject_fault", "fault": {"fault": "catheter_occlusion", "fraction": 0.5}}}
    shelve = {"comment": "planned drill", "minutes": 30}
    async with _client(twin) as trainee, _client(twin) as instructor:
        await sign_in(trainee, Role.TRAINEE)
        await sign_in(instructor, Role.INSTRUCTOR)
        assert (await trainee.post(f"/api/devices/{DEVICE}/commands", json=fault)).status_code == 403
        assert (await trainee.post(f"/api/alarms/{ALARM_KEY}/shelve", json=shelve)).status_code == 403
        assert (await trainee.get("/api/users")).status_code == 403
        assert not twin.service.fleet.commands
        injected = await instructor.post(f"/api/devices/{DEVICE}/commands", json=fault)
        assert injected.status_code == 202, injected.text
        assert injected.json()["actor"] == "instructor"
        shelved = await instructor.post(f"/api/alarms/{ALARM_KEY}/shelve", json=shelve)
        assert shelved.status_code == 200, shelved.text
        assert shelved.json()["state"] == "shelved"
        assert shelved.json()["shelved_by"] == "instructor"
        assert (await instructor.get("/api/users")).status_code == 403


# ----------------------------------------------------------------------------- actor and sessions


async def test_the_actor_is_the_signed_in_user_and_never_a_body_field(twin: Twin) -> None:
    async with _client(twin) as client:
        await sign_in(client, Role.TRAINEE)
        forged = await client.post(f"/api/alarms/{ALARM_KEY}/acknowledge", json={"actor": "dr.house"})
        assert forged.status_code == 422
        acked = await client.post(f"/api/alarms/{ALARM_KEY}/acknowledge", json={})
        assert acked.status_code == 200
        assert acked.json()["acknowledged_by"] == "trainee"
    assert twin.journal.transitions(key=ALARM_KEY)[-1].actor == "trainee"


async def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session(twin: Twin) -> None:
    async with _client(twin) as client:
        wrong = await client.post("/api/login", json={"username": "trainee", "password": "not-it"})
        unknown = await client.post("/api/login", json={"username": "nobody", "password": "not-it"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()  # the answer does not tell which names exist
        answer = await client.post("/api/login", json={"username": "trainee", "password": PASSWORDS[Role.TRAINEE]})
        assert answer.status_code == 200
        me = answer.json()
        assert me["role"] == "trainee"
        assert set(me["permissions"]) == {"read", "acknowledge", "silence", "respond"}
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={12 * 3600}"):
            assert attribute.lower() in cookie.lower(), cookie
        assert "secure" not in cookie.lower()  # cookie_secure is off in this app
        token = client.cookies[SESSION_COOKIE]
        assert (await client.get("/api/me")).status_code == 200
        assert (await client.post("/api/logout", json={})).status_code == 204
        assert (await client.get("/api/me")).status_code == 401
    async with _client(twin) as replay:  # the old token is dead server-side, not just forgotten
        replay.cookies.set(SESSION_COOKIE, token)
        assert (await replay.get("/api/me")).status_code == 401


async def test_a_session_ends_at_its_expiry_and_when_the_user_is_disabled_or_changes_role(twin: Twin) -> None:
    async with _client(twin) as trainee, _client(twin) as admin, _client(twin) as viewer:
        await sign_in(trainee, Role.TRAINEE)
        await sign_in(admin, Role.ADMIN)
        await sign_in(viewer, Role.VIEWER)
        twin.clock.now = START + timedelta(hours=11, minutes=59)
        assert (await trainee.get("/api/me")).status_code == 200
        promoted = await admin.patch("/api/users/viewer", json={"role": "trainee"})
        assert promoted.status_code == 200
        assert (await viewer.get("/api/me")).status_code == 401  # signs in again under the new role
        disabled = await admin.patch("/api/users/trainee", json={"disabled": True})
        assert disabled.json()["disabled"] is True
        assert (await trainee.get("/api/me")).status_code == 401
        answer = await trainee.post("/api/login", json={"username": "trainee", "password": PASSWORDS[Role.TRAINEE]})
        assert answer.status_code == 401
        twin.clock.now = START + timedelta(hours=12)
        assert (await admin.get("/api/me")).status_code == 401  # 12 h after sign-in
    changes = [(e.actor, e.username, e.change) for e in twin.users.events() if e.actor == "admin"]
    assert changes == [("admin", "viewer", "role"), ("admin", "trainee", "disabled")]


async def test_an_admin_manages_accounts_but_cannot_demote_or_disable_themselves(twin: Twin) -> None:
    async with _client(twin) as admin:
        await sign_in(admin, Role.ADMIN)
        made = await admin.post(
            "/api/users", json={"username": "nurse.kim", "role": "trainee", "password": "kim-secret-1"}
        )
        assert made.status_code == 201, made.text
        assert (
            await admin.post("/api/users", json={"username": "nurse.kim", "role": "viewer", "password": "x" * 9})
        ).status_code == 409
        assert (
            await admin.post("/api/users", json={"username": "Nurse Kim", "role": "viewer", "password": "x" * 9})
        ).status_code == 422
        assert (
            await admin.post("/api/users", json={"username": "short.pw", "role": "viewer", "password": "1234567"})
        ).status_code == 422
        assert (await admin.patch("/api/users/admin", json={"role": "viewer"})).status_code == 409
        assert (await admin.patch("/api/users/admin", json={"disabled": True})).status_code == 409
        assert (await admin.patch("/api/users/ghost", json={"role": "viewer"})).status_code == 404
        names = [u["username"] for u in (await admin.get("/api/users")).json()]
        assert "nurse.kim" in names
        assert "password_hash" not in (await admin.get("/api/users")).text
    async with _client(twin) as kim:
        answer = await kim.post("/api/login", json={"username": "nurse.kim", "password": "kim-secret-1"})
        assert answer.json()["role"] == "trainee"


# --------------------------------------------------------------------------------------- CSRF


async def test_state_changing_requests_must_be_json_and_not_from_another_origin(twin: Twin) -> None:
    async with _client(twin) as client:
        await sign_in(client, Role.TRAINEE)
        url = f"/api/alarms/{ALARM_KEY}/acknowledge"
        form = await client.post(
            url, content=b"comment=x", headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 415
        plain = await client.post(url, content=b"{}", headers={"content-type": "text/plain"})
        assert plain.status_code == 415
        foreign = await client.post(url, json={}, headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert foreign.json()["reason"] == "cross_origin"
        assert twin.service.fleet.board.alarms[ALARM_KEY].state.value == "active_unacknowledged"
        own = await client.post(url, json={}, headers={"origin": "http://twin.test"})
        assert own.status_code == 200


# -------------------------------------------------------------------------------------- ops


async def test_metrics_and_health_are_open_unless_a_metrics_token_is_set(tmp_path: Path) -> None:
    service = await new_service(tmp_path / "j.sqlite", clock=Clock())
    with UserStore(None) as users:
        open_app = create_app(service, users=users)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=open_app), base_url="http://t") as client:
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
        token = "scrape-token-123"
        closed_app = create_app(service, users=users, auth=AuthSettings(metrics_token=SecretStr(token)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=closed_app), base_url="http://t") as client:
            refused = await client.get("/metrics")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert (await client.get("/metrics", headers={"authorization": "Bearer wrong"})).status_code == 401
            scraped = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
            assert scraped.status_code == 200
            assert "pumptwin_messages_in_total" in scraped.text
            assert (await client.get("/healthz")).status_code == 200


async def test_an_app_without_an_account_store_lets_nobody_in(tmp_path: Path) -> None:
    service = await new_service(tmp_path / "j.sqlite", clock=Clock())
    if service:
        app = create_app(service)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/api/devices")).status_code == 401
            answer = await client.post("/api/login", json={"username": "admin", "password": "whatever-1"})
            assert answer.status_code == 401


async def test_the_console_is_served_with_a_strict_content_security_policy(anonymous: httpx.AsyncClient) -> None:
    root = await anonymous.get("/")
    assert root.status_code == 307
    assert root.headers["location"] == "/console/"
    page = await anonymous.get("/console/")
    assert page.status_code == 200
    assert '<script type="module" src="js/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    module = await anonymous.get("/console/js/alarm-sound.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")


# ---------------------------------------------------------------------------------- responses


async def test_a_refill_response_sends_a_refill_and_is_journaled_with_user_role_and_alarm_version(twin: Twin) -> None:
    async with _client(twin) as client:
        await sign_in(client, Role.TRAINEE)
        await client.post(f"/api/alarms/{ALARM_KEY}/acknowledge", json={})
        twin.clock.now = START + timedelta(minutes=3)
        body = {
            "action": "refill",
            "note": "refilled 18 mL",
            "command": {"type": "refill", "volume_ml": 18.0, "drug": "baclofen", "concentration_mg_per_ml": 2.0},
        }
        answer = await client.post(f"/api/alarms/{ALARM_KEY}/responses", json=body)
        assert answer.status_code == 201, answer.text
        made = answer.json()
        assert made["command"]["action"]["type"] == "refill"
        assert made["command"]["actor"] == "trainee"
        command_id = made["command_id"]
        listed = (await client.get(f"/api/alarms/{ALARM_KEY}/responses")).json()
    assert twin.service.fleet.commands[command_id].command.actor == "trainee"
    [recorded] = twin.journal.responses(key=ALARM_KEY)
    assert recorded.action == "refill"
    assert (recorded.actor, recorded.role) == ("trainee", "trainee")
    assert recorded.at == START + timedelta(minutes=3)
    assert recorded.alarm_state == "active_acknowledged"
    assert recorded.alarm_version == twin.service.fleet.board.alarms[ALARM_KEY].version  # after raise + acknowledge
    assert recorded.alarm_version == 2
    assert recorded.command_id == command_id
    assert recorded.note == "refilled 18 mL"
    assert recorded.detail["volume_ml"] == 18.0
    assert [r["response_id"] for r in listed] == [recorded.response_id]


async def test_a_clinical_response_is_only_recorded_and_bad_responses_are_refused(twin: Twin) -> None:
    async with _client(twin) as client:
        await sign_in(client, Role.TRAINEE)
        url = f"/api/alarms/{ALARM_KEY}/responses"
        escalated = await client.post(url, json={"action": "escalate_physician", "note": "called Dr Lee"})
        assert escalated.status_code == 201
        assert escalated.json()["command"] is None
        refill = {"type": "refill", "volume_ml": 1.0, "drug": "baclofen", "concentration_mg_per_ml": 2.0}
        assert (await client.post(url, json={"action": "dye_study", "command": refill})).status_code == 422
        assert (await client.post(url, json={"action": "refill"})).status_code == 422
        assert (await client.post(url, json={"action": "other"})).status_code == 422
        assert (await client.post(url, json={"action": "teleport"})).status_code == 422
        assert (
            await client.post("/api/alarms/nope/nope/x/responses", json={"action": "interrogate"})
        ).status_code == 404
        catalogue = (await client.get("/api/response-actions")).json()
    assert not twin.service.fleet.commands
    assert [r.action for r in twin.journal.responses()] == ["escalate_physician"]
    assert {c["action"] for c in catalogue} >= {"refill", "reprogram", "rotor_study", "dye_study", "escalate_physician"}


async def test_a_response_that_would_command_a_real_pump_is_refused_and_not_recorded(twin: Twin) -> None:
    await _feed(twin.service, simulated=False, device="real-0001")
    async with _client(twin) as client:
        await sign_in(client, Role.TRAINEE)
        body = {
            "action": "refill",
            "command": {"type": "refill", "volume_ml": 18.0, "drug": "baclofen", "concentration_mg_per_ml": 2.0},
        }
        answer = await client.post(f"/api/alarms/{SITE}/real-0001/reservoir_low/responses", json=body)
        assert answer.status_code == 403
        assert answer.json()["reason"] == "real_device_read_only"
    assert twin.journal.responses() == []


# ------------------------------------------------------------------------------- limits (issue 18)


async def test_failed_sign_ins_are_throttled_with_retry_after_before_any_hash(twin: Twin) -> None:
    async with _client(twin) as client:
        answers = [
            await client.post("/api/login", json={"username": "trainee", "password": "wrong-password"})
            for _ in range(7)
        ]
        assert [a.status_code for a in answers[:5]] == [401] * 5
        throttled = answers[5]
        assert throttled.status_code == 429
        assert throttled.json()["reason"] == "too_many_attempts"
        assert int(throttled.headers["retry-after"]) >= 1
        # the right password is refused too while the account waits (a guesser cannot probe)
        right = await client.post("/api/login", json={"username": "trainee", "password": PASSWORDS[Role.TRAINEE]})
        assert right.status_code == 429
        twin.clock.now += timedelta(minutes=20)
        assert (
            await client.post("/api/login", json={"username": "trainee", "password": PASSWORDS[Role.TRAINEE]})
        ).status_code == 200


async def test_a_body_over_the_limit_is_refused_413_before_it_is_read(twin: Twin) -> None:
    async with _client(twin) as client:
        huge = b'{"username": "admin", "password": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        answer = await client.post("/api/login", content=huge, headers={"content-type": "application/json"})
        assert answer.status_code == 413
        assert answer.json()["reason"] == "body_too_large"

        async def chunks():  # no Content-Length: counted as it arrives
            for _ in range(40):
                yield b"x" * 65536

        streamed = await client.post("/api/login", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


async def test_a_refused_body_is_not_echoed_back(twin: Twin) -> None:
    marker = "SECRET-MARKER-" + "y" * 5000
    async with _client(twin) as client:
        answer = await client.post("/api/login", json={"username": marker, "password": 3, "extra": marker})
        assert answer.status_code == 422
        assert marker[:14] not in answer.text
        assert len(answer.content) < 2000
