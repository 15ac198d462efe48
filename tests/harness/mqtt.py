"""A subscriber that collects messages from a real broker, for assertions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiomqtt


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int


@dataclass
class Collector:
    """Collects every message on its subscriptions into ``messages`` (in arrival order)."""

    messages: list[Received] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _add(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        self.messages.append(Received(str(message.topic), payload, bool(message.retain), int(message.qos)))
        self._changed.set()

    async def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> list[Received]:
        """Wait until ``predicate(messages)`` holds; raise ``TimeoutError`` with what arrived otherwise."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.messages):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            topics = [m.topic for m in self.messages[-20:]]
            raise TimeoutError(
                f"condition not met in {timeout} s; {len(self.messages)} messages, last: {topics}"
            ) from None
        return self.messages

    def on(self, topic_suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(topic_suffix)]


def hostname_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1]
    host, port = rest.rsplit(":", 1)
    return host, int(port)


@contextlib.asynccontextmanager
async def collecting(
    url: str,
    *filters: str,
    qos: int = 1,
    identifier: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> AsyncIterator[Collector]:
    """Subscribe to ``filters`` on the broker at ``url`` and collect in the background."""
    host, port = hostname_port(url)
    collector = Collector()
    async with aiomqtt.Client(
        host, port, identifier=identifier, username=username, password=password, max_queued_incoming_messages=0
    ) as client:
        for f in filters:
            await client.subscribe(f, qos=qos)

        async def pump() -> None:
            async for message in client.messages:
                collector._add(message)

        task = asyncio.create_task(pump(), name="collector")
        try:
            yield collector
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def persistent_collecting(url: str, *filters: str, identifier: str) -> AsyncIterator[Collector]:
    """Like :func:`collecting`, but with a persistent session (QoS 1) that reconnects when the broker
    goes away, so messages published while it was away are delivered when it returns."""
    host, port = hostname_port(url)
    collector = Collector()
    connected = asyncio.Event()

    async def pump() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    host, port, identifier=identifier, clean_session=False, max_queued_incoming_messages=0
                ) as client:
                    for f in filters:
                        await client.subscribe(f, qos=1)
                    connected.set()
                    async for message in client.messages:
                        collector._add(message)
            except aiomqtt.MqttError:
                connected.clear()
                await asyncio.sleep(0.2)

    task = asyncio.create_task(pump(), name="persistent-collector")
    await connected.wait()
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
