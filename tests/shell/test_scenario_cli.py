"""``pumptwin scenario``: run, validate, schema (in-process through Typer's test runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness.scenario_drills import DRILL
from twin.cli import app
from twin.cli.options import parse_speed
from twin.scenarios.model import json_schema
from twin.scenarios.scenario_file import catalogue_names

runner = CliRunner()


def test_run_prints_expected_against_observed_and_exits_zero_when_all_are_met() -> None:
    result = runner.invoke(app, ["scenario", "run", "motor-stall-mri-recovery"])
    assert result.exit_code == 0, result.output
    assert "4 of 4 expectations met" in result.output
    assert "motor_stall" in result.output


def test_run_exits_one_when_an_expectation_is_missed(tmp_path: Path) -> None:
    path = tmp_path / "missed.yaml"
    path.write_text(DRILL, encoding="utf-8")  # aborted before its 12h step: the memory error never comes
    result = runner.invoke(app, ["scenario", "run", str(path)])
    assert result.exit_code == 1, result.output
    assert "missed" in result.output
    assert "aborted" in result.output
    relaxed = runner.invoke(app, ["scenario", "run", str(path), "--no-abort-conditions", "--json"])
    assert relaxed.exit_code == 0, relaxed.output
    report = json.loads(relaxed.output)
    assert report["status"] == "completed"
    assert [e["status"] for e in report["expectations"]] == ["met", "met"]


def test_run_refuses_a_bad_file_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DRILL.replace("duration: 1d", "duration: 2h"), encoding="utf-8")
    result = runner.invoke(app, ["scenario", "run", str(path)])
    assert result.exit_code == 2
    assert f"{path}:22:" in result.output  # the 12h step, past the 2h duration
    assert "timeline[4].at" in result.output


def test_validate_reports_every_bad_file_and_passes_good_ones(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(DRILL, encoding="utf-8")
    bad.write_text(DRILL.replace("severity: mild", "severity: awful"), encoding="utf-8")
    result = runner.invoke(app, ["scenario", "validate", str(good), str(bad), "combined-faults"])
    assert result.exit_code == 1
    assert f"ok: {good} (kill-switch: 5 steps, 2 expectations, 1d)" in result.output
    assert "ok: " in result.output
    assert "combined-faults.yaml" in result.output
    assert f"{bad}:21:" in result.output
    assert "timeline[3].severity" in result.output
    assert runner.invoke(app, ["scenario", "validate", str(good)]).exit_code == 0


def test_schema_prints_writes_and_checks(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["scenario", "schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.output) == json.loads(json.dumps(json_schema()))
    assert runner.invoke(app, ["scenario", "schema", "--check"]).exit_code == 0
    stale = tmp_path / "schema.json"
    stale.write_text("{}", encoding="utf-8")
    assert runner.invoke(app, ["scenario", "schema", "--check", "-o", str(stale)]).exit_code == 1
    assert runner.invoke(app, ["scenario", "schema", "-o", str(stale)]).exit_code == 0
    assert runner.invoke(app, ["scenario", "schema", "--check", "-o", str(stale)]).exit_code == 0


def test_speed_max_means_as_fast_as_possible() -> None:
    assert parse_speed("max") is None
    assert parse_speed("MAX") is None
    assert parse_speed("60x") == 60.0
    assert parse_speed("3600") == 3600.0


def _flat(output: str) -> str:
    """Rich's error box without its frame and line breaks, for substring checks."""
    return " ".join(output.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", " ").split())


@pytest.mark.parametrize("speed", ["fast", "asap", "0", "-5", "nan", "inf", "quick"])
@pytest.mark.parametrize("command", [["scenario", "run", "motor-stall-mri-recovery"], ["sim", "--duration", "1h"]])
def test_a_speed_that_is_not_one_is_refused_with_the_allowed_forms(command: list[str], speed: str) -> None:
    result = runner.invoke(app, [*command, "--speed", speed])
    assert result.exit_code == 2, result.output
    text = _flat(result.output)
    assert f"Invalid value for '--speed': '{speed}' is not a speed" in text
    assert "1, 60, 3600, or 60x" in text
    assert "'max'" in text


@pytest.mark.parametrize(
    ("duration", "why"), [("0", "is no time at all"), ("soon", "is not a duration"), ("1h30", "is not a duration")]
)
def test_a_duration_that_is_not_one_is_refused_with_the_allowed_forms(duration: str, why: str) -> None:
    result = runner.invoke(app, ["sim", "--speed", "max", "--duration", duration])
    assert result.exit_code == 2, result.output
    text = _flat(result.output)
    assert f"Invalid value for '--duration': '{duration}' {why}" in text
    assert "90d, 12h, 30m, 45s, 1d12h" in text


def test_an_unknown_scenario_name_is_answered_with_the_catalogue() -> None:
    result = runner.invoke(app, ["scenario", "run", "motor-stall"])
    assert result.exit_code == 2, result.output
    assert "no scenario 'motor-stall'" in result.output
    assert "did you mean motor-stall-mri-recovery, motor-stall-mri-permanent?" in result.output
    for name in catalogue_names():
        assert name in result.output
    far = runner.invoke(app, ["scenario", "validate", "no-such"])
    assert far.exit_code == 1
    assert "did you mean" not in far.output
    assert "the catalogue has: alarm-flood, battery-eri-eos" in far.output
    demo = runner.invoke(app, ["demo", "--scenario", "no-such"])
    assert demo.exit_code == 2
    assert "alarm-flood" in _flat(demo.output)


def test_a_short_run_shows_its_progress_in_hours_not_zero_days() -> None:
    from rich.console import Console

    from twin.app.progress import simulated_progress, simulated_text

    assert simulated_text(1800, 3600) == "30m of 1h 00m simulated"
    assert simulated_text(5000, 3600) == "1h 00m of 1h 00m simulated"
    assert simulated_text(86400 * 1.5, 86400 * 90) == "1d 12h of 90d 00h simulated"
    console = Console(record=True, width=120, force_terminal=False)
    with simulated_progress(console) as progress:
        task = progress.add_task("simulating", total=3600, simulated=simulated_text(0, 3600))
        progress.update(task, completed=900, simulated=simulated_text(900, 3600))
    shown = console.export_text()
    assert "15m of 1h 00m simulated" in shown
    assert "0/0" not in shown


def test_the_simulator_reports_a_one_hour_run_in_simulated_time() -> None:
    result = runner.invoke(app, ["sim", "--pumps", "2", "--speed", "max", "--duration", "1h"])
    assert result.exit_code == 0, result.output
    assert "1h 00m of 1h 00m simulated" in result.output
    assert "simulated days" not in result.output
