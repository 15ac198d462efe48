"""Real pumps end to end on a real Mosquitto running the production broker configuration: the gateway CLI
(``pumptwin gateway import``, a subprocess, under its own account) publishes a year of interrogation
read-outs of one pump, the twin (in process, with its clock set to each visit) checks every refill against
what it predicted from the visit before, and raises the discrepancy alert exactly where DOMAIN.md's tolerance
is passed; importing again changes nothing; corrupted read-outs are refused with their field and publish
nothing; the pumps are listed as real and refuse commands and faults; FHIR serves them. The watched inbox
moves what it published and rejects a bad file with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from fhir.resources.R4B.device import Device

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.inproc import new_service
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.api.app import create_app
from twin.broker_accounts import GATEWAY_ACCOUNT, TWIN_ACCOUNT, BrokerAccounts
from twin.gateway.inbox import REASON_SUFFIX, Inbox
from twin.gateway.publication import session_of
from twin.gateway.readout import Interrogation
from twin.gateway.readout_file import load_readout
from twin.mirror.device_twin import DeviceTwin
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.service.mqtt_link import run_link
from twin.service.twin_service import QueueOutbox, TwinService
from twin.settings import AuthSettings
from twin.store.users import UserStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BROKER_DIR = ROOT / "broker"
EXAMPLES = ROOT / "examples" / "interrogations"
SERIES = sorted(EXAMPLES.glob("itb-0412-*.interrogation.yaml"))
OTHERS = sorted(EXAMPLES.glob("pain-*.interrogation.json"))
SITE = "st-olaf-clinic"
KEY = (SITE, "itb-0412")
PUMPTWIN = str(Path(sys.executable).with_name("pumptwin"))
TOLERANCE_20_ML = 1.0  # DOMAIN.md: a refill discrepancy is flagged above 1 mL for a 20 mL pump


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stack:
    broker: Mosquitto
    passwords: dict[str, str]
    service: TwinService
    clock: Clock
    api: httpx.AsyncClient
    outcomes: list[tuple[str, float, float | None, bool]] = field(default_factory=list)

    async def gateway(self, *args: str) -> tuple[int, str, str]:
        """Run ``pumptwin gateway ARGS`` as a separate process, under the gateway's account."""
        env = {**os.environ, "PUMPTWIN_GATEWAY_PASSWORD": self.passwords[GATEWAY_ACCOUNT]}
        process = await asyncio.create_subprocess_exec(
            PUMPTWIN,
            "gateway",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    def gateway_endpoint(self) -> MqttEndpoint:
        return MqttEndpoint.parse(self.broker.url, username=GATEWAY_ACCOUNT, password=self.passwords[GATEWAY_ACCOUNT])


def _accounts(auth: Path) -> dict[str, str]:
    accounts = BrokerAccounts(password_file=auth / "passwd", acl_file=auth / "acl")
    accounts.add_simulation_sites(["sim-lab"])
    accounts.add_gateway_sites([SITE])
    passwords = {}
    for account in (TWIN_ACCOUNT, GATEWAY_ACCOUNT):
        issued = accounts.issue_service(account)
        assert issued.password is not None
        passwords[account] = issued.password
    return passwords


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make test` (it installs the Debian package mosquitto)")
    auth = tmp_path / "auth"
    passwords = _accounts(auth)
    server = Mosquitto(
        workdir=tmp_path,
        config_file=BROKER_DIR / "mosquitto.conf",
        path_map={"/mosquitto/auth/": auth, "/mosquitto/data/": tmp_path / "data", "/mosquitto/config/": BROKER_DIR},
    )
    server.start()
    yield server, passwords
    server.stop()


@contextlib.asynccontextmanager
async def _stack(broker: tuple[Mosquitto, dict[str, str]], data: Path) -> AsyncIterator[Stack]:
    server, passwords = broker
    clock = Clock(load_readout(SERIES[0]).interrogated_at)
    service = await new_service(data / "journal.sqlite", clock=clock)
    users = UserStore(data / "users.sqlite")
    add_accounts(users, at=clock.now)
    app = create_app(service, users=users, auth=AuthSettings())
    stop, connected = asyncio.Event(), asyncio.Event()
    endpoint = MqttEndpoint.parse(server.url, username=TWIN_ACCOUNT, password=passwords[TWIN_ACCOUNT])
    link = asyncio.create_task(run_link(service, endpoint, stop, client_id="test-twin", connected=connected))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin") as api:
            await sign_in(api, Role.INSTRUCTOR)
            yield Stack(server, passwords, service, clock, api)
    finally:
        stop.set()
        await link
        users.close()
        await service.store.close()


def _twin(service: TwinService, device_id: str = "itb-0412") -> DeviceTwin | None:
    return service.fleet.devices.get((SITE, device_id))


def _applied(service: TwinService, readout: Interrogation) -> bool:
    twin = service.fleet.devices.get((readout.site, readout.device_id))
    return twin is not None and twin.reported is not None and twin.reported.session == session_of(readout)


async def _fingerprint(service: TwinService) -> tuple[object, ...]:
    twins = tuple(sorted((k, t.version, t.counters.applied) for k, t in service.fleet.devices.items()))
    return twins, len(await service.store.transitions(limit=100_000)), dict(service.fleet.visits)


async def test_a_year_of_read_outs_through_the_gateway(
    broker: tuple[Mosquitto, dict[str, str]], tmp_path: Path
) -> None:
    async with _stack(broker, tmp_path) as stack:
        service, api = stack.service, stack.api
        for k, path in enumerate(SERIES):
            readout = load_readout(path)
            stack.clock.now = readout.interrogated_at + timedelta(hours=1)
            code, out, err = await stack.gateway("import", str(path), "--mqtt", stack.broker.url)
            assert code == 0, err
            assert out.startswith(f"published {path}: {SITE}/itb-0412"), out
            await until(lambda r=readout: _applied(service, r), timeout_s=10)  # type: ignore[misc]
            await service.tick(stack.clock.now)
            await sign_in(api, Role.INSTRUCTOR)  # months went by on the twin's clock: a new shift, a new login
            detail = (await api.get("/api/devices/itb-0412")).json()
            assert detail["identity"]["simulated"] is False
            block = detail["interrogation"]
            assert block["last_interrogation_at"] == readout.interrogated_at.isoformat()
            assert block["age_s"] == pytest.approx(3600.0)
            discrepancy = [a for a in detail["alarms"] if a["code"] == "refill_discrepancy" and a["condition_active"]]
            refill = readout.last_refill
            assert refill is not None
            assert refill.measured_residual_ml is not None
            if k == 0:
                assert block["last_refill_check"] is None  # nothing to predict from yet
                continue
            check = block["last_refill_check"]
            # the twin predicted, from the visit before, what the pump calculated (same model, same program)
            assert check["predicted_residual_ml"] == pytest.approx(refill.calculated_residual_ml, abs=0.01)
            assert check["measured_residual_ml"] == refill.measured_residual_ml
            beyond = abs(refill.measured_residual_ml - check["predicted_residual_ml"]) > TOLERANCE_20_ML
            assert check["exceeded"] is beyond
            assert bool(discrepancy) is beyond, (path.name, check, discrepancy)
            if beyond:
                assert "twin predicted" in discrepancy[0]["message"]
                assert "under-infusion" in discrepancy[0]["message"]
            assert check["compared_with"] == "twin_prediction"
            stack.outcomes.append((path.name, check["predicted_residual_ml"], refill.measured_residual_ml, beyond))
        for name, predicted, measured, beyond in stack.outcomes:  # the figures, for a run with -s
            print(f"{name}: predicted {predicted:.2f} mL, measured {measured:.2f} mL, {'ALERT' if beyond else 'ok'}")
        flagged = [name for name, *_, beyond in stack.outcomes if beyond]
        assert flagged == ["itb-0412-2026-06-29.interrogation.yaml"]
        journal = await service.store.transitions(device_id="itb-0412", limit=10_000)
        assert {t.code for t in journal} >= {"refill_discrepancy", "reservoir_low"}  # the pump's log came in too

        # importing the whole year again changes nothing in the twin
        before = await _fingerprint(service)
        twin = _twin(service)
        assert twin is not None
        duplicates = twin.counters.duplicates
        code, out, err = await stack.gateway("import", *map(str, reversed(SERIES)), "--mqtt", stack.broker.url)
        assert code == 0, err
        lines = out.splitlines()
        # the broker holds the newest: the older six are not published over it; the newest goes out again
        assert [line.split(" ", 1)[0] for line in lines] == ["skipped"] * (len(SERIES) - 1) + ["published"]
        assert lines[-1].endswith(f"again (session {session_of(load_readout(SERIES[-1]))})")
        # the newest interrogation is published again (birth, 2 alarm events, state): the twin drops the repeats
        await until(lambda: _twin(service).counters.duplicates == duplicates + 4, timeout_s=10)  # type: ignore[union-attr]
        await service.tick(stack.clock.now)
        assert await _fingerprint(service) == before
        assert service.reject_counts == {}

        # the other examples import cleanly; every pump is listed as real
        code, out, err = await stack.gateway("import", *map(str, OTHERS), "--mqtt", stack.broker.url)
        assert code == 0, err
        await until(lambda: all(_applied(service, load_readout(p)) for p in OTHERS), timeout_s=10)
        devices = (await api.get("/api/devices")).json()
        assert sorted(d["device_id"] for d in devices) == ["itb-0412", "pain-0097", "pain-0215"]
        assert {d["simulated"] for d in devices} == {False}
        assert {d["presence_reason"] for d in devices} == {"shutdown"}  # the telemetry session ended cleanly

        # real pumps stay read-only: every command and fault is refused, and nothing goes out
        actions = [
            {"type": "refill", "volume_ml": 20.0, "drug": "baclofen", "concentration_mg_per_ml": 2.0},
            {"type": "clinician_bolus", "volume_ml": 0.05, "duration_minutes": 30},
            {"type": "inject_fault", "fault": {"fault": "catheter_occlusion", "fraction": 1.0}},
            {"type": "clear_fault", "fault": "all"},
        ]
        for device_id in ("itb-0412", "pain-0215"):
            for action in actions:
                answer = await api.post(f"/api/devices/{device_id}/commands", json={"action": action})
                assert answer.status_code == 403, answer.text
                assert answer.json()["reason"] == "real_device_read_only"
        # a staff response that would refill the pump is refused too, and nothing is recorded
        [alarm] = [a for a in (await api.get("/api/alarms?device_id=pain-0097")).json() if a["code"] == "battery_eri"]
        refill = {"type": "refill", "volume_ml": 40.0, "drug": "morphine", "concentration_mg_per_ml": 10.0}
        answer = await api.post(f"/api/alarms/{alarm['key']}/responses", json={"action": "refill", "command": refill})
        assert answer.status_code == 403, answer.text
        assert await service.store.responses(key=alarm["key"]) == []
        assert isinstance(service.outbox, QueueOutbox)
        assert not service.outbox.queue
        assert not service.fleet.commands

        # and FHIR serves them
        fhir = await api.get(f"/fhir/Device/{SITE}.itb-0412")
        assert fhir.status_code == 200
        device = Device.model_validate(fhir.json())
        assert device.serialNumber == "NGP204512H"
        assert device.status == "active"


def _corrupted(path: Path, target: Path) -> tuple[Path, str]:
    """A copy of ``path`` with one refill's measured residual negative; the field path it must name."""
    readout = load_readout(path)
    index = max(i for i, e in enumerate(readout.events) if e.event == "refill")
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        data["events"][index]["measured_residual_ml"] = -2.0
        text = json.dumps(data, indent=2)
    else:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["events"][index]["measured_residual_ml"] = -2.0
        text = yaml.safe_dump(data, sort_keys=False)
    copy = target / path.name
    copy.write_text(text, encoding="utf-8")
    return copy, f"events[{index}].measured_residual_ml"


async def test_corrupted_read_outs_are_refused_with_their_field_and_publish_nothing(
    broker: tuple[Mosquitto, dict[str, str]], tmp_path: Path
) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    async with _stack(broker, tmp_path) as stack:
        for path in [*SERIES, *OTHERS]:
            copy, where = _corrupted(path, bad_dir)
            code, out, err = await stack.gateway("import", str(SERIES[0]), str(copy), "--mqtt", stack.broker.url)
            assert code == 1, (out, err)
            assert f"{copy}:" in err, err
            assert where in err, err
            assert "nothing was published" in err
        await asyncio.sleep(0.5)
        assert len(stack.service.fleet.devices) == 0  # not even the good file of the batch went out

        # a site the gateway account was not given: the broker drops it, the read-back says so
        other = load_readout(SERIES[0]).model_copy(update={"site": "other-clinic"})
        elsewhere = bad_dir / "other.interrogation.json"
        elsewhere.write_text(other.model_dump_json(), encoding="utf-8")
        code, _, err = await stack.gateway("import", str(elsewhere), "--mqtt", stack.broker.url)
        assert code == 2, err
        assert "pumptwin broker gateway-site other-clinic" in err, err
        assert len(stack.service.fleet.devices) == 0


async def test_the_watched_inbox_publishes_moves_and_rejects(
    broker: tuple[Mosquitto, dict[str, str]], tmp_path: Path
) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    async with _stack(broker, tmp_path) as stack:
        reports: list[str] = []
        inbox = Inbox(inbox_dir, stack.gateway_endpoint(), poll_s=0.05, settle_s=0.1, report=reports.append)
        stop = asyncio.Event()
        runner = asyncio.create_task(inbox.run(stop))
        try:
            newer, older = SERIES[2], SERIES[1]
            shutil.copy(newer, inbox_dir / newer.name)
            bad, where = _corrupted(OTHERS[0], tmp_path)
            shutil.copy(bad, inbox_dir / bad.name)
            (inbox_dir / "notes.txt").write_text("not a read-out")
            await until(lambda: (inbox_dir / "published" / newer.name).exists(), timeout_s=15)
            await until(lambda: (inbox_dir / "rejected" / bad.name).exists(), timeout_s=15)
            reason = (inbox_dir / "rejected" / (bad.name + REASON_SUFFIX)).read_text()
            assert where in reason
            assert "nothing was published" in reason
            await until(lambda: _applied(stack.service, load_readout(newer)), timeout_s=10)
            assert _twin(stack.service, "pain-0097") is None
            # an older visit dropped after a newer one is not published over it
            shutil.copy(older, inbox_dir / older.name)
            await until(lambda: (inbox_dir / "published" / (older.name + REASON_SUFFIX)).exists(), timeout_s=15)
            assert "newer interrogation" in (inbox_dir / "published" / (older.name + REASON_SUFFIX)).read_text()
            assert _applied(stack.service, load_readout(newer))
            assert (inbox_dir / "notes.txt").exists()  # not ours: left alone
            assert inbox.counts.published == 1
            assert inbox.counts.rejected == 1
            assert inbox.counts.superseded == 1
        finally:
            stop.set()
            await runner
