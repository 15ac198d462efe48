"""Every page of the console in a real Chromium, against a real twin on a real Mosquitto with the
simulator and the scenario runner in the same process (as ``pumptwin demo --training`` runs
them): what staff use every day, and what an instructor and an admin need.

One drill drives it: two pumps of a ward stall, the patient of one reports what they heard, the
trainee acknowledges both, the instructor restarts one pump (the stall recovers, its alarm goes
back to normal), the trainee records "interrogate" against the recovered alarm from the follow-up
row and answers the patient's report, and the other alarm is left acknowledged without a response.

Checked on the way (each with a screenshot in ``artifacts/screenshots/pages-*.png``):

* **nothing from outside the twin**: every browser context records each request to a host other
  than the twin's and refuses it; the list must be empty at the end (the API docs included);
* the login page without the signed-in header; the latest-alarm strip empties once answered;
* the fleet page urgency first, with days to empty, next refill, ERI, report and implant age on
  the pump's clock, the priority filter and the search;
* the device page's three labelled columns (reported state, latest telemetry, predicted now), each
  with its own device time, and a chart axis from zero;
* the alarm list across acknowledge and clear (the follow-up row), guidance shown, hidden by the
  instructor and shown again; "acknowledged, no response" in the report;
* the patient-report cue card and its answer, journaled like a response;
* every console dropped from the live stream (a whole ring behind): each gets ``resync``, opens a
  fresh stream and goes on receiving events;
* the admin's accounts page (add, change role, disable);
* a 390 px wide phone: the Acknowledge button is on screen.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.harness.accounts import PASSWORDS
from tests.harness.browser import chromium, screenshot_path
from tests.harness.live_sim import LiveSim, live_sim
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.alarms.guidance import GUIDANCE
from twin.roles import Role
from twin.scenarios.scenario_file import parse_scenario
from twin.service.events import RING_CAPACITY, Notice

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_MS = 30_000  # generous waits for things to appear; never a pass/fail timing criterion
SPEED = 60  # x real time: the stalls come 5 simulated minutes (5 s) after the start
WARD = "console-ward"
STALLED, SILENT_ONE, LOW = "ward-a1", "ward-a2", "ward-b1"
STALL_KEY = f"{WARD}/{STALLED}/motor_stall"
OTHER_KEY = f"{WARD}/{SILENT_ONE}/motor_stall"
REPORT_KEY = f"{WARD}/{STALLED}/patient_report"
SYMPTOM = "The patient heard a long two-tone alarm from the pump this morning."

DRILL = f"""\
name: console-drill
title: Console drill
description: Two pumps of a ward stall; a patient reports the alarm they heard.
learning_objectives:
  - Acknowledge a motor stall at once
  - Interrogate a pump after its stall recovered
speed: {SPEED}
duration: 6h
fleet:
  kind: inline
  pumps:
    - {{device_id: {STALLED}, site: {WARD}, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {{mode: continuous, rate_ml_per_day: 0.3}}, reservoir_ml: 18}}
    - {{device_id: {SILENT_ONE}, site: {WARD}, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {{mode: continuous, rate_ml_per_day: 0.4}}, reservoir_ml: 15}}
    - {{device_id: {LOW}, site: other-ward, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {{mode: continuous, rate_ml_per_day: 0.5}}, reservoir_ml: 4}}
timeline:
  - {{at: 5m, id: stall, step: inject_fault, devices: {{ids: [{STALLED}, {SILENT_ONE}]}}, fault: {{fault: motor_stall}}}}
  - {{at: 6m, id: heard, step: patient_symptom, devices: {{ids: [{STALLED}]}}, symptom: "{SYMPTOM}",
     severity: severe, responses: [interrogate]}}
expect:
  - {{kind: alarm, code: motor_stall, devices: {{ids: [{STALLED}]}}, after: stall, within: 10m,
     responses: [interrogate]}}
  - {{kind: alarm, code: motor_stall, devices: {{ids: [{SILENT_ONE}]}}, after: stall, within: 10m,
     responses: [rotor_study]}}
"""

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class Outside:
    """Every request a page makes to a host other than the twin's, refused and kept."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def watch(self, context: BrowserContext) -> None:
        async def route(route: object) -> None:
            request = route.request  # type: ignore[attr-defined]
            if urlsplit(request.url).hostname in LOCAL_HOSTS or request.url.startswith(("data:", "blob:")):
                await route.continue_()  # type: ignore[attr-defined]
            else:
                self.requests.append(request.url)
                await route.abort()  # type: ignore[attr-defined]

        await context.route("**/*", route)


async def _context(browser: Browser, outside: Outside, *, width: int = 1360, height: int = 950) -> BrowserContext:
    context = await browser.new_context(viewport={"width": width, "height": height})
    await outside.watch(context)
    return context


async def _sign_in(page: Page, url: str, role: Role, hash_: str = "") -> None:
    await page.goto(f"{url}/console/{hash_}")
    await page.fill("#username", role.value)
    await page.fill("#password", PASSWORDS[role])
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("#who", state="visible", timeout=WAIT_MS)
    await page.wait_for_function(
        "() => document.getElementById('stream-status').textContent === 'Live'", timeout=WAIT_MS
    )


async def _page(
    browser: Browser, outside: Outside, errors: list[str], url: str, role: Role, hash_: str = "", **size: int
) -> Page:
    context = await _context(browser, outside, **size)
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{role.value}: {error}"))
    await _sign_in(page, url, role, hash_)
    return page


async def _fits(page: Page, width: int) -> None:
    """The page is no wider than the screen; else the elements that stick out are named."""
    wide = await page.evaluate("document.documentElement.scrollWidth")
    offenders = await page.evaluate(
        """(w) => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 0.5)
            .slice(0, 8).map(e => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)""",
        width,
    )
    assert wide <= width, f"the page is {wide} px wide on a {width} px screen: {offenders}"


async def _shot(page: Page, name: str) -> None:
    await page.screenshot(path=screenshot_path(f"pages-{name}"), full_page=True)


@contextlib.asynccontextmanager
async def _live(mosquitto: Mosquitto, data_dir: Path):  # type: ignore[no-untyped-def]
    async with live_sim(mosquitto, data_dir, parse_scenario(DRILL), client_id="console-pages-twin") as live:
        yield live


async def test_every_console_page_in_chromium_loads_nothing_from_outside_and_works(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    errors: list[str] = []
    outside = Outside()
    async with _live(mosquitto, tmp_path) as live, chromium() as browser:
        await _pages(live, browser, outside, errors)
    assert outside.requests == [], outside.requests
    assert errors == []


async def _pages(live: LiveSim, browser: Browser, outside: Outside, errors: list[str]) -> None:
    url = live.twin.url
    service = live.twin.service

    # --------------------------------------------------- login: no signed-in header, no CDN
    context = await _context(browser, outside)
    login = await context.new_page()
    await login.goto(f"{url}/console/")
    await login.wait_for_selector("form.login", timeout=WAIT_MS)
    assert await login.is_hidden("#top")
    assert await login.is_hidden("#sign-out")
    await _shot(login, "login")

    # ------------------------------------------------------------ API docs from the twin itself
    for path, ready in (("/docs", "#swagger-ui .info .title"), ("/redoc", "redoc-wrap, .api-content, h1")):
        await login.goto(f"{url}{path}")
        await login.wait_for_selector(ready, timeout=WAIT_MS)
        await _shot(login, path.strip("/"))
    assert "PumpTwin" in (await login.text_content("h1") or "")
    await context.close()

    # ------------------------------------------------------- the instructor starts the drill
    desk = await _page(browser, outside, errors, url, Role.INSTRUCTOR, "#/training")
    started = await desk.evaluate(
        """async (speed) => {
            const r = await fetch("/api/training/sessions", {method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({scenario: "console-drill", trainees: ["trainee"], speed})});
            return [r.status, await r.json()];
        }""",
        SPEED,
    )
    assert started[0] == 201, started
    session_id = started[1]["session_id"]
    prefix = f"tr-{started[1]['run_id']}."  # the session's own pumps, on sites of its own
    stall_key, other_key, report_key = (f"{prefix}{key}" for key in (STALL_KEY, OTHER_KEY, REPORT_KEY))

    # ----------------------------------------------------------------- the trainee's fleet
    trainee = await _page(browser, outside, errors, url, Role.TRAINEE, "#/fleet")
    await trainee.wait_for_selector(f'a.tile[data-device="{STALLED}"][data-priority="high"]', timeout=WAIT_MS)
    await trainee.wait_for_selector(f'a.tile[data-device="{SILENT_ONE}"][data-priority="high"]', timeout=WAIT_MS)
    order = await trainee.locator(".tiles a.tile").evaluate_all("els => els.map(e => e.dataset.device)")
    ward = [d for d in order if d in (STALLED, SILENT_ONE, LOW)]
    assert set(ward[:2]) == {STALLED, SILENT_ONE}, order  # the pumps with alarms first
    low_tile = trainee.locator(f'a.tile[data-device="{LOW}"]')
    days = await low_tile.locator("[data-testid=days-to-empty]").text_content() or ""
    assert days.startswith("in "), days
    assert days.endswith(" d"), days
    # 4 mL less the unusable residual at 0.5 mL/day; the page runs the pump's clock on (60x)
    assert float(days.split()[1]) == pytest.approx(7.3, abs=0.3), days
    report_age = await low_tile.locator("[data-testid=report-age]").text_content() or ""
    assert report_age.endswith(" ago"), report_age
    assert (await low_tile.locator("[data-testid=eri]").text_content() or "") == "beyond 3 y"  # a full battery
    assert (await low_tile.locator("[data-testid=implant-age]").text_content() or "").endswith(" ago")
    await trainee.select_option("#priority-filter", "none")
    await trainee.wait_for_function(
        f"""() => [...document.querySelectorAll('.tiles a.tile')].every(t => t.dataset.device !== '{STALLED}')""",
        timeout=WAIT_MS,
    )
    await trainee.select_option("#priority-filter", "")
    await trainee.fill("#fleet-search", "b1")
    await trainee.wait_for_function(
        """() => { const t = [...document.querySelectorAll('.tiles a.tile')];
            return t.length >= 1 && t.every(e => e.dataset.device.includes('b1')); }""",
        timeout=WAIT_MS,
    )
    await trainee.fill("#fleet-search", "")
    await trainee.select_option("#fleet-sort", "empty")
    await trainee.wait_for_function(
        f"() => document.querySelector('.tiles a.tile').dataset.device === '{LOW}'", timeout=WAIT_MS
    )
    await _shot(trainee, "fleet")

    # -------------------------------------- the alarms: guidance, acknowledge, the strip
    await trainee.click("#nav-alarms")
    row = trainee.locator(f'tr[data-key="{stall_key}"]')
    other = trainee.locator(f'tr[data-key="{other_key}"]')
    await row.wait_for(timeout=WAIT_MS)
    await other.wait_for(timeout=WAIT_MS)
    guidance = row.locator("[data-testid=guidance]")
    await guidance.wait_for(timeout=WAIT_MS)
    await guidance.locator("summary").click()
    response_text = await guidance.locator("[data-testid=guidance-response]").text_content()
    assert response_text == GUIDANCE["motor_stall"].staff_response
    await _shot(trainee, "alarms-guidance")
    # ---------------------------- a phone, 390 px wide: Acknowledge on screen, nothing wider
    phone = await _page(browser, outside, errors, url, Role.TRAINEE, "#/alarms", width=390, height=844)
    phone_row = phone.locator(f'tr[data-key="{other_key}"]')
    await phone_row.wait_for(timeout=WAIT_MS)
    await _fits(phone, 390)
    for action in ("acknowledge", "respond"):
        button = phone_row.locator(f"button[data-action={action}]")
        await button.scroll_into_view_if_needed()
        box = await button.bounding_box()
        assert box is not None, action
        assert box["x"] >= 0, action
        assert box["x"] + box["width"] <= 390, action
    await _shot(phone, "phone-alarms")
    await phone.goto(f"{url}/console/#/fleet")
    await phone.wait_for_selector(".tiles a.tile", timeout=WAIT_MS)
    await _fits(phone, 390)
    await _shot(phone, "phone-fleet")
    await phone.context.close()

    await trainee.wait_for_function(
        "() => document.getElementById('latest-alarm').textContent.includes('on ward-a')", timeout=WAIT_MS
    )
    await row.locator("button[data-action=acknowledge]").click()
    await other.locator("button[data-action=acknowledge]").click()
    await trainee.wait_for_selector(f'tr[data-key="{stall_key}"][data-state="active_acknowledged"]', timeout=WAIT_MS)
    await trainee.wait_for_selector(f'tr[data-key="{other_key}"][data-state="active_acknowledged"]', timeout=WAIT_MS)
    # the strip no longer names an alarm once both are answered (a patient's report may be there)
    await trainee.wait_for_function("() => !document.querySelector('#latest-alarm [data-key]')", timeout=WAIT_MS)
    # the instructor's console, open since before the drill, announced the patient's report
    strip = desk.locator("#latest-alarm [data-cue]")
    await strip.wait_for(timeout=WAIT_MS)
    assert (await strip.text_content()) == f"Patient report (severe) on {STALLED}: {SYMPTOM}"

    # ----------- every console falls a whole ring behind: `resync`, a fresh stream, still live
    streams = service.hub.subscribers
    dropped = service.hub.dropped_subscribers
    async with trainee.expect_request(lambda r: urlsplit(r.url).path == "/api/stream", timeout=WAIT_MS):
        for n in range(RING_CAPACITY + 1):  # in one go: no stream client reads in between
            service.hub.publish(Notice("flood", {"n": n}))
    await until(lambda: service.hub.dropped_subscribers >= dropped + streams, what="every stream told to resync")
    await trainee.wait_for_function(
        "() => document.getElementById('stream-status').textContent === 'Live'", timeout=WAIT_MS
    )
    # the guidance events below reach the trainee on the stream it opened after the resync (its
    # `resync` listener reopens at once; were it missing, EventSource's own reconnect after the
    # server ends the stream would too, a few seconds later: this checks the recovery, not which)

    # ------------------------------------------ the instructor hides the guidance for a test
    await desk.reload()
    await desk.wait_for_selector("[data-testid=guidance-switch]", timeout=WAIT_MS)
    await desk.check("[data-testid=guidance-switch]")
    await trainee.wait_for_selector(f'tr[data-key="{stall_key}"] [data-testid=guidance-hidden]', timeout=WAIT_MS)
    assert await trainee.locator("[data-testid=guidance-meaning]").count() == 0
    withheld = await trainee.evaluate("async () => (await (await fetch('/api/alarm-guidance')).json()).codes")
    assert withheld == {}  # not sent at all, not just not drawn
    await _shot(trainee, "alarms-guidance-hidden")
    await desk.uncheck("[data-testid=guidance-switch]")
    await trainee.wait_for_selector(f'tr[data-key="{stall_key}"] [data-testid=guidance]', timeout=WAIT_MS)

    # ------------------------------------------- the patient's report: a cue card, answered
    await trainee.wait_for_function(
        "() => document.getElementById('report-count').textContent === '1'", timeout=WAIT_MS
    )
    await trainee.click("#nav-reports")
    card = trainee.locator("[data-testid=cue-card]").first
    await card.wait_for(timeout=WAIT_MS)
    assert await card.get_attribute("data-severity") == "severe"
    assert (await card.locator("[data-testid=cue-symptom]").text_content()) == SYMPTOM
    card_text = await card.text_content() or ""
    assert f"the patient with pump {STALLED}" in card_text
    assert "on the pump's clock" in card_text
    assert await card.locator("[data-testid=cue-expected]").count() == 0  # not shown to a trainee while it runs
    await _shot(trainee, "patient-reports")
    await card.locator("[data-testid=cue-action]").select_option("interrogate")
    await card.locator("[data-testid=cue-note]").fill("asked the patient in; interrogating the pump")
    async with trainee.expect_response(
        lambda r: "/api/cues/" in r.url and r.request.method == "POST", timeout=WAIT_MS
    ) as posted:
        await card.locator("[data-testid=cue-submit]").click()
    answer = await posted.value
    assert answer.status == 201, await answer.text()
    await trainee.wait_for_selector(
        "[data-testid=cue-card] [data-testid=cue-answers] li[data-action=interrogate]", timeout=WAIT_MS
    )
    await trainee.wait_for_function("() => document.getElementById('report-count').textContent === ''", timeout=WAIT_MS)
    await trainee.wait_for_function("() => !document.querySelector('#latest-alarm [data-cue]')", timeout=WAIT_MS)
    # the answer is a response to the patient_report alarm the twin raised for the report: scored
    answers = await service.store.responses(key=report_key)
    assert [(r.action, r.actor, r.detail.get("run_id"), r.detail.get("step_id")) for r in answers] == [
        ("interrogate", "trainee", started[1]["run_id"], "heard")
    ]
    assert answers[0].command_id is not None  # an interrogation is sent to the simulated pump
    await _shot(trainee, "patient-reports-answered")

    # ------------------------- the stall recovers: the row stays for its follow-up response
    await trainee.click("#nav-alarms")
    await row.wait_for(timeout=WAIT_MS)
    cleared = await desk.evaluate(
        """async (id) => (await fetch(`/api/devices/${id}/commands`, {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({action: {type: "clear_fault", fault: "motor_stall"}})})).status""",
        STALLED,
    )
    assert cleared == 202
    await trainee.wait_for_selector(
        f'tr[data-key="{stall_key}"][data-state="normal"][data-follow-up="true"]', timeout=WAIT_MS
    )
    assert "back to normal" in (await row.locator(".state").text_content() or "")
    await _shot(trainee, "alarms-follow-up")
    await row.locator("button[data-action=respond]").click()
    await trainee.wait_for_selector("dialog #response-action", timeout=WAIT_MS)
    await trainee.select_option("#response-action", "interrogate")
    await trainee.fill("#response-note", "re-interrogated after the stall recovered: motor turning")
    await trainee.click("dialog button[type=submit]")
    await trainee.wait_for_selector("dialog", state="detached", timeout=WAIT_MS)
    [recorded] = await service.store.responses(key=stall_key)
    assert (recorded.action, recorded.alarm_state) == ("interrogate", "normal")
    await row.locator("button[data-action=follow-up-done]").click()
    await row.wait_for(state="detached", timeout=WAIT_MS)
    assert await other.get_attribute("data-state") == "active_acknowledged"  # still open

    # ----------------------------------------------------------------------- the device page
    await trainee.goto(f"{url}/console/#/device/{STALLED}")
    await trainee.wait_for_selector("table.compare", timeout=WAIT_MS)
    for column, title in (
        ("reported", "Reported state"),
        ("telemetry", "Latest telemetry"),
        ("predicted", "Predicted now"),
    ):
        head = trainee.locator(f"[data-testid=col-{column}]")
        text = await head.text_content() or ""
        assert text.startswith(title), text
        assert "UTC" in text, text  # its own device time
    assert "ago" in (await trainee.text_content("[data-testid=col-reported]") or "")
    # attached, not "visible": the session's pump is minutes old and stalled, its reservoir line flat
    # (a flat polyline has an empty bounding box, which Playwright counts as hidden)
    await trainee.wait_for_selector("figure.chart svg polyline", state="attached", timeout=WAIT_MS)
    assert await trainee.get_attribute("figure.chart svg", "data-axis-lo") == "0"
    await trainee.wait_for_selector("section[aria-label='Patient reports'] [data-testid=cue-card]", timeout=WAIT_MS)
    await _shot(trainee, "device")

    # -------------------- the session ends: acknowledged without a response is said as such
    aborted = await desk.evaluate(
        """async (id) => (await fetch(`/api/training/sessions/${id}/abort`, {method: "POST",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify({reason: "drill over"})})).status""",
        session_id,
    )
    assert aborted == 200
    report = await desk.evaluate(
        "async (id) => (await (await fetch(`/api/training/sessions/${id}`)).json()).report", session_id
    )
    [answered] = [a for a in report["alarms"] if a["key"] == report_key and a["trainee"] == "trainee"]
    assert "interrogate" in answered["matched"], answered  # the card's answer counts for the session
    await desk.goto(f"{url}/console/#/training/{session_id}")
    silent = desk.locator(f'[data-testid=report-row][data-key="{other_key}"] [data-testid=report-verdict]')
    await silent.wait_for(timeout=WAIT_MS)
    assert await silent.get_attribute("data-shown") == "no-response"
    assert (await silent.text_content() or "").strip() == "○ Acknowledged, no response"
    await _shot(desk, "report-no-response")

    # ------------------------------------------------------------ the admin's accounts page
    admin = await _page(browser, outside, errors, url, Role.ADMIN, "#/users")
    await admin.wait_for_selector("[data-testid=user-row][data-user=admin]", timeout=WAIT_MS)
    assert await admin.locator("[data-testid=user-row][data-user=admin] [data-testid=user-role]").is_disabled()
    await admin.fill("#new-username", "nurse-b")
    await admin.select_option("#new-role", "trainee")
    await admin.fill("#new-password", "a-long-enough-password")
    await admin.click("form.add-user button[type=submit]")
    new_row = admin.locator("[data-testid=user-row][data-user=nurse-b]")
    await new_row.wait_for(timeout=WAIT_MS)
    await new_row.locator("[data-testid=user-role]").select_option("instructor")
    await until(
        lambda: (u := live.twin.users.get("nurse-b")) is not None and u.role is Role.INSTRUCTOR, what="the role change"
    )  # type: ignore[union-attr]
    await admin.locator("[data-testid=user-row][data-user=nurse-b] button[data-action=disable]").click()
    await admin.wait_for_selector("[data-testid=user-row][data-user=nurse-b][data-disabled=true]", timeout=WAIT_MS)
    assert live.twin.users.get("nurse-b").disabled  # type: ignore[union-attr]
    await _shot(admin, "accounts")
    assert await trainee.is_hidden("#nav-users")  # the page is the admin's
    await trainee.goto(f"{url}/console/#/users")
    await trainee.wait_for_selector("h2:has-text('Fleet')", timeout=WAIT_MS)
