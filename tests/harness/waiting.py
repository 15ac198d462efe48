"""Waiting for a condition with a generous timeout instead of asserting on timing (the machine is noisy)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], *, timeout_s: float = 60.0, what: str = "the condition") -> None:
    """Return as soon as ``condition()`` holds; fail the test if it does not within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout_s} s") from None
