"""What Grafana does to an InfluxQL query before InfluxDB sees it, as a pure function.

Grafana 11/12 run InfluxQL through the backend (``influxdbBackendMigration``, on by default):
the browser interpolates template variables, the Go backend then replaces the time macros. This
module mirrors both steps so a dashboard's queries can be run against a real InfluxDB exactly as
Grafana would send them (``tests/integration/test_dashboards.py``) or by hand (``influx -execute``).

The rules, from Grafana's sources (``public/app/plugins/datasource/influxdb/datasource.ts``,
``variables.ts``, ``features/templating/template_srv.ts``, ``@grafana/data`` ``escapeRegex``,
``pkg/tsdb/influxdb/models/query.go``, the plugin SDK's ``gtime.FormatInterval``):

1. **Variable references** are ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]``
   (``name`` is ``[A-Za-z0-9_]+``). A reference to a name that is not a dashboard variable is left
   as it is (that is how ``$timeFilter`` and ``$__interval`` reach the backend).
2. **All**: a variable whose current value is ``$__all`` stands for its custom all value when it
   has one, inserted as it is (no escaping), else for the list of all its options.
3. **The InfluxQL format** (``interpolateQueryExpr``), applied unless a reference names its own
   format (only ``raw`` and ``regex`` are supported here):

   * a single value that JavaScript's ``parseFloat`` reads as a number is inserted as it is;
   * a **multi-value** variable: one value is regex-escaped, a list becomes ``(a|b|c)`` of
     regex-escaped values (a one-element list too: ``(a)``);
   * a single-value variable: regex-escaped (a list: ``(a|b)``) when the query text contains a
     regex literal after ``=~``/``!~`` that mentions ``$name`` (``"device" =~ /^$device$/``),
     otherwise inserted as it is (``"device" = '$device'`` gets the raw value);
   * the query text is the panel target's or annotation's own; **variable queries** are
     interpolated without it (``InfluxVariableSupport`` passes none), so there a single-value
     variable is always inserted as it is;
   * regex escaping is ``escapeRegex``: a backslash before each of ``\\ ^ $ * + ? . ( ) | [ ] { } /``.
4. **Backend macros**, replaced in this order: ``$timeFilter`` → ``time >= <from>ms and time <=
   <to>ms`` (epoch milliseconds of the dashboard's time range), ``$interval`` and ``$__interval``
   → the interval in Grafana's units (``1h``, ``10m``, ``30s``, ``1d``: the largest unit that fits,
   truncated, so 90 minutes is ``1h``), ``$__interval_ms`` → milliseconds.

5. **The time range's global variables** ``$__from``/``${__from}`` and ``$__to``/``${__to}``: epoch
   milliseconds of the range's ends (Grafana's default format for them). Grafana replaces them in
   the browser with the other variables; the text that reaches InfluxDB is the same, so they are
   replaced here with the backend macros. ``${__to}ms - 180d`` is InfluxQL time arithmetic.

Not modelled: ad-hoc filters, other global variables, formats other than ``raw``/``regex`` (also
for ``__from``/``__to``), and the browser-only (non-proxy) query path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

ALL_VALUE: Final = "$__all"
"""The value Grafana stores for a variable set to All."""

_REFERENCE: Final = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}",
    re.ASCII,
)
"""Grafana's ``variableRegex``: ``$var``, ``[[var]]``, ``[[var:fmt]]``, ``${var}``, ``${var.path}``, ``${var:fmt}``."""

_REGEX_LITERAL: Final = re.compile(
    r"(\s*(=|!)~\s*)\/((?![*+?])(?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)\/"
    r"((?:g(?:im?|mi?)?|i(?:gm?|mg?)?|m(?:gi?|ig?)?)?)"
)
"""The InfluxDB data source's test for "this query holds a regex literal after ``=~``/``!~``"."""

_REGEX_SPECIAL: Final = re.compile(r"[\\^$*+?.()|\[\]{}/]")

_JS_FLOAT_PREFIX: Final = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_YEAR: Final = timedelta(days=365)
_INTERVAL_UNITS: Final = (
    (_YEAR, "y"),
    (timedelta(days=1), "d"),
    (timedelta(hours=1), "h"),
    (timedelta(minutes=1), "m"),
    (timedelta(seconds=1), "s"),
    (timedelta(milliseconds=1), "ms"),
)


class QueryKind(Enum):
    """Where a query text sits in a dashboard: it decides what the InfluxQL format sees."""

    PANEL = "panel"  # a panel target's rawQuery text
    ANNOTATION = "annotation"  # an annotation's query
    VARIABLE = "variable"  # a template variable's query


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard template variable, as far as interpolation cares.

    ``options`` are the values it offers (what All expands to); ``all_value`` is its custom all
    value (``allValue`` in the JSON), ``None`` when unset.
    """

    name: str
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: tuple[str, ...] = ()


Selection = str | Sequence[str]
"""A variable's current value: one value, several (multi-value), or :data:`ALL_VALUE`."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The dashboard's time range; both ends timezone-aware, ``start`` not after ``end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a time range needs timezone-aware ends")
        if self.start > self.end:
            raise ValueError(f"time range starts ({self.start}) after it ends ({self.end})")

    @property
    def start_ms(self) -> int:
        return _epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return _epoch_ms(self.end)


def _epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds, truncated as Go's ``UnixNano() / 1e6`` does for times after 1970."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# ------------------------------------------------------------------------------------------ escaping


def escape_regex(value: str) -> str:
    """``@grafana/data``'s ``escapeRegex``: a backslash before ``\\ ^ $ * + ? . ( ) | [ ] { } /``."""
    return _REGEX_SPECIAL.sub(lambda match: "\\" + match.group(0), value)


def js_parses_as_number(value: str) -> bool:
    """``!isNaN(parseFloat(value))`` in JavaScript: a numeric prefix is enough (``"12abc"``)."""
    return _JS_FLOAT_PREFIX.match(value.lstrip()) is not None


def _regex_group(values: Sequence[str]) -> str:
    return "(" + "|".join(escape_regex(value) for value in values) + ")"


def influxql_format(value: Selection, variable: Variable, query: str | None) -> str:
    """The InfluxDB data source's ``interpolateQueryExpr``: how one variable's value is written
    into ``query`` (the panel's or annotation's text; ``None`` for variable queries).

    ``value`` is already resolved (no :data:`ALL_VALUE`). A list that the rules leave unformatted
    (a single-value variable with All, outside a regex) comes out comma-joined, as JavaScript
    would write it: a broken query, which is the point of checking.
    """
    if isinstance(value, str) and js_parses_as_number(value):
        return value
    if variable.multi:
        if isinstance(value, str):
            return escape_regex(value)
        return _regex_group(value)
    if query is not None:
        mentions = re.compile(r"\/(?:\^)?(.*)(\$" + re.escape(variable.name) + r")(.*)(?:\$)?\/")
        for literal in _REGEX_LITERAL.finditer(query):
            if mentions.search(literal.group(0)):
                return escape_regex(value) if isinstance(value, str) else _regex_group(value)
    return value if isinstance(value, str) else ",".join(value)


def _resolve(variable: Variable, selection: Selection) -> tuple[Selection, bool]:
    """The value a selection stands for, and whether it is a custom all value (inserted raw)."""
    is_all = selection == ALL_VALUE or (
        not isinstance(selection, str) and len(selection) > 0 and selection[0] == ALL_VALUE
    )
    if not is_all:
        return selection, False
    if not variable.include_all:
        raise ValueError(f"variable {variable.name!r} has no All option")
    if variable.all_value is not None:
        return variable.all_value, True
    return list(variable.options), False


# ------------------------------------------------------------------------------------- the two steps


def interpolate_variables(
    text: str,
    variables: Mapping[str, Variable],
    selection: Mapping[str, Selection],
    kind: QueryKind,
) -> str:
    """Step 1, in the browser: replace every reference to a dashboard variable in ``text``.

    ``variables`` by name; ``selection`` holds the current value of each variable ``text``
    refers to (a missing one is an error: Grafana would have one). Names that are not variables
    (``$timeFilter``, ``$__interval``) are left for :func:`expand_macros`.
    """
    query = None if kind is QueryKind.VARIABLE else text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        path, explicit_format = match.group(5), match.group(3) or match.group(6)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        if path is not None:
            raise ValueError(f"{match.group(0)}: field paths of variables are not supported")
        if name not in selection:
            raise ValueError(f"no value selected for variable {name!r}")
        value, raw = _resolve(variable, selection[name])
        if raw:
            assert isinstance(value, str)
            return value
        if explicit_format is None:
            return influxql_format(value, variable, query)
        if explicit_format == "raw":
            return value if isinstance(value, str) else ",".join(value)
        if explicit_format == "regex":
            if isinstance(value, str):
                return escape_regex(value)
            return escape_regex(value[0]) if len(value) == 1 else _regex_group(value)
        raise ValueError(f"{match.group(0)}: format {explicit_format!r} is not supported")

    return _REFERENCE.sub(replace, text)


_RANGE_FROM: Final = re.compile(r"\$\{__from\}|\$__from\b")
_RANGE_TO: Final = re.compile(r"\$\{__to\}|\$__to\b")


def format_interval(interval: timedelta) -> str:
    """The plugin SDK's ``gtime.FormatInterval``: the largest unit that fits, truncated."""
    for unit, suffix in _INTERVAL_UNITS:
        if interval >= unit:
            return f"{interval // unit}{suffix}"
    return "1ms"


def expand_macros(text: str, time_range: TimeRange, interval: timedelta) -> str:
    """Step 2, in Grafana's backend (``query.go`` ``Build``): the time filter and the interval; and
    the range's ends (``$__from``, ``$__to``: see the module docstring, rule 5)."""
    interval_text = format_interval(interval)
    interval_ms = interval // timedelta(milliseconds=1)
    text = text.replace("$timeFilter", f"time >= {time_range.start_ms}ms and time <= {time_range.end_ms}ms")
    text = _RANGE_FROM.sub(str(time_range.start_ms), text)
    text = _RANGE_TO.sub(str(time_range.end_ms), text)
    text = text.replace("$interval", interval_text)
    text = text.replace("$__interval_ms", str(interval_ms))
    return text.replace("$__interval", interval_text)


def render_query(
    text: str,
    kind: QueryKind,
    *,
    variables: Mapping[str, Variable],
    selection: Mapping[str, Selection],
    time_range: TimeRange,
    interval: timedelta,
) -> str:
    """Both steps: the InfluxQL Grafana sends for ``text``."""
    return expand_macros(interpolate_variables(text, variables, selection, kind), time_range, interval)


def references(text: str) -> list[str]:
    """Names referenced in ``text`` (variables and macros alike), in order of appearance."""
    return [match.group(1) or match.group(2) or match.group(4) for match in _REFERENCE.finditer(text)]


__all__ = [
    "ALL_VALUE",
    "QueryKind",
    "Selection",
    "TimeRange",
    "Variable",
    "escape_regex",
    "expand_macros",
    "format_interval",
    "influxql_format",
    "interpolate_variables",
    "js_parses_as_number",
    "references",
    "render_query",
]
