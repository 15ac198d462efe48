"""What a session's pumps looked like while it ran: the frames a replay plays back. Pure.

The journal records what staff and the twin *did* (alarm transitions, responses, commands,
escalations). A debrief also needs what the pumps *were*: the reservoir, the flow, whether the
motor turned, whether the pump was heard from. While a session runs, the desk records a
:class:`PumpFrame` of each session pump whenever what it shows changes (:func:`frame_state`,
:func:`worth_recording`), so a replay is built from the record, never re-simulated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

RESERVOIR_STEP_ML: Final = 0.05
"""A new frame when the reservoir (reported or true) moved by at least this much: finer than any
figure the console shows to one decimal, coarse enough that a pump draining at 0.5 mL/day with
telemetry every 10 simulated minutes makes a frame every few samples, not every one. [A]"""

DOSE_STEP_FRACTION: Final = 0.02
"""A new frame when a dose moved by at least this fraction of its previous value (2 %: well under
the twin's 25 % dose-deviation threshold, so every change an alert could follow is kept). [A]"""

_DISCRETE: Final = (
    "presence",
    "infusing",
    "motor",
    "program_mode",
    "stop_reason",
    "battery_status",
    "active_alarms",
    "drug",
    "concentration_mg_per_ml",
    "program_rate_ml_per_day",
    "true_catheter",
)
_VOLUMES: Final = ("reservoir_ml", "true_reservoir_ml")
_DOSES: Final = ("dose_mg_per_day", "true_actual_dose_mg_per_day", "current_rate_ml_per_day")


@dataclass(frozen=True, slots=True)
class PumpFrame:
    """One session pump at one moment (table ``training_frame``); ``seq`` counts the pump's frames
    in the session from 1 (``(session_id, site, device_id, seq)`` identifies it). ``at``: the
    twin's clock; ``state``: :func:`frame_state`'s JSON object (``device_time`` inside is the pump's)."""

    session_id: str
    site: str
    device_id: str
    seq: int
    at: datetime
    state: Mapping[str, Any]


def frame_state(
    summary: Mapping[str, Any], reported: Mapping[str, Any] | None, telemetry: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The figures a replay shows, from the twin's device summary and the latest reported state and
    telemetry sample (contract JSON, as ``model_dump(mode="json")`` gives them; either may be
    missing). The newer of state and telemetry gives the moving figures; the truth behind the
    pump (``true_*``) only simulated pumps report."""
    state = dict(reported or {})
    sample = dict(telemetry or {})
    newer = (
        sample if sample and (not state or str(sample.get("device_time")) >= str(state.get("device_time"))) else state
    )
    program = state.get("program") or {}
    truth = sample.get("sim_truth") or {}
    dose = newer.get("dose_mg_per_day")
    if (
        dose is None
        and state.get("concentration_mg_per_ml") is not None
        and state.get("current_rate_ml_per_day") is not None
    ):
        dose = float(state["concentration_mg_per_ml"]) * float(state["current_rate_ml_per_day"])
    out: dict[str, Any] = {
        "device_time": newer.get("device_time"),
        "presence": summary.get("presence"),
        "reservoir_ml": newer.get("reservoir_ml"),
        "current_rate_ml_per_day": newer.get("current_rate_ml_per_day"),
        "dose_mg_per_day": dose,
        "battery_percent": newer.get("battery_percent"),
        "infusing": newer.get("infusing"),
        "motor": newer.get("motor"),
        "drug": state.get("drug"),
        "concentration_mg_per_ml": state.get("concentration_mg_per_ml"),
        "program_mode": program.get("mode"),
        "program_rate_ml_per_day": program.get("rate_ml_per_day"),
        "stop_reason": state.get("stop_reason"),
        "battery_status": state.get("battery"),
        "active_alarms": sorted(state.get("active_alarms") or []),
        "true_reservoir_ml": truth.get("reservoir_ml"),
        "true_actual_dose_mg_per_day": truth.get("actual_dose_mg_per_day"),
        "true_catheter": truth.get("catheter"),
    }
    return out


def worth_recording(previous: Mapping[str, Any] | None, state: Mapping[str, Any]) -> bool:
    """Does ``state`` differ from the last frame recorded enough to record it? The first frame
    always; then a change in anything discrete (presence, infusing, motor, program, alarms ...), a
    volume moved by :data:`RESERVOIR_STEP_ML`, or a dose or rate moved by :data:`DOSE_STEP_FRACTION`."""
    if previous is None:
        return True
    if any(previous.get(k) != state.get(k) for k in _DISCRETE):
        return True
    for k in _VOLUMES:
        if _moved(previous.get(k), state.get(k), absolute=RESERVOIR_STEP_ML):
            return True
    return any(_moved(previous.get(k), state.get(k), relative=DOSE_STEP_FRACTION) for k in _DOSES)


def _moved(before: Any, after: Any, *, absolute: float | None = None, relative: float | None = None) -> bool:
    if before is None or after is None:
        return before is not after
    change = abs(float(after) - float(before))
    if absolute is not None:
        return change >= absolute
    assert relative is not None
    base = abs(float(before))
    return change > 0 if base == 0 else change >= relative * base


__all__ = ["DOSE_STEP_FRACTION", "RESERVOIR_STEP_ML", "PumpFrame", "frame_state", "worth_recording"]
