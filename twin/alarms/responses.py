"""What staff can do in answer to a pump alarm, beyond acknowledging it: the response actions.

DOMAIN.md's alarm table gives, per alarm, the expected staff response (urgent refill, assess for
withdrawal, interrogate, rotor study, dye study, schedule replacement, ...). Each is one
:class:`ResponseAction` here. A response is recorded with who, when, the alarm and the state it
was in (``twin.store.journal``, table ``alarm_response``), so a training session can later score
every trainee action against the alarm it answered and the time it took.

Some actions change the pump and are *applied* as a command to a simulated device: refill,
reprogram, stop the pump (a reprogram to "stopped"), a bridge bolus (a clinician bolus of about
the catheter's volume), and an interrogation (the pump answers with its full state and event log;
a pump held in telemetry mode after an MRI resumes). On a real pump an interrogation is recorded
only: its read-out comes through the gateway. The others are clinical acts outside the pump
(imaging, a phone call, a bedside assessment) that the twin can only record.

The order follows the troubleshooting workflow of DOMAIN-RESEARCH §4.4 where it applies
(interrogate, bridge, rotor study, side-port aspiration, dye study, replace the drug, bridge
bolus), then the rest.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal


class ResponseAction(StrEnum):
    INTERROGATE = "interrogate"
    BRIDGE_THERAPY = "bridge_therapy"
    ROTOR_STUDY = "rotor_study"
    XRAY = "xray"
    SIDE_PORT_ASPIRATION = "side_port_aspiration"
    DYE_STUDY = "dye_study"
    IMAGING = "imaging"
    REPLACE_DRUG = "replace_drug"
    BRIDGE_BOLUS = "bridge_bolus"
    REFILL = "refill"
    REPROGRAM = "reprogram"
    STOP_PUMP = "stop_pump"
    EMPTY_PUMP = "empty_pump"
    SCHEDULE_REFILL = "schedule_refill"
    CHECK_NEEDLE = "check_needle"
    ASSESS_WITHDRAWAL = "assess_withdrawal"
    ESCALATE_PHYSICIAN = "escalate_physician"
    CATHETER_REVISION = "catheter_revision"
    CONTACT_MANUFACTURER = "contact_manufacturer"
    SCHEDULE_REPLACEMENT = "schedule_replacement"
    CONFIRM_APPOINTMENT = "confirm_appointment"
    CHECK_CONNECTIVITY = "check_connectivity"
    VERIFY_PRESCRIPTION = "verify_prescription"
    REVERSE_OPIOID = "reverse_opioid"
    ASPIRATE_POCKET = "aspirate_pocket"
    OBSERVE_PATIENT = "observe_patient"
    REPORT_COMMON_CAUSE = "report_common_cause"
    OTHER = "other"


Applies = Literal["refill", "reprogram", "interrogate", "clinician_bolus"]
"""The command type a response sends to a simulated pump."""


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    action: ResponseAction
    title: str
    description: str
    applies: Applies | None
    """The command type sent to the (simulated) pump, or ``None`` for a recorded clinical act."""
    preset: dict[str, Any] | None = None
    """The whole command when the response fixes it (stop the pump, interrogate): the console sends
    it as it is. ``None``: the console asks for the command's fields (refill, reprogram, bolus)."""
    optional_command: bool = False
    """The command may be left out (an interrogation of a real pump is recorded only)."""


BRIDGE_BOLUS_MINUTES: Final = 30.0
"""Duration the console proposes for a bridge bolus of the catheter's volume. [A] (the exact
bridge-bolus algorithm is [U], DOMAIN-RESEARCH §1.4)."""

RESPONSE_CATALOGUE: Final[dict[ResponseAction, ResponseSpec]] = {
    spec.action: spec
    for spec in (
        ResponseSpec(
            ResponseAction.INTERROGATE,
            "Interrogate the pump",
            "Read the pump with the clinician programmer: alarms, event log, drug, rate, reservoir, motor "
            "(a simulated pump answers with its read-out; a pump waiting after an MRI resumes).",
            "interrogate",
            preset={"type": "interrogate"},
            optional_command=True,
        ),
        ResponseSpec(
            ResponseAction.BRIDGE_THERAPY,
            "Start bridge therapy",
            "Oral or systemic therapy while the pump does not deliver.",
            None,
        ),
        ResponseSpec(
            ResponseAction.ROTOR_STUDY,
            "Request a rotor study",
            "Fluoroscopy before and after a small programmed bolus: does the rotor turn?",
            None,
        ),
        ResponseSpec(
            ResponseAction.XRAY,
            "Request a plain X-ray",
            "Plain radiographs of the pump and the catheter path: most kinks, fractures, disconnections and "
            "migrations show.",
            None,
        ),
        ResponseSpec(
            ResponseAction.SIDE_PORT_ASPIRATION,
            "Aspirate the catheter access port",
            "Aspirate CSF through the side port: failure to aspirate points to a catheter fault.",
            None,
        ),
        ResponseSpec(
            ResponseAction.DYE_STUDY,
            "Request a catheter dye study",
            "1-2 mL of contrast through the side port: leak, blockage or free flow at the tip.",
            None,
        ),
        ResponseSpec(
            ResponseAction.IMAGING,
            "Request imaging at the catheter tip",
            "MRI with contrast or CT myelogram at the tip (granuloma, migration).",
            None,
        ),
        ResponseSpec(
            ResponseAction.REPLACE_DRUG,
            "Replace the drug",
            "Empty the reservoir and refill with freshly prepared drug (a compounding error).",
            None,
        ),
        ResponseSpec(
            ResponseAction.BRIDGE_BOLUS,
            "Give a bridge bolus",
            "A bolus of about the catheter's volume to re-prime it (after side-port access, a new drug or a "
            "revision; sent to the simulated pump).",
            "clinician_bolus",
        ),
        ResponseSpec(
            ResponseAction.REFILL,
            "Refill the pump",
            "Withdraw and measure the residual, fill the reservoir (sent to the simulated pump).",
            "refill",
        ),
        ResponseSpec(
            ResponseAction.REPROGRAM,
            "Reprogram the pump",
            "Change the infusion program, e.g. a lower rate (sent to the simulated pump).",
            "reprogram",
        ),
        ResponseSpec(
            ResponseAction.STOP_PUMP,
            "Stop the pump",
            "Program the pump to stop (sent to the simulated pump): no drug is delivered until it is restarted.",
            "reprogram",
            preset={"type": "reprogram", "program": {"mode": "stopped"}},
        ),
        ResponseSpec(
            ResponseAction.EMPTY_PUMP,
            "Empty the pump",
            "Withdraw the whole reservoir (a Prometra before an MRI; a drug that must not reach the patient).",
            None,
        ),
        ResponseSpec(
            ResponseAction.SCHEDULE_REFILL,
            "Schedule a refill",
            "Book a refill before the predicted empty date.",
            None,
        ),
        ResponseSpec(
            ResponseAction.CHECK_NEEDLE,
            "Confirm the needle position",
            "Confirm the refill needle is in the reservoir septum, not the pocket or the side port "
            "(ultrasound or fluoroscopy if in doubt).",
            None,
        ),
        ResponseSpec(
            ResponseAction.ASSESS_WITHDRAWAL,
            "Assess for withdrawal",
            "Bedside assessment for withdrawal (baclofen, clonidine, opioids): fever, mental state, spasticity.",
            None,
        ),
        ResponseSpec(
            ResponseAction.ESCALATE_PHYSICIAN,
            "Escalate to a physician",
            "Call the responsible physician or the pump clinic.",
            None,
        ),
        ResponseSpec(
            ResponseAction.CATHETER_REVISION,
            "Refer for catheter revision",
            "Surgical revision of a blocked, broken, disconnected or migrated catheter.",
            None,
        ),
        ResponseSpec(
            ResponseAction.CONTACT_MANUFACTURER,
            "Contact the manufacturer",
            "Report the pump's fault to the manufacturer and ask for their advice (memory error, stall, recall).",
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
            "Suspected pocket fill: aspirate drug from the pocket.",
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


__all__ = ["BRIDGE_BOLUS_MINUTES", "MAX_NOTE_LENGTH", "RESPONSE_CATALOGUE", "Applies", "ResponseAction", "ResponseSpec"]


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
