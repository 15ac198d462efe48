"""The whole catalogue live: every scenario run as a training session would run it (its own pumps,
its own simulation over a real Mosquitto, the twin over MQTT), at a high speed, and compared with
its headless run, expectation by expectation: the same outcome (met, missed, pending) and, for
what was observed, the same simulated time within a band (the live twin re-evaluates at the
messages it hears, the headless one at its own; a band of two telemetry intervals, or what a
second of wall clock is at that speed when that is more). Several runs at once, as sessions do."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.harness.live_sim import live_sim
from tests.harness.servers import Mosquitto
from twin.app.headless import play_headless
from twin.scenarios.evaluation import ScenarioReport
from twin.scenarios.model import Scenario
from twin.scenarios.runner import MAX_LIVE_RUNS, ScenarioRun
from twin.scenarios.scenario_file import load_library

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.drill]

WALL_S_PER_RUN = 8.0
"""Each run lasts about this long on the wall clock (its speed follows): 20 scenarios, four at once."""

MIN_SPEED = 600.0


def live_speed(scenario: Scenario) -> float:
    return max(MIN_SPEED, scenario.speed, scenario.duration.total_seconds() / WALL_S_PER_RUN)


def band_s(scenario: Scenario, speed: float) -> float:
    return max(2 * scenario.telemetry_every.total_seconds(), speed * 1.0)


def differences(scenario: Scenario, speed: float, live: ScenarioReport, headless: ScenarioReport) -> list[str]:
    found = []
    if live.status != headless.status:
        found.append(f"run {live.status.value}, headless {headless.status.value}")
    band = band_s(scenario, speed)
    for mine, theirs in zip(live.expectations, headless.expectations, strict=True):
        what = f"expect[{mine.expected.index}] {mine.expected.kind} {mine.expected.code or mine.expected.site}"
        if mine.status != theirs.status:
            found.append(f"{what}: live {mine.status} ({mine.detail}), headless {theirs.status} ({theirs.detail})")
        elif (
            mine.observed_at_s is not None
            and theirs.observed_at_s is not None
            and abs(mine.observed_at_s - theirs.observed_at_s) > band
        ):
            found.append(
                f"{what}: observed at {mine.observed_at_s:.0f} s live, {theirs.observed_at_s:.0f} s headless "
                f"(band {band:.0f} s)"
            )
    return found


@pytest.mark.timeout(300)
async def test_every_catalogue_scenario_live_reproduces_its_headless_run(mosquitto: Mosquitto, tmp_path: Path) -> None:
    library = load_library()
    headless = {name: await play_headless(s) for name, s in library.items()}
    results: dict[str, tuple[float, ScenarioReport]] = {}
    async with live_sim(mosquitto, tmp_path, list(library.values()), client_id="catalogue-twin") as live:
        runner = live.runner
        waiting = sorted(library)
        running: list[tuple[str, ScenarioRun]] = []
        while waiting or running:
            while waiting and len(running) < MAX_LIVE_RUNS:
                name = waiting.pop(0)
                speed = live_speed(library[name])
                running.append((name, runner.start(name, speed=speed, started_by="catalogue")))
            await asyncio.sleep(0.2)
            for name, run in list(running):
                if run.status.final:
                    results[name] = (live_speed(library[name]), run.report())
                    running.remove((name, run))
        # the runs owned their pumps: each on sites of its own, and every simulation stopped
        sites = {t.site for t in live.twin.service.fleet.devices.values()}
        assert all(site.startswith("tr-run-") for site in sites)
        assert len({s.split(".")[0] for s in sites}) == len(library)
        assert not runner.active
    problems = {
        name: found
        for name, (speed, report) in sorted(results.items())
        if (found := differences(library[name], speed, report, headless[name]))
    }
    assert not problems, "\n".join(f"{n}: {'; '.join(p)}" for n, p in problems.items())
