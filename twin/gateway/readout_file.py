"""Read-out files (JSON or YAML): read, check, and say exactly where a bad one is wrong.

A bad file gets one :class:`FileProblem` per mistake, with its line and column and the field's path, e.g.
``visit-03.interrogation.json:41:9: events[2].measured_residual_ml: Input should be greater than or equal
to 0``. The text is composed into YAML nodes (which keep their marks; JSON is YAML's flow style), and a
pydantic error location is walked down the node tree to the deepest node it reaches: a wrong value points
at the value, an unknown field at its key, a missing field at the mapping that lacks it, an unknown
``event`` kind at the ``event`` line. A ``.json`` file is *read* by :mod:`json` (exact JSON semantics:
``1e3`` is a number, duplicate keys refused); YAML only supplies the marks.

Duplicate keys are an error. The meaning is checked too (:func:`twin.gateway.readout.check`). Only
:func:`load_readout` reads a file; :func:`parse_readout` is pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import TypeAdapter, ValidationError

from twin.gateway.readout import Interrogation, Location, ReadoutProblem, check

SUFFIXES: Final = (".json", ".yaml", ".yml")
"""File suffixes a read-out may have; the gateway's inbox ignores other files."""

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
"""Largest read-out file accepted: a year of a busy pump's event log is well under 1 MiB."""

_READOUT: Final = TypeAdapter(Interrogation)


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One mistake in a read-out file. ``line`` and ``column`` are 1-based."""

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.path}: {self.message}"


class ReadoutFileError(ValueError):
    """A read-out that cannot be published; ``problems`` lists every mistake found (at least one)."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class _Marks:
    nodes: dict[Location, yaml.Node]
    keys: dict[Location, yaml.Mark]


def format_location(loc: Location) -> str:
    """``events[2].at`` from ``("events", 2, "at")``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(read-out)"


def parse_readout(text: str, source: str = "<read-out>", *, json_text: bool | None = None) -> Interrogation:
    """A checked read-out from ``text``; raises :class:`ReadoutFileError` naming line and field.

    ``json_text``: read the values as JSON (default: when ``source`` ends in ``.json``)."""
    as_json = source.endswith(".json") if json_text is None else json_text
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = "JSON" if as_json else "YAML"
            raise ReadoutFileError(
                [FileProblem(source, line, column, f"({what.lower()})", f"not valid {what}: {exc.problem or exc}")]
            ) from None
        if root is None:
            raise ReadoutFileError([FileProblem(source, 1, 1, "(read-out)", "the file is empty")])
        marks = _Marks({}, {})
        problems: list[ReadoutProblem] = []
        _index(root, (), marks, problems)
        data = _json_values(text, source) if as_json else loader.construct_document(root)
    finally:
        loader.dispose()
    if problems:
        raise ReadoutFileError([_locate(p, marks, source) for p in problems])
    if not isinstance(data, dict):
        raise ReadoutFileError([_locate(ReadoutProblem((), "a read-out is a mapping of fields"), marks, source)])
    try:
        readout = _READOUT.validate_python(data)
    except ValidationError as exc:
        raise ReadoutFileError([_locate(p, marks, source) for p in _pydantic_problems(exc)]) from None
    meaning = check(readout)
    if meaning:
        raise ReadoutFileError([_locate(p, marks, source) for p in meaning])
    return readout


def load_readout(path: Path) -> Interrogation:
    """Read and check one read-out file (see :func:`parse_readout`)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReadoutFileError(
                [FileProblem(str(path), 1, 1, "(file)", f"{size} bytes; at most {MAX_FILE_BYTES} accepted")]
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReadoutFileError([FileProblem(str(path), 1, 1, "(file)", f"cannot read: {exc}")]) from None
    return parse_readout(text, str(path), json_text=path.suffix == ".json")


def _json_values(text: str, source: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise ReadoutFileError(
            [FileProblem(source, exc.lineno, exc.colno, "(json)", f"not valid JSON: {exc.msg}")]
        ) from None
    except ValueError as exc:  # YAML marked the duplicates already; this is NaN/Infinity
        raise ReadoutFileError([FileProblem(source, 1, 1, "(json)", f"not valid JSON: {exc}")]) from None


# ------------------------------------------------------------------------------------- the marks


def _index(node: yaml.Node, path: Location, marks: _Marks, problems: list[ReadoutProblem]) -> None:
    marks.nodes[path] = node
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(ReadoutProblem(path, "a key must be plain text"))
                continue
            key = key_node.value
            if key in seen:
                marks.keys.setdefault((*path, key, "#duplicate"), key_node.start_mark)
                problems.append(ReadoutProblem((*path, key, "#duplicate"), f"key {key!r} appears twice"))
                continue
            seen.add(key)
            marks.keys[(*path, key)] = key_node.start_mark
            _index(value_node, (*path, key), marks, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), marks, problems)


def _locate(problem: ReadoutProblem, marks: _Marks, source: str) -> FileProblem:
    """The line of the deepest node ``problem.loc`` reaches (a mapping entry's key line, a list item's
    first line); the path shown drops the parts that are not in the file (tags of discriminated unions)
    except a last one: a missing field is named, at its mapping's line."""
    loc = problem.loc
    if loc and loc[-1] == "#duplicate":
        mark = marks.keys[loc]
        return FileProblem(source, mark.line + 1, mark.column + 1, format_location(loc[:-1]), problem.message)
    reached: Location = ()
    shown: list[str | int] = []
    for n, part in enumerate(loc):
        step = (*reached, part)
        if step in marks.nodes:
            reached = step
            shown.append(part)
        elif n == len(loc) - 1:
            shown.append(part)
    mark = marks.keys.get(reached) or marks.nodes[reached].start_mark
    return FileProblem(source, mark.line + 1, mark.column + 1, format_location(tuple(shown)), problem.message)


def _pydantic_problems(exc: ValidationError) -> list[ReadoutProblem]:
    out: list[ReadoutProblem] = []
    for err in exc.errors(include_url=False):
        loc: Location = tuple(err["loc"])
        kind = err["type"]
        message = err["msg"]
        ctx: dict[str, Any] = err.get("ctx") or {}
        if kind == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}" if loc else message
        elif kind == "missing":
            message = f"missing field {loc[-1]!r}" if loc else message
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            discriminator = str(ctx.get("discriminator", "")).strip("'")
            if discriminator:
                loc = (*loc, discriminator)
            if kind == "union_tag_invalid":
                message = f"unknown {discriminator} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
            else:
                message = f"missing field {discriminator!r}"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        out.append(ReadoutProblem(loc, message))
    return _unique(out)


def _unique(problems: Iterable[ReadoutProblem]) -> list[ReadoutProblem]:
    seen: set[tuple[Location, str]] = set()
    out = []
    for p in problems:
        if (p.loc, p.message) not in seen:
            seen.add((p.loc, p.message))
            out.append(p)
    return out
