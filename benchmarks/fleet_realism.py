"""Is the simulated fleet believable? 10,000 pump-years with the clinic and random faults on, every
event's incidence beside its published (or assumed) rate and source tag.

A generated fleet of 1,000 pumps (the usual mix of models and drugs, implanted 0-5 years before the
start) runs for 10 simulated years: refills booked from the predicted date, ERI replacements,
catheter revisions, dose adjustments, and the hazards of DOMAIN-RESEARCH §7 (twin.sim.clinic). The
fleet is split over worker processes by pump (each pump its own seeded streams, so the split does
not change what happens to a pump). Nothing is published: a sink counts the messages.

Checked, and the run fails if not: every reservoir-empty and end-of-service alarm follows a missed
appointment; every pump model is refilled; no valve-gated pump stalls.

    python -m benchmarks.fleet_realism [--pumps 1000] [--years 10] [--workers 2] [--write]

``--write`` replaces the table between the markers in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.pump.drugs import DRUGS
from twin.sim.clinic import (
    CATHETER_COMPLICATION_PER_PATIENT_YEAR,
    CATHETER_FIRST_YEAR_PER_YEAR,
    CATHETER_FIRST_YEAR_SHARE,
    CATHETER_FOLLOW_UP_YEARS,
    CATHETER_LATER_PER_YEAR,
    GRANULOMA_PER_OPIOID_PATIENT_YEAR,
    INFECTION_PER_PROCEDURE,
    MISSED_APPOINTMENT_RATE,
    MOTOR_STALL_OFF_LABEL_PER_PUMP_YEAR,
    MOTOR_STALL_PER_PUMP_YEAR,
    POCKET_FILL_PER_REFILL,
    PROGRAMMING_ERROR_PER_REPROGRAMMING,
    SECONDS_PER_YEAR,
)
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import PumpSpec, default_epoch, generate_fleet
from twin.sim.simulation import FleetSimulation

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
START_MARK = "<!-- fleet_realism:start -->"
END_MARK = "<!-- fleet_realism:end -->"
DAY_S = 86_400.0


@dataclass
class Tally:
    """What one worker saw: counts and their exposures (years, refills, procedures)."""

    pump_years: float = 0.0
    years_by_model: Counter[str] = field(default_factory=Counter)
    years_labelled: float = 0.0  # peristaltic pumps on a drug labelled for them
    years_off_label: float = 0.0
    years_valve_gated: float = 0.0
    years_opioid: float = 0.0
    catheter_years_first: float = 0.0
    catheter_years_later: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    refills_by_model: Counter[str] = field(default_factory=Counter)
    stalls_by_drive: Counter[str] = field(default_factory=Counter)
    eri_to_replacement_days: list[float] = field(default_factory=list)
    months_to_eri: list[float] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    def add(self, other: Tally) -> None:
        for name in (
            "pump_years",
            "years_labelled",
            "years_off_label",
            "years_valve_gated",
            "years_opioid",
            "catheter_years_first",
            "catheter_years_later",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("years_by_model", "counts", "refills_by_model", "stalls_by_drive", "messages"):
            getattr(self, name).update(getattr(other, name))
        self.eri_to_replacement_days += other.eri_to_replacement_days
        self.months_to_eri += other.months_to_eri
        self.wall_s = max(self.wall_s, other.wall_s)


def _catheter_years(starts: list[float], end: float) -> tuple[float, float]:
    """Years spent with the catheter in its first year, and after it, over [0, end]."""
    first = later = 0.0
    bounds = [*starts[1:], end]
    for start, stop in zip(starts, bounds, strict=True):
        edge = start + SECONDS_PER_YEAR
        lo, hi = max(0.0, start), min(stop, end)
        if hi <= lo:
            continue
        first += max(0.0, min(hi, edge) - lo)
        later += max(0.0, hi - max(lo, edge))
    return first / SECONDS_PER_YEAR, later / SECONDS_PER_YEAR


def run_part(specs: list[PumpSpec], years: float, seed: int) -> Tally:
    """Simulate ``specs`` for ``years`` with the clinic and the hazards on; tally what happened."""
    tally = Tally()

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        tally.messages[outgoing.channel.value] += 1

    started = time.perf_counter()
    epoch = default_epoch()
    sim = FleetSimulation(
        specs, epoch=epoch, seed=seed, sink=sink, clinic_refills=True, random_faults=True, record_events=True
    )
    sim.open_sessions(1)
    end = years * SECONDS_PER_YEAR
    sim.run(end)
    tally.wall_s = time.perf_counter() - started
    by_id = {s.device_id: s for s in specs}
    for device_id, patient in sim.patients.items():
        spec = by_id[device_id]
        pump_years = end / SECONDS_PER_YEAR
        tally.pump_years += pump_years
        tally.years_by_model[spec.model] += pump_years
        if spec.valve_gated:
            tally.years_valve_gated += pump_years
        elif DRUGS[spec.drug].fda_labelled_for_synchromed:
            tally.years_labelled += pump_years
        else:
            tally.years_off_label += pump_years
        if DRUGS[spec.drug].opioid:
            tally.years_opioid += pump_years
        first, later = _catheter_years(patient.catheter_starts, end)
        tally.catheter_years_first += first
        tally.catheter_years_later += later
    assert sim.events is not None
    eri_at: dict[str, float] = {}
    implanted: dict[str, float] = {d: p.pump_starts[0][0] for d, p in sim.patients.items()}
    for e in sim.events:
        kind = e.kind if not e.detail else f"{e.kind}:{e.detail}"
        tally.counts[kind] += 1
        if e.kind == "refill":
            tally.refills_by_model[e.model] += 1
        if e.kind == "motor_stall":
            tally.stalls_by_drive["valve_gated" if by_id[e.device_id].valve_gated else "peristaltic"] += 1
        if e.kind == "alarm" and e.detail == "battery_eri":
            eri_at[e.device_id] = e.at_s
            tally.months_to_eri.append((e.at_s - implanted[e.device_id]) / (SECONDS_PER_YEAR / 12))
        if e.kind == "replacement":
            if e.device_id in eri_at and e.detail in ("battery_eri", "battery_eos"):
                tally.eri_to_replacement_days.append((e.at_s - eri_at.pop(e.device_id)) / DAY_S)
            implanted[e.device_id] = e.at_s
    return tally


def _part(args: tuple[list[dict[str, Any]], float, int]) -> Tally:
    specs, years, seed = args
    return run_part([PumpSpec.model_validate(s) for s in specs], years, seed)


def simulate(pumps: int, years: float, workers: int, seed: int) -> Tally:
    specs = generate_fleet(pumps, seed=seed, start=default_epoch())
    parts = [[s.model_dump(mode="json") for s in specs[i::workers]] for i in range(workers)]
    total = Tally()
    if workers == 1:
        total.add(run_part(specs, years, seed))
        return total
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_part, [(p, years, seed) for p in parts]):
            total.add(part)
    return total


# ------------------------------------------------------------------------------------- the table


def _rate(count: float, exposure: float) -> float:
    return count / exposure if exposure > 0 else math.nan


def _sum(counts: Counter[str], prefix: str) -> int:
    return sum(v for k, v in counts.items() if k == prefix or k.startswith(prefix + ":"))


def rows(t: Tally) -> list[tuple[str, str, str, str]]:
    """(event, measured, published or assumed, source) rows of the table."""
    c = t.counts
    refills = _sum(c, "refill")
    reprograms = _sum(c, "reprogram")
    procedures = _sum(c, "replacement") + c["catheter_revision"]
    stalls_labelled = c["motor_stall"]
    stalls_off = c["motor_stall:off_label"]
    first = sum(v for k, v in c.items() if k.startswith("catheter_complication:") and k.endswith(":year_1"))
    later = sum(v for k, v in c.items() if k.startswith("catheter_complication:") and k.endswith(":later"))
    first_rate = _rate(first, t.catheter_years_first)
    later_rate = _rate(later, t.catheter_years_later)
    years = CATHETER_FOLLOW_UP_YEARS
    mean_rate = (first_rate + (years - 1) * later_rate) / years
    share = first_rate / (first_rate + (years - 1) * later_rate)
    missed = c["appointment_missed:refill"] + c["replacement_missed:battery_eri"] + c["replacement_missed:battery_eos"]
    appointments = refills + _sum(c, "replacement") + missed
    empties_after = c["alarm:reservoir_empty:after_missed_appointment"]
    empties_other = c["alarm:reservoir_empty:unexplained"]
    eos_after = c["alarm:battery_eos:after_missed_replacement"]
    eos_other = c["alarm:battery_eos:unexplained"]
    eri = c["alarm:battery_eri"]
    replaced = t.eri_to_replacement_days
    within = sum(1 for d in replaced if d <= 90.0)
    months = sorted(t.months_to_eri)
    interval = {m: 365.25 * t.years_by_model[m] / n for m, n in t.refills_by_model.items() if n}
    py = t.pump_years
    return [
        (
            "Motor stall, peristaltic pump on a labelled drug (per pump-year)",
            f"{_rate(stalls_labelled, t.years_labelled):.4f} ({stalls_labelled} in {t.years_labelled:,.0f})",
            f"{MOTOR_STALL_PER_PUMP_YEAR} (2.4 % at 78 months)",
            "[I] from [V-S54]",
        ),
        (
            "Motor stall, peristaltic pump on an off-label drug",
            f"{_rate(stalls_off, t.years_off_label):.4f} ({stalls_off} in {t.years_off_label:,.0f})",
            f"{MOTOR_STALL_OFF_LABEL_PER_PUMP_YEAR} (7.0 % at 78 months)",
            "[I] from [V-S54]",
        ),
        (
            "Motor stall, valve-gated pump (Prometra)",
            f"{t.stalls_by_drive['valve_gated']} in {t.years_valve_gated:,.0f} pump-years",
            "never (no rotor)",
            "[V-S18]",
        ),
        (
            "Catheter complication, catheter in its first year (per catheter-year)",
            f"{first_rate:.3f} ({first} in {t.catheter_years_first:,.0f})",
            f"{CATHETER_FIRST_YEAR_PER_YEAR:.3f}",
            "[I] from [V-S65] (47 % in year 1) and the 0.03 mean",
        ),
        (
            "Catheter complication, later years (per catheter-year)",
            f"{later_rate:.4f} ({later} in {t.catheter_years_later:,.0f})",
            f"{CATHETER_LATER_PER_YEAR:.4f}",
            "[I] as above",
        ),
        (
            f"Catheter complications, {years:g}-year mean from the two measured rates (per patient-year)",
            f"{mean_rate:.4f}",
            f"{CATHETER_COMPLICATION_PER_PATIENT_YEAR} (0.02-0.33)",
            "[I] from [V-S49, S50, S65]",
        ),
        (
            f"... of them in the first year ({years:g}-year follow-up)",
            f"{share:.0%}",
            f"{CATHETER_FIRST_YEAR_SHARE:.0%}",
            "[V-S65]",
        ),
        (
            "Catheter-tip granuloma, on an opioid (per patient-year)",
            f"{_rate(c['granuloma'], t.years_opioid):.4f} ({c['granuloma']} in {t.years_opioid:,.0f})",
            f"{GRANULOMA_PER_OPIOID_PATIENT_YEAR} (0.009-0.03)",
            "[V-S53, S52]",
        ),
        (
            "Pocket fill (per refill)",
            f"{_rate(c['pocket_fill'], refills):.3%} ({c['pocket_fill']} in {refills:,})",
            f"{POCKET_FILL_PER_REFILL:.2%} (0.01-0.5 %)",
            "[A]",
        ),
        (
            "Programming error (per reprogramming)",
            f"{_rate(c['programming_error'], reprograms):.3%} ({c['programming_error']} in {reprograms:,})",
            f"{PROGRAMMING_ERROR_PER_REPROGRAMMING:.1%} (0.01-1 %)",
            "[A]",
        ),
        (
            "Infection (per surgical procedure: replacement, catheter revision)",
            f"{_rate(c['infection'], procedures):.1%} ({c['infection']} in {procedures:,})",
            f"{INFECTION_PER_PROCEDURE:.0%} (1.4-7 %)",
            "[V-S51, S68]",
        ),
        (
            "Battery ERI (per pump-year)",
            f"{_rate(eri, py):.3f} ({eri})",
            "about 1/6 (6 years to ERI, 4.5-7)",
            "[V-S2, S30]",
        ),
        (
            "Pump age at ERI, median months (pumps implanted in the run or before it)",
            f"{months[len(months) // 2]:.0f}" if months else "-",
            "55 (mean, at replacement)",
            "[V-S30]",
        ),
        (
            "ERI to replacement surgery, within the 90-day window",
            f"{within} of {len(replaced)} (max {max(replaced, default=0):.0f} days)",
            "all (EOS 90 days after ERI)",
            "[V-S2]",
        ),
        (
            "Missed appointments (per appointment)",
            f"{_rate(missed, appointments):.2%} ({missed} in {appointments:,})",
            f"{MISSED_APPOINTMENT_RATE:.0%} (a setting)",
            "[A]",
        ),
        (
            "Reservoir empty (per pump-year)",
            f"{_rate(empties_after + empties_other, py):.4f}: {empties_after} after a missed appointment, "
            f"{empties_other} otherwise",
            "only after a missed appointment",
            "the clinic's rule",
        ),
        (
            "End of service (per pump-year)",
            f"{_rate(eos_after + eos_other, py):.4f}: {eos_after} after a missed replacement, {eos_other} otherwise",
            "only after a missed replacement",
            "the clinic's rule",
        ),
        (
            "Refill discrepancy beyond tolerance (per refill)",
            f"{_rate(c['refill:discrepancy'], refills):.1%}",
            "no published rate; tolerance 1 mL (20 mL), 2 mL (40 mL)",
            "[V-S55]",
        ),
        *(
            (
                f"Mean refill interval, {model}",
                f"{interval[model]:.0f} days ({t.refills_by_model[model]:,} refills)",
                "28-90 days, capped by drug stability",
                "[I], [V-S37]",
            )
            for model in sorted(t.years_by_model)
            if model in interval
        ),
    ]


def table(t: Tally, pumps: int, years: float, workers: int) -> str:
    lines = [
        START_MARK,
        f"`fleet_realism`: {t.pump_years:,.0f} pump-years ({pumps:,} generated pumps x {years:g} years, clinic and "
        f"random faults on, {workers} worker processes, {t.wall_s:.0f} s wall for the slowest).",
        "",
        "| event | measured | published or assumed | source |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(t)),
        END_MARK,
    ]
    return "\n".join(lines)


def check(t: Tally) -> list[str]:
    """What must hold: the clinic's rules and every model refilled."""
    problems = []
    c = t.counts
    if c["alarm:reservoir_empty:unexplained"]:
        problems.append(f"{c['alarm:reservoir_empty:unexplained']} reservoir-empty alarms without a missed appointment")
    if c["alarm:battery_eos:unexplained"]:
        problems.append(f"{c['alarm:battery_eos:unexplained']} end-of-service alarms without a missed replacement")
    for model in t.years_by_model:
        if not t.refills_by_model[model]:
            problems.append(f"{model} was never refilled")
    if t.stalls_by_drive["valve_gated"]:
        problems.append("a valve-gated pump stalled")
    return problems


def write(text: str, path: Path = BENCHMARKS_MD) -> None:
    content = path.read_text(encoding="utf-8")
    if START_MARK in content and END_MARK in content:
        before, rest = content.split(START_MARK, 1)
        after = rest.split(END_MARK, 1)[1]
        content = before + text + after
    else:
        content = content.rstrip() + "\n\n## Fleet realism\n\n" + text + "\n"
    path.write_text(content, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=1000)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="replace the table in BENCHMARKS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    tally = simulate(args.pumps, args.years, args.workers, args.seed)
    wall = time.perf_counter() - started
    text = table(tally, args.pumps, args.years, args.workers)
    print(text)
    if args.write:
        write(text)
    problems = check(tally)
    by_kind: dict[str, int] = defaultdict(int)
    for key, value in tally.counts.items():
        by_kind[key] += value
    print(
        json.dumps(
            {
                "benchmark": "fleet_realism",
                "pump_years": round(tally.pump_years),
                "figure": {"name": "wall seconds", "value": round(wall, 1)},
                "baseline": None,
                "ratio": None,
                "ratio_meaning": "a realism check, not a speed figure: see the table",
                "messages": dict(tally.messages),
                "counts": dict(sorted(by_kind.items())),
                "problems": problems,
            }
        )
    )
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
