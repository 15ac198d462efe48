"""Scenario files (YAML): read, check, and say exactly where a bad one is wrong.

A bad file gets one :class:`FileProblem` per mistake, each with the line and column in the file and
the field's path, e.g. ``scenarios/x.yaml:14:9: timeline[2].fault.fraction: Input should be less
than or equal to 1``. The YAML is composed into nodes (which keep their marks) before it is
constructed; a pydantic error location (field names, list indexes, and the tags of discriminated
unions, which are not in the file) is walked down the node tree to the deepest node it reaches:

* a wrong value points at the value;
* an unknown field points at its key; a missing field at the mapping that lacks it;
* an unknown fault or step kind (a discriminator) points at the ``fault:``/``step:`` line.

The meaning is checked too (:func:`twin.scenarios.timeline.expand` against the scenario's own
fleet): offsets beyond the duration, unknown step references, selections that match no pump.

Duplicate keys are an error (plain YAML keeps the last one silently). Only :func:`load_scenario`
and :func:`load_library` read files; :func:`parse_scenario` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from twin.scenarios.fleet import resolve_fleet
from twin.scenarios.model import Location, Scenario, ScenarioInvalid, ScenarioProblem, format_location
from twin.scenarios.timeline import expand

_PACKAGED_CATALOGUE: Final = Path(__file__).resolve().parents[1] / "scenario_catalogue"
_SOURCE_CATALOGUE: Final = Path(__file__).resolve().parents[2] / "scenarios"
CATALOGUE_DIR: Final = _PACKAGED_CATALOGUE if _PACKAGED_CATALOGUE.is_dir() else _SOURCE_CATALOGUE
"""The scenario catalogue: inside an installed package (the wheel carries it), else the source tree's
``scenarios/``."""
"""The scenario catalogue shipped with PumpTwin (one ``<name>.yaml`` per scenario)."""

SUFFIXES: Final = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One mistake in a scenario file. ``line`` and ``column`` are 1-based."""

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.path}: {self.message}"


class ScenarioFileError(ValueError):
    """A scenario file that cannot be used; ``problems`` lists every mistake found (at least one)."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class _Marks:
    """Where each path of the document sits: the node, and for mapping entries the key's mark."""

    nodes: dict[Location, yaml.Node]
    keys: dict[Location, yaml.Mark]


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """A checked scenario from YAML ``text``; raises :class:`ScenarioFileError` naming line and field."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise ScenarioFileError(
                [FileProblem(source, line, column, "(yaml)", f"not valid YAML: {exc.problem or exc}")]
            ) from None
        if root is None:
            raise ScenarioFileError([FileProblem(source, 1, 1, "(scenario)", "the file is empty")])
        marks = _Marks({}, {})
        problems: list[ScenarioProblem] = []
        _index(root, (), marks, problems)
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    if problems:
        raise ScenarioFileError([_locate(p, marks, source) for p in problems])
    if not isinstance(data, dict):
        raise ScenarioFileError([_locate(ScenarioProblem((), "a scenario is a mapping of fields"), marks, source)])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioFileError([_locate(p, marks, source) for p in _pydantic_problems(exc)]) from None
    try:
        fleet = resolve_fleet(scenario)
        expand(scenario, fleet.members, fleet.epoch)
    except ScenarioInvalid as exc:
        raise ScenarioFileError([_locate(p, marks, source) for p in exc.problems]) from None
    return scenario


def load_scenario(path: Path) -> Scenario:
    """Read and check one scenario file (see :func:`parse_scenario`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError([FileProblem(str(path), 1, 1, "(file)", f"cannot read: {exc}")]) from None
    return parse_scenario(text, str(path))


def find_scenario(name_or_path: str | Path, directory: Path = CATALOGUE_DIR) -> Path:
    """A scenario file given as a path, or as the name of a scenario of ``directory``."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in SUFFIXES:
        return path
    return directory / f"{name_or_path}.yaml"


def scenario_files(directory: Path) -> list[Path]:
    """The scenario files of a directory, by name."""
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def load_library(directory: Path = CATALOGUE_DIR) -> dict[str, Scenario]:
    """Every scenario of ``directory`` by name. Raises :class:`ScenarioFileError` with the problems
    of every bad file, and for two files with the same ``name``."""
    library: dict[str, Scenario] = {}
    problems: list[FileProblem] = []
    for path in scenario_files(directory):
        try:
            scenario = load_scenario(path)
        except ScenarioFileError as exc:
            problems += exc.problems
            continue
        if scenario.name in library:
            problems.append(FileProblem(str(path), 1, 1, "name", f"another file already has name {scenario.name!r}"))
            continue
        library[scenario.name] = scenario
    if problems:
        raise ScenarioFileError(problems)
    return library


# ------------------------------------------------------------------------------------- the marks


def _index(node: yaml.Node, path: Location, marks: _Marks, problems: list[ScenarioProblem]) -> None:
    marks.nodes[path] = node
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(ScenarioProblem(path, "a key must be plain text"))
                continue
            key = key_node.value
            if key in seen:
                marks.keys.setdefault((*path, key, "#duplicate"), key_node.start_mark)
                problems.append(ScenarioProblem((*path, key, "#duplicate"), f"key {key!r} appears twice"))
                continue
            seen.add(key)
            marks.keys[(*path, key)] = key_node.start_mark
            _index(value_node, (*path, key), marks, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), marks, problems)


def _locate(problem: ScenarioProblem, marks: _Marks, source: str) -> FileProblem:
    """The line of the deepest node ``problem.loc`` reaches (a mapping entry's key line, a list
    item's first line). The path shown drops the parts that are not in the file (tags of
    discriminated unions) except a last one: a missing field is named, at its mapping's line."""
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


def _pydantic_problems(exc: ValidationError) -> list[ScenarioProblem]:
    out: list[ScenarioProblem] = []
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
        out.append(ScenarioProblem(loc, message))
    return _unique(out)


def _unique(problems: Iterable[ScenarioProblem]) -> list[ScenarioProblem]:
    seen: set[tuple[Location, str]] = set()
    out = []
    for p in problems:
        if (p.loc, p.message) not in seen:
            seen.add((p.loc, p.message))
            out.append(p)
    return out
