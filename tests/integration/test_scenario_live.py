"""Live scenario runs on a real Mosquitto: the twin (with its HTTP API) and the scenario runner in
one process, as in ``pumptwin demo``, each run on pumps of its own (its own simulation and driver).
Start, a second run of the same scenario beside it (sites of its own) and the bound on runs, pause
(the run's clock stops), resume, abort (the pumps back to their baseline, the run's simulation
stopped). Every wait is on a condition, never on a duration."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import client_as
from tests.harness.live_sim import LiveSim, live_sim
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.app.serve import RunningTwin
from twin.contract.messages import CatheterState, MotorState
from twin.mirror.commands import CommandState
from twin.roles import Role
from twin.scenarios.runner import ScenarioRunner
from twin.scenarios.scenario_file import parse_scenario
from twin.service.events import Notice, TwinEvent

pytestmark = pytest.mark.integration

SITE = "scen-live"

LIVE_DRILL = f"""\
name: live-drill
title: Live drill
description: Faults on three simulated pumps.
learning_objectives: [Run a drill live]
speed: 1800
duration: 30d
fleet:
  kind: inline
  pumps:
    - {{device_id: sim-a, site: {SITE}, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {{mode: continuous, rate_ml_per_day: 0.3}}, reservoir_ml: 18}}
    - {{device_id: sim-b, site: {SITE}, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {{mode: continuous, rate_ml_per_day: 0.4}}, reservoir_ml: 15}}
    - {{device_id: sim-c, site: {SITE}, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {{mode: continuous, rate_ml_per_day: 0.4}}, reservoir_ml: 15}}
timeline:
  - {{at: 0s, id: occlusion, step: inject_fault, devices: {{ids: [sim-a]}},
     fault: {{fault: catheter_occlusion, fraction: 1.0}}}}
  - {{at: 30m, id: stall, step: inject_fault, devices: {{ids: [sim-b]}}, fault: {{fault: motor_stall}}}}
  - {{at: 10m, id: itch, step: patient_symptom, devices: {{ids: [sim-a]}}, symptom: itching without a rash,
     severity: moderate}}
  - {{at: 20d, id: late, step: inject_fault, devices: {{ids: [sim-c]}}, fault: {{fault: memory_error}}}}
expect:
  - {{kind: alarm, code: patient_report, devices: {{ids: [sim-a]}}, after: itch, within: 1h}}
  - {{kind: alarm, code: motor_stall, devices: {{ids: [sim-b]}}, after: stall, within: 10m}}
"""


@dataclass
class Live:
    harness: LiveSim
    twin: RunningTwin
    runner: ScenarioRunner
    api: httpx.AsyncClient
    notices: list[Notice]


@contextlib.asynccontextmanager
async def _live(mosquitto: Mosquitto, data_dir: Path) -> AsyncIterator[Live]:
    async with live_sim(
        mosquitto, data_dir, parse_scenario(LIVE_DRILL), client_id="test-scenario-twin", max_live_runs=2
    ) as live:
        notices: list[Notice] = []

        def heard(event: TwinEvent) -> None:
            if isinstance(event, Notice):
                notices.append(event)

        stop = live.twin.service.hub.listen(heard)
        try:
            async with client_as(live.twin.url, Role.INSTRUCTOR) as api:
                yield Live(live, live.twin, live.runner, api, notices)
        finally:
            stop()


def _scenario_events(notices: list[Notice]) -> list[str]:
    return [n.data["event"] for n in notices if n.kind == "scenario"]


def _step(run: dict, step_id: str) -> dict:
    (step,) = [s for s in run["report"]["steps"] if s["step"] == step_id]
    return step


async def test_start_beside_another_run_pause_resume_abort(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with _live(mosquitto, tmp_path) as live:
        service, api = live.twin.service, live.api

        listed = (await api.get("/api/scenarios")).json()
        assert [(s["name"], s["runnable"]) for s in listed] == [("live-drill", True)]
        assert (await api.post("/api/scenarios/nope/start", json={})).status_code == 404

        # ---- start: the run's own pumps, on sites of its own, at its own speed
        started = await api.post("/api/scenarios/live-drill/start", json={"speed": 3600})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        run = await live.harness.begun(run_id)
        driver, sim = live.harness.driver(run), live.harness.sim(run)
        assert driver.speed == 3600
        site = run.timeline.sites["sim-b"]
        assert site == f"tr-{run_id}.{SITE}"
        # ---- a second run of the same scenario beside it: its own pumps; a third is one too many
        other = await api.post("/api/scenarios/live-drill/start", json={"speed": 600})
        assert other.status_code == 201, other.text
        other_run = await live.harness.begun(other.json()["run_id"])
        assert other_run.timeline.sites["sim-b"] != site
        again = await api.post("/api/scenarios/live-drill/start", json={})
        assert (again.status_code, again.json()["reason"]) == (409, "too_many_runs")
        await live.runner.abort(other_run.run_id, "one is enough", by="instructor")
        await until(lambda: live.harness.driver(other_run).finished.is_set(), what="the second run's simulation stops")

        def stalled() -> bool:
            twin = service.twin_of("sim-b", site)
            return twin is not None and twin.reported is not None and twin.reported.motor is MotorState.STALLED

        await until(stalled, what="the stall step reaches sim-b")
        await until(
            lambda: f"{site}/sim-b/motor_stall" in service.fleet.board.alarms,
            what="the twin raises sim-b's motor stall",
        )
        assert f"{other_run.timeline.sites['sim-b']}/sim-b/motor_stall" not in service.fleet.board.alarms

        # ---- pause: the timeline and the simulation clock stop
        paused = await api.post(f"/api/scenario-runs/{run_id}/pause", json={})
        assert paused.status_code == 200
        assert paused.json()["status"] == "paused"
        assert driver.paused
        at_pause = sim.now
        done_at_pause = run.progress()["steps_done"]
        # the driver still applies commands while paused, at the paused time: a refill proves the
        # loop is alive, and its state's device time proves the clock did not move
        refill = {"type": "refill", "volume_ml": 18, "drug": "morphine", "concentration_mg_per_ml": 10.0}
        sent = await api.post(f"/api/devices/sim-c/commands?site={site}", json={"action": refill})
        assert sent.status_code == 202, sent.text
        command_id = sent.json()["command_id"]
        await until(
            lambda: service.fleet.commands[command_id].state is CommandState.APPLIED, what="the refill is applied"
        )
        await until(
            lambda: (s := service.twin_of("sim-c", site).reported) is not None and s.last_refill is not None,
            what="the refill's state reaches the twin",
        )
        sim_c = service.twin_of("sim-c", site).reported
        assert sim_c is not None
        assert sim_c.last_refill is not None
        assert sim_c.last_refill.at == sim.at(at_pause)
        assert sim.now == at_pause
        assert run.progress()["steps_done"] == done_at_pause
        assert (await api.get(f"/api/scenario-runs/{run_id}")).json()["progress"]["elapsed_s"] == round(
            at_pause - run.start_s, 3
        )

        # ---- resume: both run again
        resumed = await api.post(f"/api/scenario-runs/{run_id}/resume", json={})
        assert resumed.json()["status"] == "running"
        assert not driver.paused
        await until(lambda: sim.now > at_pause + 600, what="simulation time advances again")

        # ---- the report so far: both expected alarms, at the simulation time they happened
        await until(
            lambda: all(r.status == "met" for r in run.report().expectations), what="both expected alarms observed"
        )
        so_far = (await api.get(f"/api/scenario-runs/{run_id}")).json()["report"]["expectations"]
        assert [(e["code"], e["status"]) for e in so_far] == [("patient_report", "met"), ("motor_stall", "met")]
        stall_seen = so_far[1]["observed_at_s"]
        assert stall_seen == 1800  # raised at the 30m step: the device time of the pump's alarm

        # ---- abort: the kill switch
        aborted = await api.post(f"/api/scenario-runs/{run_id}/abort", json={"reason": "drill over"})
        assert aborted.status_code == 200
        result = aborted.json()
        assert result["status"] == "aborted"
        assert (result["aborted_reason"], result["aborted_by"]) == ("drill over", "instructor")
        assert _step(result, "late")["status"] == "dropped"
        restores = [s for s in result["report"]["steps"] if s["step"] == "abort"]
        assert sorted(s["device_id"] for s in restores) == [
            "sim-a",
            "sim-b",
        ]  # not the untouched one
        assert (await api.post(f"/api/scenario-runs/{run_id}/pause", json={})).status_code == 409

        restore_ids = [
            c.command_id
            for c in service.fleet.commands.values()
            if c.command.action.type == "clear_fault" and c.site == site
        ]
        assert len(restore_ids) == 2
        await until(
            lambda: all(service.fleet.commands[c].state is CommandState.APPLIED for c in restore_ids),
            what="both pumps apply clear_fault: all",
        )
        await until(lambda: driver.finished.is_set(), what="the aborted run's simulation stops")

        def baseline() -> bool:
            b = service.twin_of("sim-b", site)
            return b.reported is not None and b.reported.motor is MotorState.RUNNING

        assert sim.devices["sim-a"].pump.catheter is CatheterState.PATENT  # the simulator's truth
        await until(baseline, what="sim-a's catheter patent and sim-b's motor running, as the twin sees them")
        assert f"{site}/sim-b/motor_stall" in service.fleet.board.alarms
        assert not service.fleet.board.alarms[f"{site}/sim-b/motor_stall"].condition_active
        assert sim.devices["sim-c"].pump.memory_error is False  # the dropped step never happened

        listed_runs = (await api.get("/api/scenario-runs")).json()
        assert [(r["run_id"], r["status"]) for r in listed_runs] == [(run_id, "aborted"), (other_run.run_id, "aborted")]
        assert listed_runs[0]["expectations"] == {"met": 2, "missed": 0, "pending": 0}
        assert "report" not in listed_runs[0]  # the list stays small; the run's own page has the report


async def test_run_status_changes_go_out_on_the_bus(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with _live(mosquitto, tmp_path) as live:
        run = live.runner.start("live-drill", speed=3600, started_by="instructor")
        live.runner.pause(run.run_id)
        live.runner.resume(run.run_id)
        await live.runner.abort(run.run_id, "enough", by="instructor")
        events = [e for e in _scenario_events(live.notices) if e not in ("step", "patient_symptom")]
        assert events == ["started", "paused", "resumed", "aborted"]
