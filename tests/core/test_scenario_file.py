"""Bad scenario files get errors naming the line and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from twin.scenarios.scenario_file import FileProblem, ScenarioFileError, load_library, load_scenario, parse_scenario

# line numbers are what the assertions check: keep this text's lines where they are
GOOD = """\
name: drill
title: Drill
description: A pump stalls.
learning_objectives: [Interrogate]
duration: 1d
fleet:
  kind: inline
  pumps:
    - device_id: p1
      site: s1
      drug: baclofen
      concentration_mg_per_ml: 2.0
      program: {mode: continuous, rate_ml_per_day: 0.3}
      reservoir_ml: 18
timeline:
  - at: 2h
    id: stall
    step: inject_fault
    devices: {ids: [p1]}
    fault:
      fault: motor_stall
      cause: wear
expect:
  - kind: alarm
    code: motor_stall
    devices: {ids: [p1]}
    after: stall
    within: 1m
"""


def _problems(text: str) -> list[FileProblem]:
    with pytest.raises(ScenarioFileError) as caught:
        parse_scenario(text, "drill.yaml")
    return caught.value.problems


def _edit(line: int, new: str) -> str:
    lines = GOOD.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def _where(problem: FileProblem) -> tuple[int, str]:
    return problem.line, problem.path


def test_the_good_file_is_good() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.name == "drill"
    assert scenario.timeline[0].at.total_seconds() == 7200


def test_an_unknown_field_is_named_at_its_line() -> None:
    (problem,) = _problems(_edit(19, "    devices: {ids: [p1]}\n    colour: red"))
    assert _where(problem) == (20, "timeline[0].colour")
    assert problem.message == "unknown field 'colour'"
    assert str(problem).startswith("drill.yaml:20:5: timeline[0].colour: ")


def test_a_wrong_type_is_named_at_its_line() -> None:
    (problem,) = _problems(_edit(14, "      reservoir_ml: plenty"))
    assert _where(problem) == (14, "fleet.pumps[0].reservoir_ml")
    assert "valid number" in problem.message


def test_an_unknown_fault_points_at_the_fault_line() -> None:
    (problem,) = _problems(_edit(21, "      fault: gremlins"))
    assert _where(problem) == (21, "timeline[0].fault.fault")
    assert problem.message.startswith("unknown fault 'gremlins'; expected one of 'catheter_occlusion'")


def test_a_bad_fault_parameter_is_named() -> None:
    (problem,) = _problems(_edit(22, "      cause: cosmic_rays"))
    assert _where(problem) == (22, "timeline[0].fault.cause")


def test_an_unknown_step_kind_points_at_the_step_line() -> None:
    (problem,) = _problems(_edit(18, "    step: explode"))
    assert _where(problem) == (18, "timeline[0].step")
    assert "unknown step 'explode'" in problem.message


def test_an_offset_beyond_the_duration_is_named() -> None:
    (problem,) = _problems(_edit(16, "  - at: 2d"))
    assert _where(problem) == (16, "timeline[0].at")
    assert problem.message == "2d is beyond the scenario's duration of 1d"


def test_a_bad_duration_is_named() -> None:
    (problem,) = _problems(_edit(5, "duration: one day"))
    assert _where(problem) == (5, "duration")


def test_an_unknown_device_selection_points_at_the_id() -> None:
    (problem,) = _problems(_edit(19, "    devices: {ids: [p1, p7]}"))
    assert _where(problem) == (19, "timeline[0].devices.ids[1]")
    assert problem.message == "no pump 'p7' in the fleet"
    assert problem.column == 25  # the p of p7


def test_an_unknown_step_reference_is_named() -> None:
    (problem,) = _problems(_edit(27, "    after: stal"))
    assert _where(problem) == (27, "expect[0].after")


def test_a_missing_field_is_named_at_its_mapping() -> None:
    (problem,) = _problems(GOOD.replace("    code: motor_stall\n", ""))
    assert _where(problem) == (24, "expect[0].code")
    assert problem.message == "missing field 'code'"
    (top,) = _problems(GOOD.replace("duration: 1d\n", ""))
    assert _where(top) == (1, "duration")


def test_every_problem_of_a_file_is_reported() -> None:
    text = _edit(14, "      reservoir_ml: plenty")
    text = text.replace("    within: 1m", "    within: 1m\n    colour: red")
    assert [_where(p) for p in _problems(text)] == [(14, "fleet.pumps[0].reservoir_ml"), (29, "expect[0].colour")]


def test_bad_yaml_is_reported_at_its_line() -> None:
    (problem,) = _problems(_edit(17, "    id: [stall"))
    assert problem.path == "(yaml)"
    assert problem.line == 18
    assert problem.message.startswith("not valid YAML")


def test_a_duplicate_key_is_an_error_not_a_silent_overwrite() -> None:
    (problem,) = _problems(_edit(17, "    id: stall\n    id: other"))
    assert _where(problem) == (18, "timeline[0].id")
    assert problem.message == "key 'id' appears twice"


def test_an_empty_file_and_a_list_are_refused() -> None:
    assert _problems("")[0].message == "the file is empty"
    assert _problems("- a\n- b\n")[0].message == "a scenario is a mapping of fields"


def test_files_and_libraries(tmp_path: Path) -> None:
    (tmp_path / "drill.yaml").write_text(GOOD, encoding="utf-8")
    assert load_scenario(tmp_path / "drill.yaml").name == "drill"
    assert list(load_library(tmp_path)) == ["drill"]
    (tmp_path / "copy.yml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text(_edit(16, "  - at: 2d"), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a scenario", encoding="utf-8")
    with pytest.raises(ScenarioFileError) as caught:
        load_library(tmp_path)
    assert [(Path(p.source).name, p.line, p.path) for p in caught.value.problems] == [
        ("broken.yaml", 16, "timeline[0].at"),
        ("drill.yaml", 1, "name"),  # copy.yml was loaded first, by name
    ]
    with pytest.raises(ScenarioFileError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_the_example_in_the_format_docstring_is_a_valid_scenario() -> None:
    from twin.scenarios import model

    assert model.__doc__ is not None
    example = model.__doc__.split("Example::", 1)[1].split("\nConventions:", 1)[0]
    scenario = parse_scenario(textwrap.dedent(example), "model.__doc__")
    assert scenario.name == "catheter-kink"
    assert scenario.expect[0].kind == "alarm"


# seven planted mistakes, of every kind the checks know; line numbers are what the test checks
PLANTED = """\
name: Bad Name
title: Drill
description: A pump stalls.
learning_objectives: [Interrogate]
duration: 1d
colour: red
fleet:
  kind: inline
  pumps:
    - device_id: p1
      site: s1
      drug: baclofen
      concentration_mg_per_ml: 2.0
      program: {mode: continuous, rate_ml_per_day: 0.3}
      reservoir_ml: 18
timeline:
  - at: 2h
    id: stall
    id: stall2
    step: inject_fault
    devices: {ids: [p1]}
    fault: {fault: motor_stall, cause: wear}
  - at: 3h
    id: pain
    step: patient_symptom
    devices: {ids: [p1]}
    symptom: Pain
    severity: awful
  - at: 3d
    id: late
    step: clear_fault
    devices: {ids: [p1]}
    fault: all
expect:
  - {kind: alarm, code: motor_stall, devices: {ids: [p1]}, after: nosuch, within: 1m}
  - {kind: alarm, code: motor_stall, devices: {ids: [p9]}, after: stall, within: 1m}
  - {kind: alarm, code: motor_stall, devices: {ids: [p1]}, after: pain, within: 1m}
"""


def test_every_mistake_of_a_file_is_reported_in_one_pass() -> None:
    """Field mistakes, a duplicate key and the meaning of the rest, all at once, in line order;
    nothing that only follows from a bad step (``after: pain`` names a step whose severity is
    wrong, ``after: stall`` one whose id was given twice) is reported."""
    assert [(p.line, p.path, p.message) for p in _problems(PLANTED)] == [
        (1, "name", "String should match pattern '^[a-z0-9][a-z0-9-]*$'"),
        (6, "colour", "unknown field 'colour'"),
        (19, "timeline[0].id", "key 'id' appears twice"),
        (28, "timeline[1].severity", "Input should be 'mild', 'moderate', 'severe' or 'life_threatening'"),
        (29, "timeline[2].at", "3d is beyond the scenario's duration of 1d"),
        (35, "expect[0].after", "no step with id 'nosuch' (known: late, start)"),
        (36, "expect[1].devices.ids[0]", "no pump 'p9' in the fleet"),
    ]


def test_a_bad_title_does_not_hide_the_timeline_and_a_models_own_check_is_reached() -> None:
    text = GOOD.replace("title: Drill", "title: ''").replace("    after: stall", "    after: nowhere")
    assert [_where(p) for p in _problems(text)] == [(2, "title"), (27, "expect[0].after")]
    # the scenario's own check (duration above zero) runs only once every field is valid: a
    # second pass, without the bad step, reaches it
    text = GOOD.replace("duration: 1d", "duration: 0s").replace("      cause: wear", "      cause: gremlins")
    problems = _problems(text)
    assert [_where(p) for p in problems] == [(1, "(scenario)"), (22, "timeline[0].fault.cause")]
    assert problems[0].message.startswith("duration must be positive")
