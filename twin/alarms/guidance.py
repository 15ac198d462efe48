"""What each alarm means and what staff do about it, for the console's alarm cards: the pump's own
alarms (:data:`twin.contract.alarms.ALARM_CATALOGUE`, the device's catalogue) and the twin's
derived alerts (:class:`twin.mirror.alerts.TwinAlertCode`), in one table keyed by alarm code.

The texts of the twin's alerts follow DOMAIN.md (failure modes, refill discrepancy thresholds)
and DOMAIN-RESEARCH §4.4 and §8 (staff responses). An instructor may hide the whole table from
trainees for a test (``twin.api.catalogue``): the guidance is a crutch a competent nurse does not
need.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from twin.contract.alarms import ALARM_CATALOGUE, Priority
from twin.mirror.alerts import ALERT_PRIORITY, TwinAlertCode


@dataclass(frozen=True, slots=True)
class AlarmGuidance:
    """One alarm code: who raises it, its priority, a title, what it means, what staff do."""

    code: str
    source: Literal["device", "twin"]
    priority: Priority
    title: str
    meaning: str
    staff_response: str


_TWIN_ALERTS: Final[dict[TwinAlertCode, tuple[str, str, str]]] = {
    TwinAlertCode.DEVICE_OFFLINE: (
        "Pump link offline",
        "The link that carries the pump's reports (gateway, simulator connection) went offline. The pump "
        "itself keeps infusing: an implanted pump does not need the link.",
        "Check the gateway or the network. If the link stays down, the twin only predicts: interrogate the "
        "pump at the next visit.",
    ),
    TwinAlertCode.DEVICE_SILENT: (
        "Pump silent",
        "No report from the pump for longer than the silence threshold, although its link was not marked offline.",
        "Check the connection; a silent pump may be fine. If it stays silent, interrogate it at the clinic.",
    ),
    TwinAlertCode.REFILL_DISCREPANCY: (
        "Refill volume discrepancy",
        "At the refill, the residual withdrawn differed from the volume the pump expected by more than 1 mL "
        "(20 mL pump) or 2 mL (40 mL pump). More left than expected: drug did not leave (occlusion, stall). "
        "Less: it went elsewhere (leak, pocket fill) or the pump over-infused.",
        "More left: catheter dye study or rotor study, assess for withdrawal. Less left: assess for overdose, "
        "check needle placement, consider a pocket fill. Escalate to the physician.",
    ),
    TwinAlertCode.EMPTY_BEFORE_REFILL: (
        "Empty before the planned refill",
        "The pump's program empties the reservoir before its refill date (the pump's refill reminder).",
        "Bring the refill forward, before the predicted empty date; correct the refill reminder.",
    ),
    TwinAlertCode.DOSE_DEVIATION: (
        "Delivered dose off the programmed dose",
        "The dose reaching the patient differs from the programmed dose (from the simulator's truth: a real "
        "pump cannot know it).",
        "Assess the patient for over- or under-dose; verify the prescription and the concentration; consider "
        "a catheter study.",
    ),
    TwinAlertCode.RESERVOIR_LOW_PREDICTED: (
        "Low reservoir (predicted)",
        "For a pump without an audible low-reservoir alarm, the twin's forecast of its reservoir crossed the "
        "low-reservoir threshold.",
        "Schedule a refill before the predicted empty date.",
    ),
    TwinAlertCode.IDENTITY_CONFLICT: (
        "Pump identity contradicted",
        "A birth message for this pump named another model, or claimed it simulated when it was first known as "
        "real (or the reverse). The twin refused that session and kept the identity it first pinned: the refused "
        "messages changed nothing. A misconfigured gateway, a second device publishing under the same id, or a "
        "forged message.",
        "Do not act on the refused reports. Tell the clinical engineer or IT security: check which gateway or "
        "simulator publishes under this id. Acknowledge once it is explained.",
    ),
}

GUIDANCE: Final[dict[str, AlarmGuidance]] = {
    **{
        code.value: AlarmGuidance(code.value, "device", spec.priority, spec.title, spec.trigger, spec.staff_response)
        for code, spec in ALARM_CATALOGUE.items()
    },
    **{
        code.value: AlarmGuidance(code.value, "twin", ALERT_PRIORITY[code], title, meaning, response)
        for code, (title, meaning, response) in _TWIN_ALERTS.items()
    },
}
"""Every alarm code the twin can raise, device alarms first (a test keeps it complete)."""


__all__ = ["GUIDANCE", "AlarmGuidance"]
