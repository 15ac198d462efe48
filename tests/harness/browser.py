"""A real, headless Chromium for browser tests (Playwright's Python API driving Debian's chromium),
and where the tests keep their screenshots.

``playwright install`` downloads browsers, which this project's machines cannot do; Debian's
``chromium`` package (installed by ``make test``) is launched instead, with flags that keep it
from reaching for the network on its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI; Chromium's sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ROOT = Path(__file__).resolve().parents[2]

SCREENSHOT_DIR = Path(os.environ.get("PUMPTWIN_SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))
"""Screenshots of every console page the browser tests visit, kept as test artifacts (git-ignored;
CI keeps the directory). ``PUMPTWIN_SCREENSHOT_DIR`` moves it."""


def chromium_path() -> str:
    found = os.environ.get("PUMPTWIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.fail("chromium is not installed: run `make test` (it installs the Debian package chromium)")
    return found


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR / f"{name}.png"
