"""Scenario format, fleet selection and timeline expansion: pure, no simulation."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest
import yaml

from twin.contract.alarms import AlarmCode
from twin.contract.messages import (
    ClearFaultAction,
    ClinicianBolusAction,
    Drug,
    InjectFaultAction,
    PatientBolusAction,
    PocketFillFault,
    RefillAction,
    ReprogramAction,
    WrongConcentrationFault,
)
from twin.mirror.alerts import TwinAlertCode
from twin.scenarios import evaluation, fleet, model, timeline
from twin.scenarios.fleet import FleetMember, resolve_fleet, select
from twin.scenarios.model import (
    SCHEMA_PATH,
    AlarmPointCode,
    DeviceSelection,
    Scenario,
    ScenarioInvalid,
    duration_seconds,
    format_duration,
    render_schema,
)
from twin.scenarios.scenario_file import CATALOGUE_DIR, load_scenario, scenario_files
from twin.scenarios.timeline import expand

START = datetime(2026, 1, 1, tzinfo=UTC)

MEMBERS = (
    FleetMember(0, "a-1", "north", Drug.BACLOFEN, 2.0, 20.0),
    FleetMember(1, "a-2", "north", Drug.MORPHINE, 10.0, 40.0),
    FleetMember(2, "b-1", "south", Drug.BACLOFEN, 1.0, 20.0),
    FleetMember(3, "b-2", "south", Drug.CLONIDINE, 0.5, 20.0, simulated=False),
)


def _scenario(**changes: object) -> Scenario:
    base: dict[str, object] = {
        "name": "t",
        "title": "T",
        "description": "d",
        "learning_objectives": ["o"],
        "duration": "2d",
        "fleet": {"kind": "generated", "pumps": 4},
        "timeline": [],
        "expect": [],
    }
    return Scenario.model_validate(base | changes)


# ----------------------------------------------------------------------------------------- format


def test_alarm_point_codes_are_the_device_codes_and_the_twin_codes() -> None:
    assert {c.value for c in AlarmPointCode} == {c.value for c in AlarmCode} | {c.value for c in TwinAlertCode}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("3d", 259200), ("1d12h", 129600), ("1.5h", 5400), (45, 45), ("45", 45)],
)
def test_durations(text: object, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["2x", "h", "1d 2h", "-5", -5, True, None, "", float("inf")])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_seconds(text)


@pytest.mark.parametrize("seconds", [0, 0.5, 59, 90, 3600, 5400, 129600, 259201.25])
def test_duration_text_reads_back_exactly(seconds: float) -> None:
    text = model.duration_text(timedelta(seconds=seconds))
    assert " " not in text
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("path", scenario_files(CATALOGUE_DIR), ids=lambda p: p.stem)
def test_a_scenario_survives_json_and_back(path: Path) -> None:
    scenario = load_scenario(path)
    assert Scenario.model_validate(json.loads(scenario.model_dump_json())) == scenario


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 30, 5400, 90061, -60)] == ["0s", "30s", "1h 30m", "1d 1h", "-1m"]


def test_schema_file_is_in_sync_with_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "run `pumptwin scenario schema -o docs/scenario.schema.json`"
    )


@pytest.mark.parametrize("path", scenario_files(CATALOGUE_DIR), ids=lambda p: p.stem)
def test_catalogue_files_satisfy_the_json_schema(path: Path) -> None:
    document = json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))
    jsonschema.Draft202012Validator(model.json_schema()).validate(document)


def test_the_json_schema_refuses_what_the_models_refuse() -> None:
    validator = jsonschema.Draft202012Validator(model.json_schema())
    good = {
        "name": "t",
        "title": "T",
        "description": "d",
        "learning_objectives": ["o"],
        "duration": "1d",
        "fleet": {"kind": "generated", "pumps": 2},
    }
    assert validator.is_valid(good)
    assert not validator.is_valid(good | {"colour": "red"})
    assert not validator.is_valid(good | {"duration": "1 day"})
    bad_fault = {"at": "1h", "step": "inject_fault", "devices": {"all": True}, "fault": {"fault": "gremlins"}}
    assert not validator.is_valid(good | {"timeline": [bad_fault]})


def test_a_selection_needs_a_criterion_and_all_stands_alone() -> None:
    with pytest.raises(ValueError, match="needs ids"):
        DeviceSelection()
    with pytest.raises(ValueError, match="alone"):
        DeviceSelection(all=True, ids=["a-1"])


def test_bolus_fields_follow_the_source() -> None:
    step = {"at": "1h", "step": "bolus", "devices": {"all": True}}
    with pytest.raises(ValueError, match="clinician bolus needs"):
        _scenario(timeline=[step])
    with pytest.raises(ValueError, match="programmed bolus"):
        _scenario(timeline=[step | {"source": "patient", "volume_ml": 0.1}])


# --------------------------------------------------------------------------------------- selection


def test_selection_criteria_combine_and_lists_match_any() -> None:
    def ids(**criteria: object) -> list[str]:
        picked, problems = select(DeviceSelection.model_validate(criteria), MEMBERS, ("devices",))
        assert problems == []
        return [m.device_id for m in picked]

    assert ids(sites=["south"]) == ["b-1", "b-2"]
    assert ids(drugs=["baclofen"]) == ["a-1", "b-1"]
    assert ids(drugs=["baclofen"], sites=["south"]) == ["b-1"]
    assert ids(index=[3, 0]) == ["a-1", "b-2"]
    assert ids(ids=["b-2", "a-2"]) == ["a-2", "b-2"]
    assert ids(all=True) == ["a-1", "a-2", "b-1", "b-2"]


def test_selection_problems_name_what_is_unknown() -> None:
    selection = DeviceSelection(ids=["a-1", "zz"], sites=["west"], drugs=[Drug.ZICONOTIDE], index=[4])
    picked, problems = select(selection, MEMBERS, ("timeline", 0, "devices"))
    assert picked == []
    assert [(p.loc, p.message) for p in problems] == [
        (("timeline", 0, "devices", "ids", 1), "no pump 'zz' in the fleet"),
        (("timeline", 0, "devices", "sites", 0), "no site 'west' in the fleet"),
        (("timeline", 0, "devices", "drugs", 0), "no pump on ziconotide in the fleet"),
        (("timeline", 0, "devices", "index", 0), "index 4 is past the fleet's 4 pumps"),
    ]
    _, empty = select(DeviceSelection(sites=["north"], drugs=[Drug.CLONIDINE]), MEMBERS, ("x",))
    assert [(p.loc, p.message) for p in empty] == [(("x",), "the selection matches no pump of the fleet")]


def test_index_is_the_position_in_the_fleet_sorted_by_device_id() -> None:
    s = _scenario(
        fleet={
            "kind": "inline",
            "pumps": [
                {
                    "device_id": device_id,
                    "site": "s",
                    "drug": "baclofen",
                    "concentration_mg_per_ml": 1.0,
                    "program": {"mode": "continuous", "rate_ml_per_day": 0.2},
                    "reservoir_ml": 10,
                }
                for device_id in ("zeta", "alpha", "mid")
            ],
        }
    )
    assert [(m.index, m.device_id) for m in resolve_fleet(s).members] == [(0, "alpha"), (1, "mid"), (2, "zeta")]


def test_generated_fleets_apply_overrides_in_order_and_repeat_for_a_seed() -> None:
    s = _scenario(
        fleet={
            "kind": "generated",
            "pumps": 5,
            "sites": ["one"],
            "overrides": [
                {"devices": {"index": [1, 2]}, "changes": {"drug": "baclofen", "concentration_mg_per_ml": 2.0}},
                {"devices": {"index": [2]}, "changes": {"reservoir_ml": 3.5}},
            ],
        }
    )
    first, again = resolve_fleet(s), resolve_fleet(s)
    assert first == again
    assert {p.site for p in first.specs} == {"one"}
    assert [(p.drug, p.concentration_mg_per_ml) for p in first.specs[1:3]] == [(Drug.BACLOFEN, 2.0)] * 2
    assert first.specs[2].reservoir_ml == 3.5
    assert resolve_fleet(s, seed=99).specs != first.specs
    assert resolve_fleet(s, seed=99).seed == 99


def test_an_override_that_makes_an_impossible_pump_is_located() -> None:
    s = _scenario(
        fleet={
            "kind": "generated",
            "pumps": 3,
            "overrides": [{"devices": {"all": True}, "changes": {"reservoir_ml": 90}}],
        }
    )
    with pytest.raises(ScenarioInvalid) as caught:
        resolve_fleet(s)
    (problem,) = caught.value.problems
    assert problem.loc == ("fleet", "overrides", 0, "changes")
    assert "exceeds reservoir_capacity_ml" in problem.message


# ---------------------------------------------------------------------------------------- timeline


def test_a_refill_arms_pocket_fill_and_concentration_before_it_and_defaults_to_the_pumps_drug() -> None:
    s = _scenario(
        timeline=[
            {
                "at": "6h",
                "id": "refill",
                "step": "refill",
                "devices": {"ids": ["a-1"]},
                "volume_ml": 18,
                "pocket_fill_fraction": 0.5,
                "syringe_concentration_mg_per_ml": 4.0,
                "refill_reminder_after": "30d",
            }
        ]
    )
    (cue,) = expand(s, MEMBERS, START).cues
    assert cue.at_s == 6 * 3600
    assert cue.actions == (
        InjectFaultAction(fault=PocketFillFault(fraction=0.5)),
        InjectFaultAction(fault=WrongConcentrationFault(actual_concentration_mg_per_ml=4.0)),
        RefillAction(
            volume_ml=18,
            drug=Drug.BACLOFEN,
            concentration_mg_per_ml=2.0,
            refill_reminder_at=START + timedelta(hours=6, days=30),
        ),
    )


def test_each_step_kind_becomes_its_commands() -> None:
    program = {"mode": "continuous", "rate_ml_per_day": 0.2}
    s = _scenario(
        timeline=[
            {"at": "1h", "step": "clear_fault", "devices": {"ids": ["a-1"]}, "fault": "all"},
            {
                "at": "1h",
                "step": "reprogram",
                "devices": {"ids": ["a-1"]},
                "program": program,
                "concentration_mg_per_ml": 4,
            },
            {"at": "1h", "step": "bolus", "devices": {"ids": ["a-1"]}, "volume_ml": 0.1, "duration_minutes": 30},
            {"at": "1h", "step": "bolus", "devices": {"ids": ["a-1"]}, "source": "patient"},
            {"at": "1h", "step": "patient_symptom", "devices": {"ids": ["a-1"]}, "symptom": "itch", "severity": "mild"},
        ]
    )
    cues = expand(s, MEMBERS, START).cues
    assert [type(a) for c in cues for a in c.actions] == [
        ClearFaultAction,
        ReprogramAction,
        ClinicianBolusAction,
        PatientBolusAction,
    ]
    assert cues[-1].actions == ()
    assert (cues[-1].symptom, cues[-1].severity) == ("itch", model.Severity.MILD)


def test_cues_run_in_time_then_file_then_fleet_order_and_unnamed_steps_get_numbers() -> None:
    fault = {"fault": "memory_error"}
    s = _scenario(
        timeline=[
            {"at": "2h", "step": "inject_fault", "devices": {"sites": ["south"]}, "fault": fault},
            {"at": "1h", "id": "early", "step": "inject_fault", "devices": {"ids": ["b-1", "a-2"]}, "fault": fault},
            {"at": "2h", "step": "inject_fault", "devices": {"ids": ["a-1"]}, "fault": fault},
        ]
    )
    cues = expand(s, MEMBERS, START).cues
    assert [(c.at_s, c.step_id, c.device_id) for c in cues] == [
        (3600, "early", "a-2"),
        (3600, "early", "b-1"),
        (7200, "step-1", "b-1"),
        (7200, "step-1", "b-2"),
        (7200, "step-3", "a-1"),
    ]


def test_expectation_windows_start_at_their_step_and_stop_at_the_end_of_the_run() -> None:
    s = _scenario(
        timeline=[
            {
                "at": "1d20h",
                "id": "late",
                "step": "inject_fault",
                "devices": {"ids": ["a-1"]},
                "fault": {"fault": "memory_error"},
            }
        ],
        expect=[
            {
                "kind": "alarm",
                "code": "memory_error",
                "devices": {"ids": ["a-1", "a-2"]},
                "after": "late",
                "within": "8h",
            },
            {"kind": "no_alarm", "code": "motor_stall", "devices": {"sites": ["north"]}},
            {"kind": "alarm_flood", "site": "south", "within": "1h"},
        ],
    )
    outcomes = expand(s, MEMBERS, START).expectations
    assert [(o.kind, o.device_ids, o.window_start_s, o.window_end_s) for o in outcomes] == [
        ("alarm", ("a-1",), 158400.0, 172800.0),
        ("alarm", ("a-2",), 158400.0, 172800.0),
        ("no_alarm", ("a-1", "a-2"), 0.0, 172800.0),
        ("alarm_flood", (), 0.0, 3600.0),
    ]


def test_meaning_problems_are_all_located() -> None:
    fault = {"fault": "memory_error"}
    s = _scenario(
        timeline=[
            {"at": "3d", "id": "a", "step": "inject_fault", "devices": {"ids": ["a-1"]}, "fault": fault},
            {"at": "1h", "id": "a", "step": "inject_fault", "devices": {"ids": ["a-1"]}, "fault": fault},
            {"at": "1h", "id": "start", "step": "inject_fault", "devices": {"ids": ["a-1"]}, "fault": fault},
            {"at": "1h", "step": "refill", "devices": {"ids": ["a-1"]}, "volume_ml": 30},
        ],
        expect=[{"kind": "alarm", "code": "motor_stall", "devices": {"all": True}, "after": "nowhere"}],
        abort_when=[{"kind": "no_delivery", "longer_than": "1d", "devices": {"ids": ["ghost"]}}],
    )
    with pytest.raises(ScenarioInvalid) as caught:
        expand(s, MEMBERS, START)
    assert [(p.loc, p.message) for p in caught.value.problems] == [
        (("timeline", 0, "at"), "3d is beyond the scenario's duration of 2d"),
        (("timeline", 1, "id"), "step id 'a' is used twice"),
        (("timeline", 2, "id"), "'start' is reserved for the start of the run"),
        (("timeline", 3, "volume_ml"), "30 mL does not fit a-1's 20 mL reservoir"),
        (("expect", 0, "after"), "no step with id 'nowhere' (known: a, start)"),
        (("abort_when", 0, "devices", "ids", 0), "no pump 'ghost' in the fleet"),
    ]


def test_a_refill_of_a_pump_whose_drug_is_unknown_needs_one() -> None:
    unknown = (FleetMember(0, "live-1", "s", None, None, None),)
    s = _scenario(timeline=[{"at": "1h", "step": "refill", "devices": {"all": True}, "volume_ml": 10}])
    with pytest.raises(ScenarioInvalid, match="has not reported its drug"):
        expand(s, unknown, START)
    explicit = _scenario(
        timeline=[
            {
                "at": "1h",
                "step": "refill",
                "devices": {"all": True},
                "volume_ml": 10,
                "drug": "morphine",
                "concentration_mg_per_ml": 10,
            }
        ]
    )
    assert len(expand(explicit, unknown, START).cues) == 1


def test_devices_touched_are_those_sent_commands() -> None:
    s = _scenario(
        timeline=[
            {"at": "1h", "step": "patient_symptom", "devices": {"ids": ["a-1"]}, "symptom": "x", "severity": "mild"},
            {"at": "1h", "step": "inject_fault", "devices": {"ids": ["b-1"]}, "fault": {"fault": "memory_error"}},
        ]
    )
    assert expand(s, MEMBERS, START).devices_touched == ("b-1",)


# ------------------------------------------------------------------------------------------ purity

PURE_MODULES = (model, fleet, timeline, evaluation)
FORBIDDEN = {"asyncio", "aiomqtt", "fastapi", "sqlite3", "time", "socket", "httpx", "simpy", "random", "uvicorn"}


@pytest.mark.parametrize("module", PURE_MODULES, ids=lambda m: m.__name__)
def test_the_core_does_no_io(module: ModuleType) -> None:
    assert module.__file__ is not None
    source = Path(module.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported.isdisjoint(FORBIDDEN), imported & FORBIDDEN
    assert ".read_text(" not in source
    assert "open(" not in source
