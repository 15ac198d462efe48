"""Truth stays behind the glass: the catalogue, played with the simulator's ground truth stripped from
every message before the twin sees it, raises exactly the same alarms at the same times and meets
exactly the same expectations. So no expectation trainees are scored on, and no alarm the twin
raises, is met by ``sim_truth``: a real twin, which never has it, would do the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.app.headless import HeadlessRun
from twin.contract.messages import Telemetry
from twin.scenarios.evaluation import ScenarioReport
from twin.scenarios.model import Scenario
from twin.scenarios.scenario_file import CATALOGUE_DIR, load_library, scenario_files
from twin.sim.device import Outgoing, SimulatedDevice

CATALOGUE = scenario_files(CATALOGUE_DIR)


@pytest.fixture(scope="module")
def library() -> dict[str, Scenario]:
    return load_library()


async def _play(scenario: Scenario, *, strip_truth: bool) -> tuple[ScenarioReport, int, int]:
    """Headless, as the catalogue runs; the stripping sits between the simulation and the twin only
    (the run's own abort conditions, the instructor's safety net, still read the truth on purpose).
    Returns the report and how many telemetry samples reached the twin with and without truth."""
    headless = HeadlessRun(scenario)
    deliver = headless.sim.sink
    seen = {"truth": 0, "blind": 0}

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        message = outgoing.message
        if isinstance(message, Telemetry):
            if strip_truth and message.sim_truth is not None:
                message = message.model_copy(update={"sim_truth": None})
                outgoing = Outgoing(outgoing.channel, message)
            seen["truth" if message.sim_truth is not None else "blind"] += 1
        deliver(device, outgoing, t)

    headless.sim.sink = sink
    try:
        report = await headless.play()
    finally:
        await headless.close()
    return report, seen["truth"], seen["blind"]


def _alarms(report: ScenarioReport) -> list[tuple[float, str, str, str, str]]:
    return [
        (round(a.at_s, 3), a.transition.device_id, a.transition.code, a.transition.event.value, a.transition.priority)
        for a in report.alarms
    ]


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
async def test_the_catalogue_without_ground_truth_raises_and_meets_the_same(
    path: Path, library: dict[str, Scenario]
) -> None:
    scenario = library[path.stem]
    seeing, with_truth, _ = await _play(scenario, strip_truth=False)
    blind, leaked, without_truth = await _play(scenario, strip_truth=True)
    assert with_truth > 0, "the simulator does publish its truth (the comparison means something)"
    assert leaked == 0
    assert without_truth > 0
    assert _alarms(blind) == _alarms(seeing)
    assert [(r.expected.index, r.status, r.observed_at_s) for r in blind.expectations] == [
        (r.expected.index, r.status, r.observed_at_s) for r in seeing.expectations
    ]
    assert blind.status == seeing.status
    assert all(r.status == "met" for r in blind.expectations), [
        (r.expected.description, r.detail) for r in blind.expectations if r.status != "met"
    ]
