"""A training session end to end on a real Mosquitto and a real InfluxDB, through the HTTP API: the
instructor starts it, faults fire on simulated pumps, two trainees answer (one right, one wrong,
one alarm nobody answers), the instructor aborts, and the report, its CSV and the ``training``
points in InfluxDB all say the same thing. Every wait is on a condition."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import PASSWORDS, client_as
from tests.harness.live_sim import live_sim
from tests.harness.servers import Influxd, Mosquitto
from tests.harness.waiting import until
from twin.alarms.lifecycle import TransitionEvent
from twin.roles import Role
from twin.scenarios.scenario_file import parse_scenario
from twin.store.users import hash_password
from twin.training.scoring import ANY_MATCH_CREDIT, COVERAGE_CREDIT, ORDER_CREDIT

pytestmark = pytest.mark.integration

EPOCH = datetime(2026, 6, 1, tzinfo=UTC)
SITE = "train-live"
DATABASE = "training_live"

SESSION_DRILL = f"""\
name: stall-drill
title: Stall drill
description: A motor stall and a memory error, minutes apart.
learning_objectives: [Acknowledge a stall at once, Ask for a rotor study]
speed: 600
duration: 30d
fleet:
  kind: inline
  pumps:
    - {{device_id: tr-a, site: {SITE}, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {{mode: continuous, rate_ml_per_day: 0.3}}, reservoir_ml: 18}}
    - {{device_id: tr-b, site: {SITE}, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {{mode: continuous, rate_ml_per_day: 0.4}}, reservoir_ml: 15}}
timeline:
  - {{at: 2m, id: stall, step: inject_fault, devices: {{ids: [tr-a]}}, fault: {{fault: motor_stall}}}}
  - {{at: 4m, id: memory, step: inject_fault, devices: {{ids: [tr-b]}}, fault: {{fault: memory_error}}}}
expect:
  - {{kind: alarm, code: motor_stall, devices: {{ids: [tr-a]}}, after: stall, within: 10m,
     responses: [rotor_study, interrogate]}}
  - {{kind: alarm, code: memory_error, devices: {{ids: [tr-b]}}, after: memory, within: 10m,
     responses: [interrogate, replace_pump]}}
"""


async def test_a_session_scored_from_what_trainees_did_and_written_to_influxdb(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    async with live_sim(
        mosquitto,
        tmp_path,
        parse_scenario(SESSION_DRILL),
        client_id="test-training-twin",
        influxd=influxd,
        database=DATABASE,
    ) as live:
        twin, service = live.twin, live.twin.service
        assert twin.users is not None
        twin.users.add("trainee2", Role.TRAINEE, hash_password("trainee2-password"), actor="test", at=EPOCH)
        async with (
            client_as(twin.url, Role.INSTRUCTOR) as instructor,
            client_as(twin.url, Role.TRAINEE) as trainee,
            httpx.AsyncClient(base_url=twin.url) as trainee2,
        ):
            login = await trainee2.post("/api/login", json={"username": "trainee2", "password": "trainee2-password"})
            assert login.status_code == 200
            assert PASSWORDS[Role.TRAINEE] != "trainee2-password"

            # ---- a trainee cannot start a session; the instructor can
            body = {"scenario": "stall-drill", "trainees": ["trainee", "trainee2"], "speed": 1200}
            assert (await trainee.post("/api/training/sessions", json=body)).status_code == 403
            started = await instructor.post("/api/training/sessions", json=body)
            assert started.status_code == 201, started.text
            session = started.json()
            sid = session["session_id"]
            (site,) = session["sites"]  # the session's own pumps, on a site of its own
            assert site == f"tr-{session['run_id']}.{SITE}"
            driver = live.driver(session["run_id"])
            assert (driver.speed, session["speed"]) == (1200, 1200)
            assert (session["status"], session["instructor"], session["devices"]) == (
                "running",
                "instructor",
                ["tr-a", "tr-b"],
            )
            current = (await trainee.get("/api/training/current")).json()["session"]
            assert current["session_id"] == sid
            assert (await instructor.get("/api/training/current")).json() == {"session": None}

            # ---- the stall: trainee acknowledges and asks for a rotor study; trainee2 answers wrongly
            await until(
                lambda: f"{site}/tr-a/motor_stall" in service.fleet.board.alarms, what="the stall alarm on tr-a"
            )
            await until(
                lambda: f"{site}/tr-b/memory_error" in service.fleet.board.alarms, what="the memory error on tr-b"
            )
            sent_at = time.monotonic()
            acked = await trainee.post(f"/api/alarms/{site}/tr-a/motor_stall/acknowledge", json={})
            ack_wall_s = time.monotonic() - sent_at
            assert acked.status_code == 200, acked.text
            study = await trainee.post(f"/api/alarms/{site}/tr-a/motor_stall/responses", json={"action": "rotor_study"})
            assert study.status_code == 201, study.text
            wrong = await trainee2.post(
                f"/api/alarms/{site}/tr-a/motor_stall/responses", json={"action": "escalate_physician"}
            )
            assert wrong.status_code == 201, wrong.text

            # ---- while it runs, only the instructor sees the answers
            seen_by_trainee = (await trainee.get(f"/api/training/sessions/{sid}")).json()
            assert seen_by_trainee["expected"] == {}
            assert {tuple(r["expected"]) for r in seen_by_trainee["report"]["alarms"]} == {()}
            early_csv = (await trainee.get(f"/api/training/sessions/{sid}/report.csv")).text
            assert {r["expected"] for r in csv.DictReader(io.StringIO(early_csv))} == {""}
            live = (await instructor.get(f"/api/training/sessions/{sid}")).json()
            assert live["expected"][f"{site}/tr-a/motor_stall"] == ["rotor_study", "interrogate"]
            rows = {(r["trainee"], r["code"]): r for r in live["report"]["alarms"]}
            assert rows[("trainee", "motor_stall")]["verdict"] == "correct"
            assert rows[("trainee2", "motor_stall")]["verdict"] == "pending"  # could still get it right
            assert rows[("trainee", "memory_error")]["verdict"] == "pending"

            # ---- the instructor ends it: what is still unmatched becomes incorrect or missed
            aborted = await instructor.post(f"/api/training/sessions/{sid}/abort", json={"reason": "debrief"})
            assert aborted.status_code == 200, aborted.text
            final = aborted.json()
            assert (final["status"], final["aborted_reason"]) == ("aborted", "debrief")
            await until(lambda: driver.finished.is_set(), what="the session's simulation stops with it")
            assert (await trainee.get("/api/training/current")).json() == {"session": None}
            again = await instructor.post(f"/api/training/sessions/{sid}/abort", json={})
            assert (again.status_code, again.json()["reason"]) == (409, "session_finished")

            rows = {(r["trainee"], r["code"]): r for r in final["report"]["alarms"]}
            stall = rows[("trainee", "motor_stall")]
            (ack,) = [
                t
                for t in service.store.journal.transitions(key=f"{site}/tr-a/motor_stall")
                if t.event is TransitionEvent.ACKNOWLEDGE
            ]
            raised = datetime.fromisoformat(stall["raised_at"])
            assert stall["time_to_ack_s"] == pytest.approx((ack.at - raised).total_seconds(), abs=1e-3)
            assert ack.actor == "trainee"
            assert 0 < stall["time_to_ack_s"] < 60  # acknowledged as soon as the test saw the alarm
            assert ack_wall_s < stall["time_to_ack_s"] + 1
            # acknowledged at once; one of the two expected responses (nothing to order)
            full = 0.5 + 0.5 * (ANY_MATCH_CREDIT + COVERAGE_CREDIT / 2 + ORDER_CREDIT)
            assert (stall["verdict"], stall["matched"]) == ("correct", ["rotor_study"])
            assert stall["score"] == pytest.approx(full)
            assert rows[("trainee2", "motor_stall")]["verdict"] == "incorrect"
            assert rows[("trainee2", "motor_stall")]["acknowledged_by"] == "trainee"
            for who in ("trainee", "trainee2"):
                assert rows[(who, "memory_error")]["verdict"] == "missed"
            summary = {t["trainee"]: t for t in final["report"]["trainees"]}
            assert summary["trainee"]["correct"] >= 1
            assert summary["trainee"]["missed"] >= 1
            assert summary["trainee2"]["correct"] == 0
            kinds = [(a["trainee"], a["action"]) for a in final["report"]["actions"]]
            assert kinds == [
                ("trainee", "acknowledge"),
                ("trainee", "rotor_study"),
                ("trainee2", "escalate_physician"),
            ]

            # ---- downloads: the same rows as CSV and JSON
            as_csv = await trainee.get(f"/api/training/sessions/{sid}/report.csv")
            assert as_csv.status_code == 200
            assert as_csv.headers["content-disposition"] == f'attachment; filename="training-{sid}.csv"'
            table = list(csv.DictReader(io.StringIO(as_csv.text)))
            assert {r["expected"] for r in table if r["code"] == "motor_stall"} == {"rotor_study;interrogate"}
            own = [r for r in final["report"]["alarms"] if r["trainee"] == "trainee"]  # a trainee reads their own rows
            assert len(table) == len(own) < len(final["report"]["alarms"])
            assert {(r["trainee"], r["code"], r["verdict"]) for r in table} == {
                (r["trainee"], r["code"], r["verdict"]) for r in own
            }
            as_json = await trainee.get(f"/api/training/sessions/{sid}/report.json")
            assert as_json.json()["report"]["alarms"] == own  # ended: the answers are shown
            assert as_json.json()["expected"] == final["expected"] != {}
            instructor_csv = (await instructor.get(f"/api/training/sessions/{sid}/report.csv")).text
            assert len(list(csv.DictReader(io.StringIO(instructor_csv)))) == len(final["report"]["alarms"])

            # ---- InfluxDB holds one training point per alarm and trainee, with the same verdicts
            def stored() -> list[list[object]]:
                result = influxd.query(
                    f'SELECT "trainee", "code", "verdict", "time_to_ack_s" FROM "training" WHERE "session" = \'{sid}\'',
                    db=DATABASE,
                )
                series = result["results"][0].get("series", [])  # type: ignore[index, union-attr]
                return [row[1:] for s in series for row in s["values"]]

            await until(
                lambda: len(stored()) == len(final["report"]["alarms"]), what="the training points reach InfluxDB"
            )
            verdicts = {(trainee_, code): (verdict, ack_s) for trainee_, code, verdict, ack_s in stored()}
            assert verdicts[("trainee", "motor_stall")] == (
                "correct",
                pytest.approx(stall["time_to_ack_s"], abs=1e-3),
            )
            assert verdicts[("trainee2", "memory_error")] == ("missed", None)


async def test_two_sessions_of_a_scenario_in_a_row_start_alike_and_score_the_same_for_the_same_actions(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_sim(mosquitto, tmp_path, parse_scenario(SESSION_DRILL), client_id="test-training-twice") as live:
        service = live.twin.service
        reports = []
        baselines = []
        async with (
            client_as(live.twin.url, Role.INSTRUCTOR) as instructor,
            client_as(live.twin.url, Role.TRAINEE) as trainee,
        ):
            for _ in range(2):
                body = {"scenario": "stall-drill", "trainees": ["trainee"], "speed": 1200}
                started = await instructor.post("/api/training/sessions", json=body)
                assert started.status_code == 201, started.text
                session = started.json()
                sid, (site,) = session["session_id"], session["sites"]
                stall, memory = f"{site}/tr-a/motor_stall", f"{site}/tr-b/memory_error"
                await until(lambda: stall in service.fleet.board.alarms, what="the stall")  # noqa: B023
                assert (await trainee.post(f"/api/alarms/{stall}/acknowledge", json={})).status_code == 200
                answer = await trainee.post(f"/api/alarms/{stall}/responses", json={"action": "rotor_study"})
                assert answer.status_code == 201
                await until(lambda: memory in service.fleet.board.alarms, what="the memory error")  # noqa: B023
                ended = await instructor.post(f"/api/training/sessions/{sid}/abort", json={"reason": "done"})
                assert ended.status_code == 200, ended.text
                reports.append(ended.json())
                frames = await service.store.frames(sid)
                first_frames = {}
                for f in frames:  # the first frame of each pump: its state when the session began
                    first_frames.setdefault(f.device_id, f.state)
                baselines.append(
                    {d: (f["device_time"], f["reservoir_ml"], f["motor"]) for d, f in sorted(first_frames.items())}
                )
    first, second = reports
    assert first["sites"] != second["sites"]  # each its own pumps
    assert baselines[0] == baselines[1] != []  # each from the scenario's baseline, not from how the first left them

    def scored(report: dict) -> list[tuple[object, ...]]:
        return sorted(
            (r["device_id"], r["code"], r["verdict"], tuple(r["matched"]), r["score"])
            for r in report["report"]["alarms"]
        )

    assert scored(first) == scored(second)
    assert [(r["code"], r["verdict"]) for r in sorted(first["report"]["alarms"], key=lambda r: r["code"])] == [
        ("memory_error", "missed"),
        ("motor_stall", "correct"),
    ]

    def summary(report: dict) -> list[tuple[object, ...]]:  # without the median time to acknowledge (wall seconds)
        return [
            (t["trainee"], t["correct"], t["missed"], t["incorrect"], t["score"]) for t in report["report"]["trainees"]
        ]

    assert summary(first) == summary(second)
    assert (first["drill"]["misfired"], second["drill"]["misfired"]) == (False, False)
