"""The hazards of intrathecal pump therapy that scenarios train, by id.

The full analysis (hazard, cause, what detects it, what staff must do, sources) is
``docs/hazards.md``, in the style of the FDA's generic infusion pump hazard analysis; this enum
holds its ids so that a scenario's ``hazards:`` field is checked when the file is read, and the
JSON Schema lists them. ``tests/core/test_hazard_coverage.py`` keeps the two equal and fails when
a hazard has no scenario. Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class Hazard(StrEnum):
    """One row of ``docs/hazards.md`` (its id column)."""

    # under-delivery, interruption or delay of therapy
    RESERVOIR_RUNS_DRY = "reservoir-runs-dry"
    MOTOR_STALL = "motor-stall"
    MRI_DELAYED_RESTART = "mri-delayed-restart"
    PUMP_SELF_CHECK_FAILURE = "pump-self-check-failure"
    BATTERY_DEPLETION = "battery-depletion"
    CATHETER_OCCLUSION = "catheter-occlusion"
    CATHETER_LEAK_OR_DISCONNECTION = "catheter-leak-or-disconnection"
    CATHETER_TIP_GRANULOMA = "catheter-tip-granuloma"
    PUMP_LEFT_STOPPED = "pump-left-stopped"
    # over-delivery
    POCKET_FILL = "pocket-fill"
    CATHETER_ACCESS_PORT_INJECTION = "catheter-access-port-injection"
    PROMETRA_MRI_RESERVOIR_DUMP = "prometra-mri-reservoir-dump"
    WRONG_CONCENTRATION_DISPENSED = "wrong-concentration-dispensed"
    PROGRAMMING_ERROR = "programming-error"
    OVER_INFUSION = "over-infusion"
    # what hides a problem from staff
    REFILL_RESIDUAL_MISREAD = "refill-residual-misread"
    LOSS_OF_MONITORING = "loss-of-monitoring"
    ALARM_FLOOD = "alarm-flood"
    UNANSWERED_ALARM = "unanswered-alarm"


__all__ = ["Hazard"]
