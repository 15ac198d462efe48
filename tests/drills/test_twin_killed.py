"""Drill (d): the twin is SIGKILLed mid-run while the fleet keeps publishing, and started again.
The broker redelivers what the dead twin had not acknowledged and queues what came while it was
down; the journal's device-event marks and the sequence rules make the repeats harmless."""

from __future__ import annotations

import time

import pytest

from tests.drills.conftest import MakeRig

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

RATE = 1000.0


@pytest.mark.timeout(150)
def test_twin_killed_mid_run_loses_and_duplicates_nothing(rig: MakeRig) -> None:
    r = rig(devices=40)
    r.twin.start()
    r.until(r.twin_ok, "the twin to be healthy")
    r.fleet.births()
    r.fleet.start(RATE)
    time.sleep(6)
    r.twin.kill()  # mid-batch: whatever it held unacknowledged comes again
    time.sleep(3)  # the fleet goes on; the broker queues QoS 1 messages for the twin's session
    r.twin.start()
    time.sleep(6)
    r.fleet.stop()
    r.settle()
    result = r.reckon(rate_msg_s=round(r.fleet.achieved_rate()), twin_kills=1)
    result.assert_nothing_lost()
