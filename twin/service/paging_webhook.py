"""The paging webhook: escalations delivered to an outside paging system as HTTP POSTs.

A hospital's alert manager (IHE PCD ACM's "Alert Manager", a pager gateway, a chat bot) takes
escalations from the twin at one URL. Each :class:`~twin.alarms.escalation.Escalation` is POSTed
once, as JSON (:func:`webhook_body`: ``kind``, ``version`` and the escalation as the API shows it),
with ``Idempotency-Key: <escalation_id>`` (a retry of a request whose first attempt did land is
then recognisable by the receiver) and ``X-PumpTwin-Attempt: <n>``; with a token, ``Authorization:
Bearer <token>``.

Delivery: a FIFO queue (:data:`QUEUE_MAX`) drained by one task, one escalation at a time, in the
order they were made. An answer 2xx is delivered; 408, 429, 5xx, a timeout or a connection error
is tried again after an exponential backoff with jitter (the InfluxDB writer's
:func:`~twin.influx.writer.backoff_s`, honouring ``Retry-After``), up to ``attempts`` tries; any
other 4xx is refused by the receiver and not tried again (the request itself is wrong: sending it
again would not help). What was given up on is counted (``failed``) and logged with the reason.

What it does **not** promise: the queue is in memory. The escalation itself is already in the
journal (the escalator journals before it hands over), but a delivery still queued or being
retried when the twin stops is not sent after the restart; ``stats().queued`` at shutdown says how
many (logged). A full queue (a receiver down for hours at a busy site) drops the oldest and counts
it (``dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

import httpx

from twin.alarms.escalation import Escalation
from twin.influx.writer import backoff_s, retry_after_s
from twin.service.escalator import escalation_json
from twin.settings import EscalationSettings

log = logging.getLogger(__name__)

QUEUE_MAX: Final = 10_000
"""Escalations waiting for delivery, at most. A site with 100 pumps and every alarm escalating
twice makes a few hundred a day; ten thousand is days of a receiver being down."""

BODY_KIND: Final = "pumptwin.alarm_escalation"
BODY_VERSION: Final = 1

_RETRIED_STATUSES: Final = frozenset({408, 429})


def webhook_body(e: Escalation) -> dict[str, Any]:
    """What the receiver gets: the same JSON for every attempt of one escalation."""
    return {"kind": BODY_KIND, "version": BODY_VERSION, **escalation_json(e)}


def worth_retrying(status: int) -> bool:
    """408, 429 and 5xx (and anything outside 2xx-4xx) are tried again; other 4xx are not."""
    if 400 <= status < 500:
        return status in _RETRIED_STATUSES
    return not 200 <= status < 300


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Counters since the sink started: escalations ``delivered``, ``failed`` (given up on or
    refused), ``dropped`` (queue full), ``retries`` (extra attempts), and ``queued`` now."""

    delivered: int
    failed: int
    dropped: int
    retries: int
    queued: int


class PagingWebhook:
    """POSTs escalations to ``url`` (see the module docstring). Use as an async context manager:
    it starts its delivery task on entry and, on exit, lets the queue drain for up to
    ``drain_s`` before it stops. ``transport``: an httpx transport (tests); ``rng``: the jitter's."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 5.0,
        attempts: int = 8,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        drain_s: float = 5.0,
        queue_max: int = QUEUE_MAX,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self._token = token
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._drain_s = drain_s
        self._queue: deque[Escalation] = deque()
        self._queue_max = queue_max
        self._rng = rng or random.Random()
        self._transport = transport
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._delivered = 0
        self._failed = 0
        self._dropped = 0
        self._retries = 0

    @classmethod
    def from_settings(cls, settings: EscalationSettings) -> PagingWebhook:
        if settings.webhook_url is None:
            raise ValueError("no webhook_url is set")
        return cls(
            settings.webhook_url,
            token=settings.webhook_token.get_secret_value() if settings.webhook_token else None,
            timeout_s=settings.webhook_timeout_s,
            attempts=settings.webhook_attempts,
            retry_initial_s=settings.webhook_retry_initial_s,
            retry_max_s=settings.webhook_retry_max_s,
        )

    # ----------------------------------------------------------------------------- interface

    def submit(self, escalation: Escalation) -> None:
        """Queue one escalation for delivery; never blocks, never raises."""
        if len(self._queue) >= self._queue_max:
            lost = self._queue.popleft()
            self._dropped += 1
            log.error("paging webhook queue full (%d): dropped %s", self._queue_max, lost.escalation_id)
        self._queue.append(escalation)
        self._idle.clear()
        self._wake.set()

    def stats(self) -> WebhookStats:
        return WebhookStats(self._delivered, self._failed, self._dropped, self._retries, len(self._queue))

    async def drained(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or being sent; ``False`` if ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def describe(self) -> str:
        return f"paging webhook {self.url}"

    async def __aenter__(self) -> Self:
        self._client = httpx.AsyncClient(transport=self._transport, timeout=self._timeout_s)
        self._task = asyncio.create_task(self._deliver_loop(), name="paging-webhook")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.drained(self._drain_s)
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()
        if self._queue:
            log.warning(
                "paging webhook stopped with %d escalations undelivered (they are in the journal)", len(self._queue)
            )

    # ------------------------------------------------------------------------------ delivery

    async def _deliver_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            escalation = self._queue[0]
            await self._deliver(escalation)
            if self._queue and self._queue[0] is escalation:
                self._queue.popleft()

    async def _deliver(self, e: Escalation) -> None:
        assert self._client is not None
        body = webhook_body(e)
        reason = ""
        for attempt in range(self._attempts):
            if attempt:
                self._retries += 1
            headers = {"Idempotency-Key": e.escalation_id, "X-PumpTwin-Attempt": str(attempt + 1)}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            retry_after: float | None = None
            try:
                response = await self._client.post(self.url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    self._delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
                if not worth_retrying(response.status_code):
                    break
                retry_after = retry_after_s(response.headers.get("retry-after"), datetime.now(UTC))
            if attempt + 1 < self._attempts:
                delay = backoff_s(
                    attempt,
                    initial_s=self._retry_initial_s,
                    max_s=self._retry_max_s,
                    rng=self._rng,
                    retry_after=retry_after,
                )
                await asyncio.sleep(delay)
        self._failed += 1
        log.error("paging webhook gave up on %s: %s", e.escalation_id, reason)


__all__ = ["BODY_KIND", "BODY_VERSION", "QUEUE_MAX", "PagingWebhook", "WebhookStats", "webhook_body", "worth_retrying"]
