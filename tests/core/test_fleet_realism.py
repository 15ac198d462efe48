"""The realism benchmark's accounting (benchmarks/fleet_realism.py) on a small fleet: exposures
add up, the table renders every row, and the clinic's rules hold."""

from __future__ import annotations

import pytest

from benchmarks.fleet_realism import _catheter_years, check, rows, simulate
from twin.sim.clinic import SECONDS_PER_YEAR

Y = SECONDS_PER_YEAR


def test_catheter_years_split_at_each_catheters_first_birthday() -> None:
    # implanted half a year before the start, revised at 2 years, run of 3 years
    first, later = _catheter_years([-0.5 * Y, 2 * Y], 3 * Y)
    assert first == pytest.approx(0.5 + 1.0)
    assert later == pytest.approx(1.5)
    assert sum(_catheter_years([-4 * Y], 3 * Y)) == pytest.approx(3.0)


def test_a_small_fleet_year_keeps_the_clinics_rules() -> None:
    tally = simulate(pumps=40, years=1.0, workers=1, seed=7)
    assert tally.pump_years == pytest.approx(40.0)
    assert tally.catheter_years_first + tally.catheter_years_later == pytest.approx(40.0)
    assert tally.years_labelled + tally.years_off_label + tally.years_valve_gated == pytest.approx(40.0)
    assert check(tally) == []
    table = rows(tally)
    assert len(table) >= 18
    assert all(len(row) == 4 for row in table)
