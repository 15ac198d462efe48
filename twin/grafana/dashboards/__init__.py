"""PumpTwin's Grafana dashboards, as code: four standard ones (fleet overview, one device, alarms, a
training session) and the instructor's.

Every panel is raw InfluxQL over the measurements of ``docs/influx-schema.md`` and runs on
InfluxDB 1.6 and later (1.x, and the v1 API of 2.x and 3.x). Where InfluxQL cannot finish the job
(sorting by a value, arithmetic across measurements, a time relative to now) the panel says so in
its description and finishes it with a Grafana transformation; ``dashboards/README.md`` lists those.

The standard dashboards (:data:`DASHBOARDS`, in ``dashboards/json/``, Grafana folder "PumpTwin")
read only what a real pump, gateway or clinic reports: ``telemetry``, ``state``, ``alarm``,
``command``, ``twin_health``, ``training``. The simulator's ground truth (``sim_truth``, the
``true_*`` fields) is read by the instructor's dashboard alone (:data:`INSTRUCTOR_DASHBOARDS`, in
``dashboards/instructor/``, its own folder, restricted to instructors): issue 12, truth stays
behind the glass. ``tests/core/test_dashboards.py`` checks both rules over every query.

``python -m twin.grafana`` writes both directories from these; a test checks that the committed
files are exactly that output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from twin.grafana.dashboards.alarms import alarms
from twin.grafana.dashboards.device import device
from twin.grafana.dashboards.fleet import fleet_overview
from twin.grafana.dashboards.instructor import instructor
from twin.grafana.dashboards.training import training_session
from twin.grafana.model import Dashboard

# ---------------------------------------------------------------------------------------------- all


DASHBOARDS: Final = (fleet_overview, device, alarms, training_session)
"""The standard dashboards: what any Grafana viewer of the clinic sees."""

INSTRUCTOR_DASHBOARDS: Final = (instructor,)
"""Simulator truth, for instructors only."""

STANDARD_DIRECTORY: Final = "json"
INSTRUCTOR_DIRECTORY: Final = "instructor"
"""Subdirectories of ``dashboards/``: each is mounted where its own Grafana provider reads, so each
set lands in its own folder (one provider never sees the other's files)."""

FOLDERS: Final[tuple[tuple[str, tuple[Callable[[], Dashboard], ...]], ...]] = (
    (STANDARD_DIRECTORY, DASHBOARDS),
    (INSTRUCTOR_DIRECTORY, INSTRUCTOR_DASHBOARDS),
)


def render_all() -> dict[str, str]:
    """Path relative to ``dashboards/`` (``json/pumptwin-fleet.json``) → JSON text of every
    dashboard, in a stable order."""
    rendered: dict[str, str] = {}
    for directory, builds in FOLDERS:
        for build in builds:
            dashboard = build()
            rendered[f"{directory}/{dashboard.file_name}"] = dashboard.render()
    return rendered


def write_all(root: Path) -> list[Path]:
    """Write every dashboard's JSON under ``root`` (``dashboards/``); returns the paths written."""
    written = []
    for name, text in render_all().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(root: Path) -> list[str]:
    """Dashboard files under ``root`` that differ from (or are missing next to) the generator's
    output, and ``*.json`` files in its directories that the generator does not make."""
    rendered = render_all()
    stale = [
        name
        for name, text in rendered.items()
        if not (root / name).exists() or (root / name).read_text(encoding="utf-8") != text
    ]
    for directory, _ in FOLDERS:
        stale += sorted(
            f"{directory}/{path.name}"
            for path in (root / directory).glob("*.json")
            if f"{directory}/{path.name}" not in rendered
        )
    return stale
