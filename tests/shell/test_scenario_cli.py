"""``pumptwin scenario``: run, validate, schema (in-process through Typer's test runner)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.harness.scenario_drills import DRILL
from twin.cli import app
from twin.cli.options import parse_speed
from twin.scenarios.model import json_schema

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
