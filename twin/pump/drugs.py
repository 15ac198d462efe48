"""Intrathecal drugs: typical concentrations and daily doses (DOMAIN.md), for realistic fleets.

Every amount is in mg (µg figures from the literature divided by 1,000), so that
``dose_mg_per_day = concentration_mg_per_ml × rate_ml_per_day`` holds without unit juggling.
These are defaults for generated fleets, not clinical guidance; per-device values are settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin.contract.messages import Drug


@dataclass(frozen=True, slots=True)
class DrugProfile:
    drug: Drug
    concentrations_mg_per_ml: tuple[float, ...]  # strengths commonly compounded or labelled
    dose_mg_per_day: tuple[float, float]  # typical maintenance range (low, high); baclofen 90-1000 µg/day [V-S39]
    fleet_share: float  # share of a generated fleet on this drug
    stability_days: float  # longest refill interval the drug's stability allows (unconfirmed, DOMAIN-RESEARCH §1.6)
    withdrawal_risk: str  # what stopping delivery does
    dangerous_withdrawal: bool = False
    """Stopping delivery is an emergency: baclofen (life-threatening, [V-S40, S34]) and clonidine
    (hypertensive emergency, [V-S74]); ziconotide stops without withdrawal ([V-S38])."""
    opioid: bool = False
    """Granuloma risk rises with intrathecal opioid dose and concentration ([V-S52, S53, S41])."""
    fda_labelled_for_synchromed: bool = False
    """FDA-labelled for SynchroMed II (Infumorph, Prialt, Lioresal, [V-S3]); other drugs are
    off-label, and with them the 78-month failure rate is 7.0 % instead of 2.4 % ([V-S54])."""


DRUGS: Final[dict[Drug, DrugProfile]] = {
    p.drug: p
    for p in (
        DrugProfile(
            Drug.MORPHINE,
            (10.0, 20.0),
            (1.0, 15.0),
            0.30,
            180,
            "opioid withdrawal and returning pain",
            opioid=True,
            fda_labelled_for_synchromed=True,
        ),
        DrugProfile(
            Drug.HYDROMORPHONE, (2.0, 5.0, 10.0, 15.0), (0.5, 4.0), 0.15, 180, "opioid withdrawal", opioid=True
        ),
        DrugProfile(Drug.FENTANYL, (0.5, 1.0, 2.0), (0.025, 1.0), 0.05, 180, "opioid withdrawal", opioid=True),
        DrugProfile(
            Drug.ZICONOTIDE,
            (0.025, 0.1),
            (0.0005, 0.0192),
            0.05,
            60,
            "none (may stop abruptly)",
            fda_labelled_for_synchromed=True,
        ),
        DrugProfile(Drug.BUPIVACAINE, (10.0, 20.0, 30.0), (4.0, 15.0), 0.05, 90, "returning pain"),
        DrugProfile(
            Drug.CLONIDINE, (0.1, 0.5, 1.0), (0.04, 0.6), 0.05, 90, "rebound hypertension", dangerous_withdrawal=True
        ),
        DrugProfile(
            Drug.BACLOFEN,
            (0.5, 1.0, 2.0),
            (0.09, 1.0),
            0.35,
            180,
            "life-threatening baclofen withdrawal",
            dangerous_withdrawal=True,
            fda_labelled_for_synchromed=True,
        ),
    )
}
