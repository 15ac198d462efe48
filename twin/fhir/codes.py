"""The codes the FHIR resources carry: IEEE 11073-10101 (MDC) where a term exists, the project's own code
system where it does not.

MDC numeric codes are the context-free 32-bit codes (partition × 65,536 + term code), written as FHIR expects
them under the system ``urn:iso:std:iso:11073:10101`` (FHIR R4, "Using codes": external code systems). Each
one here was found in published device messages and FHIR examples, never typed from memory (``source``);
check them against the Rosetta Terminology Mapping (RTMMS) before a production interface relies on them.

An implanted reservoir has no MDC term of its own; the closest, ``MDC_VOL_FLUID_TBI_REMAIN`` (volume to be
infused, remaining), is sent *with* the project's ``reservoir-calculated`` code, which says what the figure
is: the pump's calculated volume, not a measurement. Alarms have MDC event terms for infusion pumps in
general, but none for these pumps' conditions (low reservoir by calculation, ERI, motor stall of an implant),
so alarm codes are the project's own, one per device alarm and twin alert code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode
from twin.mirror.alerts import TwinAlertCode

MDC_SYSTEM: Final = "urn:iso:std:iso:11073:10101"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
PUMPTWIN_SYSTEM: Final = "https://pumptwin.example/fhir/CodeSystem/pumptwin"
"""The project's own code system (terms below); a deployment may publish it under its own URL."""
EXTENSION_BASE: Final = "https://pumptwin.example/fhir/StructureDefinition/"

SOURCE_PCD: Final = "IHE PCD-01 infusion pump messages (public HL7 v2 examples built against the RTM)"
SOURCE_PHD: Final = "HL7 Personal Health Device IG based FHIR examples (battery level)"


@dataclass(frozen=True, slots=True)
class Term:
    system: str
    code: str
    display: str
    source: str = "PumpTwin"


# ------------------------------------------------------------------------------------------- MDC

MDC_DEV_PUMP_INFUS_MDS: Final = Term(MDC_SYSTEM, "69985", "MDC_DEV_PUMP_INFUS_MDS", SOURCE_PCD)
MDC_VOL_FLUID_TBI_REMAIN: Final = Term(MDC_SYSTEM, "157872", "MDC_VOL_FLUID_TBI_REMAIN", SOURCE_PCD)
MDC_FLOW_FLUID_PUMP: Final = Term(MDC_SYSTEM, "157784", "MDC_FLOW_FLUID_PUMP", SOURCE_PCD)
MDC_RATE_DOSE: Final = Term(MDC_SYSTEM, "157924", "MDC_RATE_DOSE", SOURCE_PCD)
MDC_CONC_DRUG: Final = Term(MDC_SYSTEM, "157760", "MDC_CONC_DRUG", SOURCE_PCD)
MDC_VOL_FLUID_DELIV_TOTAL: Final = Term(MDC_SYSTEM, "157993", "MDC_VOL_FLUID_DELIV_TOTAL", SOURCE_PCD)
MDC_ATTR_VAL_BATT_CHARGE: Final = Term(MDC_SYSTEM, "67996", "MDC_ATTR_VAL_BATT_CHARGE", SOURCE_PHD)

# ------------------------------------------------------------------------------------- own terms

IMPLANTED_PUMP: Final = Term(PUMPTWIN_SYSTEM, "implanted-intrathecal-pump", "Implanted intrathecal drug pump")
RESERVOIR_CALCULATED: Final = Term(
    PUMPTWIN_SYSTEM, "reservoir-calculated", "Reservoir volume calculated by the pump (not measured)"
)
RESERVOIR_PREDICTED: Final = Term(
    PUMPTWIN_SYSTEM, "reservoir-predicted", "Reservoir volume predicted by the twin from the last report"
)
RESERVOIR_CAPACITY: Final = Term(PUMPTWIN_SYSTEM, "reservoir-capacity", "Usable reservoir capacity")
CATHETER_VOLUME: Final = Term(PUMPTWIN_SYSTEM, "catheter-volume", "Implanted catheter volume")
ACKNOWLEDGED: Final = Term(PUMPTWIN_SYSTEM, "acknowledged", "Alarm acknowledged by staff (ISA-18.2)")
SIMULATED_EXTENSION: Final = EXTENSION_BASE + "simulated"
ALARM_STATE_EXTENSION: Final = EXTENSION_BASE + "alarm-state"
PRIORITY_EXTENSION: Final = EXTENSION_BASE + "alarm-priority"

_TWIN_TITLES: Final[dict[TwinAlertCode, str]] = {
    TwinAlertCode.DEVICE_OFFLINE: "Device offline (connection lost)",
    TwinAlertCode.DEVICE_SILENT: "Device silent (no report for too long)",
    TwinAlertCode.INTERROGATION_OVERDUE: "Interrogation overdue (no read-out since the planned visit)",
    TwinAlertCode.REFILL_DISCREPANCY: "Refill discrepancy (measured residual off the expected one)",
    TwinAlertCode.EMPTY_BEFORE_REFILL: "Reservoir predicted empty before the planned refill",
    TwinAlertCode.CONCENTRATION_CHANGED: "Programmed concentration changed (check the syringe label)",
    TwinAlertCode.DOSE_ESCALATION: "Opioid dose escalation (consider a catheter-tip granuloma)",
    TwinAlertCode.INFUSION_STOPPED: "Infusion stopped",
    TwinAlertCode.RESERVOIR_LOW_PREDICTED: "Reservoir low by the mirrored calculation (no audible alarm)",
    TwinAlertCode.RESERVOIR_EMPTY_PREDICTED: "Reservoir empty by the mirrored calculation (no audible alarm)",
    TwinAlertCode.BATTERY_ERI_PREDICTED: "Elective replacement indicator by the mirrored calculation (no audible alarm)",
    TwinAlertCode.BATTERY_EOS_PREDICTED: "End of service by the mirrored calculation (no audible alarm)",
    TwinAlertCode.PATIENT_REPORT: "Patient report recorded by the clinic",
    TwinAlertCode.IDENTITY_CONFLICT: "Identity conflict (a birth contradicted the pinned identity)",
}
"""A display title for every twin alert (a test checks none is missing)."""


def alarm_term(code: str) -> Term:
    """The term of a device alarm or twin alert code (an unknown code keeps its text)."""
    if code in AlarmCode.__members__.values():
        return Term(PUMPTWIN_SYSTEM, f"alarm-{code}", ALARM_CATALOGUE[AlarmCode(code)].title)
    if code in TwinAlertCode.__members__.values():
        return Term(PUMPTWIN_SYSTEM, f"alert-{code}", _TWIN_TITLES[TwinAlertCode(code)])
    return Term(PUMPTWIN_SYSTEM, f"alarm-{code}", code)
