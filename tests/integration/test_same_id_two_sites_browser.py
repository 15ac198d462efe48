"""One pump id at two sites in Chromium (issue 17: two training sessions of one scenario run the same
pump ids on ``tr-<run1>.<site>`` and ``tr-<run2>.<site>``): the fleet page shows both pumps, each
device page shows its own site's values, and a command sent from one page reaches that site's pump
only (the twin's command topic, read on a real Mosquitto); an old link without the site offers both; an alarm's respond dialog reads its own site's pump."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from tests.harness.accounts import PASSWORDS, add_accounts
from tests.harness.browser import chromium, screenshot_path
from tests.harness.mqtt import hostname_port
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.app.serve import running_twin
from twin.contract import examples
from twin.contract.codec import encode
from twin.contract.topics import TOPIC_ROOT, Channel, build_topic
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.settings import Settings

pytestmark = pytest.mark.integration

DEVICE = examples.EXAMPLE_DEVICE
RESERVOIR = {"tr-run1.ward": 4.25, "tr-run2.ward": 17.5}
"""Each site's pump reports its own reservoir, so a page showing the other one's is caught."""
WAIT_MS = 15_000


async def test_fleet_and_device_pages_keep_two_pumps_with_one_id_apart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = Settings()
    settings.data_dir = tmp_path
    settings.http.port = 0
    host, port = hostname_port(mosquitto.url)
    async with running_twin(
        settings, MqttEndpoint.parse(mosquitto.url), client_id="two-sites-twin", with_influx=False
    ) as twin:
        async with asyncio.timeout(10):
            await twin.mqtt_connected.wait()
        assert twin.users is not None
        add_accounts(twin.users)
        async with aiomqtt.Client(host, port) as pumps:
            await pumps.subscribe(f"{TOPIC_ROOT}/+/+/{Channel.CMD.value}", qos=1)
            for site, reservoir in RESERVOIR.items():
                state = examples.state().model_copy(update={"reservoir_ml": reservoir})
                await pumps.publish(build_topic(site, DEVICE, Channel.BIRTH), encode(examples.birth()), qos=1)
                await pumps.publish(build_topic(site, DEVICE, Channel.STATE), encode(state), qos=1)
            await until(lambda: all((site, DEVICE) in twin.service.fleet.devices for site in RESERVOIR))

            async with chromium() as browser:
                page = await browser.new_page(viewport={"width": 1280, "height": 1100})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{twin.url}/")
                await page.fill("#username", Role.INSTRUCTOR.value)
                await page.fill("#password", PASSWORDS[Role.INSTRUCTOR])
                await page.click("form.login button[type=submit]")
                await page.wait_for_selector("#who", state="visible", timeout=WAIT_MS)

                # the fleet page: two tiles of one id, one per site
                await page.goto(f"{twin.url}/#/fleet")
                tiles = page.locator(f'a.tile[data-device="{DEVICE}"]')
                await page.wait_for_function(
                    f"() => document.querySelectorAll('a.tile[data-device=\"{DEVICE}\"]').length === 2",
                    timeout=WAIT_MS,
                )
                assert sorted(await tiles.evaluate_all("els => els.map(e => e.dataset.site)")) == sorted(RESERVOIR)
                await page.screenshot(path=screenshot_path("fleet-same-id-two-sites"), full_page=True)

                # an old link without a site: the twin answers 409, the page offers each site's pump
                await page.goto(f"{twin.url}/#/device/{DEVICE}")
                links = page.locator("[data-testid=device-sites] a")
                await links.first.wait_for(timeout=WAIT_MS)
                assert await links.evaluate_all("els => els.map(e => e.getAttribute('href'))") == [
                    f"#/device/{site}/{DEVICE}" for site in sorted(RESERVOIR)
                ]

                for site, reservoir in RESERVOIR.items():
                    await page.goto(f"{twin.url}/#/fleet")
                    await page.click(f'a.tile[data-device="{DEVICE}"][data-site="{site}"]')
                    await page.wait_for_selector("table.compare", timeout=WAIT_MS)
                    assert await page.text_content("[data-testid=device-site]") == f" at {site}"
                    identity = await page.text_content("section[aria-label=Identity]") or ""
                    assert f"Site{site}" in identity, identity
                    reported = page.locator("table.compare tbody tr").first.locator("td").first
                    assert await reported.text_content() == f"{reservoir:.2f} mL"
                    await page.screenshot(path=screenshot_path(f"device-same-id-{site}"), full_page=True)

                # a command from the second site's page goes to that site's pump only
                await page.select_option("#cmd-type", "reprogram")
                await page.fill("#cmd-rate", "0.5")
                await page.click("form.command button[type=submit]")
                await page.wait_for_selector("form.command p[role=status]:has-text('Sent')", timeout=WAIT_MS)
                async with asyncio.timeout(10):
                    async for message in pumps.messages:
                        topic = str(message.topic)
                        break
                assert topic == build_topic("tr-run2.ward", DEVICE, Channel.CMD)

                # an alarm of the second site's pump: its row links to that pump, and the respond
                # dialog (which reads the pump's detail, given its site) opens and records the answer
                await pumps.publish(build_topic("tr-run2.ward", DEVICE, Channel.ALARM), encode(examples.alarm()), qos=1)
                key = f"tr-run2.ward/{DEVICE}/reservoir_low"
                await page.goto(f"{twin.url}/#/alarms")
                row = page.locator(f'tr[data-key="{key}"]')
                await row.wait_for(timeout=WAIT_MS)
                assert await row.locator(f'a[href="#/device/tr-run2.ward/{DEVICE}"]').count() == 1
                await row.locator("button[data-action=respond]").click()
                await page.wait_for_selector("dialog #response-action", timeout=WAIT_MS)
                await page.select_option("#response-action", "assess_withdrawal")
                await page.click("dialog button[type=submit]")
                await page.wait_for_selector("dialog", state="detached", timeout=WAIT_MS)
                [recorded] = twin.service.store.journal.responses(key=key)
                assert (recorded.site, recorded.device_id, recorded.action) == (
                    "tr-run2.ward",
                    DEVICE,
                    "assess_withdrawal",
                )
                assert errors == []
