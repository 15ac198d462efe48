"""What staff can do in answer to a pump alarm, beyond acknowledging it: the response actions.

DOMAIN.md's alarm table gives, per alarm, the expected staff response (urgent refill, assess for
withdrawal, interrogate, rotor study, dye study, schedule replacement, ...). Each is one
:class:`ResponseAction` here. A response is recorded with who, when, the alarm and the state it
was in (``twin.store.journal``, table ``alarm_response``), so a training session can later score
every trainee action against the alarm it answered and the time it took.

Two actions change the pump and are *applied* as a command to a simulated device (refill,
reprogram); the others are clinical acts outside the pump (imaging, a phone call to a physician,
a bedside assessment) that the twin can only record.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal


class ResponseAction(StrEnum):
    REFILL = "refill"
    REPROGRAM = "reprogram"
    SCHEDULE_REFILL = "schedule_refill"
    INTERROGATE = "interrogate"
    ROTOR_STUDY = "rotor_study"
    DYE_STUDY = "dye_study"
    ASSESS_WITHDRAWAL = "assess_withdrawal"
    BRIDGE_THERAPY = "bridge_therapy"
    ESCALATE_PHYSICIAN = "escalate_physician"
    SCHEDULE_REPLACEMENT = "schedule_replacement"
    CONFIRM_APPOINTMENT = "confirm_appointment"
    CHECK_CONNECTIVITY = "check_connectivity"
    VERIFY_PRESCRIPTION = "verify_prescription"
    REVERSE_OPIOID = "reverse_opioid"
    ASPIRATE_POCKET = "aspirate_pocket"
    OBSERVE_PATIENT = "observe_patient"
    REPORT_COMMON_CAUSE = "report_common_cause"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    action: ResponseAction
    title: str
    description: str
    applies: Literal["refill", "reprogram"] | None
    """The command type sent to the (simulated) pump, or ``None`` for a recorded clinical act."""


RESPONSE_CATALOGUE: Final[dict[ResponseAction, ResponseSpec]] = {
    spec.action: spec
    for spec in (
        ResponseSpec(
            ResponseAction.REFILL,
            "Refill the pump",
            "Withdraw and measure the residual, fill the reservoir (sent to the simulated pump).",
            "refill",
        ),
        ResponseSpec(
            ResponseAction.REPROGRAM,
            "Reprogram the pump",
            "Change the infusion program, e.g. minimum rate after a stall (sent to the simulated pump).",
            "reprogram",
        ),
        ResponseSpec(
            ResponseAction.SCHEDULE_REFILL,
            "Schedule a refill",
            "Book a refill before the predicted empty date.",
            None,
        ),
        ResponseSpec(
            ResponseAction.INTERROGATE,
            "Interrogate the pump",
            "Read the pump with the clinician programmer: alarm and event logs, motor status.",
            None,
        ),
        ResponseSpec(
            ResponseAction.ROTOR_STUDY,
            "Request a rotor study",
            "X-ray or fluoroscopy of the rotor to confirm the motor turns.",
            None,
        ),
        ResponseSpec(
            ResponseAction.DYE_STUDY,
            "Request a catheter dye study",
            "Catheter access port aspiration and contrast study or CT myelogram for occlusion, leak or migration.",
            None,
        ),
        ResponseSpec(
            ResponseAction.ASSESS_WITHDRAWAL,
            "Assess for withdrawal",
            "Bedside assessment for withdrawal (baclofen, clonidine, opioids): fever, mental state, spasticity.",
            None,
        ),
        ResponseSpec(
            ResponseAction.BRIDGE_THERAPY,
            "Start bridge therapy",
            "Oral or systemic therapy while the pump does not deliver.",
            None,
        ),
        ResponseSpec(
            ResponseAction.ESCALATE_PHYSICIAN,
            "Escalate to a physician",
            "Call the responsible physician or the pump clinic.",
            None,
        ),
        ResponseSpec(
            ResponseAction.SCHEDULE_REPLACEMENT,
            "Schedule pump replacement",
            "Plan replacement surgery (within about 90 days after ERI; at once after EOS or a permanent stall).",
            None,
        ),
        ResponseSpec(
            ResponseAction.CONFIRM_APPOINTMENT,
            "Confirm the refill appointment",
            "Confirm the appointment the refill reminder points to.",
            None,
        ),
        ResponseSpec(
            ResponseAction.CHECK_CONNECTIVITY,
            "Check the connection",
            "Check the gateway or network that carries the pump's reports (a silent pump may be fine).",
            None,
        ),
        ResponseSpec(
            ResponseAction.VERIFY_PRESCRIPTION,
            "Verify the prescription",
            "Check the prescription against the syringe label and the programmed drug and concentration.",
            None,
        ),
        ResponseSpec(
            ResponseAction.REVERSE_OPIOID,
            "Reverse an opioid overdose",
            "Naloxone and airway support for respiratory depression.",
            None,
        ),
        ResponseSpec(
            ResponseAction.ASPIRATE_POCKET,
            "Aspirate the pump pocket",
            "Suspected pocket fill: confirm needle placement, aspirate drug from the pocket.",
            None,
        ),
        ResponseSpec(
            ResponseAction.OBSERVE_PATIENT,
            "Observe the patient",
            "Watch for signs of over- or under-dose (sedation, breathing, withdrawal) for a set time.",
            None,
        ),
        ResponseSpec(
            ResponseAction.REPORT_COMMON_CAUSE,
            "Report a common cause",
            "Many alarms, one cause (a gateway, the network, a batch of drug): report it once; the note says which.",
            None,
        ),
        ResponseSpec(ResponseAction.OTHER, "Other (describe in the note)", "Anything else; the note says what.", None),
    )
}
"""Every action, in the order the console offers them."""

MAX_NOTE_LENGTH: Final = 2000


__all__ = ["MAX_NOTE_LENGTH", "RESPONSE_CATALOGUE", "ResponseAction", "ResponseSpec"]


@dataclass(frozen=True, slots=True)
class AlarmResponse:
    """One response action on one alarm (table ``alarm_response``).

    ``alarm_version``/``alarm_state``: the alarm when the response was made (the response comes
    after transition ``alarm_version`` of ``key``). ``at``: the twin's wall clock. ``role``: the
    responder's role at the time. ``command_id``: the command the response sent (refill,
    reprogram), else ``None``. ``detail``: the action's parameters as given (JSON object)."""

    response_id: str
    key: str
    device_id: str
    site: str
    code: str
    priority: str
    alarm_version: int
    alarm_state: str
    action: str
    note: str | None
    actor: str
    role: str
    at: datetime
    command_id: str | None
    detail: dict[str, Any]
