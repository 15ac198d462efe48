"""The training console in a real Chromium, against a real twin on a real Mosquitto.

The pumps are played by this test: it publishes births, states, telemetry and one alarm to the
broker exactly as a simulator or gateway would, so every step is deterministic. One timing bound
is asserted, the issue's acceptance criterion: an alarm a device publishes is on the page within
2 s. It is measured from the moment before the publish (the test's clock) to the moment the page
drew the alarm's row (``data-rendered-at``, the page's clock, stamped when the stream event was
rendered); both are the machine's wall clock. The wait for the row itself is generous, so a slow
machine fails the bound with its figure instead of timing out.

Screenshots of each page go to ``artifacts/screenshots/`` (see ``tests.harness.browser``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.harness.accounts import PASSWORDS, add_accounts, client_as
from tests.harness.browser import chromium, screenshot_path
from tests.harness.mqtt import hostname_port
from tests.harness.servers import Mosquitto
from twin.app.serve import RunningTwin, running_twin
from twin.contract import examples
from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode
from twin.contract.codec import encode
from twin.contract.messages import AlarmEvent, AlarmEventType, WireModel
from twin.contract.topics import Channel, build_topic
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALARM_ON_PAGE_WITHIN_MS = 2000.0
"""Acceptance criterion of the console issue: publish to alarm on the page."""

PUMPS = (("north-general", "pump-a1"), ("north-general", "pump-a2"), ("south-clinic", "pump-b1"))
SITE, DEVICE = PUMPS[0]
ALARM_KEY = f"{SITE}/{DEVICE}/{AlarmCode.RESERVOIR_EMPTY.value}"
WAIT_MS = 15_000  # generous waits for things to appear; never a pass/fail timing criterion


@contextlib.asynccontextmanager
async def _twin(mosquitto: Mosquitto, data_dir: Path) -> AsyncIterator[RunningTwin]:
    settings = Settings()
    settings.data_dir = data_dir
    settings.http.port = 0
    async with running_twin(
        settings, MqttEndpoint.parse(mosquitto.url), client_id="console-test-twin", with_influx=False
    ) as twin:
        async with asyncio.timeout(10):
            await twin.mqtt_connected.wait()
        assert twin.users is not None
        add_accounts(twin.users)
        yield twin


def _pump_messages(site: str, device: str) -> list[tuple[str, WireModel]]:
    """Birth, state and two telemetry samples of one simulated pump (the contract's examples)."""
    birth = examples.birth().model_copy(update={"device_id": device})
    state = examples.state().model_copy(update={"device_id": device})
    out: list[tuple[str, WireModel]] = [
        (build_topic(site, device, Channel.BIRTH), birth),
        (build_topic(site, device, Channel.STATE), state),
    ]
    for n in (1, 2):
        sample = examples.telemetry().model_copy(
            update={
                "device_id": device,
                "seq": 1 + n,
                "device_time": examples.EXAMPLE_TIME + timedelta(hours=n),
                "reservoir_ml": 6.42 - 0.02 * n,
            }
        )
        out.append((build_topic(site, device, Channel.TELEMETRY), sample))
    return out


def _empty_alarm() -> AlarmEvent:
    spec = ALARM_CATALOGUE[AlarmCode.RESERVOIR_EMPTY]
    return AlarmEvent(
        device_id=DEVICE,
        device_time=examples.EXAMPLE_TIME + timedelta(hours=3),
        session=examples.birth().session,
        seq=4,
        alarm_id=f"{DEVICE}-empty-1",
        code=spec.code,
        event=AlarmEventType.RAISED,
        device_class=spec.device_class,
        priority=spec.priority,
        raised_at=examples.EXAMPLE_TIME + timedelta(hours=3),
        message="Reservoir empty: 0.30 mL left",
    )


async def _sign_in(browser: Browser, url: str, role: Role, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(f"{role.value}: {error}"))
    await page.goto(f"{url}/")
    await page.fill("#username", role.value)
    await page.fill("#password", PASSWORDS[role])
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("#who", state="visible", timeout=WAIT_MS)
    return page


async def test_console_in_chromium_alarm_on_page_within_2_s_acknowledge_respond_and_roles(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    host, port = hostname_port(mosquitto.url)
    errors: list[str] = []
    async with _twin(mosquitto, tmp_path) as twin, aiomqtt.Client(host, port) as device, chromium() as browser:
        for site, pump in PUMPS:
            for topic, message in _pump_messages(site, pump):
                await device.publish(topic, encode(message), qos=1)

        # ------------------------------------------------------------------ trainee: the fleet
        login = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login.goto(f"{twin.url}/")
        await login.wait_for_selector("form.login", timeout=WAIT_MS)
        await login.screenshot(path=screenshot_path("login"))
        await login.close()

        page = await _sign_in(browser, twin.url, Role.TRAINEE, errors)
        assert await page.text_content("#who") == "trainee (trainee)"
        await page.wait_for_function("() => document.querySelectorAll('.tiles a.tile').length === 3", timeout=WAIT_MS)
        tiles = page.locator(".tiles a.tile")
        assert sorted(await tiles.evaluate_all("els => els.map(e => e.dataset.device)")) == sorted(p for _, p in PUMPS)
        await page.select_option("#site-filter", "south-clinic")
        await page.wait_for_function("() => document.querySelectorAll('.tiles a.tile').length === 1", timeout=WAIT_MS)
        assert await tiles.first.get_attribute("data-device") == "pump-b1"
        await page.select_option("#site-filter", "")
        await page.wait_for_function("() => document.querySelectorAll('.tiles a.tile').length === 3", timeout=WAIT_MS)
        assert "baclofen" in (await page.text_content(f'a.tile[data-device="{DEVICE}"]') or "")
        await page.screenshot(path=screenshot_path("fleet"), full_page=True)

        # ------------------------------------------- the alarm appears within 2 s of its publish
        await page.click("#nav-alarms")
        await page.wait_for_selector("table.alarms", timeout=WAIT_MS)
        await page.wait_for_function(
            "() => document.getElementById('stream-status').textContent === 'Live'", timeout=WAIT_MS
        )
        await page.click("#sound-toggle")  # a user gesture: the browser may now play sound
        published_ms = time.time() * 1000.0
        await device.publish(build_topic(SITE, DEVICE, Channel.ALARM), encode(_empty_alarm()), qos=1)
        row = page.locator(f'tr[data-key="{ALARM_KEY}"]')
        await row.wait_for(timeout=WAIT_MS)
        rendered_ms = float(await row.get_attribute("data-rendered-at") or "nan")
        latency_ms = rendered_ms - published_ms
        print(f"\nalarm published -> on the page: {latency_ms:.0f} ms (bound {ALARM_ON_PAGE_WITHIN_MS:.0f} ms)")
        assert latency_ms < ALARM_ON_PAGE_WITHIN_MS
        assert await row.get_attribute("data-priority") == "high"
        assert await row.get_attribute("data-state") == "active_unacknowledged"
        assert "Reservoir empty" in (await page.text_content("#latest-alarm") or "")  # the aria-live region
        assert await page.get_attribute("#latest-alarm", "aria-live") == "assertive"
        await page.wait_for_function(
            "() => document.getElementById('sound-toggle').dataset.sounding === 'high'", timeout=WAIT_MS
        )

        # -------------------------------------------------------------- acknowledge, respond
        await row.locator("button[data-action=acknowledge]").click()
        await page.wait_for_selector(f'tr[data-key="{ALARM_KEY}"][data-state="active_acknowledged"]', timeout=WAIT_MS)
        await page.wait_for_function(
            "() => document.getElementById('sound-toggle').dataset.sounding !== 'high'", timeout=WAIT_MS
        )
        assert await row.locator("button[data-action=acknowledge]").count() == 0
        assert await row.locator("button[data-action=shelve]").count() == 0  # trainees do not shelve
        await row.locator("button[data-action=respond]").click()
        await page.wait_for_selector("dialog #response-action", timeout=WAIT_MS)
        await page.select_option("#response-action", "assess_withdrawal")
        await page.fill("#response-note", "baclofen withdrawal signs checked: none")
        await page.click("dialog button[type=submit]")
        await page.wait_for_selector("dialog", state="detached", timeout=WAIT_MS)
        await row.locator("button[data-action=history]").click()
        response_item = page.locator('dialog li[data-kind="response"][data-action="assess_withdrawal"]')
        await response_item.wait_for(timeout=WAIT_MS)
        assert "trainee (trainee)" in (await response_item.text_content() or "")
        transitions = await page.locator('dialog li[data-kind="transition"]').all_text_contents()
        assert any(t.startswith("acknowledge") and "trainee" in t for t in transitions), transitions
        await page.screenshot(path=screenshot_path("alarms-trainee-history"), full_page=True)
        await page.keyboard.press("Escape")

        [recorded] = twin.service.store.journal.responses(key=ALARM_KEY)
        assert (recorded.action, recorded.actor, recorded.role) == ("assess_withdrawal", "trainee", "trainee")
        assert recorded.alarm_state == "active_acknowledged"
        assert twin.service.store.journal.transitions(key=ALARM_KEY)[-1].actor == "trainee"

        # ------------------------------------------------------------------------ device page
        await row.locator(f'a[href="#/device/{SITE}/{DEVICE}"]').click()
        await page.wait_for_selector("table.compare", timeout=WAIT_MS)
        await page.wait_for_selector("figure.chart svg polyline", timeout=WAIT_MS)
        assert await page.locator("#cmd-type").count() == 0  # commands are for instructors
        assert await page.locator(f'section[aria-label="Alarms"] li[data-key="{ALARM_KEY}"]').count() == 1
        await page.screenshot(path=screenshot_path("device-trainee"), full_page=True)

        # ---------------------------------------------------------------------------- viewer
        viewer = await _sign_in(browser, twin.url, Role.VIEWER, errors)
        await viewer.goto(f"{twin.url}/console/#/alarms")
        viewer_row = viewer.locator(f'tr[data-key="{ALARM_KEY}"]')
        await viewer_row.wait_for(timeout=WAIT_MS)
        await viewer_row.locator("button[data-action=history]").wait_for(timeout=WAIT_MS)
        for action in ("acknowledge", "silence", "respond", "shelve"):
            assert await viewer.locator(f"button[data-action={action}]").count() == 0, action
        status = await viewer.evaluate(
            """async (key) => (await fetch(`/api/alarms/${key}/silence`, {
                method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"})).status""",
            ALARM_KEY,
        )
        assert status == 403
        await viewer.screenshot(path=screenshot_path("alarms-viewer"), full_page=True)

        # ----------------------------------------------------------- instructor's device page
        instructor = await _sign_in(browser, twin.url, Role.INSTRUCTOR, errors)
        await instructor.goto(f"{twin.url}/console/#/device/{DEVICE}")
        await instructor.wait_for_selector("#cmd-type", timeout=WAIT_MS)
        await instructor.select_option("#cmd-type", "clinician_bolus")
        await instructor.fill("#cmd-bolus-volume", "0.05")
        await instructor.click("form.command button[type=submit]")
        command_row = instructor.locator('section[aria-label="Commands"] tr[data-command]')
        await command_row.first.wait_for(timeout=WAIT_MS)
        assert "clinician bolus" in (await command_row.first.text_content() or "")
        [bolus] = [c for c in twin.service.fleet.commands.values() if c.command.action.type == "clinician_bolus"]
        assert bolus.command.actor == "instructor"
        await instructor.screenshot(path=screenshot_path("device-instructor"), full_page=True)

        # ------------------------------------------------------------ roles through the API
        async with httpx.AsyncClient(base_url=twin.url) as anonymous:
            assert (await anonymous.get("/api/alarms")).status_code == 401
        fault = {"action": {"type": "inject_fault", "fault": {"fault": "motor_stall"}}}
        shelve = {"comment": "drill: shelved by the instructor", "minutes": 10}
        async with client_as(twin.url, Role.TRAINEE) as trainee_api, client_as(twin.url, Role.INSTRUCTOR) as instr:
            assert (await trainee_api.post(f"/api/devices/{DEVICE}/commands", json=fault)).status_code == 403
            assert (await trainee_api.post(f"/api/alarms/{ALARM_KEY}/shelve", json=shelve)).status_code == 403
            new_user = {"username": "intruder", "role": "admin", "password": "let-me-in-please"}
            assert (await trainee_api.post("/api/users", json=new_user)).status_code == 403
            shelved = await instr.post(f"/api/alarms/{ALARM_KEY}/shelve", json=shelve)
            assert shelved.status_code == 200, shelved.text
            assert (await instr.post(f"/api/devices/{DEVICE}/commands", json=fault)).status_code == 202

        # the shelve reaches the trainee's page live
        await page.click("#nav-alarms")
        await page.wait_for_selector(f'tr[data-key="{ALARM_KEY}"][data-state="shelved"]', timeout=WAIT_MS)
    assert errors == []
