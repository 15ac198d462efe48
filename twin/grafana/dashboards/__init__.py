"""PumpTwin's four Grafana dashboards, as code: fleet overview, one device, alarms, a training session.

Every panel is raw InfluxQL over the measurements of ``docs/influx-schema.md`` (``telemetry``,
``state``, ``alarm``, ``command``, ``twin_health``, ``training``) and runs on InfluxDB 1.6 and
later (1.x, and the v1 API of 2.x and 3.x). Where InfluxQL cannot finish the job (sorting by a
value, arithmetic across measurements, a time relative to now) the panel says so in its
description and finishes it with a Grafana transformation; ``dashboards/README.md`` lists those.

``python -m twin.grafana`` writes ``dashboards/json/`` from :data:`DASHBOARDS`; a test checks that
the committed files are exactly that output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from twin.grafana.dashboards.alarms import alarms
from twin.grafana.dashboards.device import device
from twin.grafana.dashboards.fleet import fleet_overview
from twin.grafana.dashboards.training import training_session

# ---------------------------------------------------------------------------------------------- all


DASHBOARDS: Final = (fleet_overview, device, alarms, training_session)


def render_all() -> dict[str, str]:
    """File name → JSON text of every dashboard, in a stable order."""
    rendered: dict[str, str] = {}
    for build in DASHBOARDS:
        dashboard = build()
        rendered[dashboard.file_name] = dashboard.render()
    return rendered


def write_all(directory: Path) -> list[Path]:
    """Write every dashboard's JSON into ``directory``; returns the paths written."""
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path) -> list[str]:
    """Dashboard files in ``directory`` that differ from (or are missing next to) the generator's output,
    and ``*.json`` files there that the generator does not make."""
    rendered = render_all()
    stale = [
        name
        for name, text in rendered.items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
    stale += sorted(path.name for path in directory.glob("*.json") if path.name not in rendered)
    return stale
