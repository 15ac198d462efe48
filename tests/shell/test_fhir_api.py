"""The /fhir/ routes in process: every answer parses back into the fhir.resources model it claims to be, carries
the MDC codes, needs a login, and says 404 with an OperationOutcome for what it does not know. Devices are
known by site and id: the same device id at two sites is two Devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.inproc import feed, new_service
from twin.api.app import create_app
from twin.contract import examples
from twin.contract.topics import Channel
from twin.fhir.codes import MDC_SYSTEM, alarm_term
from twin.fhir.mapping import device_fhir_id
from twin.gateway.publication import publications
from twin.gateway.readout_file import load_readout
from twin.mirror.alerts import TwinAlertCode
from twin.roles import Role
from twin.service.twin_service import Received
from twin.settings import AuthSettings
from twin.store.users import UserStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
READOUT = load_readout(EXAMPLES / "pain-0097-2026-09-14.interrogation.json")
PUMP = device_fhir_id(READOUT.site, READOUT.device_id)


class Clock:
    def __init__(self) -> None:
        self.now = READOUT.interrogated_at + timedelta(hours=2)

    def __call__(self) -> Any:
        return self.now


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    clock = Clock()
    service = await new_service(tmp_path / "journal.sqlite", clock=clock)
    await service.ingest([Received(m.topic, m.payload, clock(), m.qos) for m in publications(READOUT)])
    # simulated pumps: one with an id a FHIR id cannot hold, one with the real pump's id at another site
    for site, device in (("sim-lab", "sim_pump_1"), ("sim-lab", READOUT.device_id)):
        birth = examples.birth().model_copy(update={"device_id": device})
        state = examples.state().model_copy(update={"device_id": device})
        await feed(service, site, device, [(Channel.BIRTH, birth), (Channel.STATE, state)])
    users = UserStore(tmp_path / "users.sqlite")
    add_accounts(users, at=clock.now)
    app = create_app(service, users=users, auth=AuthSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin") as client:
        yield client
    users.close()
    await service.store.close()


def _codes(concept: Any) -> set[tuple[str, str]]:
    return {(c.system, c.code) for c in concept.coding or []}


async def test_fhir_needs_a_login(api: httpx.AsyncClient) -> None:
    for path in ("/fhir/metadata", "/fhir/Device", f"/fhir/Device/{PUMP}", "/fhir/Observation"):
        assert (await api.get(path)).status_code == 401


async def test_devices_read_and_search(api: httpx.AsyncClient) -> None:
    await sign_in(api, Role.VIEWER)
    assert f"{READOUT.site}.{READOUT.device_id}" == PUMP
    answer = await api.get(f"/fhir/Device/{PUMP}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/fhir+json")
    device = Device.model_validate(answer.json())
    assert device.serialNumber == READOUT.pump.serial
    assert device.deviceName[0].name == "SynchroMed II 8637-40"  # type: ignore[index]
    assert (MDC_SYSTEM, "69985") in _codes(device.type)
    simulated = [e for e in device.extension or [] if e.url.endswith("/simulated")]
    assert [e.valueBoolean for e in simulated] == [False]
    bundle = Bundle.model_validate((await api.get("/fhir/Device")).json())
    assert bundle.type == "searchset"
    assert bundle.total == 3
    ids = sorted(e.resource.id for e in bundle.entry or [])  # type: ignore[union-attr]
    odd = device_fhir_id("sim-lab", "sim_pump_1")
    namesake = device_fhir_id("sim-lab", READOUT.device_id)
    assert ids == sorted([PUMP, odd, namesake])
    assert odd.startswith("h-")
    assert (await api.get(f"/fhir/Device/{odd}")).status_code == 200
    other = Device.model_validate((await api.get(f"/fhir/Device/{namesake}")).json())
    assert other.serialNumber != READOUT.pump.serial  # the same device id at another site is another pump
    found = Bundle.model_validate((await api.get(f"/fhir/Device?identifier={READOUT.site}/{READOUT.device_id}")).json())
    assert found.total == 1
    missing = await api.get("/fhir/Device/nope")
    assert missing.status_code == 404
    assert OperationOutcome.model_validate(missing.json()).issue[0].code == "not-found"


async def test_observations_of_a_device(api: httpx.AsyncClient) -> None:
    await sign_in(api, Role.VIEWER)
    bundle = Bundle.model_validate((await api.get(f"/fhir/Observation?device=Device/{PUMP}")).json())
    observations = [Observation.model_validate(e.resource.model_dump()) for e in bundle.entry or []]  # type: ignore[union-attr]
    by_id = {o.id: o for o in observations}
    reservoir = by_id[f"{PUMP}.reservoir"]
    assert reservoir.valueQuantity.value == 40.0
    assert reservoir.valueQuantity.code == "mL"
    assert (MDC_SYSTEM, "157872") in _codes(reservoir.code)
    assert reservoir.device.reference == f"Device/{PUMP}"  # type: ignore[union-attr]
    dose = by_id[f"{PUMP}.dose"]
    assert float(dose.valueQuantity.value) == pytest.approx(10.0 * 0.4)
    assert dose.valueQuantity.code == "mg/d"
    assert (MDC_SYSTEM, "157924") in _codes(dose.code)
    battery = by_id[f"{PUMP}.battery"]
    assert (MDC_SYSTEM, "67996") in _codes(battery.code)
    assert battery.valueQuantity.value == 0.0
    predicted = by_id[f"{PUMP}.reservoir-predicted"]
    assert predicted.status == "preliminary"
    assert float(predicted.valueQuantity.value) == pytest.approx(40.0 - 0.4 * 2 / 24, abs=0.01)  # type: ignore[union-attr]
    single = await api.get(f"/fhir/Observation/{PUMP}.battery")
    assert Observation.model_validate(single.json()).id == f"{PUMP}.battery"
    assert (await api.get(f"/fhir/Observation?device={PUMP}")).json()["total"] == len(observations)


async def test_alarms_are_detected_issues(api: httpx.AsyncClient) -> None:
    await sign_in(api, Role.VIEWER)
    bundle = Bundle.model_validate((await api.get(f"/fhir/DetectedIssue?implicated=Device/{PUMP}")).json())
    issues = [DetectedIssue.model_validate(e.resource.model_dump()) for e in bundle.entry or []]  # type: ignore[union-attr]
    eri = [i for i in issues if i.code.coding[0].code == "alarm-battery_eri"]  # type: ignore[union-attr, index]
    assert len(eri) == 1
    issue = eri[0]
    assert issue.status == "preliminary"
    assert issue.severity == "moderate"
    assert issue.author.reference == f"Device/{PUMP}"  # type: ignore[union-attr]
    assert issue.implicated[0].reference == f"Device/{PUMP}"  # type: ignore[index]
    assert issue.identifiedPeriod.start is not None  # type: ignore[union-attr]
    read = await api.get(f"/fhir/DetectedIssue/{issue.id}")
    assert read.status_code == 200


async def test_the_capability_statement_says_r4(api: httpx.AsyncClient) -> None:
    await sign_in(api, Role.VIEWER)
    statement = CapabilityStatement.model_validate((await api.get("/fhir/metadata")).json())
    assert statement.fhirVersion == "4.0.1"
    types = {r.type for r in statement.rest[0].resource or []}  # type: ignore[index]
    assert types == {"Device", "Observation", "DetectedIssue"}


def test_every_twin_alert_has_a_title() -> None:
    for code in TwinAlertCode:
        term = alarm_term(code.value)
        assert term.code == f"alert-{code.value}"
        assert term.display != code.value
