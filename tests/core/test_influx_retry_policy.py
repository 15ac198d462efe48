"""The writer's retry decisions, as pure functions: what a status means, how long to wait."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.influx.writer import RETRY_AFTER_CAP_S, Disposition, backoff_s, disposition, influx_reason, retry_after_s

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (204, Disposition.WRITTEN),
        (200, Disposition.WRITTEN),
        (400, Disposition.REFUSED),  # parse error, partial write, field type conflict
        (413, Disposition.REFUSED),  # too large: split, and a single line too large is dead-lettered
        (422, Disposition.REFUSED),
        (429, Disposition.RETRY),
        (500, Disposition.RETRY),
        (503, Disposition.RETRY),
        (401, Disposition.RETRY),  # configuration, not data: keep the points
        (403, Disposition.RETRY),
        (404, Disposition.RETRY),
        (301, Disposition.RETRY),
    ],
)
def test_disposition(status: int, expected: Disposition) -> None:
    assert disposition(status) is expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("nan", None),
        ("Sat, 14 Mar 2026 09:30:30 GMT", 30.0),
        ("Sat, 14 Mar 2026 09:29:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, NOW) == seconds


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_s(attempt, initial_s=0.5, max_s=30.0, rng=rng) for attempt in range(12)]
    steps = [min(30.0, 0.5 * 2**attempt) for attempt in range(12)]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, steps, strict=True))
    assert delays == [backoff_s(a, initial_s=0.5, max_s=30.0, rng=r) for r in [random.Random(7)] for a in range(12)]


@given(attempt=st.integers(min_value=0, max_value=10_000), seed=st.integers())
def test_backoff_never_exceeds_the_cap_or_goes_below_half_a_step(attempt: int, seed: int) -> None:
    delay = backoff_s(attempt, initial_s=0.1, max_s=5.0, rng=random.Random(seed))
    assert 0.05 <= delay <= 5.0


def test_retry_after_is_respected_but_not_beyond_the_cap() -> None:
    rng = random.Random(1)
    assert backoff_s(0, initial_s=0.5, max_s=30.0, rng=rng, retry_after=12.0) == 12.0
    assert backoff_s(0, initial_s=0.5, max_s=30.0, rng=rng, retry_after=10**6) == RETRY_AFTER_CAP_S
    assert backoff_s(6, initial_s=0.5, max_s=30.0, rng=rng, retry_after=0.0) >= 15.0


def test_influx_reason_prefers_influxdbs_own_words() -> None:
    header = httpx.Response(400, headers={"X-Influxdb-Error": "partial write: field type conflict"}, json={})
    assert influx_reason(header) == "partial write: field type conflict"
    v2 = httpx.Response(400, json={"code": "invalid", "message": "unable to parse"})
    assert influx_reason(v2) == "unable to parse"
    v1 = httpx.Response(400, json={"error": "bad timestamp"})
    assert influx_reason(v1) == "bad timestamp"
    assert influx_reason(httpx.Response(413, text="too big")) == "too big"
    assert influx_reason(httpx.Response(502)) == "Bad Gateway"
