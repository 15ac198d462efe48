"""Parsing shared by several commands (durations, speeds) and the logging set-up."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Annotated, Final

import typer

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="The twin's data directory (default from PUMPTWIN_DATA_DIR or ./var).")
]


DURATION_FORMS: Final = "90d, 12h, 30m, 45s, 1d12h or plain seconds"
SPEED_FORMS: Final = "a factor of real time above 0 (1, 60, 3600, or 60x) or 'max' (as fast as possible)"


def parse_duration(text: str, *, option: str = "--duration") -> float:
    """'90d', '12h', '30m', '45s', '1d12h' or plain seconds -> seconds (more than 0).

    Raises :class:`typer.BadParameter` naming ``option`` and the forms allowed."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    clean = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", clean):
        seconds = float(clean)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", clean)
        if not parts or "".join(n + u for n, u in parts) != clean:
            raise typer.BadParameter(f"{text!r} is not a duration; allowed: {DURATION_FORMS}", param_hint=f"'{option}'")
        seconds = sum(float(n) * units[u] for n, u in parts)
    if seconds <= 0:
        raise typer.BadParameter(f"{text!r} is no time at all; allowed: {DURATION_FORMS}", param_hint=f"'{option}'")
    return seconds


def parse_speed(text: str, *, option: str = "--speed") -> float | None:
    """'1', '60', '3600', '60x' or 'max' (as fast as possible: None).

    Anything else is refused (:class:`typer.BadParameter` naming ``option`` and the forms allowed):
    a word that merely sounds fast ('fast', 'asap') once ran at max without a word, which is not
    what a user who meant "quickly, but watchable" wanted."""
    clean = text.strip().lower()
    if clean == "max":  # before the "x" suffix goes: "max" ends in x
        return None
    try:
        speed = float(clean.removesuffix("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a speed; allowed: {SPEED_FORMS}", param_hint=f"'{option}'") from None
    if not math.isfinite(speed) or speed <= 0:
        raise typer.BadParameter(f"{text!r} is not a speed; allowed: {SPEED_FORMS}", param_hint=f"'{option}'")
    return speed


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: thousands a minute from the InfluxDB writer
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)
