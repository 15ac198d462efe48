"""Parsing shared by several commands (durations, speeds) and the logging set-up."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated

import typer

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="The twin's data directory (default from PUMPTWIN_DATA_DIR or ./var).")
]


def parse_duration(text: str) -> float:
    """'90d', '12h', '30m', '45s', '1d12h' or plain seconds -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration like 90d, 12h, 30m, 45s or 1d12h")
    return sum(float(n) * units[u] for n, u in parts)


def parse_speed(text: str) -> float | None:
    """'1', '60', '3600', '60x' or 'max' (as fast as possible: None)."""
    text = text.strip().lower()
    if text in ("max", "fast", "asap"):  # before the "x" suffix goes: "max" ends in x
        return None
    text = text.removesuffix("x")
    try:
        speed = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a speed: use a factor like 1, 60, 3600 or 'max'") from None
    if speed <= 0:
        raise typer.BadParameter("speed must be positive")
    return speed


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: thousands a minute from the InfluxDB writer
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)
