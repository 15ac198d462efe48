"""Drill (a): a backlog of 200 QoS 1 messages with QoS 0 telemetry overtaking them.

The twin is paused (SIGSTOP: connected, reading nothing) while the fleet goes on. The broker has
at most ``max_inflight_messages`` (20) QoS 1 messages on their way to the twin and queues the
rest, but writes every QoS 0 telemetry sample straight to the connection. When the twin resumes
it reads samples whose sequence numbers are far above the alarms and states still queued: once
it treated every lower number as a duplicate and dropped those alarms (6 of 6 runs with a backlog
of 25). The drill checks that the overtaking happened (the twin counts late messages) and that
every alarm and state still arrived, once.
"""

from __future__ import annotations

import time

import pytest

from tests.drills.conftest import MakeRig
from tests.drills.rig import SITE

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

RATE = 1000.0
BACKLOG = 200
VIEWER_PASSWORD = "drill viewer password"


@pytest.mark.timeout(150)
def test_backlog_with_telemetry_overtaking_loses_no_alarm(rig: MakeRig) -> None:
    r = rig(devices=40)
    r.twin.add_viewer(VIEWER_PASSWORD)
    r.twin.start()
    r.until(r.twin_ok, "the twin to be healthy")
    r.fleet.births()
    r.fleet.start(RATE)
    time.sleep(3)
    r.fleet.stop()
    r.until(r.twin_caught_up, "the twin to catch up")
    r.twin.pause()
    try:
        queued = 0
        while queued < BACKLOG:  # rounds of the whole fleet: telemetry first, then alarms and states
            before = len(r.ledger.published)
            r.fleet.rounds(1)
            queued += len(r.ledger.published) - before
        r.fleet.wait_taken()
        time.sleep(0.5)  # the broker has written the samples to the twin's socket
    finally:
        r.twin.resume()
    r.fleet.start(RATE)
    time.sleep(4)
    r.fleet.stop()
    r.settle()
    counters = r.twin.counters([d.device_id for d in r.fleet.devices], SITE, VIEWER_PASSWORD)
    late = sum(c["late"] for c in counters.values())
    duplicates = sum(c["duplicates"] for c in counters.values())
    result = r.reckon(rate_msg_s=round(RATE), backlog_qos1=queued, late_applied=late, duplicates_dropped=duplicates)
    assert late >= BACKLOG // 2, f"only {late} messages arrived late: the drill did not make QoS 0 overtake"
    result.assert_nothing_lost()
