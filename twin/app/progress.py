"""Progress over *simulated* time for the terminal (rich): the simulator's and the backfill's bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def simulated_span(seconds: float) -> str:
    """Simulated time for a progress line, at most two units: ``1d 02h``, ``2h 05m``, ``45m``, ``30s``."""
    left = max(0, round(seconds))
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def simulated_progress(console: Console) -> Progress:
    """A progress bar over simulated *seconds* (tasks get ``total`` in seconds), written as
    "2h 05m of 1d 00h simulated": right for a one-hour run and for a year (a count of whole days
    read "0/0" for anything under a day)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[simulated]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def simulated_text(done_s: float, total_s: float) -> str:
    return f"{simulated_span(min(done_s, total_s))} of {simulated_span(total_s)} simulated"
