"""The scenario routes in-process (no broker): what is refused, and why."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.scenario_drills import DRILL
from twin.api.app import create_app
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.scenarios.runner import ScenarioRunner
from twin.scenarios.scenario_file import parse_scenario
from twin.service.twin_service import TwinService
from twin.settings import AuthSettings
from twin.sim.driver import SimDriver
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.store.journal import Journal
from twin.store.users import UserStore

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TwinService]:
    with Journal(tmp_path / "journal.sqlite") as journal:
        yield TwinService(journal)


@pytest.fixture
def runner() -> ScenarioRunner:
    return ScenarioRunner({"kill-switch": parse_scenario(DRILL)})


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "users.sqlite")
    add_accounts(store)
    yield store
    store.close()


def _app(service: TwinService, users: UserStore, runner: ScenarioRunner | None) -> httpx.AsyncClient:
    app = create_app(service, users=users, auth=AuthSettings(), scenarios=runner)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin")


@pytest.fixture
async def api(service: TwinService, runner: ScenarioRunner, users: UserStore) -> AsyncIterator[httpx.AsyncClient]:
    async with _app(service, users, runner) as client:
        await sign_in(client, Role.INSTRUCTOR)
        yield client


async def test_scenario_routes_need_a_session_and_an_instructor(
    service: TwinService, runner: ScenarioRunner, users: UserStore
) -> None:
    async with _app(service, users, runner) as anonymous:
        assert (await anonymous.get("/api/scenarios")).status_code == 401
        assert (await anonymous.post("/api/scenarios/kill-switch/start", json={})).status_code == 401
    async with _app(service, users, runner) as trainee:
        await sign_in(trainee, Role.TRAINEE)
        assert (await trainee.get("/api/scenarios")).status_code == 200
        refused = await trainee.post("/api/scenarios/kill-switch/start", json={})
        assert (refused.status_code, refused.json()["reason"]) == (403, "forbidden")
        assert (await trainee.post("/api/scenario-runs/run-1/abort", json={})).status_code == 403


def _driver(speed: float | None) -> SimDriver:
    sim = FleetSimulation(generate_fleet(2, seed=1, start=EPOCH), epoch=EPOCH, seed=1, sink=lambda *_: None)
    return SimDriver(sim, MqttEndpoint.parse("mqtt://127.0.0.1:1"), speed=speed)  # never connected here


async def test_the_catalogue_is_listed_and_described(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/api/scenarios")).json()
    assert [(s["name"], s["steps"], s["abort_conditions"]) for s in listed] == [
        ("kill-switch", 5, ["unacknowledged_alarm"])
    ]
    assert (listed[0]["runnable"], listed[0]["not_runnable_because"]) == (
        False,
        "no simulation is running in this process",
    )
    one = (await api.get("/api/scenarios/kill-switch")).json()
    assert one["scenario"]["timeline"][0]["fault"] == {"fault": "motor_stall", "cause": "wear", "recover_after_s": None}
    assert (await api.get("/api/scenarios/nope")).json()["reason"] == "unknown_scenario"
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/api/scenarios/{name}/start", "/api/scenario-runs/{run_id}/abort"} <= set(paths)


async def test_starting_without_a_simulation_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/scenarios/kill-switch/start", json={})
    assert response.status_code == 503
    assert response.json()["reason"] == "not_attached"
    assert (await api.get("/api/scenario-runs")).json() == []
    missing = await api.post("/api/scenario-runs/run-9/abort", json={"reason": "x"})
    assert (missing.status_code, missing.json()["reason"]) == (404, "unknown_run")


async def test_a_run_owns_its_pumps_so_any_scenario_is_runnable_and_the_bound_is_kept(
    api: httpx.AsyncClient, service: TwinService, runner: ScenarioRunner
) -> None:
    runner.attach(service, lambda sim, speed: SimDriver(sim, MqttEndpoint.parse("mqtt://127.0.0.1:1"), speed=speed))
    (listed,) = (await api.get("/api/scenarios")).json()
    assert (listed["runnable"], listed["not_runnable_because"]) == (True, None)  # the twin mirrors none of p1..p3
    runner.max_live_runs = 0
    response = await api.post("/api/scenarios/kill-switch/start", json={})
    assert (response.status_code, response.json()["reason"]) == (409, "too_many_runs")
    assert (await api.get("/api/scenario-runs")).json() == []
    bad = await api.post("/api/scenarios/kill-switch/start", json={"speed": -1})
    assert bad.status_code == 422


async def test_without_a_runner_the_api_has_no_scenario_routes(service: TwinService, users: UserStore) -> None:
    async with _app(service, users, None) as client:
        await sign_in(client, Role.INSTRUCTOR)
        assert (await client.get("/api/scenarios")).status_code == 404
        assert "/api/scenarios" not in (await client.get("/openapi.json")).json()["paths"]
