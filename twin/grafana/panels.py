"""What PumpTwin's dashboards share: the clinical thresholds their colours use, the InfluxQL filters
of their variables, the state window, and the small builders of Grafana field configuration
(thresholds, value colours, overrides, transformations, options). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from twin.grafana.model import JSON, query_variable
from twin.pump.model import ERI_PERCENT as ERI_PERCENT  # the dashboards' battery thresholds are the pump model's

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

STATE_LOOKBACK_DAYS: Final = 180
"""How far back a panel of *latest* states looks, whatever the dashboard's range. A pump publishes
its state on change only (a refill, a reprogram, an alarm, a battery step), so its latest state may
be far older than a one-day range, and a panel filtered by the range would lose that pump. Every
pump in service changes state at its refill, 1-3 months apart, and drug stability caps a refill
interval at about 180 days (DOMAIN.md): 180 days back finds every pump in service, and keeps the
query bounded (InfluxDB 3 refuses to scan without limit)."""

STATE_WINDOW: Final = f"time > ${{__to}}ms - {STATE_LOOKBACK_DAYS}d AND time <= ${{__to}}ms"
"""The time filter of a latest-state panel: :data:`STATE_LOOKBACK_DAYS` up to the end of the range."""

MS_PER_DAY: Final = 86_400_000
"""Date fields (``refill_reminder_at_ms``, ``eri_at_ms``) are epoch milliseconds."""

ALL_OF_THEM: Final = ".*"
"""What All stands for in a ``=~ /^$var$/`` filter: every value, also one the option query missed."""

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
    """The sites that sent ``measurement`` in the range (InfluxDB 3 looks at one day only for an
    unbounded ``SHOW TAG VALUES``; 1.x ignores the bound), refreshed with the range; All stands for
    every site, also one quiet in the range."""
    return query_variable(
        "site",
        "Site",
        f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "site" WHERE $timeFilter',
        multi=True,
        include_all=True,
        refresh_on_time_change=True,
        all_value=ALL_OF_THEM,
    )


def active_alarms_by_priority(extra_filter: str = "") -> str:
    """Alarms whose last raise or clear (in the state window) is a raise, counted per priority;
    ``extra_filter`` (``'"priority" =~ ... AND '``) narrows them."""
    return (
        'SELECT count("event") AS "active" FROM (SELECT last("event") AS "event" FROM "alarm" '
        f"WHERE {RAISED_OR_CLEARED} AND {SITE_FILTER} AND {extra_filter}{STATE_WINDOW} "
        'GROUP BY "site", "device", "code", "priority") '
        'WHERE "event" = \'raised\' GROUP BY "priority"'
    )


ACTIVE_ALARMS_DESCRIPTION: Final = (
    "Alarms a pump raised and has not cleared, per priority (IEC 60601-1-8): high asks for a response now "
    "(a stall, an empty reservoir, end of service), medium within the shift, low at the next visit. Each alarm's "
    f"last raise or clear is read up to {STATE_LOOKBACK_DAYS} days before the end of the range, so an alarm "
    "raised before the range and still active is counted."
)
