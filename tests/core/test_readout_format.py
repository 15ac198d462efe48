"""The interrogation read-out format: the examples parse, the schema and the example files are in sync with
their sources, and every kind of mistake is refused with its file, line and field."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from twin.gateway.readout import SCHEMA_PATH, render_schema
from twin.gateway.readout_file import ReadoutFileError, load_readout, parse_readout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.iterdir() if "interrogation" in p.name and p.suffix in (".json", ".yaml"))


def _maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_schema_in_docs_is_the_one_the_models_make() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "docs/interrogation.schema.json is stale: run `pumptwin gateway schema -o docs/interrogation.schema.json`"
    )


def test_the_example_files_are_what_the_generator_writes() -> None:
    rendered = _maker().render()
    assert sorted(rendered) == sorted(p.name for p in EXAMPLE_FILES)
    for name, text in rendered.items():
        assert (EXAMPLES / name).read_text(encoding="utf-8") == text, f"{name} is stale: run make_examples.py"


def test_the_examples_cover_both_synchromed_sizes_prometra_and_a_year_of_visits() -> None:
    readouts = [load_readout(p) for p in EXAMPLE_FILES]
    models = {r.pump.model_number for r in readouts}
    assert {"8637-20", "8637-40", "13827"} <= models
    series = sorted((r for r in readouts if r.device_id == "itb-0412"), key=lambda r: r.interrogated_at)
    assert (series[-1].interrogated_at - series[0].interrogated_at).days >= 357
    gaps = [(b.interrogated_at - a.interrogated_at).days for a, b in itertools.pairwise(series)]
    assert all(28 <= g <= 92 for g in gaps), gaps  # refills every 1-3 months (DOMAIN-RESEARCH §7)
    differences = [r.last_refill.measured_residual_ml - r.last_refill.calculated_residual_ml for r in series]  # type: ignore[operator, union-attr]
    assert sum(abs(d) > 1.0 for d in differences) == 1  # exactly one visit beyond a 20 mL pump's tolerance
    assert all(d != 0 for d in differences)  # the syringe reads with an error


def _corrupt_yaml(path: Path, edit: object) -> str:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(document)  # type: ignore[operator]
    return yaml.safe_dump(document, sort_keys=False)


def _line_of(text: str, needle: str, after: int = 0) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if number > after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_a_corrupted_copy_of_each_example_is_refused_with_its_line_and_field(path: Path, tmp_path: Path) -> None:
    good = load_readout(path)
    last = max(i for i, e in enumerate(good.events) if e.event == "refill")
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(source)
        data["events"][last]["measured_residual_ml"] = -1.5
        text = json.dumps(data, indent=2)
        bad = tmp_path / path.name
    else:
        text = _corrupt_yaml(path, lambda d: d["events"][last].__setitem__("measured_residual_ml", -1.5))
        bad = tmp_path / path.name
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ReadoutFileError) as caught:
        load_readout(bad)
    [problem] = caught.value.problems
    assert problem.source == str(bad)
    assert problem.path == f"events[{last}].measured_residual_ml"
    assert "greater than or equal to 0" in problem.message
    assert problem.line == _line_of(text, "-1.5")
    assert str(problem).startswith(f"{bad}:{problem.line}:")


def test_every_kind_of_mistake_names_its_field() -> None:
    path = EXAMPLES / "pain-0097-2026-09-14.interrogation.json"
    good = json.loads(path.read_text(encoding="utf-8"))

    def problems(edit: object) -> list[tuple[str, str]]:
        data = json.loads(json.dumps(good))
        edit(data)  # type: ignore[operator]
        text = json.dumps(data, indent=2)
        with pytest.raises(ReadoutFileError) as caught:
            parse_readout(text, "x.interrogation.json")
        return [(p.path, p.message) for p in caught.value.problems]

    assert problems(lambda d: d["pump"].__setitem__("colour", "grey")) == [("pump.colour", "unknown field 'colour'")]
    assert problems(lambda d: d.pop("battery")) == [("battery", "missing field 'battery'")]
    [(where, message)] = problems(lambda d: d["events"][0].__setitem__("event", "teleport"))
    assert where == "events[0].event"
    assert "unknown event 'teleport'" in message
    capacity = problems(lambda d: d["pump"].__setitem__("reservoir_capacity_ml", 20.0))
    assert capacity[0] == (
        "pump.reservoir_capacity_ml",
        "model 8637-40 has reservoir_capacity_ml 40, not 20 (SynchroMed II 40 mL [V-S13]; alarms [V-S1, S11])",
    )
    assert ("reservoir.calculated_ml", "more than the reservoir's capacity (20 mL)") in capacity
    [(where, message)] = problems(lambda d: d["events"][-1].__setitem__("at", "2027-01-01T00:00:00+00:00"))
    assert where == f"events[{len(good['events']) - 1}].at"
    assert message == "after the interrogation"
    [(where, message)] = problems(lambda d: d["alarms"].__setitem__("active", []))
    assert where == "alarms.log[1].cleared_at"
    assert "open in the log but not in alarms.active" in message
    order = problems(lambda d: d["events"].reverse())
    assert order[0] == ("events[1].at", "the event log must be in time order (oldest first)")
    [(where, message)] = problems(lambda d: d.__setitem__("format", "pumptwin-interrogation/9"))
    assert where == "format"
    [(where, _)] = problems(lambda d: d["battery"].pop("eri_reached_at"))
    assert where == "battery.eri_reached_at"
    [(where, _)] = problems(lambda d: d.__setitem__("device_id", "pump/../x"))
    assert where == "device_id"


def test_broken_json_and_yaml_say_where() -> None:
    with pytest.raises(ReadoutFileError) as caught:
        parse_readout('{\n  "format": "pumptwin-interrogation/1",\n  "site": \n}\n', "a.interrogation.json")
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (4, "(json)")
    with pytest.raises(ReadoutFileError) as caught:
        parse_readout("format: x\nsite: [a\n", "a.interrogation.yaml")
    assert caught.value.problems[0].path == "(yaml)"
    with pytest.raises(ReadoutFileError) as caught:
        parse_readout("format: a\nformat: b\n", "a.interrogation.yaml")
    assert caught.value.problems[0].line == 2
    assert "appears twice" in caught.value.problems[0].message
    with pytest.raises(ReadoutFileError) as caught:
        parse_readout('{"format": NaN}', "a.interrogation.json")
    assert "NaN" in caught.value.problems[0].message


def test_json_numbers_keep_their_json_meaning() -> None:
    path = EXAMPLES / "pain-0215-2026-10-05.interrogation.json"
    text = path.read_text(encoding="utf-8").replace('"percent": 88.0', '"percent": 8.8e1')
    assert load_readout(path).battery.percent == parse_readout(text, "x.json").battery.percent == 88.0
