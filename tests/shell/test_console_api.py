"""What the console's pages read from the API, in process: the fleet's dates on the pump's clock,
the alarm guidance and the instructor's switch that withholds it, and the API docs served from the
twin's own files."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.inproc import feed, new_service
from twin.alarms.guidance import GUIDANCE
from twin.api import views
from twin.api.app import create_app
from twin.api.console import DOCS_ASSETS_PATH
from twin.api.cues import CUE_CODE, cue_key
from twin.contract import examples
from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode, Priority
from twin.contract.codec import encode
from twin.contract.messages import SimClock
from twin.contract.topics import Channel, site_topic
from twin.mirror.alerts import PatientReport, TwinAlertCode
from twin.roles import Role
from twin.service.twin_service import Received, TwinService
from twin.settings import AuthSettings
from twin.store.users import UserStore

SITE, DEVICE = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
"""The wall clock, months after the example's device time: ages must come from the device clock."""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, TwinService, Clock]]:
    clock = Clock()
    users = UserStore(tmp_path / "users.sqlite")
    service = await new_service(tmp_path / "journal.sqlite", clock=clock)
    await feed(service, SITE, DEVICE, [(Channel.BIRTH, examples.birth()), (Channel.STATE, examples.state())])
    add_accounts(users, at=clock.now)
    yield create_app(service, users=users, auth=AuthSettings()), service, clock
    users.close()
    await service.store.close()


async def _client(app: FastAPI, role: Role | None) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin.test")
    if role is not None:
        await sign_in(client, role)
    return client


@pytest.fixture
async def clients(app: tuple[FastAPI, TwinService, Clock]) -> AsyncIterator[dict[Role | None, httpx.AsyncClient]]:
    made = {role: await _client(app[0], role) for role in (None, Role.TRAINEE, Role.INSTRUCTOR)}
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


def test_the_guidance_covers_every_alarm_the_twin_can_raise() -> None:
    assert set(GUIDANCE) == {c.value for c in AlarmCode} | {c.value for c in TwinAlertCode}
    for code, spec in ALARM_CATALOGUE.items():
        assert GUIDANCE[code.value].staff_response == spec.staff_response
    assert all(g.meaning and g.staff_response and g.title for g in GUIDANCE.values())


async def test_the_fleet_summary_dates_are_on_the_pumps_clock(
    app: tuple[FastAPI, TwinService, Clock], clients: dict[Role | None, httpx.AsyncClient]
) -> None:
    _, _, clock = app
    clock.now = START + timedelta(seconds=30)  # 30 wall seconds after the report, at the clock rate 1
    [summary] = (await clients[Role.TRAINEE].get("/api/devices")).json()
    state = examples.state()
    assert datetime.fromisoformat(summary["as_of"]) == clock.now
    assert datetime.fromisoformat(summary["device_now"]) == state.device_time + timedelta(seconds=30)
    assert summary["clock_rate"] == 1.0
    assert summary["report_age_s"] == pytest.approx(30.0)  # not months: the wall clock is not the pump's
    assert summary["message_age_s"] == pytest.approx(30.0)  # the state is the latest message too
    assert datetime.fromisoformat(summary["reported_device_time"]) == state.device_time
    assert datetime.fromisoformat(summary["refill_due_at"]) == state.refill_reminder_at
    implant = examples.birth().implant_date
    assert summary["implant_age_days"] == pytest.approx((state.device_time - implant).total_seconds() / 86400, abs=0.01)
    assert summary["days_to_empty"] is not None
    assert summary["days_to_empty"] > 0
    empty_at = datetime.fromisoformat(summary["empty_at"])
    device_now = datetime.fromisoformat(summary["device_now"])
    assert summary["days_to_empty"] == pytest.approx((empty_at - device_now).total_seconds() / 86400)
    assert summary["forecast_days"] == 3 * 365
    detail = (await clients[Role.TRAINEE].get(f"/api/devices/{DEVICE}")).json()
    assert detail["summary"]["device_now"] == summary["device_now"]


async def test_a_simulated_pump_runs_on_its_sites_simulation_clock_paused_or_not(tmp_path: Path) -> None:
    clock = Clock()
    service = await new_service(tmp_path / "journal.sqlite", clock=clock)
    try:
        birth = examples.birth().model_copy(update={"simulated": True})
        await feed(service, SITE, DEVICE, [(Channel.BIRTH, birth), (Channel.STATE, examples.state())])
        sim_time = examples.state().device_time + timedelta(days=2)
        for seq, speed in ((1, 600.0), (2, 0.0)):
            tick = SimClock(site=SITE, sim_time=sim_time, speed=speed, seq=seq, run="run-a")
            await service.ingest([Received(site_topic(SITE), encode(tick), clock.now)])
            clock.now += timedelta(seconds=10)  # ten wall seconds after the clock message
            twin = service.fleet.devices[(SITE, DEVICE)]
            summary = views.summary(service.fleet, twin, clock.now)
            assert summary.clock_rate == speed
            assert summary.device_now == sim_time + timedelta(seconds=10 * speed)  # held still when paused
            assert summary.report_age_s == pytest.approx(
                (summary.device_now - examples.state().device_time).total_seconds()
            )
            sim_time = summary.device_now
    finally:
        await service.store.close()


async def test_an_instructor_hides_the_guidance_from_trainees_and_the_server_withholds_it(
    app: tuple[FastAPI, TwinService, Clock], clients: dict[Role | None, httpx.AsyncClient]
) -> None:
    _, service, _ = app
    trainee, instructor = clients[Role.TRAINEE], clients[Role.INSTRUCTOR]
    assert (await clients[None].get("/api/alarm-guidance")).status_code == 401
    shown = (await trainee.get("/api/alarm-guidance")).json()
    assert shown["hidden"] is False
    assert shown["codes"]["motor_stall"]["staff_response"] == ALARM_CATALOGUE[AlarmCode.MOTOR_STALL].staff_response
    assert (await trainee.put("/api/alarm-guidance", json={"hidden": True})).status_code == 403
    sub = service.hub.subscribe()
    assert (await instructor.put("/api/alarm-guidance", json={"hidden": True})).status_code == 200
    [(_, kind, data)] = await sub.next()
    assert (kind, json.loads(data)) == ("guidance", {"hidden": True, "by": "instructor"})
    hidden = (await trainee.get("/api/alarm-guidance")).json()
    assert hidden == {"hidden": True, "codes": {}}
    assert (await instructor.get("/api/alarm-guidance")).json()["codes"]  # the instructor still reads it
    assert (await instructor.put("/api/alarm-guidance", json={"hidden": False})).status_code == 200
    assert (await trainee.get("/api/alarm-guidance")).json()["codes"]
    assert (await instructor.put("/api/alarm-guidance", json={"hidden": "yes", "x": 1})).status_code == 422


async def test_the_api_docs_come_from_the_twin_itself(clients: dict[Role | None, httpx.AsyncClient]) -> None:
    anonymous = clients[None]
    for path, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = await anonymous.get(path)
        assert page.status_code == 200
        assert f"{DOCS_ASSETS_PATH}/{asset}" in page.text
        assert "cdn" not in page.text.lower()
        assert "fonts.googleapis" not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = await anonymous.get(f"{DOCS_ASSETS_PATH}/{asset}")
        assert script.status_code == 200
        assert len(script.content) > 100_000
    assert "validatorUrl" in (await anonymous.get("/docs")).text
    assert (await anonymous.get(f"{DOCS_ASSETS_PATH}/swagger-ui.css")).status_code == 200


async def test_patient_reports_are_read_by_everyone_and_answered_by_trainees(tmp_path: Path) -> None:
    from tests.harness.scenario_drills import DRILL
    from twin.scenarios.runner import ScenarioRunner
    from twin.scenarios.scenario_file import parse_scenario

    service = await new_service(tmp_path / "journal.sqlite", clock=Clock())
    with UserStore(tmp_path / "users.sqlite") as users:
        add_accounts(users)
        runner = ScenarioRunner({"kill-switch": parse_scenario(DRILL)})
        app = create_app(service, users=users, auth=AuthSettings(), scenarios=runner)
        viewer, trainee = await _client(app, Role.VIEWER), await _client(app, Role.TRAINEE)
        try:
            assert (await viewer.get("/api/cues")).json() == []  # no run yet
            answer = {"action": "assess_withdrawal", "note": "checked"}
            assert (await viewer.post("/api/cues/run-1/pain/p1/responses", json=answer)).status_code == 403
            unknown = await trainee.post("/api/cues/run-1/pain/p1/responses", json=answer)
            assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown_cue")
            bad = await trainee.post("/api/cues/run-1/pain/p1/responses", json={"action": "dance"})
            assert bad.status_code == 422
        finally:
            await viewer.aclose()
            await trainee.aclose()
            await service.store.close()


async def test_a_cards_answers_go_to_the_patient_report_alarm_the_twin_raises_for_the_report(
    app: tuple[FastAPI, TwinService, Clock],
) -> None:
    _, service, clock = app
    await service.patient_report((SITE, DEVICE), PatientReport(clock.now, "severe pain at the pump", Priority.HIGH))
    key = cue_key(SITE, DEVICE)
    alarm = service.fleet.board.alarms[key]  # the alarm point a card's answers are recorded against
    assert (alarm.code, alarm.priority, alarm.condition_active) == (CUE_CODE, Priority.HIGH, True)


async def test_the_device_history_is_the_pumps_own_figures_in_device_time_order(
    app: tuple[FastAPI, TwinService, Clock], clients: dict[Role | None, httpx.AsyncClient]
) -> None:
    """Samples that arrive late are plotted where they belong; the page gets at most ``limit`` of
    the latest; nothing of the simulator's truth; and what the twin keeps in memory is exact tuples
    of atomic values, which the cyclic collector stops tracking (``HistorySample``)."""
    _, service, _ = app
    first = examples.telemetry()
    assert first.sim_truth is not None  # a simulated pump's sample: the history must leave its truth out
    order = [0, 2, 1, 4, 3]  # seq 2 arrives before seq 1, 4 before 3
    samples = [
        first.model_copy(
            update={
                "seq": first.seq + i,
                "device_time": first.device_time + timedelta(minutes=10 * i),
                "reservoir_ml": first.reservoir_ml - 0.01 * i,
            }
        )
        for i in order
    ]
    await feed(service, SITE, DEVICE, [(Channel.TELEMETRY, s) for s in samples])
    answer = await clients[Role.TRAINEE].get(f"/api/devices/{DEVICE}/history", params={"limit": 4})
    assert answer.status_code == 200
    body = answer.json()
    assert [datetime.fromisoformat(s["device_time"]) for s in body] == [
        first.device_time + timedelta(minutes=10 * i) for i in (1, 2, 3, 4)
    ]
    assert [s["reservoir_ml"] for s in body] == pytest.approx([first.reservoir_ml - 0.01 * i for i in (1, 2, 3, 4)])
    assert all(not any("true" in name or "truth" in name for name in s) for s in body)
    kept = service.history[(SITE, DEVICE)]
    assert len(kept) == 5
    gc.collect()
    assert not any(gc.is_tracked(s) for s in kept)
