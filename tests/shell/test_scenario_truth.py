"""Truth stays behind the glass: the catalogue, played with the simulator's ground truth stripped from
every message before the twin sees it, raises exactly the same alarms at the same times and meets
exactly the same expectations. So no expectation trainees are scored on, and no alarm the twin
raises, is met by ``sim_truth``: a real twin, which never has it, would do the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.contract.messages import Telemetry
from twin.scenarios.evaluation import ScenarioReport
from twin.scenarios.model import Scenario
from twin.scenarios.runner import HeadlessRun
from twin.scenarios.scenario_file import CATALOGUE_DIR, load_library, scenario_files
from twin.sim.device import Outgoing, SimulatedDevice

CATALOGUE = scenario_files(CATALOGUE_DIR)


@pytest.fixture(scope="module")
def library() -> dict[str, Scenario]:
    return load_library()


def _play(scenario: Scenario, *, strip_truth: bool) -> tuple[ScenarioReport, int, int]:
    """Headless, without abort conditions (the instructor's no-delivery kill switch reads the truth on
    purpose); returns the report and how many telemetry samples reached the twin with and without truth."""
    with HeadlessRun(scenario, abort_conditions=False) as headless:
        deliver = headless.sim.sink
        seen = {"truth": 0, "blind": 0}

        def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
            message = outgoing.message
            if isinstance(message, Telemetry):
                if strip_truth and message.sim_truth is not None:
                    outgoing = Outgoing(outgoing.channel, message.model_copy(update={"sim_truth": None}))
                seen["truth" if outgoing.message.sim_truth is not None else "blind"] += 1  # type: ignore[union-attr]
            deliver(device, outgoing, t)

        headless.sim.sink = sink
        report = headless.play()
        return report, seen["truth"], seen["blind"]


def _alarms(report: ScenarioReport) -> list[tuple[float, str, str, str, str]]:
    return [
        (round(a.at_s, 3), a.transition.device_id, a.transition.code, a.transition.event.value, a.transition.priority)
        for a in report.alarms
    ]


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_the_catalogue_without_ground_truth_raises_and_meets_the_same(path: Path, library: dict[str, Scenario]) -> None:
    scenario = library[path.stem]
    seeing, with_truth, _ = _play(scenario, strip_truth=False)
    blind, leaked, without_truth = _play(scenario, strip_truth=True)
    assert with_truth > 0, "the simulator does publish its truth (the comparison means something)"
    assert leaked == 0
    assert without_truth > 0
    assert _alarms(blind) == _alarms(seeing)
    assert [(r.expected.index, r.status, r.observed_at_s) for r in blind.expectations] == [
        (r.expected.index, r.status, r.observed_at_s) for r in seeing.expectations
    ]
    assert all(r.status == "met" for r in blind.expectations), [
        (r.expected.description, r.detail) for r in blind.expectations if r.status != "met"
    ]
