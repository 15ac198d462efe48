"""A redelivered alarm event is recognised however busy its alarm point was. The broker redelivers
up to ``max_inflight_messages`` (20, broker/mosquitto.conf) unacknowledged QoS 1 messages to a
restarted twin, and a twin restarted from a snapshot a second old has not seen their sequence
numbers: the alarm point's remembered marks are what recognise them. With 16 marks per point, a
pump flapping one alarm (20 events in the window) had its oldest events applied again: a raise
re-raised a cleared alarm (the journal refuses nothing: its marks are written ON CONFLICT DO
NOTHING, its transitions are new versions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.contract import examples
from twin.contract.messages import AlarmEvent, AlarmEventType
from twin.mirror.alarm_board import Board, on_device_event

SITE = examples.EXAMPLE_SITE
T0 = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
IN_FLIGHT = 20
"""broker/mosquitto.conf: max_inflight_messages."""


def _events(pairs: int) -> list[AlarmEvent]:
    out = []
    for n in range(pairs):
        raised = examples.alarm().model_copy(
            update={"alarm_id": f"a-{n}", "seq": 2 * n + 1, "device_time": T0 + timedelta(seconds=2 * n)}
        )
        cleared = raised.model_copy(
            update={"event": AlarmEventType.CLEARED, "seq": 2 * n + 2, "device_time": T0 + timedelta(seconds=2 * n + 1)}
        )
        out += [raised, cleared]
    return out


def test_every_event_of_the_redelivery_window_is_recognised() -> None:
    events = _events(IN_FLIGHT // 2)
    board = Board()
    applied = 0
    for n, event in enumerate(events):
        board, transitions = on_device_event(board, SITE, event, T0 + timedelta(seconds=n))
        applied += len(transitions)
    assert applied == len(events)  # one transition per event: raise, clear, raise, ...
    for n, event in enumerate(events):  # the whole window again, as after a twin restart
        board, transitions = on_device_event(board, SITE, event, T0 + timedelta(seconds=100 + n))
        assert transitions == [], f"event {n} ({event.event} {event.alarm_id}) was applied twice"


def test_a_restored_board_recognises_the_latest_events_of_a_busy_point() -> None:
    """The store hands a restarted twin its marks unordered (a set): keeping "the last" N of them
    per point kept an arbitrary N, maybe not the ones the broker is about to send again."""
    from twin.alarms.device_events import dedupe_key
    from twin.mirror.alarm_board import MARKS_PER_POINT, restored

    events = _events(MARKS_PER_POINT * 2)
    board = Board()
    for n, event in enumerate(events):
        board, _ = on_device_event(board, SITE, event, T0 + timedelta(seconds=n))
    again = restored(board.alarms.values(), frozenset(dedupe_key(SITE, e) for e in events))
    for n, event in enumerate(events[-IN_FLIGHT:]):
        again, transitions = on_device_event(again, SITE, event, T0 + timedelta(seconds=1000 + n))
        assert transitions == [], f"{event.event} {event.alarm_id} was applied twice after the restart"
