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
        "Simulated pump silent",
        "No report from a simulated pump for longer than the silence threshold (on the simulation's clock), "
        "although its link was not marked offline.",
        "Check the simulator's connection; a silent pump may be fine. If it stays silent, interrogate it.",
    ),
    TwinAlertCode.INTERROGATION_OVERDUE: (
        "Interrogation overdue",
        "A real pump is read only at clinic visits: no read-out has come since its planned refill date plus "
        "a week's grace, so the visit was missed. Its reservoir may be running low unseen.",
        "Contact the patient and book the refill visit now; interrogate the pump when they come. Check the "
        "forecast empty date first.",
    ),
    TwinAlertCode.REFILL_DISCREPANCY: (
        "Refill volume discrepancy",
        "At the refill, the residual withdrawn differed from the volume the pump expected by more than 1 mL "
        "(20 mL pump), 2 mL (40 mL pump) or a fifth of the expected residual. More left than expected: drug "
        "did not leave (occlusion, stall). Less: it went elsewhere (leak, pocket fill) or the pump "
        "over-infused.",
        "More left: catheter dye study or rotor study, assess for withdrawal. Less left: assess for overdose, "
        "check needle placement, consider a pocket fill. Escalate to the physician.",
    ),
    TwinAlertCode.EMPTY_BEFORE_REFILL: (
        "Empty before the planned refill",
        "With every allowed patient bolus used, the reservoir is predicted to run empty before its refill "
        "date (the pump's refill reminder), or within a week when no refill is planned.",
        "Bring the refill forward, before the predicted empty date; correct the refill reminder.",
    ),
    TwinAlertCode.CONCENTRATION_CHANGED: (
        "Concentration changed",
        "The latest refill or reprogram changed the programmed drug concentration. A concentration entered "
        "wrong changes the delivered dose by the ratio of the two, silently.",
        "Check the syringe label and the pharmacy record against the prescription and the pump's program. "
        "If they differ, reprogram at once and assess the patient for over- or under-dose.",
    ),
    TwinAlertCode.DOSE_ESCALATION: (
        "Opioid dose escalating",
        "An opioid's programmed dose rose by more than half within six months: the early sign in the data "
        "of a granuloma at the catheter tip.",
        "Tell the physician: consider imaging at the catheter tip (MRI with contrast or CT myelogram) and "
        "a neurological examination before raising the dose again.",
    ),
    TwinAlertCode.INFUSION_STOPPED: (
        "Infusion stopped",
        "The pump has been left stopped longer than a programming session takes (an unfinished session), or "
        "a pump without audible alarms stopped for a fault.",
        "Interrogate the pump and restart the program if the stop was not meant; assess the patient for "
        "withdrawal (baclofen, clonidine: an emergency) and start bridge therapy if delivery stays stopped.",
    ),
    TwinAlertCode.RESERVOIR_LOW_PREDICTED: (
        "Low reservoir (predicted)",
        "For a pump without an audible low-reservoir alarm, the twin's forecast of its reservoir crossed the "
        "low-reservoir threshold.",
        "Schedule a refill before the predicted empty date.",
    ),
    TwinAlertCode.RESERVOIR_EMPTY_PREDICTED: (
        "Reservoir empty (predicted)",
        "For a pump without audible alarms, the twin's forecast says the reservoir is empty: the pump is "
        "delivering nothing, and cannot sound it.",
        "Refill now; assess the patient for withdrawal and start bridge therapy until delivery resumes.",
    ),
    TwinAlertCode.BATTERY_ERI_PREDICTED: (
        "Battery replacement due (predicted)",
        "For a pump without audible alarms, the twin's forecast says the battery reached its elective "
        "replacement indicator.",
        "Schedule the pump's replacement before end of service.",
    ),
    TwinAlertCode.BATTERY_EOS_PREDICTED: (
        "Battery end of service (predicted)",
        "For a pump without audible alarms, the twin's forecast says the battery reached end of service: the "
        "pump has stopped, and cannot sound it.",
        "Treat as a stopped pump: assess for withdrawal, bridge therapy, and replace the pump urgently.",
    ),
    TwinAlertCode.PATIENT_REPORT: (
        "Patient report",
        "The patient, or someone with them, reported a symptom the clinic recorded (a call, a visit): often "
        "the first sign of a catheter fault, an overdose or withdrawal, which the pump cannot see. Its "
        "priority follows how bad the report is.",
        "Assess the patient (overdose: sedation, breathing; withdrawal: spasticity, fever, itching), "
        "interrogate the pump and escalate to the physician. Record what you did against the report.",
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
