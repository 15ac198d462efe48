"""The replay's pure parts: what a pump frame shows and when a new one is worth recording, a journal
window replayed (who acted, which alarms, their escalations, the commands), a session's replay
without the answers, and the purity of the debrief's modules."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from twin.alarms import escalation
from twin.alarms import lifecycle as lc
from twin.alarms.escalation import DEFAULT_POLICY, Roster, due
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import Priority
from twin.mirror.commands import CommandRecord
from twin.training import frames, records, replay
from twin.training.events import TrainingEvent
from twin.training.frames import RESERVOIR_STEP_ML, PumpFrame, frame_state, worth_recording
from twin.training.replay import session_replay, window_replay
from twin.training.scoring import acts, occurrences, score
from twin.training.session import TrainingSession

T0 = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)

STATE = {
    "device_time": "2026-02-02T10:00:00+00:00",
    "reservoir_ml": 12.0,
    "drug": "baclofen",
    "concentration_mg_per_ml": 2.0,
    "program": {"mode": "continuous", "rate_ml_per_day": 0.3},
    "current_rate_ml_per_day": 0.3,
    "infusing": True,
    "motor": "running",
    "battery_percent": 80.0,
    "battery": "ok",
    "active_alarms": [],
}
SAMPLE = {
    "device_time": "2026-02-02T10:10:00+00:00",
    "reservoir_ml": 11.998,
    "current_rate_ml_per_day": 0.3,
    "dose_mg_per_day": 0.6,
    "battery_percent": 79.99,
    "motor": "running",
    "infusing": True,
    "sim_truth": {"reservoir_ml": 11.9, "actual_dose_mg_per_day": 0.61, "catheter": "patent"},
}


def test_a_frame_takes_the_newer_figures_and_the_truth_behind_them() -> None:
    state = frame_state({"presence": "online"}, STATE, SAMPLE)
    assert (state["reservoir_ml"], state["dose_mg_per_day"], state["device_time"]) == (
        11.998,
        0.6,
        SAMPLE["device_time"],
    )
    assert (state["program_mode"], state["battery_status"], state["true_catheter"]) == ("continuous", "ok", "patent")
    older = {**SAMPLE, "device_time": "2026-02-02T09:50:00+00:00"}
    from_state = frame_state({"presence": "online"}, STATE, older)
    assert (from_state["reservoir_ml"], from_state["dose_mg_per_day"]) == (12.0, pytest.approx(0.6))
    assert frame_state({"presence": "unknown"}, None, None)["reservoir_ml"] is None


def test_a_new_frame_is_recorded_when_something_discrete_changes_or_a_figure_moves_enough() -> None:
    first = frame_state({"presence": "online"}, STATE, SAMPLE)
    assert worth_recording(None, first)
    assert not worth_recording(first, first)
    assert not worth_recording(first, {**first, "reservoir_ml": first["reservoir_ml"] - RESERVOIR_STEP_ML / 2})
    assert worth_recording(first, {**first, "reservoir_ml": first["reservoir_ml"] - RESERVOIR_STEP_ML})
    assert worth_recording(first, {**first, "motor": "stalled"})
    assert worth_recording(first, {**first, "presence": "offline"})
    assert worth_recording(first, {**first, "true_actual_dose_mg_per_day": 0.0})
    assert not worth_recording(first, {**first, "true_actual_dose_mg_per_day": 0.6101})


def _stall_story() -> tuple[list[lc.Transition], list[AlarmResponse], list[escalation.Escalation]]:
    alarm, made = lc.raise_alarm("p1/motor_stall", "p1", "w", "motor_stall", "device", Priority.HIGH, "x", T0 + S)
    other, more = lc.raise_alarm("p2/memory_error", "p2", "w", "memory_error", "device", Priority.HIGH, "y", T0 + S)
    made += more
    alarm, more = lc.acknowledge(alarm, "ann", T0 + 30 * S)
    made += more
    answer = AlarmResponse(
        "r-1", "p1/motor_stall", "p1", "w", "motor_stall", "high", 2, "active_acknowledged", "rotor_study",
        None, "ann", "trainee", T0 + 40 * S, None, {},
    )  # fmt: skip
    ladder = due([other], {}, DEFAULT_POLICY, T0 + 200 * S, Roster())
    return made, [answer], ladder


def test_a_journal_window_replays_who_acted_which_alarms_their_escalations_and_the_commands() -> None:
    transitions, responses, ladder = _stall_story()
    commands = [
        CommandRecord("c1", "p1", "w", "pending", "scenario:x", T0, {"command": {"action": {"type": "inject_fault"}}}),
        CommandRecord("c1", "p1", "w", "applied", "scenario:x", T0 + S, {}),
    ]
    pump = [
        PumpFrame("t-1", "w", "p1", 1, T0, {"motor": "running"}),
        PumpFrame("t-1", "w", "p1", 2, T0 + 2 * S, {"motor": "stalled"}),
    ]
    body = window_replay(
        T0,
        T0 + 300 * S,
        transitions=transitions,
        responses=responses,
        escalations=ladder,
        frames=pump,
        commands=commands,
    )
    assert [t["trainee"] for t in body["trainees"]] == ["ann"]  # not the pumps, the twin or a scenario
    assert [a["action"] for a in body["trainees"][0]["acts"]] == ["acknowledge", "rotor_study"]
    alarms = {a["key"]: a for a in body["alarms"]}
    assert [t["event"] for t in alarms["p1/motor_stall"]["transitions"]] == ["raise", "acknowledge"]
    assert [e["level"] for e in alarms["p2/memory_error"]["escalations"]] == [1]
    (command,) = body["commands"]
    assert (command["type"], command["status"], command["answered_at"]) == (
        "inject_fault",
        "applied",
        (T0 + S).isoformat(),
    )
    (p1,) = [p for p in body["pumps"] if p["device_id"] == "p1"]
    assert [f["motor"] for f in p1["frames"]] == ["running", "stalled"]
    # a window that starts after the raise has neither the alarm nor its escalations
    later = window_replay(
        T0 + 35 * S,
        T0 + 300 * S,
        transitions=transitions,
        responses=responses,
        escalations=ladder,
        frames=[],
        commands=[],
    )
    assert [a["key"] for a in later["alarms"]] == []
    assert [a["action"] for a in later["trainees"][0]["acts"]] == ["rotor_study"]
    only = window_replay(
        T0,
        T0 + 300 * S,
        transitions=transitions,
        responses=responses,
        escalations=[],
        frames=[],
        commands=[],
        only="bob",
    )
    assert only["trainees"] == []


def test_a_session_replay_hides_the_answers_when_asked_and_keeps_the_steps_in_order() -> None:
    transitions, responses, ladder = _stall_story()
    devices = frozenset({"p1", "p2"})
    expected = {"p1/motor_stall": ("rotor_study",)}
    result = score(
        occurrences(transitions, devices, T0, None),
        acts(transitions, responses, frozenset({"ann"}), devices, T0, None),
        ("ann",),
        expected,
        ended=True,
        escalations=ladder,
    )
    session = replace(
        TrainingSession("t-1", "x", "X", "run-1", "ian", ("ann",), ("p1", "p2"), 60.0, T0, expected=expected),
        status="completed",
        ended_at=T0 + 300 * S,
        final=result,
    )
    events = [
        TrainingEvent("t-1", "step-2", "scenario:x", T0 + 2 * S, {"step": "patient_symptom", "symptom": "itching"}),
        TrainingEvent("t-1", "started", "ian", T0, {}),
        TrainingEvent("t-1", "step-1", "scenario:x", T0 + S, {"step": "inject_fault"}),
        TrainingEvent("t-1", "completed", "scenario", T0 + 300 * S, {}),
    ]
    common = {
        "end": T0 + 300 * S,
        "transitions": transitions,
        "escalations": ladder,
        "frames": [],
        "events": events,
        "commands": [],
        "sites": {"p1": "w", "p2": "w"},
    }
    shown = session_replay(session, result, **common)  # type: ignore[arg-type]
    assert [s["step"] for s in shown["steps"]] == ["inject_fault", "patient_symptom"]
    assert [e["event"] for e in shown["session_events"]] == ["started", "completed"]
    assert shown["alarms"][0]["expected"] == ["rotor_study"]
    assert shown["team"]["escalated"] == 1
    hidden = session_replay(session, result, reveal=False, **common)  # type: ignore[arg-type]
    assert hidden["session"]["expected"] == {}
    assert {tuple(r["expected"]) for t in hidden["trainees"] for r in t["rows"]} == {()}
    assert all(a["expected"] == [] for a in hidden["alarms"])


FORBIDDEN = {"asyncio", "aiomqtt", "fastapi", "sqlite3", "time", "socket", "httpx", "simpy", "random", "uvicorn"}


@pytest.mark.parametrize("module", [escalation, frames, records, replay], ids=lambda m: m.__name__)
def test_the_debrief_core_does_no_io(module: ModuleType) -> None:
    assert module.__file__ is not None
    source = Path(module.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {name.split(".")[0] for name in imported}.isdisjoint(FORBIDDEN)
    assert not {name for name in imported if name.startswith(("twin.store", "twin.service", "twin.api", "twin.influx"))}
    assert "open(" not in source
