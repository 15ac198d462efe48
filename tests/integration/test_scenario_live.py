"""Live scenario runs on a real Mosquitto: the simulator driver, the twin (with its HTTP API) and the
scenario runner in one process, as in ``pumptwin demo``. Start, pause (the simulation clock stops),
resume, abort (the pumps back to their baseline), and a fault aimed at a real pump refused and
recorded. Every wait is on a condition, never on a duration."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import httpx
import pytest

from tests.harness.accounts import client_as
from tests.harness.live_sim import live_sim
from tests.harness.mqtt import hostname_port
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.app.serve import RunningTwin
from twin.contract import examples
from twin.contract.codec import encode
from twin.contract.messages import CatheterState, MotorState
from twin.contract.topics import Channel, build_topic
from twin.mirror.commands import CommandState
from twin.roles import Role
from twin.scenarios.runner import ScenarioRunner
from twin.scenarios.scenario_file import parse_scenario
from twin.service.events import Notice, TwinEvent
from twin.sim.driver import SimDriver
from twin.sim.simulation import FleetSimulation

pytestmark = pytest.mark.integration

SITE = "scen-live"
REAL = "real-0001"

LIVE_DRILL = f"""\
name: live-drill
title: Live drill
description: Faults on three simulated pumps, and one aimed at a real pump (which the twin refuses).
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
    - {{device_id: {REAL}, site: {SITE}, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {{mode: continuous, rate_ml_per_day: 0.3}}, reservoir_ml: 10}}
timeline:
  - {{at: 0s, id: occlusion, step: inject_fault, devices: {{ids: [sim-a]}},
     fault: {{fault: catheter_occlusion, fraction: 1.0}}}}
  - {{at: 0s, id: real-fault, step: inject_fault, devices: {{ids: [{REAL}]}}, fault: {{fault: motor_stall}}}}
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
    twin: RunningTwin
    driver: SimDriver
    sim: FleetSimulation
    runner: ScenarioRunner
    api: httpx.AsyncClient
    notices: list[Notice]


async def _publish_real_pump(mosquitto: Mosquitto) -> None:
    """A gateway's read-out of a real pump: birth with ``simulated: false``, then its state."""
    birth = examples.birth().model_copy(update={"device_id": REAL, "simulated": False})
    state = examples.state().model_copy(update={"device_id": REAL})
    host, port = hostname_port(mosquitto.url)
    async with aiomqtt.Client(host, port) as client:
        await client.publish(build_topic(SITE, REAL, Channel.BIRTH), encode(birth), qos=1, retain=True)
        await client.publish(build_topic(SITE, REAL, Channel.STATE), encode(state), qos=1, retain=True)


@contextlib.asynccontextmanager
async def _live(mosquitto: Mosquitto, data_dir: Path) -> AsyncIterator[Live]:
    async with live_sim(
        mosquitto,
        data_dir,
        parse_scenario(LIVE_DRILL),
        client_id="test-scenario-twin",
        seed=5,
        real=[REAL],
        prepare=lambda: _publish_real_pump(mosquitto),
    ) as live:
        notices: list[Notice] = []

        def heard(event: TwinEvent) -> None:
            if isinstance(event, Notice):
                notices.append(event)

        stop = live.twin.service.hub.listen(heard)
        try:
            async with client_as(live.twin.url, Role.INSTRUCTOR) as api:
                yield Live(live.twin, live.driver, live.sim, live.runner, api, notices)
        finally:
            stop()


def _scenario_events(notices: list[Notice]) -> list[str]:
    return [n.data["event"] for n in notices if n.kind == "scenario"]


def _step(run: dict, step_id: str) -> dict:
    (step,) = [s for s in run["report"]["steps"] if s["step"] == step_id]
    return step


async def test_start_pause_resume_abort_and_a_real_pump_refused(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with _live(mosquitto, tmp_path) as live:
        service, sim, api = live.twin.service, live.sim, live.api

        listed = (await api.get("/api/scenarios")).json()
        assert [(s["name"], s["runnable"]) for s in listed] == [("live-drill", True)]
        assert (await api.post("/api/scenarios/nope/start", json={})).status_code == 404

        # ---- start
        started = await api.post("/api/scenarios/live-drill/start", json={"speed": 3600})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        run = live.runner.get(run_id)
        assert live.driver.speed == 3600
        again = await api.post("/api/scenarios/live-drill/start", json={})
        assert again.status_code == 409
        assert again.json()["reason"] == "run_active"

        def stalled() -> bool:
            twin = service.twin_of("sim-b")
            return twin.reported is not None and twin.reported.motor is MotorState.STALLED

        await until(stalled, what="the stall step reaches sim-b")
        await until(
            lambda: f"{SITE}/sim-b/motor_stall" in service.fleet.board.alarms,
            what="the twin raises sim-b's motor stall",
        )

        # ---- the fault aimed at the real pump: refused by the twin, recorded, the run goes on
        body = (await api.get(f"/api/scenario-runs/{run_id}")).json()
        real = _step(body, "real-fault")
        assert real["status"] == "refused"
        assert real["reason"].startswith("real_device_read_only")
        assert not [c for c in service.fleet.commands.values() if c.device_id == REAL]
        assert body["status"] == "running"

        # ---- pause: the timeline and the simulation clock stop
        paused = await api.post(f"/api/scenario-runs/{run_id}/pause", json={})
        assert paused.status_code == 200
        assert paused.json()["status"] == "paused"
        assert live.driver.paused
        at_pause = sim.now
        done_at_pause = run.progress()["steps_done"]
        # the driver still applies commands while paused, at the paused time: a refill proves the
        # loop is alive, and its state's device time proves the clock did not move
        refill = {"type": "refill", "volume_ml": 18, "drug": "morphine", "concentration_mg_per_ml": 10.0}
        sent = await api.post("/api/devices/sim-c/commands", json={"action": refill})
        assert sent.status_code == 202, sent.text
        command_id = sent.json()["command_id"]
        await until(
            lambda: service.fleet.commands[command_id].state is CommandState.APPLIED, what="the refill is applied"
        )
        await until(
            lambda: (s := service.twin_of("sim-c").reported) is not None and s.last_refill is not None,
            what="the refill's state reaches the twin",
        )
        sim_c = service.twin_of("sim-c").reported
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
        assert not live.driver.paused
        await until(lambda: sim.now > at_pause + 600, what="simulation time advances again")

        # ---- the report so far: both expected alarms, at the simulation time they happened
        await until(
            lambda: all(r.status == "met" for r in run.report().expectations), what="both expected alarms observed"
        )
        so_far = (await api.get(f"/api/scenario-runs/{run_id}")).json()["report"]["expectations"]
        assert [(e["code"], e["status"]) for e in so_far] == [("patient_report", "met"), ("motor_stall", "met")]
        stall_seen = so_far[1]["observed_at_s"]
        assert 1800 <= stall_seen <= 1800 + 600  # raised at the 30m step (the twin's estimate of the pump's clock)

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
        ]  # not the real pump, not the untouched one
        assert (await api.post(f"/api/scenario-runs/{run_id}/pause", json={})).status_code == 409

        restore_ids = [c.command_id for c in service.fleet.commands.values() if c.command.action.type == "clear_fault"]
        assert len(restore_ids) == 2
        await until(
            lambda: all(service.fleet.commands[c].state is CommandState.APPLIED for c in restore_ids),
            what="both pumps apply clear_fault: all",
        )
        cleared_at = sim.now

        def baseline() -> bool:
            a, b = service.twin_of("sim-a"), service.twin_of("sim-b")
            tele = a.telemetry
            return (
                b.reported is not None
                and b.reported.motor is MotorState.RUNNING
                and tele is not None
                and tele.device_time >= sim.at(cleared_at)
                and tele.sim_truth is not None
                and tele.sim_truth.catheter is CatheterState.PATENT
            )

        await until(baseline, what="sim-a's catheter patent and sim-b's motor running, as the twin sees them")
        assert f"{SITE}/sim-b/motor_stall" in service.fleet.board.alarms
        assert not service.fleet.board.alarms[f"{SITE}/sim-b/motor_stall"].condition_active
        assert sim.devices["sim-c"].pump.memory_error is False  # the dropped step never happened

        listed_runs = (await api.get("/api/scenario-runs")).json()
        assert [(r["run_id"], r["status"]) for r in listed_runs] == [(run_id, "aborted")]
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
