"""Every InfluxQL query in docs/influx-schema.md runs on a real InfluxDB and returns data.

InfluxQL answers a misspelled field or tag with an empty result, not an error, so each query must
return at least one row from points written through the writer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness.servers import Influxd
from twin.contract import examples
from twin.contract.alarms import AlarmCode, Priority
from twin.contract.messages import Drug
from twin.influx.writer import InfluxWriter
from twin.settings import InfluxSettings
from twin.timeseries.points import (
    AlarmTransitionPoint,
    CommandOutcome,
    CommandOutcomePoint,
    DeviceTags,
    InfluxPoint,
    TrainingResponsePoint,
    TrainingVerdict,
    TwinHealthPoint,
    alarm_event_point,
    alarm_transition_point,
    command_point,
    sim_truth_point,
    state_point,
    telemetry_point,
    training_response_point,
    twin_health_point,
)

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "influx-schema.md"
QUERIES = re.findall(r"```sql\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)
SITE = examples.EXAMPLE_SITE


def _recent_history(now: datetime) -> list[InfluxPoint]:
    points: list[InfluxPoint] = []
    for number, device in enumerate(("pump-0001", "pump-0002")):
        tags = DeviceTags(SITE, device, "SynchroMed II 8637-20", simulated=True, drug=Drug.BACLOFEN)
        for step in range(24):
            at = now - timedelta(hours=2) + step * timedelta(minutes=5)
            telemetry = examples.telemetry().model_copy(
                update={"device_id": device, "seq": step, "device_time": at, "delivered_ml_total": 300.0 + step * 0.01}
            )
            points.append(telemetry_point(tags, telemetry))
            truth = sim_truth_point(tags, telemetry)  # the example sample carries the simulator's truth
            assert truth is not None
            points.append(truth)
        state = examples.state().model_copy(update={"device_id": device, "seq": 100, "device_time": now})
        points.append(state_point(tags, state))
        raised_at = now - timedelta(minutes=30)
        alarm = examples.alarm().model_copy(
            update={"device_id": device, "seq": 101, "device_time": raised_at, "raised_at": raised_at}
        )
        points.append(alarm_event_point(tags, alarm))
        points.append(
            alarm_transition_point(
                tags,
                AlarmTransitionPoint(
                    alarm_id=alarm.alarm_id,
                    device_id=device,
                    site=SITE,
                    code=AlarmCode.RESERVOIR_LOW,
                    priority=Priority.MEDIUM,
                    from_state="active_unacknowledged",
                    to_state="active_acknowledged",
                    actor="nurse.jones",
                    comment="refill booked",
                    at=raised_at + timedelta(seconds=40 + number),
                    time_to_ack_s=40.0 + number,
                ),
            )
        )
        for status, latency in ((CommandOutcome.APPLIED, 1.5), (CommandOutcome.TIMED_OUT, None)):
            outcome = CommandOutcomePoint(
                command_id=f"cmd-{device}-{status.value}",
                device_id=device,
                site=SITE,
                action="refill",
                status=status,
                actor="nurse.jones",
                at=now - timedelta(minutes=10),
                latency_s=latency,
            )
            points.append(command_point(tags, outcome))
    for minute in range(10):
        health = TwinHealthPoint(twin="twin-a", at=now - timedelta(minutes=10 - minute), messages_in=100 * minute)
        points.append(twin_health_point(health))
    for trainee, verdict in (("nurse.jones", TrainingVerdict.CORRECT), ("dr.ng", TrainingVerdict.MISSED)):
        response = TrainingResponsePoint(
            session="ts-2026-03-14-am",
            trainee=trainee,
            site="sim-lab",
            scenario="low reservoir",
            alarm_id="a1-reservoir_low",
            code=AlarmCode.RESERVOIR_LOW,
            priority=Priority.MEDIUM,
            response="refill" if verdict is TrainingVerdict.CORRECT else "none",
            expected_response="refill",
            verdict=verdict,
            score=1.0 if verdict is TrainingVerdict.CORRECT else 0.0,
            at=now - timedelta(minutes=5),
            time_to_ack_s=30.0 if verdict is TrainingVerdict.CORRECT else None,
            time_to_respond_s=75.0 if verdict is TrainingVerdict.CORRECT else None,
        )
        points.append(training_response_point(response))
    return points


def test_the_document_has_queries() -> None:
    assert len(QUERIES) >= 10


async def test_every_documented_query_returns_data(influxd: Influxd, tmp_path: Path) -> None:
    settings = InfluxSettings(url=influxd.url, database="pumptwin", spool_dir=tmp_path, flush_interval_s=0.05)
    async with InfluxWriter(settings) as writer:
        writer.submit(_recent_history(datetime.now(UTC)))
        assert await writer.drain(60)
    for query in QUERIES:
        statement = influxd.query(query, db="pumptwin")["results"][0]  # type: ignore[index]
        assert "error" not in statement, f"{query}\n-> {statement}"
        rows = [row for series in statement.get("series", []) for row in series["values"]]
        assert rows, f"no data for: {query}"
