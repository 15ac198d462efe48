"""Drills (b) and (c): the broker SIGKILLed, with the shipped ``broker/mosquitto.conf``.

(b) While the twin is down, its persistent session's queue is all there is of what the fleet sent:
the broker must have it on disk when it dies (``autosave_on_changes``; with the old
``autosave_interval 60`` a kill between saves lost 72 of 205 queued alarms).
(c) While the twin is up at full rate: what was in flight to the twin, what the fleet had
published and not yet been acknowledged for, and what the broker had queued all come through.
"""

from __future__ import annotations

import time

import pytest

from tests.drills.conftest import MakeRig

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

RATE = 1000.0
BACKLOG = 400
"""QoS 1 messages queued for the stopped twin before the broker is killed (the issue saw 205)."""


@pytest.mark.timeout(150)
def test_broker_killed_while_the_twin_is_down_keeps_its_queue(rig: MakeRig) -> None:
    r = rig(devices=40)
    r.twin.start()
    r.until(r.twin_ok, "the twin to be healthy")
    r.fleet.births()
    r.fleet.start(RATE)
    time.sleep(3)
    r.twin.stop()  # the twin's session stays: the broker queues its QoS 1 messages from now on
    time.sleep(2)
    r.fleet.stop()
    r.fleet.qos1_rounds(BACKLOG)  # a burst of alarms and states for the stopped twin
    r.fleet.wait_taken()
    # Mosquitto saves at the end of the loop pass that queued a message, after it acknowledged the
    # message to the fleet: a kill inside that pass (milliseconds) can still lose it (broker/README.md;
    # seen once: 1 state in 3 runs on a loaded machine). The old 60 s timer lost everything since the
    # last save; the drill kills between saves as that one did, not inside a save.
    time.sleep(0.5)
    r.broker.stop(kill=True)  # no clean shutdown saves the database for it
    r.broker.start()
    r.fleet.wait_connected()
    r.twin.start()
    r.settle()
    result = r.reckon(rate_msg_s=round(RATE), queued_for_stopped_twin=BACKLOG, broker_kills=1)
    result.assert_nothing_lost()


@pytest.mark.timeout(150)
def test_broker_killed_while_the_twin_is_up_loses_nothing(rig: MakeRig) -> None:
    r = rig(devices=40)
    r.twin.start()
    r.until(r.twin_ok, "the twin to be healthy")
    r.fleet.births()
    r.fleet.start(RATE)
    time.sleep(5)
    r.broker.stop(kill=True)  # mid-stream: messages in flight both ways
    time.sleep(1)  # the fleet goes on publishing into its own queue; the twin reconnects with back-off
    r.broker.start()
    time.sleep(5)
    r.fleet.stop()
    r.settle()
    result = r.reckon(rate_msg_s=round(r.fleet.achieved_rate()), broker_kills=1)
    result.assert_nothing_lost()
