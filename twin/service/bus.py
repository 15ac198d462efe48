"""Live push inside the process: the service publishes events, each stream subscriber gets them.

Backpressure is a decision: every subscriber has a bounded queue. Alarm transitions are never
coalesced; device updates are coalesced per device (a subscriber that falls behind gets the
latest version of a device, not every version). A subscriber whose queue still overflows is
closed with a final ``resync`` event telling it to reload, and the overflow is counted; the
service itself never waits for a slow browser.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

QUEUE_LIMIT: Final = 2_000
"""Events a subscriber may have waiting before it is told to resync (about a second of a busy fleet)."""


@dataclass(frozen=True, slots=True)
class BusEvent:
    id: int
    kind: str  # "device", "alarm", "command", "response", "resync"
    data: dict[str, Any]
    coalesce_key: str | None = None


@dataclass(eq=False)  # identity, not value: a subscription is a live connection
class Subscription:
    queue: OrderedDict[object, BusEvent] = field(default_factory=OrderedDict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    async def next(self) -> BusEvent:
        while not self.queue:
            self.ready.clear()
            await self.ready.wait()
        _, event = self.queue.popitem(last=False)
        return event


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._ids = itertools.count(1)
        self.dropped_subscribers = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, kind: str, data: dict[str, Any], *, coalesce_key: str | None = None) -> None:
        if not self._subs:
            return
        event = BusEvent(next(self._ids), kind, data, coalesce_key)
        for sub in list(self._subs):
            key: object = (kind, coalesce_key) if coalesce_key is not None else event.id
            if key in sub.queue:
                del sub.queue[key]  # keep only the newest version, at the back
            sub.queue[key] = event
            if len(sub.queue) > QUEUE_LIMIT:
                sub.queue.clear()
                sub.queue["resync"] = BusEvent(next(self._ids), "resync", {"reason": "too slow: reload"})
                sub.closed = True
                self._subs.discard(sub)
                self.dropped_subscribers += 1
            sub.ready.set()
