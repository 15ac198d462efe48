"""The debrief in a real Chromium, against a real twin on a real Mosquitto with the simulator and
the scenario runner in the same process, and a real HTTP receiver standing in for the paging
system.

An instructor runs a session for two trainees (three browser contexts, three logins); the drill
stalls one pump and, two simulated minutes later, gives another a memory error. One trainee
answers the stall (acknowledge, then a rotor study); the other does nothing, and nobody answers
the memory error. The unanswered high alarm escalates on schedule: the journal holds the
escalation at ``unacknowledged_since + tier``, the instructor's console shows "escalated to you",
the pager receives it. The instructor aborts and replays the session: the replay plays back on
the timeline (scrubber, next alarm, play at a speed) with both trainees side by side, the
answering one's acts, the verdicts, and the memory error's escalation. Each trainee's record
shows the session, and one cannot open the other's.

Figures printed (measured, not bounds): the escalation's lateness after its deadline (the twin's
clock ticks every second) and the time from the escalation to the instructor's page drawing it.
Screenshots: ``artifacts/screenshots/debrief-*.png``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.harness.accounts import PASSWORDS
from tests.harness.browser import chromium, screenshot_path
from tests.harness.http_receiver import http_receiver
from tests.harness.live_sim import live_sim
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.roles import Role
from twin.scenarios.scenario_file import parse_scenario
from twin.settings import EscalationSettings, EscalationTierSettings
from twin.store.users import hash_password

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_MS = 30_000  # generous waits for things to appear; never a pass/fail timing criterion
SITE = "debrief-ward"
STALL = f"{SITE}/db-a/motor_stall"
MEMORY = f"{SITE}/db-b/memory_error"
TIER_1_S = 10.0
"""The drill's first escalation tier in wall seconds (the default is 2 minutes): long enough for
the test to acknowledge the stall first on a loaded machine."""
SECOND_PASSWORD = "trainee2-password"

DRILL = f"""\
name: debrief-drill
title: Debrief drill
description: A motor stall, then a memory error nobody answers.
learning_objectives: [Acknowledge every critical alarm, Ask for a rotor study after a stall]
speed: 60
duration: 2h
fleet:
  kind: inline
  pumps:
    - {{device_id: db-a, site: {SITE}, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {{mode: continuous, rate_ml_per_day: 0.3}}, reservoir_ml: 18}}
    - {{device_id: db-b, site: {SITE}, drug: clonidine, concentration_mg_per_ml: 0.5,
       program: {{mode: continuous, rate_ml_per_day: 0.4}}, reservoir_ml: 15}}
timeline:
  - {{at: 1m, id: stall, step: inject_fault, devices: {{ids: [db-a]}}, fault: {{fault: motor_stall}}}}
  - {{at: 3m, id: memory, step: inject_fault, devices: {{ids: [db-b]}}, fault: {{fault: memory_error}}}}
  - {{at: 5m, step: patient_symptom, devices: {{ids: [db-b]}}, symptom: Pounding headache, severity: severe}}
expect:
  - {{kind: alarm, code: motor_stall, devices: {{ids: [db-a]}}, after: stall, within: 10m,
     responses: [rotor_study, interrogate]}}
  - {{kind: alarm, code: memory_error, devices: {{ids: [db-b]}}, after: memory, within: 10m,
     responses: [interrogate, replace_pump]}}
"""


async def _sign_in(browser: Browser, url: str, user: str, password: str, errors: list[str], hash_: str = "") -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{user}: {error}"))
    await page.goto(f"{url}/console/{hash_}")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("#who", state="visible", timeout=WAIT_MS)
    await page.wait_for_function(
        "() => document.getElementById('stream-status').textContent === 'Live'", timeout=WAIT_MS
    )
    return page


async def test_an_unanswered_alarm_escalates_and_the_session_is_replayed_and_recorded_in_chromium(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    errors: list[str] = []
    ladder = EscalationSettings(
        high=[
            EscalationTierSettings(name="charge nurse", after_s=TIER_1_S, notify=["role:instructor"]),
            EscalationTierSettings(name="physician on call", after_s=600, notify=["role:admin"]),
        ],
        webhook_retry_initial_s=0.1,
    )
    async with http_receiver() as pager:
        ladder.webhook_url = pager.url
        async with (
            live_sim(
                mosquitto, tmp_path, parse_scenario(DRILL), client_id="debrief-browser-twin", escalation=ladder
            ) as live,
            chromium() as browser,
        ):
            service, url = live.twin.service, live.twin.url
            assert live.twin.users is not None
            live.twin.users.add(
                "trainee2", Role.TRAINEE, hash_password(SECOND_PASSWORD), actor="test", at=service.clock()
            )
            answering = await _sign_in(browser, url, "trainee", PASSWORDS[Role.TRAINEE], errors, "#/alarms")
            idle = await _sign_in(browser, url, "trainee2", SECOND_PASSWORD, errors, "#/alarms")
            desk = await _sign_in(browser, url, "instructor", PASSWORDS[Role.INSTRUCTOR], errors)

            # ------------------------------------------------ the instructor starts the session
            await desk.click("#nav-training")
            await desk.wait_for_selector("[data-testid=training-trainee-trainee2]", timeout=WAIT_MS)
            await desk.select_option("[data-testid=training-scenario]", "debrief-drill")
            await desk.check("[data-testid=training-trainee-trainee]")
            await desk.check("[data-testid=training-trainee-trainee2]")
            await desk.click("[data-testid=training-start]")
            await desk.wait_for_selector("[data-testid=training-status][data-status=running]", timeout=WAIT_MS)
            session_id = await desk.get_attribute("section.live-session", "data-session")
            assert session_id
            (run,) = live.runner.active  # the session's own pumps, on a site of its own
            site = run.timeline.sites["db-a"]
            stall_key, memory_key = (f"{site}/{key.split('/', 1)[1]}" for key in (STALL, MEMORY))
            await idle.locator("[data-testid=training-banner]").wait_for(state="visible", timeout=WAIT_MS)

            # ------------------------------------------- one trainee answers the stall at once
            stall_row = answering.locator(f'tr[data-key="{stall_key}"]')
            await stall_row.wait_for(timeout=WAIT_MS)
            await stall_row.locator("button[data-action=acknowledge]").click()
            await answering.wait_for_selector(
                f'tr[data-key="{stall_key}"][data-state="active_acknowledged"]', timeout=WAIT_MS
            )
            await stall_row.locator("button[data-action=respond]").click()
            await answering.wait_for_selector("dialog #response-action", timeout=WAIT_MS)
            await answering.select_option("#response-action", "rotor_study")
            await answering.click("dialog button[type=submit]")
            await answering.wait_for_selector("dialog", state="detached", timeout=WAIT_MS)

            # ------------- nobody answers the memory error: it escalates on schedule, to the instructor
            await idle.locator(f'tr[data-key="{memory_key}"]').wait_for(
                timeout=WAIT_MS
            )  # trainee2 sees it, does nothing
            notice = desk.locator(f'[data-testid=escalation-item][data-key="{memory_key}"]')
            await notice.wait_for(timeout=WAIT_MS + TIER_1_S * 1000)
            shown_ms = time.time() * 1000
            (escalation,) = service.store.journal.escalations(key=memory_key)
            memory = service.fleet.board.alarms[memory_key]
            assert memory.unacknowledged_since == escalation.unacknowledged_since
            assert escalation.due_at == escalation.unacknowledged_since + timedelta(seconds=TIER_1_S)
            late_s = (escalation.at - escalation.due_at).total_seconds()
            on_page_ms = shown_ms - escalation.at.timestamp() * 1000
            print(
                f"\nescalation: made {late_s * 1000:.0f} ms after its deadline; on the instructor's page "
                f"{on_page_ms:.0f} ms later (as seen by the test's polling)"
            )
            assert 0 <= late_s < 2.0
            assert (escalation.level, escalation.tier, escalation.notified) == (1, "charge nurse", ("instructor",))
            text = await desk.text_content("[data-testid=escalation-notice]") or ""
            assert "Escalated to you" in text
            assert "charge nurse" in text
            assert service.store.journal.escalations(key=stall_key) == []  # answered before its tier
            assert await answering.locator("[data-testid=escalation-item]").count() == 0  # not theirs
            await until(lambda: pager.bodies(), what="the pager receives the escalation")
            assert [b["escalation_id"] for b in pager.bodies()] == [escalation.escalation_id]
            await desk.screenshot(path=screenshot_path("debrief-escalated"), full_page=True)

            # ------------------------------------------------------- the instructor ends it
            await until(
                lambda: len(service.store.journal.training_events(session_id)) >= 4, what="the symptom is journaled"
            )
            await desk.click("#nav-training")
            await desk.click("[data-testid=training-abort]")
            await desk.fill("[data-testid=training-abort-reason]", "debrief time")
            await desk.click("[data-testid=training-abort-confirm]")
            await desk.wait_for_selector("[data-testid=training-status][data-status=aborted]", timeout=WAIT_MS)
            await desk.click("[data-testid=training-report-link]")
            await desk.wait_for_selector("[data-testid=report-status][data-status=aborted]", timeout=WAIT_MS)

            # ------------------------------------------------------------------- the replay
            await desk.click("[data-testid=replay-link]")
            await desk.wait_for_selector("[data-testid=replay-pump][data-device=db-a]", timeout=WAIT_MS)
            assert await desk.get_attribute("[data-testid=replay-clock]", "data-offset-ms") == "0"
            assert await desk.get_attribute("[data-testid=replay-pump][data-device=db-a]", "data-motor") == "running"
            assert await desk.locator("[data-testid=replay-alarm]").count() == 0  # nothing raised at the start
            columns = await desk.locator("[data-testid=replay-column]").evaluate_all(
                "els => els.map(e => e.dataset.trainee)"
            )
            assert columns == ["trainee", "trainee2"]  # side by side
            # jump to the first alarm: the stall, unacknowledged yet
            await desk.click("[data-testid=replay-next-alarm]")
            first = desk.locator(f'[data-testid=replay-alarm][data-key="{stall_key}"]')
            await first.wait_for(timeout=WAIT_MS)
            assert await first.get_attribute("data-state") == "active_unacknowledged"
            await desk.screenshot(path=screenshot_path("debrief-replay-stall"), full_page=True)
            # play to the end at x60
            await desk.select_option("[data-testid=replay-speed]", "60")
            await desk.click("[data-testid=replay-play]")
            await desk.wait_for_selector("[data-testid=replay-play]:not([data-playing=yes])", timeout=WAIT_MS * 2)
            offset = int(await desk.get_attribute("[data-testid=replay-clock]", "data-offset-ms") or "0")
            assert offset == int(await desk.get_attribute("[data-testid=replay-scrubber]", "max") or "-1")
            assert await first.get_attribute("data-state") == "active_acknowledged"
            assert await desk.get_attribute("[data-testid=replay-pump][data-device=db-a]", "data-motor") == "stalled"
            assert await desk.get_attribute("[data-testid=replay-pump][data-device=db-b]", "data-infusing") == "false"
            memory_row = desk.locator(f'[data-testid=replay-alarm][data-key="{memory_key}"]')
            assert await memory_row.get_attribute("data-state") == "active_unacknowledged"
            assert await memory_row.get_attribute("data-escalation-level") == "1"
            acts = await desk.locator("[data-testid=replay-act][data-trainee=trainee]").evaluate_all(
                "els => els.map(e => e.dataset.action)"
            )
            assert acts == ["acknowledge", "rotor_study"]
            assert await desk.locator("[data-testid=replay-act][data-trainee=trainee2]").count() == 0
            verdict = desk.locator(f'[data-testid=replay-row][data-trainee=trainee][data-key="{stall_key}"]')
            assert await verdict.get_attribute("data-verdict") == "correct"
            missed = desk.locator(f'[data-testid=replay-row][data-trainee=trainee2][data-key="{memory_key}"]')
            assert await missed.get_attribute("data-verdict") == "missed"
            steps = await desk.locator("[data-testid=replay-step]").evaluate_all(
                "els => els.map(e => [e.dataset.step, e.dataset.device, e.dataset.done])"
            )
            assert steps[:3] == [
                ["inject_fault", "db-a", "true"],
                ["inject_fault", "db-b", "true"],
                ["patient_symptom", "db-b", "true"],
            ]
            await desk.screenshot(path=screenshot_path("debrief-replay-end"), full_page=True)
            # the scrubber takes the playhead back
            await desk.locator("[data-testid=replay-scrubber]").fill("0")
            assert await desk.locator("[data-testid=replay-alarm]").count() == 0
            assert await desk.locator("[data-testid=replay-act]").count() == 0

            # ------------------------------------------------------------------- the records
            await answering.click("#nav-record")
            own = answering.locator(f'[data-testid=record-session][data-session="{session_id}"]')
            await own.wait_for(timeout=WAIT_MS)
            assert await answering.locator("[data-testid=record-code][data-code=motor_stall]").count() == 1
            await answering.screenshot(path=screenshot_path("debrief-record"), full_page=True)
            await idle.goto(f"{url}/console/#/record/trainee")
            refused = idle.locator("[data-testid=record-error]")
            await refused.wait_for(timeout=WAIT_MS)
            assert await refused.get_attribute("data-reason") == "not_your_record"
            await idle.screenshot(path=screenshot_path("debrief-record-refused"), full_page=True)
            await idle.goto(f"{url}/console/#/record")
            await idle.locator(f'[data-testid=record-session][data-session="{session_id}"]').wait_for(timeout=WAIT_MS)
            # the instructor opens either
            await desk.goto(f"{url}/console/#/record/trainee2")
            await desk.locator(f'[data-testid=record-session][data-session="{session_id}"]').wait_for(timeout=WAIT_MS)
    assert errors == []
