"""A twin killed after journaling a batch and before acknowledging it gets the batch again from
the broker; the repeat must change nothing. The batch here is a state listing an alarm as active
and the alarm's clear after it. Before, device snapshots were saved by the clock loop (a second
later, in their own transaction), so the restarted twin's device was a second old: it took the
repeated state as news, reconciled the board with it and raised the cleared alarm again (the
twin-kill drill, tests/drills/test_twin_killed.py: 40 alarms re-raised, one per pump). Now the
snapshot of every device a batch changes is in the batch's own transaction."""

from __future__ import annotations

from pathlib import Path

from tests.harness.inproc import feed, new_service
from twin.contract import examples
from twin.contract.messages import AlarmEventType
from twin.contract.topics import Channel

SITE, DEVICE = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
NOW = examples.EXAMPLE_TIME


async def test_a_batch_redelivered_after_a_kill_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    first = await new_service(path, clock=lambda: NOW)
    raised = examples.alarm().model_copy(update={"seq": 2})
    await feed(first, SITE, DEVICE, [(Channel.BIRTH, examples.birth()), (Channel.STATE, examples.state())])
    await feed(first, SITE, DEVICE, [(Channel.ALARM, raised)])
    await first.tick()  # the clock loop's second: snapshots of what changed so far
    active = examples.state().model_copy(update={"seq": 3, "active_alarms": [raised.code]})
    cleared = raised.model_copy(update={"seq": 4, "event": AlarmEventType.CLEARED})
    last_batch = [(Channel.STATE, active), (Channel.ALARM, cleared)]
    await feed(first, SITE, DEVICE, last_batch)  # journaled; then SIGKILL: no tick, no clean stop
    journaled = await first.store.transitions()
    assert [t.event.value for t in journaled] == ["raise", "clear"]

    second = await new_service(path, clock=lambda: NOW)  # the restarted twin, on the same journal
    await feed(second, SITE, DEVICE, last_batch)  # the broker sends what was not acknowledged
    assert await second.store.transitions() == journaled, "the repeat changed the journal"
    assert [a.key for a in second.fleet.board.open()] == [], "a cleared alarm is open again"
    await first.store.close()
    await second.store.close()
