"""The device page of a real pump in Chromium: the last interrogation, what the twin predicts since, and the
refill checks of consecutive read-outs, from read-outs published on a real Mosquitto."""

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
from twin.gateway.publication import publications
from twin.gateway.readout_file import load_readout
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.settings import Settings

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
VISITS = sorted(EXAMPLES.glob("itb-0412-*.interrogation.yaml"))[2:4]  # the 4th visit is the discrepant one
WAIT_MS = 15_000


async def test_the_device_page_shows_the_pump_between_interrogations(mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = Settings()
    settings.data_dir = tmp_path
    settings.http.port = 0
    host, port = hostname_port(mosquitto.url)
    endpoint = MqttEndpoint.parse(mosquitto.url)
    async with running_twin(settings, endpoint, client_id="page-twin", with_influx=False) as twin:
        async with asyncio.timeout(10):
            await twin.mqtt_connected.wait()
        assert twin.users is not None
        add_accounts(twin.users)
        async with aiomqtt.Client(host, port) as gateway:
            for path in VISITS:
                for message in publications(load_readout(path)):
                    await gateway.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        key = ("st-olaf-clinic", "itb-0412")
        await until(lambda: key in twin.service.fleet.visits and len(twin.service.fleet.visits[key].checks) == 1)
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{twin.url}/")
            await page.fill("#username", Role.VIEWER.value)
            await page.fill("#password", PASSWORDS[Role.VIEWER])
            await page.click("form.login button[type=submit]")
            await page.wait_for_selector("#who", state="visible", timeout=WAIT_MS)
            await page.goto(f"{twin.url}/#/device/itb-0412")
            await page.wait_for_selector("text=Between interrogations", timeout=WAIT_MS)
            text = await page.text_content("main") or ""
            assert "real pump (read-only mirror)" in text
            assert "Last interrogation" in text
            assert "Reservoir now (predicted)" in text
            assert "Next visit due" in text
            assert "(planned refill)" in text
            row = page.locator("tr.discrepancy")
            assert await row.count() == 1
            cells = await row.locator("td").all_text_contents()
            assert cells[1:] == ["7.18 mL", "9.60 mL", "+2.42 mL", "beyond ±1 mL", "0 logged, 0.00 mL"]
            await page.screenshot(path=screenshot_path("device-real-pump"), full_page=True)
            assert errors == []
