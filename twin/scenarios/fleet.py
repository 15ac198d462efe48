"""A scenario's pumps: the fleet it asks for, and which pumps a selection picks.

Two kinds of fleet meet selections:

* a **headless** run builds the scenario's own fleet (:func:`resolve_fleet`: generated from a seed
  with its overrides applied, or written out inline) and selects among its pumps;
* a **live** run owns its pumps too: the same fleet, with each site renamed ``tr-<run>.<site>``
  (:func:`owned_fleet`) so that two runs, or a run and the rest of the fleet, never share a pump,
  a site or a site's alarms; the run's own simulation starts from the scenario's baseline.

Both are reduced to :class:`FleetMember` rows. ``index`` is the position in the fleet sorted by
device id, so it means the same thing for generated, inline and live fleets.

Pure: no I/O, no clock; the same scenario and seed always give the same fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from twin.contract.messages import Drug
from twin.scenarios.model import (
    DeviceSelection,
    GeneratedFleet,
    InlineFleet,
    Location,
    Scenario,
    ScenarioInvalid,
    ScenarioProblem,
)
from twin.sim.fleet import PumpSpec, default_epoch, generate_fleet
from twin.sim.simulation import FleetSimulation


@dataclass(frozen=True, slots=True)
class FleetMember:
    """A pump as selections see it. ``drug``, ``concentration_mg_per_ml`` and
    ``reservoir_capacity_ml`` are ``None`` when a live device has not reported them yet."""

    index: int
    device_id: str
    site: str
    drug: Drug | None
    concentration_mg_per_ml: float | None
    reservoir_capacity_ml: float | None
    simulated: bool = True


@dataclass(frozen=True, slots=True)
class ScenarioFleet:
    """The pumps of a headless run, from simulation second 0 at ``epoch``."""

    epoch: datetime
    seed: int
    specs: tuple[PumpSpec, ...]

    @property
    def members(self) -> tuple[FleetMember, ...]:
        return members_of(self.specs)


def members_of(specs: Iterable[PumpSpec]) -> tuple[FleetMember, ...]:
    """Selection rows of a fleet's pumps (sorted by device id)."""
    ordered = sorted(specs, key=lambda s: s.device_id)
    return tuple(
        FleetMember(i, s.device_id, s.site, s.drug, s.concentration_mg_per_ml, s.reservoir_capacity_ml)
        for i, s in enumerate(ordered)
    )


def ordered_members(rows: Iterable[FleetMember]) -> tuple[FleetMember, ...]:
    """``rows`` sorted by device id, with ``index`` set to the position (for live fleets)."""
    ordered = sorted(rows, key=lambda m: m.device_id)
    return tuple(
        FleetMember(i, m.device_id, m.site, m.drug, m.concentration_mg_per_ml, m.reservoir_capacity_ml, m.simulated)
        for i, m in enumerate(ordered)
    )


def select(
    selection: DeviceSelection, members: Sequence[FleetMember], loc: Location
) -> tuple[list[FleetMember], list[ScenarioProblem]]:
    """The members ``selection`` picks (in fleet order), and the problems with it: a named pump, site,
    drug or index the fleet does not have, or nothing picked at all. ``loc`` is where the selection
    sits in the scenario, for the problems' locations."""
    problems: list[ScenarioProblem] = []
    if selection.all:
        return list(members), problems
    ids = {m.device_id for m in members}
    sites = {m.site for m in members}
    drugs = {m.drug for m in members}
    for k, device_id in enumerate(selection.ids or []):
        if device_id not in ids:
            problems.append(ScenarioProblem((*loc, "ids", k), f"no pump {device_id!r} in the fleet"))
    for k, site in enumerate(selection.sites or []):
        if site not in sites:
            problems.append(ScenarioProblem((*loc, "sites", k), f"no site {site!r} in the fleet"))
    for k, drug in enumerate(selection.drugs or []):
        if drug not in drugs:
            problems.append(ScenarioProblem((*loc, "drugs", k), f"no pump on {drug.value} in the fleet"))
    for k, index in enumerate(selection.index or []):
        if index >= len(members):
            problems.append(
                ScenarioProblem((*loc, "index", k), f"index {index} is past the fleet's {len(members)} pumps")
            )
    picked = [
        m
        for m in members
        if (selection.ids is None or m.device_id in selection.ids)
        and (selection.sites is None or m.site in selection.sites)
        and (selection.drugs is None or m.drug in selection.drugs)
        and (selection.index is None or m.index in selection.index)
    ]
    if not picked and not problems:
        problems.append(ScenarioProblem(loc, "the selection matches no pump of the fleet"))
    return picked, problems


def resolve_fleet(scenario: Scenario, *, seed: int | None = None) -> ScenarioFleet:
    """The scenario's pumps for a headless run. ``seed`` replaces the scenario's seed (and the
    generated fleet's, unless the fleet names its own). Raises :class:`ScenarioInvalid` for an
    override that picks nothing or makes an impossible pump, and for repeated device ids."""
    run_seed = scenario.seed if seed is None else seed
    epoch = scenario.start or default_epoch()
    fleet = scenario.fleet
    problems: list[ScenarioProblem] = []
    if isinstance(fleet, InlineFleet):
        specs = list(fleet.pumps)
        seen: set[str] = set()
        for j, spec in enumerate(specs):
            if spec.device_id in seen:
                problems.append(
                    ScenarioProblem(("fleet", "pumps", j, "device_id"), f"device_id {spec.device_id!r} appears twice")
                )
            seen.add(spec.device_id)
    else:
        specs = _generated(fleet, run_seed if fleet.seed is None else fleet.seed, epoch, problems)
    if problems:
        raise ScenarioInvalid(problems)
    return ScenarioFleet(epoch, run_seed, tuple(specs))


def owned_fleet(scenario: Scenario, prefix: str, *, seed: int | None = None) -> tuple[Scenario, ScenarioFleet]:
    """The scenario's own fleet (as :func:`resolve_fleet` gives it headless: the same pumps, seed
    and epoch) with every site renamed ``<prefix><site>``, and the scenario with its references
    to sites (selections' ``sites``, a flood's ``site``) renamed alike. Raises
    :class:`ScenarioInvalid` as :func:`resolve_fleet` does, or for a renamed site that is no
    longer a valid id."""
    fleet = resolve_fleet(scenario, seed=seed)
    specs = tuple(s.model_copy(update={"site": f"{prefix}{s.site}"}) for s in fleet.specs)
    body = scenario.model_dump()
    for part in ("timeline", "expect", "abort_when"):
        body[part] = _renamed(body[part], prefix)
    try:
        renamed = Scenario.model_validate(body)
    except ValidationError as exc:
        problems = [ScenarioProblem(tuple(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
        raise ScenarioInvalid(problems) from None
    return renamed, ScenarioFleet(fleet.epoch, fleet.seed, specs)


def _renamed(value: object, prefix: str) -> object:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            if key == "site" and isinstance(item, str):
                out[key] = f"{prefix}{item}"
            elif key == "sites" and isinstance(item, list):
                out[key] = [f"{prefix}{site}" for site in item]
            else:
                out[key] = _renamed(item, prefix)
        return out
    if isinstance(value, list):
        return [_renamed(item, prefix) for item in value]
    return value


def scenario_simulation(scenario: Scenario, fleet: ScenarioFleet) -> FleetSimulation:
    """The simulation of a scenario's fleet, headless or live: its telemetry interval and clinic
    setting, no random faults (only the timeline's). Its sink is the caller's to set."""
    return FleetSimulation(
        list(fleet.specs),
        epoch=fleet.epoch,
        seed=fleet.seed,
        sink=lambda *_: None,
        telemetry_interval_s=scenario.telemetry_every.total_seconds(),
        clinic_refills=scenario.clinic_refills,
        random_faults=False,
    )


def training_fleet(library: Mapping[str, Scenario]) -> tuple[list[PumpSpec], list[str]]:
    """One fleet on which every scenario of ``library`` with an inline fleet can start live: the
    union of their pumps (by device id; a pump two scenarios share is taken from the first by
    name). Returns the pumps and the names of the scenarios whose fleet is generated (they select
    by index or site, so they run on their own fleet: ``pumptwin demo --scenario NAME``)."""
    specs: dict[str, PumpSpec] = {}
    generated: list[str] = []
    for name, scenario in sorted(library.items()):
        if isinstance(scenario.fleet, InlineFleet):
            for spec in scenario.fleet.pumps:
                specs.setdefault(spec.device_id, spec)
        else:
            generated.append(name)
    return [specs[d] for d in sorted(specs)], generated


def _generated(fleet: GeneratedFleet, seed: int, epoch: datetime, problems: list[ScenarioProblem]) -> list[PumpSpec]:
    specs = generate_fleet(fleet.pumps, seed=seed, start=epoch, sites=fleet.sites)
    for i, override in enumerate(fleet.overrides):
        loc: Location = ("fleet", "overrides", i)
        picked, found = select(override.devices, members_of(specs), (*loc, "devices"))
        problems += found
        changes = override.changes.model_dump(exclude_none=True)
        chosen = {m.device_id for m in picked}
        for n, spec in enumerate(specs):
            if spec.device_id not in chosen:
                continue
            try:
                specs[n] = PumpSpec.model_validate(spec.model_dump() | changes)
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    problems.append(
                        ScenarioProblem(
                            (*loc, "changes", *err["loc"]),
                            f"{spec.device_id}: {err['msg'].removeprefix('Value error, ')}",
                        )
                    )
                break  # one pump's problems say it; the others would repeat them
    return specs
