"""Building blocks of a Grafana dashboard JSON model, kept to what PumpTwin's dashboards use.

Every panel queries the provisioned InfluxDB data source (:data:`DATASOURCE_UID`) with raw
InfluxQL (``rawQuery: true``); nothing here uses Grafana's visual query builder, so what a
panel runs is exactly the text in its target. JSON is written with sorted keys and a 2-space
indent, so a change to a dashboard is a readable diff.

Field names follow Grafana's dashboard JSON model for schema version :data:`SCHEMA_VERSION`
(Grafana 12; later versions migrate it when they load the file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

JSON = dict[str, Any]
"""A JSON object of the dashboard model (values: str, int, float, bool, None, lists, objects)."""

DATASOURCE_UID: Final = "pumptwin-influxdb"
"""The uid of the data source in ``dashboards/provisioning/datasources/`` (every variant has it)."""

DATASOURCE: Final[Mapping[str, str]] = {"type": "influxdb", "uid": DATASOURCE_UID}

SCHEMA_VERSION: Final = 41
"""Grafana 12.0's dashboard schema version; 12.x and later migrate older versions on load."""

GRID_COLUMNS: Final = 24

FOLDER_TAG: Final = "pumptwin"
"""Every dashboard carries this tag; the dashboard links list the dashboards that have it."""

ResultFormat = Literal["time_series", "table"]


@dataclass(frozen=True, slots=True)
class Query:
    """One panel target: raw InfluxQL, run as it is after Grafana's interpolation.

    ``alias`` names the series (Grafana's InfluxQL aliases: ``$tag_<key>``, ``$col``); it is
    display only, never sent to InfluxDB.
    """

    text: str
    ref_id: str = "A"
    result_format: ResultFormat = "time_series"
    alias: str | None = None

    def to_json(self) -> JSON:
        target: JSON = {
            "datasource": dict(DATASOURCE),
            "query": self.text,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            target["alias"] = self.alias
        return target


@dataclass(frozen=True, slots=True)
class Panel:
    """A panel: its visualization (``kind``: ``timeseries``, ``table``, ``stat``, ...), queries,
    size on the 24-column grid, and Grafana options passed through as they are.

    ``description`` is shown as the panel's info tooltip: say what the numbers mean there, and
    what the panel cannot know.
    """

    title: str
    kind: str
    queries: Sequence[Query]
    description: str
    width: int = 12
    height: int = 8
    defaults: JSON = field(default_factory=dict)
    overrides: Sequence[JSON] = ()
    options: JSON = field(default_factory=dict)
    transformations: Sequence[JSON] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.width <= GRID_COLUMNS:
            raise ValueError(f"panel {self.title!r}: width {self.width} is not within 1..{GRID_COLUMNS}")
        if not self.queries:
            raise ValueError(f"panel {self.title!r} has no query")
        ref_ids = [query.ref_id for query in self.queries]
        if len(set(ref_ids)) != len(ref_ids):
            raise ValueError(f"panel {self.title!r}: duplicate refIds {ref_ids}")

    def to_json(self, panel_id: int, x: int, y: int) -> JSON:
        return {
            "datasource": dict(DATASOURCE),
            "description": self.description,
            "fieldConfig": {"defaults": self.defaults, "overrides": list(self.overrides)},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": self.options,
            "targets": [query.to_json() for query in self.queries],
            "title": self.title,
            "transformations": list(self.transformations),
            "type": self.kind,
        }


def layout(panels: Iterable[Panel]) -> list[JSON]:
    """Panels left to right, top to bottom, a new row when the next one does not fit."""
    out: list[JSON] = []
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        out.append(panel.to_json(number, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return out


# ------------------------------------------------------------------------------------ variables


def _option(value: str, text: str | None = None, *, selected: bool = False) -> JSON:
    return {"selected": selected, "text": text if text is not None else value, "value": value}


ALL: Final = _option("$__all", "All")


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = False,
    include_all: bool = False,
    refresh_on_time_change: bool = False,
    sort_descending: bool = False,
    hide_label: bool = False,
    all_value: str | None = None,
) -> JSON:
    """A variable whose options come from an InfluxQL query (``SHOW TAG VALUES ...``).

    Options are sorted alphabetically (``sort`` 1, or 2 descending) and refreshed when the
    dashboard loads (``refresh`` 1) or when the time range changes (2). A variable with All
    starts at All; one without starts at its first option (``current`` left empty).
    ``all_value``: what All stands for in a query (``.*`` in a regex filter: every value, also
    those the option query did not find), instead of the list of the options.
    """
    extra: JSON = {"allValue": all_value} if all_value is not None else {}
    return {
        **extra,
        "current": {"text": ["All"], "value": ["$__all"]} if include_all and multi else {},
        "datasource": dict(DATASOURCE),
        "definition": query,
        "hide": 1 if hide_label else 0,
        "includeAll": include_all,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2 if refresh_on_time_change else 1,
        "regex": "",
        "sort": 2 if sort_descending else 1,
        "type": "query",
    }


def custom_variable(
    name: str, label: str, values: Sequence[str], *, current: str, multi: bool = False, include_all: bool = False
) -> JSON:
    """A variable with fixed options (``query`` is Grafana's comma-separated list of them)."""
    if current != "$__all" and current not in values:
        raise ValueError(f"variable {name}: current value {current!r} is not one of {list(values)}")
    if any("," in value for value in values):
        raise ValueError(f"variable {name}: a custom option cannot hold a comma")
    options = [ALL | {"selected": current == "$__all"}] if include_all else []
    options += [_option(value, selected=value == current) for value in values]
    if current == "$__all":
        current_json: JSON = {"text": ["All"], "value": ["$__all"]} if multi else {"text": "All", "value": "$__all"}
    else:
        current_json = {"text": [current], "value": [current]} if multi else {"text": current, "value": current}
    return {
        "current": current_json,
        "hide": 0,
        "includeAll": include_all,
        "label": label,
        "multi": multi,
        "name": name,
        "options": options,
        "query": ",".join(values),
        "type": "custom",
    }


def constant_variable(name: str, value: str, description: str) -> JSON:
    """A hidden constant, named in queries as ``$name`` (change it in the JSON, not the UI)."""
    return {
        "current": {"text": value, "value": value},
        "description": description,
        "hide": 2,
        "name": name,
        "options": [_option(value, selected=True)],
        "query": value,
        "type": "constant",
    }


# ---------------------------------------------------------------------------------- annotations


def annotation(
    name: str, query: str, *, color: str, text_column: str, tags_columns: Sequence[str], title_column: str = ""
) -> JSON:
    """An InfluxQL annotation query: each row is an event at its time; ``text_column`` is the
    text shown, ``tags_columns`` become the event's tags."""
    return {
        "datasource": dict(DATASOURCE),
        "enable": True,
        "iconColor": color,
        "name": name,
        "target": {
            "fromAnnotations": True,
            "limit": 100,
            "matchAny": False,
            "query": query,
            "rawQuery": True,
            "refId": "Anno",
            "tags": [],
            "tagsColumn": ",".join(tags_columns),
            "textColumn": text_column,
            "timeEndColumn": "",
            "titleColumn": title_column,
            "type": "tags",
        },
    }


# ------------------------------------------------------------------------------------ dashboard


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A whole dashboard; ``file_name`` is where it goes in ``dashboards/json/``."""

    uid: str
    title: str
    description: str
    panels: Sequence[Panel]
    variables: Sequence[JSON] = ()
    annotations: Sequence[JSON] = ()
    time_from: str = "now-7d"
    refresh: str = "1m"

    def __post_init__(self) -> None:
        if not 1 <= len(self.uid) <= 40 or not all(c.isalnum() or c in "-_" for c in self.uid):
            raise ValueError(f"dashboard uid {self.uid!r}: 1-40 letters, digits, '-' or '_'")

    @property
    def file_name(self) -> str:
        return f"{self.uid}.json"

    def to_json(self) -> JSON:
        return {
            "annotations": {"list": list(self.annotations)},
            "description": self.description,
            "editable": False,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": [
                {
                    "asDropdown": False,
                    "icon": "external link",
                    "includeVars": False,
                    "keepTime": True,
                    "tags": [FOLDER_TAG],
                    "targetBlank": False,
                    "title": "PumpTwin",
                    "type": "dashboards",
                }
            ],
            "panels": layout(self.panels),
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": [FOLDER_TAG],
            "templating": {"list": list(self.variables)},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }

    def render(self) -> str:
        """The JSON file's text: sorted keys, 2-space indent, a final newline; deterministic."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
