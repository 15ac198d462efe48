"""Pumps, their readings and their alarms as FHIR R4 resources: pure functions of what the twin holds.

* a pump is a **Device** (identity from its birth: model, serial, firmware, reservoir and catheter volumes,
  whether it is simulated);
* its readings are **Observation** s whose ``subject`` and ``device`` are the Device: the reservoir the pump
  calculated (and, as a ``preliminary`` Observation, the reservoir the twin predicts now), the flow and dose
  rate, the drug concentration, the battery;
* its alarms — the pump's own and the twin's alerts — are **DetectedIssue** s.

Why DetectedIssue for alarms. FHIR R4 has no resource for a device alarm: ``DeviceAlert`` appears only in
the R6 drafts ("a single alert or alarm condition detected and signaled by a ... medical device"). Of what
R4 offers, DetectedIssue has the alarm's shape: an ``author`` that may be a Device (the pump, or the twin),
``implicated`` (the pump), ``identifiedPeriod`` (raised until cleared), ``severity`` high | moderate | low
(IEC 60601-1-8's high, medium, low), a ``code``, a ``detail`` (the message) and ``mitigation`` entries with
who and when (an ISA-18.2 acknowledgement). **Flag** was ruled out: its ``subject`` cannot be a Device in R4
and it is meant for long-lived warnings about a patient. **Communication** records a message delivered to a
recipient — IHE ACM's dispatch of an alarm to a clinician's phone, not the alarm condition itself.
**Observation** would fit a device alarm as "a finding", but would mix alarms into the readings a client
searches with ``Observation?device=``. The ISA-18.2 state (unacknowledged, acknowledged, shelved, ...) has no
FHIR element; it travels in an extension (``codes.ALARM_STATE_EXTENSION``). ``status`` is ``preliminary``
while the condition is active and ``final`` once it has cleared.

Why R4B models. ``fhir.resources`` (maintained, on pydantic v2 like the rest of the project) ships R5 as
its default and R4B and STU3 as subpackages; its R4 (4.0.1) models exist only in the pydantic-v1 releases.
R4B (4.3.0) is R4 with changes limited to the medication-definition, evidence and subscription resources
(HL7, "R4B version history"): Device, Observation, DetectedIssue, Bundle, CapabilityStatement and
OperationOutcome and every data type used here are R4's, so what validates as R4B here is valid R4, and the
server says ``fhirVersion: 4.0.1``.

Ids. The twin knows a pump by its site and device id (the same device id may be used at two sites), so a
Device's id is ``<site>.<device>`` (:func:`device_fhir_id`), and its Observations add a suffix
(``<site>.<device>.reservoir``). A FHIR id is ``[A-Za-z0-9\\-.]{1,64}``; a site or device id of the contract
may also hold ``_`` (or a dot of its own, which would make two pumps' ids meet). An id that does not fit
(or would be too long with its suffix) is replaced by ``h-`` and 40 hex digits of a SHA-256.

Pure: no clock (``now`` is an argument), no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from fhir.resources.R4B.capabilitystatement import (
    CapabilityStatement,
    CapabilityStatementRest,
    CapabilityStatementRestResource,
    CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceSearchParam,
    CapabilityStatementSoftware,
)
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.detectedissue import DetectedIssue, DetectedIssueMitigation
from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceProperty, DeviceVersion
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource

from twin.alarms.lifecycle import Alarm
from twin.contract.messages import BatteryStatus, Birth, State, Telemetry
from twin.fhir import codes
from twin.fhir.codes import Term
from twin.mirror.prediction import Prediction

FHIR_VERSION: Final = "4.0.1"
"""What the server implements (R4); see the module docstring for the R4B models it validates with."""

MEDIA_TYPE: Final = "application/fhir+json"

DEVICE_ID_SYSTEM: Final = "https://pumptwin.example/fhir/NamingSystem/device-id"
"""The twin's device ids (``site/device`` of the MQTT contract) as Device identifiers."""

_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")

SEVERITY: Final = {"high": "high", "medium": "moderate", "low": "low"}
"""IEC 60601-1-8 alarm priority → DetectedIssue.severity."""


@dataclass(frozen=True, slots=True)
class PumpRecord:
    """What the twin holds about one pump, as the mapping needs it (see ``twin.api.fhir.FhirSource``)."""

    site: str
    device_id: str
    birth: Birth
    state: State | None
    telemetry: Telemetry | None
    prediction: Prediction | None
    last_seen_at: datetime | None

    @property
    def resource_id(self) -> str:
        """The Device id (:func:`device_fhir_id`)."""
        return device_fhir_id(self.site, self.device_id)


def fhir_id(text: str, suffix: str = "") -> str:
    """A FHIR id for ``text`` (+ ``.suffix``): itself when it fits the id rule, else ``h-`` + a hash."""
    candidate = f"{text}.{suffix}" if suffix else text
    if _FHIR_ID.fullmatch(candidate):
        return candidate
    return "h-" + hashlib.sha256(candidate.encode()).hexdigest()[:40]


def device_fhir_id(site: str, device_id: str) -> str:
    """The Device id of the pump ``device_id`` at ``site``: ``site.device`` when that is a FHIR id and neither
    part holds a dot of its own (so no two pumps share one), else ``h-`` + a hash of ``site/device``."""
    candidate = f"{site}.{device_id}"
    if "." not in site and "." not in device_id and _FHIR_ID.fullmatch(candidate):
        return candidate
    return "h-" + hashlib.sha256(f"{site}/{device_id}".encode()).hexdigest()[:40]


def _concept(*terms: Term, text: str | None = None) -> CodeableConcept:
    return CodeableConcept(
        coding=[Coding(system=t.system, code=t.code, display=t.display) for t in terms],
        text=text or terms[0].display,
    )


def _quantity(value: float, unit: str, ucum: str) -> Quantity:
    return Quantity(value=round(value, 6), unit=unit, system=codes.UCUM_SYSTEM, code=ucum)


def device_reference(record: PumpRecord) -> Reference:
    return Reference(reference=f"Device/{record.resource_id}", display=record.birth.model)


# --------------------------------------------------------------------------------------------- Device


def device(record: PumpRecord) -> Device:
    """The pump as a Device: identity from its birth; ``inactive`` once its battery reached end of service."""
    birth = record.birth
    state = record.state
    status = "inactive" if state is not None and state.battery is BatteryStatus.EOS else "active"
    updated = record.last_seen_at or birth.device_time
    return Device(
        id=record.resource_id,
        meta=Meta(lastUpdated=updated),
        extension=[Extension(url=codes.SIMULATED_EXTENSION, valueBoolean=birth.simulated)],
        identifier=[Identifier(system=DEVICE_ID_SYSTEM, value=f"{record.site}/{record.device_id}")],
        status=status,
        serialNumber=birth.serial,
        deviceName=[DeviceDeviceName(name=birth.model, type="model-name")],
        type=_concept(codes.MDC_DEV_PUMP_INFUS_MDS, codes.IMPLANTED_PUMP, text="Implanted intrathecal drug pump"),
        version=[DeviceVersion(type=CodeableConcept(text="firmware"), value=birth.firmware)],
        property=[
            DeviceProperty(
                type=_concept(codes.RESERVOIR_CAPACITY),
                valueQuantity=[_quantity(birth.reservoir_capacity_ml, "mL", "mL")],
            ),
            DeviceProperty(
                type=_concept(codes.CATHETER_VOLUME), valueQuantity=[_quantity(birth.catheter_volume_ml, "mL", "mL")]
            ),
        ],
        note=[
            Annotation(
                text="simulated pump (PumpTwin simulator)" if birth.simulated else "real pump, read by interrogation"
            )
        ],
    )


# ---------------------------------------------------------------------------------------- Observation


def _observation(
    record: PumpRecord,
    suffix: str,
    code: CodeableConcept,
    quantity: Quantity,
    at: datetime,
    *,
    status: str = "final",
    derived_from: str | None = None,
    note: str | None = None,
) -> Observation:
    ref = device_reference(record)
    return Observation(
        id=fhir_id(record.resource_id, suffix),
        status=status,
        code=code,
        subject=ref,
        device=ref,
        effectiveDateTime=at,
        valueQuantity=quantity,
        derivedFrom=[Reference(reference=derived_from)] if derived_from else None,
        note=[Annotation(text=note)] if note else None,
    )


def observations(record: PumpRecord) -> list[Observation]:
    """The pump's readings: the latest report (telemetry when newer than the state), and the twin's predicted
    reservoir now. Empty before the pump's first state."""
    state = record.state
    if state is None:
        return []
    tele = record.telemetry
    newer = tele is not None and tele.session == state.session and tele.device_time > state.device_time
    at = tele.device_time if newer and tele is not None else state.device_time
    reservoir = tele.reservoir_ml if newer and tele is not None else state.reservoir_ml
    battery = tele.battery_percent if newer and tele is not None else state.battery_percent
    rate = tele.current_rate_ml_per_day if newer and tele is not None else state.current_rate_ml_per_day
    drug = state.drug.value
    out = [
        _observation(
            record,
            "reservoir",
            _concept(codes.RESERVOIR_CALCULATED, codes.MDC_VOL_FLUID_TBI_REMAIN),
            _quantity(reservoir, "mL", "mL"),
            at,
            note="calculated by the pump from its program (a pump has no level sensor)",
        ),
        _observation(
            record,
            "flow",
            _concept(codes.MDC_FLOW_FLUID_PUMP, text="Flow rate now (bolus included)"),
            _quantity(rate, "mL/day", "mL/d"),
            at,
        ),
        _observation(
            record,
            "dose",
            _concept(codes.MDC_RATE_DOSE, text=f"Programmed dose rate ({drug})"),
            _quantity(state.concentration_mg_per_ml * rate, "mg/day", "mg/d"),
            at,
            note=f"{drug} {state.concentration_mg_per_ml:g} mg/mL × the flow now",
        ),
        _observation(
            record,
            "concentration",
            _concept(codes.MDC_CONC_DRUG, text=f"Drug concentration ({drug})"),
            _quantity(state.concentration_mg_per_ml, "mg/mL", "mg/mL"),
            state.device_time,
        ),
        _observation(
            record,
            "battery",
            _concept(codes.MDC_ATTR_VAL_BATT_CHARGE, text="Battery charge"),
            _quantity(battery, "%", "%"),
            at,
        ),
    ]
    prediction = record.prediction
    if prediction is not None:
        out.append(
            _observation(
                record,
                "reservoir-predicted",
                _concept(codes.RESERVOIR_PREDICTED),
                _quantity(prediction.reservoir_ml, "mL", "mL"),
                prediction.at,
                status="preliminary",
                derived_from=f"Observation/{fhir_id(record.resource_id, 'reservoir')}",
                note=f"predicted by the twin from the report of {prediction.basis_at.isoformat()}"
                + (f"; predicted empty {prediction.empty_at.isoformat()}" if prediction.empty_at else ""),
            )
        )
    return out


# -------------------------------------------------------------------------------------- DetectedIssue


def detected_issue(alarm: Alarm, record: PumpRecord | None) -> DetectedIssue:
    """An alarm point's current occurrence as a DetectedIssue (see the module docstring)."""
    implicated = (
        device_reference(record)
        if record is not None
        else Reference(reference=f"Device/{device_fhir_id(alarm.site, alarm.device_id)}", display=alarm.device_id)
    )
    author = implicated if alarm.source == "device" else Reference(display="PumpTwin digital twin")
    mitigation = None
    if alarm.acknowledged_at is not None:
        mitigation = [
            DetectedIssueMitigation(
                action=_concept(codes.ACKNOWLEDGED),
                date=alarm.acknowledged_at,
                author=Reference(display=alarm.acknowledged_by or "unknown"),
            )
        ]
    return DetectedIssue(
        id=fhir_id(alarm.key.replace("/", ".")),
        extension=[
            Extension(url=codes.ALARM_STATE_EXTENSION, valueCode=alarm.state.value),
            Extension(url=codes.PRIORITY_EXTENSION, valueCode=alarm.priority.value),
        ],
        status="preliminary" if alarm.condition_active else "final",
        code=_concept(codes.alarm_term(alarm.code)),
        severity=SEVERITY[alarm.priority.value],
        identifiedPeriod=Period(start=alarm.raised_at, end=alarm.cleared_at),
        author=author,
        implicated=[implicated],
        detail=alarm.message,
        mitigation=mitigation,
    )


# ---------------------------------------------------------------------------------- Bundles and more


def searchset(resources: Sequence[Resource], self_url: str, base_url: str) -> Bundle:
    """A ``searchset`` Bundle of ``resources`` (every one a match), with its ``self`` link."""
    return Bundle(
        type="searchset",
        total=len(resources),
        link=[BundleLink(relation="self", url=self_url)],
        entry=[
            BundleEntry(
                fullUrl=f"{base_url}/{r.get_resource_type()}/{r.id}",
                resource=r,
                search=BundleEntrySearch(mode="match"),
            )
            for r in resources
        ]
        or None,
    )


def capability_statement(at: datetime, version: str) -> CapabilityStatement:
    """What the server does: read and search of Device, Observation and DetectedIssue, JSON only."""

    def resource(kind: str, params: Iterable[tuple[str, str, str]]) -> CapabilityStatementRestResource:
        return CapabilityStatementRestResource(
            type=kind,
            interaction=[
                CapabilityStatementRestResourceInteraction(code="read"),
                CapabilityStatementRestResourceInteraction(code="search-type"),
            ],
            searchParam=[
                CapabilityStatementRestResourceSearchParam(name=name, type=kind_of, documentation=doc)
                for name, kind_of, doc in params
            ]
            or None,
        )

    return CapabilityStatement(
        status="active",
        date=at,
        kind="instance",
        software=CapabilityStatementSoftware(name="PumpTwin", version=version),
        fhirVersion=FHIR_VERSION,
        format=["json"],
        rest=[
            CapabilityStatementRest(
                mode="server",
                documentation="Read-only: the twin's pumps, their readings and their alarms. Same login as /api.",
                resource=[
                    resource("Device", [("identifier", "token", "site/device id of the MQTT contract")]),
                    resource("Observation", [("device", "reference", "the pump (Device/{id} or {id})")]),
                    resource("DetectedIssue", [("implicated", "reference", "the pump (Device/{id} or {id})")]),
                ],
            )
        ],
    )


def operation_outcome(code: str, diagnostics: str) -> OperationOutcome:
    return OperationOutcome(issue=[OperationOutcomeIssue(severity="error", code=code, diagnostics=diagnostics)])


def as_json(resource: Resource) -> dict[str, Any]:
    """The resource as FHIR JSON (no empty elements)."""
    data: dict[str, Any] = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data
