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

import copy
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
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

FILE_LEVEL: Final = "(file)"
"""The ``path`` of a problem with the file as a whole (cannot be read, no such scenario)."""


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One mistake in a scenario file. ``line`` and ``column`` are 1-based."""

    source: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        if self.path == FILE_LEVEL:
            return f"{self.source}: {self.message}"
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
    shadowed: set[str] = field(default_factory=set)
    """Scalar values of keys given twice (the first value: YAML keeps the last)."""


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """A checked scenario from YAML ``text``; raises :class:`ScenarioFileError` naming line and field.

    Every mistake is reported in one pass: duplicate keys, the fields pydantic refuses, and the
    meaning (offsets, references, selections) of everything that is valid. A list item with a
    mistake (a step, an expectation, a pump) is left out of a second validation so that the rest
    is still checked; a problem that only follows from leaving it out (a reference to that step,
    a selection of that pump) is not reported (see :func:`_prune`)."""
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
    if not isinstance(data, dict):
        problems.append(ScenarioProblem((), "a scenario is a mapping of fields"))
        raise ScenarioFileError([_locate(p, marks, source) for p in problems])
    duplicates = [p.loc[:-2] for p in problems if p.loc and p.loc[-1] == "#duplicate"]
    scenario, found = _check(data, duplicates, marks.shadowed)
    problems += found
    if problems:
        located = [_locate(p, marks, source) for p in _unique(problems)]
        raise ScenarioFileError(sorted(located, key=lambda p: (p.line, p.column)))
    assert scenario is not None
    return scenario


MAX_CHECK_PASSES: Final = 5
"""Validations of a file with its bad items left out: each pass may uncover mistakes that the
previous one's could not reach (a model's own checks run only once its fields are valid)."""

_NEUTRAL_VALUES: Final[dict[str, Any]] = {
    "name": "unnamed",
    "title": "untitled",
    "description": "no description",
    "learning_objectives": ["none"],
}
"""Stand-ins for top-level fields that the meaning checks do not read, so that a bad name or title
does not hide a timeline's mistakes."""


def _check(
    data: dict[str, Any], duplicates: list[Location], shadowed: set[str]
) -> tuple[Scenario | None, list[ScenarioProblem]]:
    """Validate ``data`` (fields, then meaning); every problem found, and the scenario when there
    are none. Problems are located in ``data`` as given, whatever was left out to find them.
    ``duplicates``: mappings with a key given twice (already reported), left out of the checks
    with the identifiers ``shadowed`` by the second value."""
    problems: list[ScenarioProblem] = []
    pruned = _Pruned(data)
    if duplicates:
        pruned.prune_at(duplicates)
        pruned.names |= shadowed
    for _ in range(MAX_CHECK_PASSES):
        try:
            scenario = Scenario.model_validate(pruned.data)
        except ValidationError as exc:
            found = [p for p in (pruned.original(q) for q in _pydantic_problems(exc)) if p is not None]
            problems += found
            if not pruned.prune_at([p.loc for p in found]):
                return None, problems
            continue
        try:
            fleet = resolve_fleet(scenario)
            expand(scenario, fleet.members, fleet.epoch)
        except ScenarioInvalid as exc:
            problems += [p for p in (pruned.original(q) for q in exc.problems) if p is not None]
        return (scenario if not problems else None), problems
    return None, problems


class _Pruned:
    """The scenario's data with its bad parts left out, and the way back to the file's locations.

    A bad list item (the first list index of a problem's location) is removed; any other bad field
    is removed (a field with a default then takes it) or, for a name, title or description, given a
    neutral stand-in. Identifiers of removed items (``id``, ``device_id``) are remembered: a later
    problem located at a value that names one of them is a consequence of the removal, not a
    mistake of the file."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data: dict[str, Any] = copy.deepcopy(data)
        self._kept: dict[Location, list[int]] = {}
        """Per list (original location): the original index of each item still in the pruned list."""
        self._gone: set[Location] = set()
        self.names: set[str] = set()
        self._raw = data

    def original(self, problem: ScenarioProblem) -> ScenarioProblem | None:
        """``problem`` (located in the pruned data) located in the original data, or ``None`` if it
        only follows from what was left out."""
        loc: list[str | int] = []
        for part in problem.loc:
            if isinstance(part, int) and tuple(loc) in self._kept:
                kept = self._kept[tuple(loc)]
                part = kept[part] if part < len(kept) else part
            loc.append(part)
        where = tuple(loc)
        if any(where[: len(g)] == g for g in self._gone):
            return None  # e.g. "missing field" for a field that was removed
        if self.names and _names_any(_at(self._raw, where), self.names):
            return None
        return ScenarioProblem(where, problem.message)

    def prune_at(self, locations: list[Location]) -> bool:
        """Leave out what each location (original) points into; ``False`` if nothing more could go."""
        changed = False
        for loc in sorted(set(locations), key=len, reverse=True):
            target = _prune_target(loc)
            if target is None or any(target[: len(g)] == g for g in self._gone):
                continue
            if self._remove(target):
                self._gone.add(target)
                changed = True
        return changed

    def _remove(self, target: Location) -> bool:
        *parent_loc, last = target
        parent = self._locate(tuple(parent_loc))
        if isinstance(last, int):
            if not isinstance(parent, list):
                return False
            kept = self._kept.setdefault(tuple(parent_loc), list(range(len(parent))))
            if last not in kept:
                return False
            position = kept.index(last)
            self.names |= _identifiers(parent[position])
            del parent[position]
            del kept[position]
            return True
        if not isinstance(parent, dict) or last not in parent:
            return False
        if len(target) == 1 and last in _NEUTRAL_VALUES:
            if parent[last] == _NEUTRAL_VALUES[last]:
                return False
            parent[last] = copy.deepcopy(_NEUTRAL_VALUES[last])
            return True
        del parent[last]
        return True

    def _locate(self, loc: Location) -> Any:
        """The node of the pruned data at an original location (``None`` if it is gone)."""
        node: Any = self.data
        for n, part in enumerate(loc):
            if isinstance(part, int):
                kept = self._kept.get(tuple(loc[:n]))
                if kept is not None:
                    if part not in kept:
                        return None
                    part = kept.index(part)
                if not isinstance(node, list) or part >= len(node):
                    return None
                node = node[part]
            else:
                if not isinstance(node, dict) or part not in node:
                    return None
                node = node[part]
        return node


def _prune_target(loc: Location) -> Location | None:
    """What to leave out for a problem at ``loc``: the list item it is in (its first index), else
    the top-level field it names (``None`` for the scenario as a whole)."""
    for n, part in enumerate(loc):
        if isinstance(part, int):
            return loc[: n + 1]
    return loc[:1] or None


def _identifiers(item: Any) -> set[str]:
    if not isinstance(item, dict):
        return set()
    return {str(item[k]) for k in ("id", "device_id") if isinstance(item.get(k), str | int)}


def _at(data: Any, loc: Location) -> Any:
    node = data
    for part in loc:
        in_list = isinstance(part, int) and isinstance(node, list) and part < len(node)
        if not (in_list or (isinstance(part, str) and isinstance(node, dict) and part in node)):
            return None
        node = node[part]
    return node


def _names_any(value: Any, names: set[str]) -> bool:
    """Does ``value`` (a scalar, or a selection's lists) name one of ``names``?"""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value) in names
    if isinstance(value, list):
        return bool(value) and all(_names_any(v, names) for v in value)
    if isinstance(value, dict):
        return any(_names_any(v, names) for v in value.values() if isinstance(v, list))
    return False


def load_scenario(path: Path) -> Scenario:
    """Read and check one scenario file (see :func:`parse_scenario`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError([FileProblem(str(path), 1, 1, FILE_LEVEL, f"cannot read: {exc}")]) from None
    return parse_scenario(text, str(path))


def find_scenario(name_or_path: str | Path, directory: Path = CATALOGUE_DIR) -> Path:
    """A scenario file given as a path, or as the name of a scenario of ``directory``.

    Raises :class:`ScenarioFileError` for a name that is neither a file nor in the catalogue; the
    message lists the catalogue's names (the closest first, when one is close)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in SUFFIXES or len(path.parts) > 1:
        return path
    candidate = directory / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    names = catalogue_names(directory)
    close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    message = (
        f"no scenario {str(name_or_path)!r} (neither a file nor in the catalogue {directory}); {hint}"
        f"the catalogue has: {', '.join(names) if names else '(nothing)'}"
    )
    raise ScenarioFileError([FileProblem(str(name_or_path), 1, 1, FILE_LEVEL, message)])


def catalogue_names(directory: Path = CATALOGUE_DIR) -> list[str]:
    """The names of the scenarios of ``directory`` (file names without suffix), sorted."""
    return [p.stem for p in scenario_files(directory)] if directory.is_dir() else []


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
                first = next(v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key)
                if isinstance(first, yaml.ScalarNode):
                    marks.shadowed.add(first.value)
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
