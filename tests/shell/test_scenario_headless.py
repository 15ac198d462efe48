"""Scenarios played headless (simulation and twin in-process, no broker): the catalogue is its own
regression suite, a seed fixes the report, and the kill switch restores the safe baseline."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.harness.scenario_drills import DRILL
from twin.app.headless import HeadlessRun, run_headless
from twin.contract.messages import CatheterState, MotorState, RefillAction
from twin.scenarios.evaluation import RunStatus, report_json
from twin.scenarios.model import InjectFaultStep, RefillStep, Scenario
from twin.scenarios.scenario_file import CATALOGUE_DIR, load_library, parse_scenario, scenario_files

CATALOGUE = scenario_files(CATALOGUE_DIR)


@pytest.fixture(scope="module")
def library() -> dict[str, Scenario]:
    return load_library()


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_every_catalogue_scenario_meets_its_expectations(path: Path, library: dict[str, Scenario]) -> None:
    scenario = library[path.stem]  # the file is named after the scenario
    report = run_headless(scenario)
    missed = [(r.expected.description, r.detail) for r in report.expectations if r.status != "met"]
    assert missed == []
    assert report.expectations, "a catalogue scenario expects something"
    assert report.status.final
    outcomes = Counter(s.status for s in report.steps)
    assert set(outcomes) <= {"applied", "recorded", "dropped"}, outcomes
    if report.status is RunStatus.COMPLETED:
        assert "dropped" not in outcomes
        assert report.elapsed_s == report.duration_s
    symptoms = [e for e in report.events if e.kind == "patient_symptom"]
    assert len(symptoms) == outcomes["recorded"]
    assert all(e.severity is not None for e in symptoms)


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_same_scenario_and_seed_give_the_same_report(path: Path, library: dict[str, Scenario]) -> None:
    scenario = library[path.stem]
    assert report_json(run_headless(scenario)) == report_json(run_headless(scenario))


def test_a_seed_replaces_the_scenarios_and_is_reported(library: dict[str, Scenario]) -> None:
    scenario = library["refill-discrepancy"]
    first, again = run_headless(scenario, seed=4242), run_headless(scenario, seed=4242)
    assert first.seed == 4242
    assert report_json(first) == report_json(again)


def test_the_catalogue_covers_the_domain_failure_modes(library: dict[str, Scenario]) -> None:
    faults: Counter[str] = Counter()
    stalls = {"recovers": 0, "permanent": 0}
    armed = {"pocket_fill": 0, "wrong_concentration": 0, "incomplete_withdrawal": 0, "catheter_access_port": 0}
    for scenario in library.values():
        for step in scenario.timeline:
            if isinstance(step, InjectFaultStep):
                faults[step.fault.fault] += 1
                if step.fault.fault == "motor_stall" and step.fault.cause == "mri":
                    stalls["recovers" if step.fault.recover_after_s is not None else "permanent"] += 1
            if isinstance(step, RefillStep):
                armed["pocket_fill"] += step.pocket_fill_fraction is not None
                armed["wrong_concentration"] += step.syringe_concentration_mg_per_ml is not None
                armed["incomplete_withdrawal"] += step.residual_withdrawn_fraction is not None
                armed["catheter_access_port"] += step.into_catheter_access_port
    expected_codes = {e.code.value for s in library.values() for e in s.expect if e.kind == "alarm"}
    assert {
        "catheter_occlusion",
        "catheter_leak",
        "motor_stall",
        "memory_error",
        "telemetry_loss",
        "flow_error",
        "mri_valve_opening",
    } <= set(faults)
    assert stalls == {"recovers": 2, "permanent": 1}
    assert armed == {"pocket_fill": 1, "wrong_concentration": 3, "incomplete_withdrawal": 1, "catheter_access_port": 1}
    assert {
        "reservoir_low",
        "reservoir_empty",
        "battery_eri",
        "battery_eos",
        "refill_discrepancy",
        "device_silent",
        "patient_report",
        "concentration_changed",
        "dose_escalation",
        "infusion_stopped",
        "reservoir_low_predicted",
        "reservoir_empty_predicted",
    } <= expected_codes
    steps = {s.step for scenario in library.values() for s in scenario.timeline}
    assert {"interrogate", "reprogram", "refill", "patient_symptom"} <= steps
    assert any(e.kind == "alarm_flood" for s in library.values() for e in s.expect)
    combined = library["combined-faults"]
    assert len({type(s).__name__ + getattr(getattr(s, "fault", None), "fault", "") for s in combined.timeline}) >= 4
    for scenario in library.values():
        assert scenario.learning_objectives
        assert any(getattr(e, "responses", None) for e in scenario.expect), scenario.name


async def test_an_abort_condition_pulls_the_kill_switch_and_restores_the_baseline() -> None:
    headless = HeadlessRun(parse_scenario(DRILL))
    if headless:
        report = await headless.play()
        assert report.status is RunStatus.ABORTED
        assert report.aborted_reason == "high-priority alarm s1/p2/motor_stall unacknowledged for longer than 4h"
        assert report.aborted_by == "scenario:kill-switch"
        assert report.elapsed_s == 5 * 3600
        by_step = {(s.cue.step_id, s.cue.device_id): s for s in report.steps}
        assert by_step[("bolus", "p2")].status == "rejected"  # a stalled pump refuses a bolus
        assert "not infusing" in (by_step[("bolus", "p2")].reason or "")
        assert by_step[("late", "p3")].status == "dropped"
        assert {d for (step, d), s in by_step.items() if step == "abort" and s.status == "applied"} == {"p1", "p2"}
        statuses = {r.expected.device_ids[0]: r.status for r in report.expectations}
        assert statuses == {"p2": "met", "p3": "missed"}
        # the pumps the run touched are back to their baseline; the untouched one never got its fault
        pumps = {d: headless.sim.devices[d].pump for d in ("p1", "p2", "p3")}
        assert pumps["p1"].catheter is CatheterState.PATENT
        assert pumps["p2"].motor is MotorState.RUNNING
        assert not pumps["p3"].memory_error
        assert [c.command.actor for c in headless.service.fleet.commands.values()] == ["scenario:kill-switch"] * 5
        # the twin sees it too: the next telemetry after the restore carries the truth
        await headless.stage.run(headless.sim.now + 3600)
        telemetry = headless.service.fleet.by_id("p1")[0].telemetry
        assert telemetry is not None
        assert telemetry.sim_truth is not None
        assert telemetry.sim_truth.catheter is CatheterState.PATENT


def test_without_abort_conditions_the_run_goes_to_the_end() -> None:
    report = run_headless(parse_scenario(DRILL), abort_conditions=False)
    assert report.status is RunStatus.COMPLETED
    assert report.all_met
    assert [e.kind for e in report.events if e.kind == "patient_symptom"] == ["patient_symptom"]


def test_a_missed_expectation_is_reported_missed() -> None:
    text = DRILL.replace(
        "{kind: alarm, code: memory_error, devices: {ids: [p3]}",
        "{kind: alarm, code: battery_eos, devices: {ids: [p3]}",
    )
    report = run_headless(parse_scenario(text), abort_conditions=False)
    assert not report.all_met
    (missed,) = report.missed
    assert missed.expected.code == "battery_eos"
    assert missed.observed_at_s is None


async def test_refill_steps_send_what_the_pump_is_filled_with() -> None:
    text = DRILL.replace(
        "  - {at: 12h, id: late",
        "  - {at: 5h, id: refill, step: refill, devices: {ids: [p3]}, volume_ml: 18, syringe_concentration_mg_per_ml: 20}\n"
        "  - {at: 12h, id: late",
    )
    headless = HeadlessRun(parse_scenario(text), abort_conditions=False)
    if headless:
        report = await headless.play()
        refills = [
            c.command.action for c in headless.service.fleet.commands.values() if c.command.action.type == "refill"
        ]
        assert refills == [RefillAction(volume_ml=18, drug="morphine", concentration_mg_per_ml=10.0)]
        assert headless.sim.devices["p3"].pump.actual_concentration_mg_per_ml == 20.0
        # the truth changed; nothing a real twin could see did: no alert on p3 after the refill
        assert not [a for a in report.alarms if a.transition.device_id == "p3" and 5 * 3600 <= a.at_s < 12 * 3600]
