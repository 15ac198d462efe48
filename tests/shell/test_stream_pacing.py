"""The live stream's pacing (twin.service.events): coalesced updates wait for the pace and are
replaced by newer versions meanwhile; anything not coalesced ends the wait at once; the SSE
framing of a batch is what a browser's EventSource parses."""

from __future__ import annotations

import asyncio

from twin.service.events import EventHub, Notice, sse_chunk


def _hub() -> EventHub:
    return EventHub(lambda e: (e.kind, e.data) if isinstance(e, Notice) else None)


async def test_coalesced_updates_wait_for_the_pace_and_only_the_newest_is_sent() -> None:
    hub = _hub()
    sub = hub.subscribe()
    hub.publish(Notice("device", {"v": 0}, coalesce="pump-1"))
    first = await sub.next(pace_s=0.3)  # the first read is not held back
    assert [(k, d) for _, k, d in first] == [("device", b'{"v": 0}')]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for v in range(1, 4):
        hub.publish(Notice("device", {"v": v}, coalesce="pump-1"))
    batch = await sub.next(pace_s=0.3)
    waited = loop.time() - started
    assert waited >= 0.25, waited
    assert [d for _, _, d in batch] == [b'{"v": 3}']
    assert sub.skipped == 2


async def test_an_urgent_event_ends_the_wait_at_once() -> None:
    hub = _hub()
    sub = hub.subscribe()
    hub.publish(Notice("device", {"v": 0}, coalesce="pump-1"))
    await sub.next(pace_s=5.0)
    hub.publish(Notice("device", {"v": 1}, coalesce="pump-1"))
    loop = asyncio.get_running_loop()
    asyncio.get_running_loop().call_later(0.05, hub.publish, Notice("alarm", {"code": "x"}))
    started = loop.time()
    batch = await asyncio.wait_for(sub.next(pace_s=5.0), timeout=2.0)
    assert loop.time() - started < 2.0
    assert [k for _, k, _ in batch] == ["device", "alarm"]


async def test_without_a_pace_every_batch_goes_at_once() -> None:
    hub = _hub()
    sub = hub.subscribe()
    for v in range(3):
        hub.publish(Notice("device", {"v": v}, coalesce="pump-1"))
        batch = await asyncio.wait_for(sub.next(), timeout=1.0)
        assert [d for _, _, d in batch] == [b'{"v": %d}' % v]


def test_a_batch_is_framed_as_server_sent_events() -> None:
    chunk = sse_chunk([(7, "alarm", b'{"a": 1}'), (8, "device", b'{"b": "x\\ny"}')])
    assert chunk == (
        b'event: alarm\r\nid: 7\r\ndata: {"a": 1}\r\n\r\nevent: device\r\nid: 8\r\ndata: {"b": "x\\ny"}\r\n\r\n'
    )
    assert sse_chunk([]) == b""


async def test_a_split_read_gives_the_urgent_events_encoded_and_leaves_the_summaries_for_after() -> None:
    encoded: list[str] = []

    def encode(e: object) -> tuple[str, dict] | None:
        assert isinstance(e, Notice)
        encoded.append(e.kind)
        return e.kind, e.data

    hub = EventHub(encode)
    sub = hub.subscribe()
    for v in range(3):
        hub.publish(Notice("device", {"v": v}, coalesce=f"pump-{v}"))
    hub.publish(Notice("alarm", {"code": "x"}))
    first, later = await sub.next_split(pace_s=5.0)  # the alarm ends any wait
    assert [k for _, k, _ in first] == ["alarm"]
    assert encoded == ["alarm"]  # nothing else encoded before the alarm can be written
    hub.publish(Notice("device", {"v": 9}, coalesce="pump-0"))  # supersedes pump-0's summary meanwhile
    rest = hub.encode_later(sub, later)
    assert [d for _, _, d in rest] == [b'{"v": 1}', b'{"v": 2}']
    again, later = await sub.next_split()  # the newer version of pump-0, as the next read
    assert again == []
    assert [d for _, _, d in hub.encode_later(sub, later)] == [b'{"v": 9}']


async def test_an_urgent_read_takes_nothing_but_after_an_alarm() -> None:
    hub = _hub()
    sub = hub.subscribe()
    hub.publish(Notice("device", {"v": 0}, coalesce="pump-0"))
    assert sub.read_urgent() == ([], [])  # only a coalesced update: it waits for the paced read
    assert sub.cursor == 1
    hub.publish(Notice("alarm", {"code": "x"}))
    first, later = sub.read_urgent()
    assert [k for _, k, _ in first] == ["alarm"]
    assert [d for _, _, d in hub.encode_later(sub, later)] == [b'{"v": 0}']
    assert sub.read_urgent() == ([], [])
    hub.unsubscribe(sub)
    hub.publish(Notice("alarm", {"code": "y"}))
    assert sub.read_urgent() == ([], [])  # a closed subscription reads nothing


async def test_a_body_already_encoded_is_sent_as_it_is() -> None:
    hub = EventHub(lambda e: ("alarm", b'{"already":"json"}'))
    sub = hub.subscribe()
    hub.publish(Notice("alarm", {"ignored": True}))
    assert [(k, d) for _, k, d in await sub.next()] == [("alarm", b'{"already":"json"}')]
