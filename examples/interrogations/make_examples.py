"""Writes the example read-outs of this folder (``python examples/interrogations/make_examples.py``).

The figures are made, not typed: each visit of the year series refills the pump, and the pump's calculated
residual at the next visit is what the twin's own model (``twin.mirror.prediction``) predicts from the
previous read-out, so the examples are consistent with the twin by construction. The measured residual is
the calculated one, less the over-delivery pumps show in clinic (+1.5 %, within the +1 % to +2.5 % of
[V-S24]), plus a syringe reading error (sd 0.1 mL, read to 0.1 mL) [A]; one visit (2026-06-29) has 2.4 mL
more left than calculated, beyond the 1 mL tolerance of a 20 mL pump (DOMAIN.md): under-infusion, a
catheter to investigate. ``tests/core/test_readout_examples.py`` checks that the files are what this
script writes.

Seeded (``random.Random(412)``), no clock: the output is the same on every run.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import yaml

from twin.gateway.publication import BATTERY, birth_of, mean_rate_ml_per_day, state_of
from twin.gateway.readout import FORMAT, Interrogation
from twin.mirror.prediction import predict

HERE: Final = Path(__file__).resolve().parent
CLINIC: Final = ZoneInfo("Europe/Oslo")
SITE: Final = "st-olaf-clinic"

CLINICAL_OVER_DELIVERY: Final = 0.015
"""Pumps in clinic deliver 1–2.5 % more than programmed [V-S24]: less is left than calculated."""

SYRINGE_SD_ML: Final = 0.1
"""Reading error of the residual withdrawn by syringe [A]."""

OCCLUSION_EXCESS_ML: Final = 2.4
"""The discrepant visit: this much more left than calculated (partial catheter occlusion)."""

CONTINUOUS = {"mode": "continuous", "rate_ml_per_day": 0.25}
FLEXIBLE = {
    "mode": "flexible",
    "steps": [
        {"start_minute": 0, "rate_ml_per_day": 0.32},
        {"start_minute": 7 * 60, "rate_ml_per_day": 0.22},
        {"start_minute": 21 * 60, "rate_ml_per_day": 0.32},
    ],
}
"""Baclofen flex dosing: more at night, when spasticity is worst [V-S3, S43]."""


@dataclass(frozen=True)
class Visit:
    day: date
    program: dict[str, Any]
    discrepant: bool = False
    written: bool = True


# implant 2025-03-18; refills every 7–10 weeks (DOMAIN-RESEARCH §7: 28–90 days); the 2025 visits make the
# pump's rolling event log, the 2026 ones are the files
SERIES: Final = [
    Visit(date(2025, 5, 19), CONTINUOUS, written=False),
    Visit(date(2025, 7, 21), CONTINUOUS, written=False),
    Visit(date(2025, 9, 22), CONTINUOUS, written=False),
    Visit(date(2025, 11, 17), CONTINUOUS, written=False),
    Visit(date(2026, 1, 12), CONTINUOUS),
    Visit(date(2026, 3, 9), CONTINUOUS),
    Visit(date(2026, 5, 11), FLEXIBLE),  # reprogrammed at this visit
    Visit(date(2026, 6, 29), FLEXIBLE, discrepant=True),
    Visit(date(2026, 9, 7), FLEXIBLE),  # 70 days: the low-reservoir alarm sounds before it
    Visit(date(2026, 11, 2), FLEXIBLE),
    Visit(date(2027, 1, 4), FLEXIBLE),
]
IMPLANT: Final = date(2025, 3, 18)
FILL_ML: Final = 20.0
LOG_WINDOW: Final = timedelta(days=365)
"""The pump's event log as the programmer shows it: the last year."""


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CLINIC)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _pump_20() -> dict[str, Any]:
    return {
        "manufacturer": "Medtronic",
        "model": "SynchroMed II",
        "model_number": "8637-20",
        "serial": "NGP204512H",
        "firmware": "8637-20 v2.1",
        "implant_date": IMPLANT.isoformat(),
        "reservoir_capacity_ml": 20.0,
        "drive": "peristaltic_motor",
        "audible_alarms": True,
        "catheter_volume_ml": 0.23,
    }


def _describe(program: dict[str, Any]) -> str:
    if program["mode"] == "continuous":
        return f"continuous {program['rate_ml_per_day']} mL/day"
    steps = ", ".join(f"{s['start_minute'] // 60:02d}:00 {s['rate_ml_per_day']} mL/day" for s in program["steps"])
    return f"flexible: {steps}"


def year_series() -> dict[str, dict[str, Any]]:
    """The read-outs of pump itb-0412 (SynchroMed II 20 mL, baclofen 2,000 µg/mL), one per visit."""
    rng = random.Random(412)
    events: list[dict[str, Any]] = [
        {
            "event": "refill",
            "at": _iso(_at(IMPLANT, 14, 10)),
            "calculated_residual_ml": 0.0,
            "measured_residual_ml": None,
            "volume_added_ml": FILL_ML,
            "drug": "baclofen",
            "concentration_mg_per_ml": 2.0,
        },
        {
            "event": "programming",
            "at": _iso(_at(IMPLANT, 14, 20)),
            "change": "program",
            "summary": f"implant: {_describe(CONTINUOUS)}, low-reservoir alarm 2 mL",
        },
    ]
    alarm_log: list[dict[str, Any]] = []
    battery_percent = 100.0
    delivered_total = 0.0
    previous: Interrogation | None = None
    previous_at = _at(IMPLANT, 14, 30)
    program = CONTINUOUS
    out: dict[str, dict[str, Any]] = {}
    for n, visit in enumerate(SERIES):
        refill_at = _at(visit.day, 9, 40)
        if previous is None:  # the implant fill is the basis of the first visit
            calculated = FILL_ML - _mean(program) * (refill_at - previous_at).total_seconds() / 86400
            low_at = None
        else:
            seen = predict(birth_of(previous), state_of(previous), None, refill_at)
            calculated = seen.reservoir_ml
            low_at = seen.low_reservoir_at
        calculated = round(calculated, 2)
        delivered_ml = FILL_ML - calculated
        measured = calculated - CLINICAL_OVER_DELIVERY * delivered_ml + rng.gauss(0.0, SYRINGE_SD_ML)
        if visit.discrepant:
            measured = calculated + OCCLUSION_EXCESS_ML
        measured = max(0.0, round(measured, 1))
        if low_at is not None and low_at <= refill_at:
            alarm_log.append(
                {"code": "reservoir_low", "raised_at": _iso(low_at.astimezone(CLINIC)), "cleared_at": _iso(refill_at)}
            )
        delivered_total += delivered_ml
        days = (refill_at - previous_at).total_seconds() / 86400
        battery_percent -= days * BATTERY.base_percent_per_day + delivered_ml * BATTERY.percent_per_ml
        events.append(
            {
                "event": "refill",
                "at": _iso(refill_at),
                "calculated_residual_ml": calculated,
                "measured_residual_ml": measured,
                "volume_added_ml": FILL_ML,
                "drug": "baclofen",
                "concentration_mg_per_ml": 2.0,
            }
        )
        if visit.program is not program:
            events.append(
                {
                    "event": "programming",
                    "at": _iso(refill_at + timedelta(minutes=12)),
                    "change": "program",
                    "summary": f"{_describe(program)} -> {_describe(visit.program)}",
                }
            )
            program = visit.program
        interrogated_at = refill_at + timedelta(minutes=25)
        following = SERIES[n + 1].day if n + 1 < len(SERIES) else visit.day + timedelta(days=63)
        drain = BATTERY.base_percent_per_day + BATTERY.percent_per_ml * _mean(program)
        replacement = visit.day + timedelta(days=math.floor((battery_percent - BATTERY.eri_percent) / drain))
        window_start = interrogated_at - LOG_WINDOW
        document = {
            **_skeleton(),
            "interrogated_at": _iso(interrogated_at),
            "program": program,
            "reservoir": {
                "calculated_ml": FILL_ML,
                "low_threshold_ml": 2.0,
                "next_refill_at": _iso(_at(following, 10, 0)),
                "delivered_since_implant_ml": round(delivered_total, 2),
            },
            "battery": {"status": "ok", "elective_replacement_date": replacement.isoformat()},
            "alarms": {
                "active": [],
                "log": [a for a in alarm_log if datetime.fromisoformat(a["raised_at"]) >= window_start],
            },
            "events": [e for e in events if datetime.fromisoformat(e["at"]) >= window_start],
        }
        previous = Interrogation.model_validate(document)
        previous_at = interrogated_at
        if visit.written:
            out[f"itb-0412-{visit.day.isoformat()}.interrogation.yaml"] = document
    return out


def _mean(program: dict[str, Any]) -> float:
    return mean_rate_ml_per_day(Interrogation.model_validate({**_skeleton(), "program": program}).program)


def _skeleton() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "site": SITE,
        "device_id": "itb-0412",
        "interrogated_at": _iso(_at(date(2026, 1, 1), 12, 0)),
        "programmer": "Medtronic clinician programmer A810, application 1.2",
        "pump": _pump_20(),
        "drugs": [{"drug": "baclofen", "concentration_mg_per_ml": 2.0}],
        "program": CONTINUOUS,
        "reservoir": {"calculated_ml": FILL_ML, "low_threshold_ml": 2.0},
        "battery": {"status": "ok", "elective_replacement_date": "2031-05-01"},
        "alarms": {"active": [], "log": []},
        "drive": {"state": "running"},
        "self_check": {"status": "passed"},
        "events": [],
    }


def synchromed_40() -> dict[str, Any]:
    """A 40 mL SynchroMed II past ERI: morphine with bupivacaine, a therapy manager, boluses refused in lockout."""
    refill = _at(date(2026, 9, 14), 11, 0)
    eri = _at(date(2026, 8, 20), 3, 12)
    boluses: list[dict[str, Any]] = []
    for day, times in ((12, ("08:10", "13:45", "14:20", "20:05")), (13, ("07:55", "12:30", "19:40"))):
        last_accepted: datetime | None = None
        for clock in times:
            hour, minute = (int(p) for p in clock.split(":"))
            at = _at(date(2026, 9, day), hour, minute)
            accepted = last_accepted is None or at - last_accepted >= timedelta(minutes=180)
            entry: dict[str, Any] = {"event": "patient_bolus", "at": _iso(at), "volume_ml": 0.02, "accepted": accepted}
            if not accepted:
                entry["reason"] = "lockout (180 min)"
            else:
                last_accepted = at
            boluses.append(entry)
    previous_refill = _at(date(2026, 7, 20), 10, 50)
    accepted_ml = sum(b["volume_ml"] for b in boluses if b["accepted"])
    calculated = round(40.0 - 0.4 * (refill - previous_refill).total_seconds() / 86400 - accepted_ml, 2)
    measured = round(calculated - CLINICAL_OVER_DELIVERY * (40.0 - calculated) + 0.04, 1)
    return {
        "format": FORMAT,
        "site": SITE,
        "device_id": "pain-0097",
        "interrogated_at": _iso(refill + timedelta(minutes=30)),
        "programmer": "Medtronic clinician programmer A810, application 1.2",
        "pump": {
            "manufacturer": "Medtronic",
            "model": "SynchroMed II",
            "model_number": "8637-40",
            "serial": "NGP118833H",
            "firmware": "8637-40 v2.1",
            "implant_date": "2020-06-02",
            "reservoir_capacity_ml": 40.0,
            "drive": "peristaltic_motor",
            "audible_alarms": True,
            "catheter_volume_ml": 0.27,
        },
        "drugs": [
            {"drug": "morphine", "concentration_mg_per_ml": 10.0},
            {"drug": "bupivacaine", "concentration_mg_per_ml": 15.0},
        ],
        "program": {
            "mode": "continuous",
            "rate_ml_per_day": 0.4,
            "patient_bolus": {"volume_ml": 0.02, "duration_minutes": 10, "lockout_minutes": 180, "max_per_day": 4},
        },
        "reservoir": {
            "calculated_ml": 40.0,
            "low_threshold_ml": 3.0,
            "next_refill_at": _iso(_at(date(2026, 11, 9), 10, 0)),
            "delivered_since_implant_ml": 921.4,
        },
        "battery": {
            "status": "eri",
            "eri_reached_at": _iso(eri),
            "end_of_service_at": _iso(eri + timedelta(days=90)),
        },
        "alarms": {
            "active": ["battery_eri"],
            "log": [
                {
                    "code": "reservoir_low",
                    "raised_at": _iso(_at(date(2026, 7, 19), 17, 55)),
                    "cleared_at": _iso(_at(date(2026, 7, 20), 10, 55)),
                },
                {"code": "battery_eri", "raised_at": _iso(eri), "cleared_at": None},
            ],
        },
        "drive": {"state": "running"},
        "self_check": {"status": "passed"},
        "events": [
            {
                "event": "refill",
                "at": _iso(previous_refill),
                "calculated_residual_ml": 2.71,
                "measured_residual_ml": 2.4,
                "volume_added_ml": 40.0,
                "drug": "morphine",
                "concentration_mg_per_ml": 10.0,
            },
            *boluses,
            {
                "event": "refill",
                "at": _iso(refill),
                "calculated_residual_ml": calculated,
                "measured_residual_ml": measured,
                "volume_added_ml": 40.0,
                "drug": "morphine",
                "concentration_mg_per_ml": 10.0,
            },
            {
                "event": "programming",
                "at": _iso(refill + timedelta(minutes=8)),
                "change": "refill_date",
                "summary": "refill alarm clock 2026-11-09; replacement surgery planned before end of service",
            },
        ],
    }


def prometra_ii() -> dict[str, Any]:
    """A Prometra II 20 mL (no audible alarms, valve-gated) on morphine 25 mg/mL with a patient therapy controller.
    Its next-refill date is the day the reservoir reaches 3.0 mL if every allowed bolus is used [V-S20]."""
    refill = _at(date(2026, 10, 5), 14, 20)
    rate, bolus, per_day = 0.18, 0.01, 3
    days_to_target = (20.0 - 3.0) / (rate + bolus * per_day)
    previous_refill = _at(date(2026, 7, 20), 14, 5)
    boluses = [
        {"event": "patient_bolus", "at": _iso(_at(day, hour, minute)), "volume_ml": bolus, "accepted": True}
        for day, hour, minute in (
            (date(2026, 8, 2), 21, 10),
            (date(2026, 8, 30), 7, 45),
            (date(2026, 9, 18), 22, 5),
            (date(2026, 10, 4), 21, 30),
        )
    ]
    calculated = round(20.0 - rate * (refill - previous_refill).total_seconds() / 86400 - bolus * len(boluses), 2)
    measured = round(calculated - CLINICAL_OVER_DELIVERY * (20.0 - calculated) - 0.07, 1)
    return {
        "format": FORMAT,
        "site": SITE,
        "device_id": "pain-0215",
        "interrogated_at": _iso(refill + timedelta(minutes=20)),
        "programmer": "Flowonix Prometra clinician programmer",
        "pump": {
            "manufacturer": "Flowonix",
            "model": "Prometra II",
            "model_number": "13827",
            "serial": "PII-0031877",
            "implant_date": "2024-11-26",
            "reservoir_capacity_ml": 20.0,
            "drive": "valve_pair",
            "audible_alarms": False,
            "catheter_volume_ml": (110 - 24) * 0.0026,
        },
        "drugs": [{"drug": "morphine", "concentration_mg_per_ml": 25.0}],
        "program": {
            "mode": "continuous",
            "rate_ml_per_day": rate,
            "patient_bolus": {
                "volume_ml": bolus,
                "duration_minutes": 15,
                "lockout_minutes": 240,
                "max_per_day": per_day,
            },
        },
        "reservoir": {
            "calculated_ml": 20.0,
            "low_threshold_ml": 3.0,
            "next_refill_at": _iso(_at((refill + timedelta(days=math.floor(days_to_target))).date(), 10, 0)),
            "delivered_since_implant_ml": 125.4,
        },
        "battery": {"status": "ok", "percent": 88.0},
        "alarms": {"active": [], "log": []},
        "drive": {"state": "running"},
        "self_check": {"status": "passed"},
        "events": [
            {
                "event": "refill",
                "at": _iso(previous_refill),
                "calculated_residual_ml": 5.62,
                "measured_residual_ml": 5.4,
                "volume_added_ml": 20.0,
                "drug": "morphine",
                "concentration_mg_per_ml": 25.0,
            },
            *boluses,
            {
                "event": "refill",
                "at": _iso(refill),
                "calculated_residual_ml": calculated,
                "measured_residual_ml": measured,
                "volume_added_ml": 20.0,
                "drug": "morphine",
                "concentration_mg_per_ml": 25.0,
            },
        ],
    }


def render() -> dict[str, str]:
    """Every example file's name and text."""
    files = {name: _yaml(document) for name, document in year_series().items()}
    files["pain-0097-2026-09-14.interrogation.json"] = json.dumps(synchromed_40(), indent=2) + "\n"
    files["pain-0215-2026-10-05.interrogation.json"] = json.dumps(prometra_ii(), indent=2) + "\n"
    return files


def _yaml(document: dict[str, Any]) -> str:
    header = "# An interrogation read-out (docs/interrogation.md). Written by make_examples.py: edit that.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)


def main() -> None:
    for name, text in render().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
