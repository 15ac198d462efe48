"""The debrief end to end through the HTTP API, on a real Mosquitto with the simulator and the
scenario runner in the twin's process, and a real HTTP receiver standing in for the paging system:
two trainees, one answers the stall, nobody answers the memory error; the memory error escalates
on schedule (journal, stream, webhook); the session's replay holds the pumps' frames, the steps,
every alarm with its lifecycle and escalations, and each trainee's acts with verdicts; each record
shows the session and a trainee cannot open the other's. Every wait is on a condition."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.accounts import client_as
from tests.harness.http_receiver import http_receiver
from tests.harness.live_sim import live_sim
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.roles import Role
from twin.scenarios.scenario_file import parse_scenario
from twin.settings import EscalationSettings, EscalationTierSettings
from twin.store.users import hash_password

pytestmark = pytest.mark.integration

SITE = "debrief-ward"
TIER_1_S = 6.0
"""The drill's first escalation tier (wall seconds): long enough for the test to acknowledge the
stall first on a loaded machine, short enough to wait for."""
TIER_2_S = 60.0

DRILL = f"""\
name: debrief-drill
title: Debrief drill
description: A stall and a memory error, a minute apart.
learning_objectives: [Acknowledge every critical alarm]
speed: 600
duration: 30d
fleet:
  kind: inline
  pumps:
    - {{device_id: db-a, site: {SITE}, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {{mode: continuous, rate_ml_per_day: 0.3}}, reservoir_ml: 18}}
    - {{device_id: db-b, site: {SITE}, drug: clonidine, concentration_mg_per_ml: 0.5,
       program: {{mode: continuous, rate_ml_per_day: 0.4}}, reservoir_ml: 15}}
timeline:
  - {{at: 1m, id: stall, step: inject_fault, devices: {{ids: [db-a]}}, fault: {{fault: motor_stall}}}}
  - {{at: 2m, id: memory, step: inject_fault, devices: {{ids: [db-b]}}, fault: {{fault: memory_error}}}}
  - {{at: 3m, step: patient_symptom, devices: {{ids: [db-b]}}, symptom: Headache and agitation, severity: moderate}}
expect:
  - {{kind: alarm, code: motor_stall, devices: {{ids: [db-a]}}, after: stall, within: 10m,
     responses: [rotor_study, interrogate]}}
  - {{kind: alarm, code: memory_error, devices: {{ids: [db-b]}}, after: memory, within: 10m,
     responses: [interrogate, replace_pump]}}
"""


def ladder(url: str) -> EscalationSettings:
    return EscalationSettings(
        high=[
            EscalationTierSettings(name="charge nurse", after_s=TIER_1_S, notify=["role:instructor"]),
            EscalationTierSettings(name="physician on call", after_s=TIER_2_S, notify=["role:admin"]),
        ],
        webhook_url=url,
        webhook_retry_initial_s=0.1,
    )


async def test_an_unanswered_alarm_escalates_and_the_session_replays_and_records_from_the_journal(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with (
        http_receiver() as pager,
        live_sim(
            mosquitto, tmp_path, parse_scenario(DRILL), client_id="debrief-twin", escalation=ladder(pager.url)
        ) as live,
    ):
        twin, service = live.twin, live.twin.service
        assert twin.users is not None
        twin.users.add("trainee2", Role.TRAINEE, hash_password("trainee2-password"), actor="test", at=service.clock())
        async with (
            client_as(twin.url, Role.INSTRUCTOR) as instructor,
            client_as(twin.url, Role.TRAINEE) as trainee,
            httpx.AsyncClient(base_url=twin.url) as trainee2,
        ):
            login = await trainee2.post("/api/login", json={"username": "trainee2", "password": "trainee2-password"})
            assert login.status_code == 200
            started = await instructor.post(
                "/api/training/sessions", json={"scenario": "debrief-drill", "trainees": ["trainee", "trainee2"]}
            )
            assert started.status_code == 201, started.text
            sid = started.json()["session_id"]
            (site,) = started.json()["sites"]  # the session's own pumps, on a site of its own

            # ---- trainee answers the stall at once; nobody answers the memory error
            await until(lambda: f"{site}/db-a/motor_stall" in service.fleet.board.alarms, what="the stall alarm")
            assert (await trainee.post(f"/api/alarms/{site}/db-a/motor_stall/acknowledge", json={})).status_code == 200
            answer = await trainee.post(
                f"/api/alarms/{site}/db-a/motor_stall/responses", json={"action": "rotor_study"}
            )
            assert answer.status_code == 201
            await until(lambda: f"{site}/db-b/memory_error" in service.fleet.board.alarms, what="the memory error")
            memory = service.fleet.board.alarms[f"{site}/db-b/memory_error"]
            assert memory.unacknowledged_since is not None

            # ---- it escalates on schedule: journal, the instructor's "escalated to you", the pager
            await until(
                lambda: service.store.journal.escalations(key=f"{site}/db-b/memory_error"), what="the escalation"
            )
            (escalated,) = service.store.journal.escalations(key=f"{site}/db-b/memory_error")
            assert escalated.due_at == memory.unacknowledged_since + timedelta(seconds=TIER_1_S)
            late_s = (escalated.at - escalated.due_at).total_seconds()
            print(f"\nescalation made {late_s * 1000:.0f} ms after its deadline (the clock ticks every second)")
            assert 0 <= late_s < 2.0
            assert (escalated.level, escalated.notified) == (1, ("instructor",))
            assert service.store.journal.escalations(key=f"{site}/db-a/motor_stall") == []  # answered in time
            mine = (await instructor.get("/api/escalations/mine")).json()
            assert [(e["key"], e["tier"]) for e in mine] == [(f"{site}/db-b/memory_error", "charge nurse")]
            assert (await trainee.get("/api/escalations/mine")).json() == []
            await until(lambda: pager.bodies(), what="the pager receives the escalation")
            (paged,) = pager.bodies()
            assert (paged["escalation_id"], paged["tier"]) == (escalated.escalation_id, "charge nurse")
            await until(
                lambda: len(service.store.journal.training_events(sid)) >= 4, what="the symptom step is journaled"
            )

            # the worst order for the session's end: the kill switch's restore clears the stall and
            # the twin hears it before the desk gets to end the session
            stall = f"{site}/db-a/motor_stall"
            desk = twin.desk
            assert desk is not None
            end_session = desk._end

            async def end_after_the_restore(*args: Any, **kwargs: Any) -> None:
                await until(lambda: service.fleet.board.alarms[stall].state.value == "normal", what="the restore")
                await end_session(*args, **kwargs)

            desk._end = end_after_the_restore  # type: ignore[method-assign]
            aborted = await instructor.post(f"/api/training/sessions/{sid}/abort", json={"reason": "debrief"})
            assert aborted.status_code == 200, aborted.text
            desk._end = end_session  # type: ignore[method-assign]
            team = aborted.json()["report"]["team"]
            # the stall, the memory error, and the twin's patient-report alert for the symptom at 3m
            assert team == {"alarms": 3, "acknowledged": 1, "acknowledged_before_escalation": 1, "escalated": 1}

            # ---- the replay, from the journal
            replay = (await instructor.get(f"/api/training/sessions/{sid}/replay")).json()
            assert replay["kind"] == "session"
            assert replay["session"]["status"] == "aborted"
            pumps = {p["device_id"]: p for p in replay["pumps"]}
            assert set(pumps) == {"db-a", "db-b"}
            stalled = pumps["db-a"]["frames"]
            assert stalled[0]["motor"] == "running"  # the baseline at the start
            assert any(f["motor"] == "stalled" and f["infusing"] is False for f in stalled)
            assert [datetime.fromisoformat(f["at"]) for f in stalled] == sorted(
                datetime.fromisoformat(f["at"]) for f in stalled
            )
            steps = [(s["step"], s["device_id"], s["step_id"]) for s in replay["steps"]]
            assert steps[:3] == [
                ("inject_fault", "db-a", "stall"),
                ("inject_fault", "db-b", "memory"),
                ("patient_symptom", "db-b", "step-3"),
            ]
            assert replay["steps"][2]["symptom"] == "Headache and agitation"
            assert ("clear_fault", "db-a", "abort") in steps  # the abort's restores
            alarms = {a["key"]: a for a in replay["alarms"]}
            assert [t["event"] for t in alarms[f"{site}/db-a/motor_stall"]["transitions"]][:2] == [
                "raise",
                "acknowledge",
            ]
            assert alarms[f"{site}/db-a/motor_stall"]["expected"] == ["rotor_study", "interrogate"]
            # the session ended when the abort was taken: the restore's clear lies after it, and
            # the pump is left as the trainees left it (stalled), however soon the twin heard it
            assert [t["event"] for t in alarms[stall]["transitions"]] == ["raise", "acknowledge"]
            assert stalled[-1]["motor"] == "stalled"
            ended = datetime.fromisoformat(replay["end"])
            assert [t.event.value for t in service.store.journal.transitions(key=stall) if t.at > ended] == ["clear"]
            assert [e["level"] for e in alarms[f"{site}/db-b/memory_error"]["escalations"]] == [1]
            people = {t["trainee"]: t for t in replay["trainees"]}
            assert [a["action"] for a in people["trainee"]["acts"]] == ["acknowledge", "rotor_study"]
            assert people["trainee2"]["acts"] == []
            verdicts = {(r["trainee"], r["code"]): r["verdict"] for t in replay["trainees"] for r in t["rows"]}
            assert verdicts[("trainee", "motor_stall")] == "correct"
            assert verdicts[("trainee2", "memory_error")] == "missed"
            assert [e["event"] for e in replay["session_events"]] == ["started", "aborted"]
            assert any(c["type"] == "inject_fault" and c["device_id"] == "db-a" for c in replay["commands"])

            # a trainee replays it too, with their own acts only
            theirs = (await trainee2.get(f"/api/training/sessions/{sid}/replay")).json()
            assert [t["trainee"] for t in theirs["trainees"]] == ["trainee2"]
            assert len(theirs["alarms"]) == len(replay["alarms"])

            # any window of the journal
            window = await instructor.get(
                "/api/training/replay",
                params={"since": replay["start"], "until": replay["end"], "site": site},
            )
            assert window.status_code == 200, window.text
            body = window.json()
            assert {a["key"] for a in body["alarms"]} >= {f"{site}/db-a/motor_stall", f"{site}/db-b/memory_error"}
            assert [t["trainee"] for t in body["trainees"]] == ["trainee"]  # who acted in the window
            refused = await instructor.get(
                "/api/training/replay", params={"since": replay["end"], "until": replay["start"]}
            )
            assert (refused.status_code, refused.json()["reason"]) == (422, "invalid_window")

            # ---- the records
            for client, name in ((trainee, "trainee"), (trainee2, "trainee2")):
                record = (await client.get(f"/api/training/trainees/{name}/record")).json()
                assert [s["session_id"] for s in record["sessions"]] == [sid], name
            assert (await trainee2.get("/api/training/trainees/trainee/record")).status_code == 403
