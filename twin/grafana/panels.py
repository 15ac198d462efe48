"""What PumpTwin's dashboards share: the clinical thresholds their colours use, the InfluxQL filters
of their variables, the state window, and the small builders of Grafana field configuration
(thresholds, value colours, overrides, transformations, options). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from twin.grafana.model import JSON, query_variable

# The threshold ISA-18.2 (and EEMUA 191) call an alarm flood: more than 10 alarms in 10 minutes for
# one operator. A site's alarms go to its pump clinic's staff, so the flood line is drawn per site.
FLOOD_ALARMS_PER_10_MIN: Final = 10

# Days-to-empty colours: a refill takes a clinic visit, booked about a week ahead (DOMAIN.md: refill
# intervals of 1-3 months; the simulator's clinic refills 1-7 days after the low-reservoir alarm).
REFILL_URGENT_DAYS: Final = 7
REFILL_SOON_DAYS: Final = 14

# Days-to-ERI colours: ERI is announced 90 days before end of service (DOMAIN.md), and a replacement
# surgery is planned within that window.
ERI_URGENT_DAYS: Final = 30
ERI_SOON_DAYS: Final = 90

ERI_PERCENT: Final = "10"
"""Battery percentage at the elective replacement indicator (the simulator's ``ERI_PERCENT``)."""

SILENCE_WINDOWS_H: Final = ("2", "6", "12", "24")
"""Hours without telemetry that count as silent; at least 2 (``moving_average`` needs a window > 1)."""

PRIORITY_COLORS: Final = {"high": "red", "medium": "yellow", "low": "blue"}
"""IEC 60601-1-8 priority colours (low is cyan there; Grafana's closest named colour is blue)."""

DEVICE_DASHBOARD_UID: Final = "pumptwin-device"

SITE_FILTER: Final = '"site" =~ /^$site$/'
DEVICE_FILTER: Final = '"device" =~ /^$device$/'
PRIORITY_FILTER: Final = '"priority" =~ /^$priority$/'
SESSION_FILTER: Final = '"session" =~ /^$session$/'
TRAINEE_FILTER: Final = '"trainee" =~ /^$trainee$/'
RAISED_OR_CLEARED: Final = "(\"event\" = 'raised' OR \"event\" = 'cleared')"


# ------------------------------------------------------------------------------- field config bits


def thresholds(base: str, *steps: tuple[float, str]) -> JSON:
    """Absolute thresholds: ``base`` colour below the first step, then each step's colour from its value."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": color, "value": value} for value, color in steps)],
    }


def value_colors(colors: Mapping[str, str]) -> list[JSON]:
    """Value mappings that colour text values (states, verdicts)."""
    return [
        {
            "options": {value: {"color": color, "index": index} for index, (value, color) in enumerate(colors.items())},
            "type": "value",
        }
    ]


def by_name(name: str, **properties: object) -> JSON:
    """A field override for the field called ``name``."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key.replace("_", "."), "value": value} for key, value in properties.items()],
    }


def color_by_name(name: str, color: str) -> JSON:
    return by_name(name, color={"fixedColor": color, "mode": "fixed"})


def device_link(column: str = "device") -> JSON:
    """Make a table's device column open the device dashboard for that pump, keeping the time range."""
    return by_name(
        column,
        links=[
            {
                "targetBlank": False,
                "title": "Open ${__value.text} in the device dashboard",
                "url": f"/d/{DEVICE_DASHBOARD_UID}?var-device=${{__value.text}}&${{__url_time_range}}",
            }
        ],
    )


def colored_cells(name: str, **properties: object) -> JSON:
    """Colour the table cells of ``name`` by the panel's thresholds (or value mappings)."""
    return by_name(name, custom_cellOptions={"type": "color-background"}, **properties)


def sort_by(column: str, *, descending: bool = False) -> JSON:
    return {"id": "sortBy", "options": {"fields": {}, "sort": [{"desc": descending, "field": column}]}}


def organize(*, hide: Sequence[str] = (), rename: Mapping[str, str] | None = None) -> JSON:
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(hide, True),
            "includeByName": {},
            "indexByName": {},
            "renameByName": dict(rename or {}),
        },
    }


def binary(left: str, operator: str, right: str, alias: str) -> JSON:
    """Grafana's "Add field from calculation", binary mode: ``left operator right`` row by row."""
    return {
        "id": "calculateField",
        "options": {
            "alias": alias,
            "binary": {
                "left": {"matcher": {"id": "byName", "options": left}},
                "operator": operator,
                "right": {"matcher": {"id": "byName", "options": right}},
            },
            "mode": "binary",
            "reduce": {"reducer": "sum"},
            "timeSeries": False,  # row by row in the one joined table, no join by time first
        },
    }


TABLE_OPTIONS: Final[JSON] = {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
STAT_OPTIONS: Final[JSON] = {
    "colorMode": "value",
    "graphMode": "none",
    "justifyMode": "auto",
    "orientation": "auto",
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "textMode": "value_and_name",
}
TIMESERIES_OPTIONS: Final[JSON] = {
    "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
    "tooltip": {"mode": "multi", "sort": "none"},
}


def site_variable(*, measurement: str = "telemetry") -> JSON:
    return query_variable(
        "site", "Site", f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "site"', multi=True, include_all=True
    )


ACTIVE_ALARMS_BY_PRIORITY: Final = (
    'SELECT count("event") AS "active" FROM (SELECT last("event") AS "event" FROM "alarm" '
    f'WHERE {RAISED_OR_CLEARED} AND {SITE_FILTER} AND {{priority}}$timeFilter GROUP BY "site", "device", "code", "priority") '
    'WHERE "event" = \'raised\' GROUP BY "priority"'
)

ACTIVE_ALARMS_DESCRIPTION: Final = (
    "Alarms whose last raise/clear event in the time range is a raise, counted per priority (IEC 60601-1-8). "
    "An alarm raised before the range and still active is not seen: keep the range longer than your alarms last."
)
