"""A scenario expanded against a fleet: timed commands, the expected outcomes and the abort rules.

:func:`expand` is where a scenario's *meaning* is checked: a step past the end of the run, an
``after`` that names no step, a selection that matches no pump, a refill the pump cannot hold, a
refill of a pump whose drug is unknown. Every problem carries its location in the scenario, so a
file loader can point at the line.

Times are seconds of simulation time after the start of the run (``at_s``); ``start`` is the
datetime of that instant, needed only for the absolute dates a command carries (a refill's
reminder). The runner turns each :class:`Cue` into commands sent through the twin, in order.

Pure: no I/O, no clock; the same scenario and fleet always expand to the same timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from twin.contract.alarms import Priority
from twin.contract.messages import (
    Action,
    CatheterAccessPortInjectionFault,
    ClearFaultAction,
    ClinicianBolusAction,
    IncompleteWithdrawalFault,
    InjectFaultAction,
    InterrogateAction,
    PatientBolusAction,
    PocketFillFault,
    RefillAction,
    ReprogramAction,
    WrongConcentrationFault,
)
from twin.scenarios.fleet import FleetMember, select
from twin.scenarios.model import (
    START,
    AlarmExpectation,
    AlarmFloodExpectation,
    BolusStep,
    ClearFaultStep,
    DeviceSelection,
    InjectFaultStep,
    InterrogateStep,
    Location,
    NoAlarmExpectation,
    NoDeliveryAbort,
    PatientSymptomStep,
    RefillStep,
    ReprogramStep,
    Scenario,
    ScenarioInvalid,
    ScenarioProblem,
    Severity,
    StaffResponse,
    StepKind,
    UnacknowledgedAlarmAbort,
    format_duration,
)

ExpectationKind = Literal["alarm", "no_alarm", "alarm_flood"]
AbortKind = Literal["unacknowledged_alarm", "no_delivery"]

STEP_ID_PREFIX: Final = "step-"
"""A step without an ``id`` is called ``step-<n>`` (1-based position in the timeline) in reports."""


@dataclass(frozen=True, slots=True)
class Cue:
    """One step as it happens to one pump: at ``at_s``, send ``actions`` through the twin in order
    (empty for a patient symptom, which is only recorded)."""

    at_s: float
    step_index: int
    step_id: str
    step: StepKind
    device_id: str
    actions: tuple[Action, ...]
    symptom: str | None = None
    severity: Severity | None = None
    note: str | None = None
    responses: tuple[StaffResponse, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpectedOutcome:
    """One row of the report's expectations, over the window ``[window_start_s, window_end_s]``.

    * ``alarm``: ``device_ids`` holds one pump, which must see ``code`` (raised, or cleared for
      ``event == "clear"``) in the window;
    * ``no_alarm``: none of ``device_ids`` may see it in the window;
    * ``alarm_flood``: an ISA-18.2 flood must start at ``site`` in the window.
    """

    index: int
    kind: ExpectationKind
    code: str | None
    event: Literal["raise", "clear"]
    device_ids: tuple[str, ...]
    site: str | None
    after: str
    window_start_s: float
    window_end_s: float
    responses: tuple[StaffResponse, ...] = ()
    note: str | None = None

    @property
    def description(self) -> str:
        window = f"{format_duration(self.window_end_s - self.window_start_s)} after {self.after}"
        if self.kind == "alarm_flood":
            return f"alarm flood at {self.site} within {window}"
        what = self.code if self.event == "raise" else f"{self.code} cleared"
        where = self.device_ids[0] if len(self.device_ids) == 1 else f"{len(self.device_ids)} pumps"
        if self.kind == "alarm":
            return f"{what} on {where} within {window}"
        return f"no {what} on {where} within {window}"


@dataclass(frozen=True, slots=True)
class AbortRule:
    """A resolved abort condition: ``kind`` over ``device_ids`` for longer than ``longer_than_s``."""

    index: int
    kind: AbortKind
    longer_than_s: float
    device_ids: frozenset[str]
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything a run of one scenario needs, decided before it starts."""

    scenario: str
    duration_s: float
    cues: tuple[Cue, ...]
    expectations: tuple[ExpectedOutcome, ...]
    aborts: tuple[AbortRule, ...]
    step_times: Mapping[str, float]
    device_ids: tuple[str, ...]
    sites: Mapping[str, str]

    @property
    def devices_touched(self) -> tuple[str, ...]:
        """Pumps some step sends commands to (in fleet order)."""
        touched = {c.device_id for c in self.cues if c.actions}
        return tuple(d for d in self.device_ids if d in touched)


def step_name(index: int, step_id: str | None) -> str:
    return step_id if step_id is not None else f"{STEP_ID_PREFIX}{index + 1}"


def expand(scenario: Scenario, members: Sequence[FleetMember], start: datetime) -> Timeline:
    """The scenario's timeline against ``members`` (see the module docstring). Raises
    :class:`~twin.scenarios.model.ScenarioInvalid` with every problem found."""
    problems: list[ScenarioProblem] = []
    duration_s = scenario.duration.total_seconds()
    step_times: dict[str, float] = {START: 0.0}
    cues: list[Cue] = []
    for i, step in enumerate(scenario.timeline):
        loc: Location = ("timeline", i)
        at_s = step.at.total_seconds()
        if at_s > duration_s:
            problems.append(
                ScenarioProblem(
                    (*loc, "at"),
                    f"{format_duration(at_s)} is beyond the scenario's duration of {format_duration(duration_s)}",
                )
            )
        if step.id is not None:
            if step.id == START:
                problems.append(ScenarioProblem((*loc, "id"), f"{START!r} is reserved for the start of the run"))
            elif step.id in step_times:
                problems.append(ScenarioProblem((*loc, "id"), f"step id {step.id!r} is used twice"))
            else:
                step_times[step.id] = at_s
        picked, found = select(step.devices, members, (*loc, "devices"))
        problems += found
        for member in picked:
            cue = _cue(step, i, at_s, member, start, loc, problems)
            if cue is not None:
                cues.append(cue)
    expectations = _expectations(scenario, members, step_times, duration_s, problems)
    aborts = _aborts(scenario, members, problems)
    if problems:
        raise ScenarioInvalid(problems)
    order = {m.device_id: m.index for m in members}
    cues.sort(key=lambda c: (c.at_s, c.step_index, order[c.device_id]))
    return Timeline(
        scenario=scenario.name,
        duration_s=duration_s,
        cues=tuple(cues),
        expectations=tuple(expectations),
        aborts=tuple(aborts),
        step_times=step_times,
        device_ids=tuple(m.device_id for m in members),
        sites={m.device_id: m.site for m in members},
    )


def _cue(
    step: InjectFaultStep
    | ClearFaultStep
    | PatientSymptomStep
    | RefillStep
    | ReprogramStep
    | BolusStep
    | InterrogateStep,
    index: int,
    at_s: float,
    member: FleetMember,
    start: datetime,
    loc: Location,
    problems: list[ScenarioProblem],
) -> Cue | None:
    name = step_name(index, step.id)
    actions: tuple[Action, ...]
    match step:
        case InjectFaultStep():
            actions = (InjectFaultAction(fault=step.fault),)
        case ClearFaultStep():
            actions = (ClearFaultAction(fault=step.fault),)
        case PatientSymptomStep():
            return Cue(
                at_s,
                index,
                name,
                step.step,
                member.device_id,
                (),
                step.symptom,
                step.severity,
                step.note,
                tuple(step.responses),
            )
        case RefillStep():
            refill = _refill(step, at_s, member, start, loc, problems)
            if refill is None:
                return None
            armed: list[Action] = []
            if step.pocket_fill_fraction is not None:
                armed.append(InjectFaultAction(fault=PocketFillFault(fraction=step.pocket_fill_fraction)))
            if step.syringe_concentration_mg_per_ml is not None:
                armed.append(
                    InjectFaultAction(
                        fault=WrongConcentrationFault(
                            actual_concentration_mg_per_ml=step.syringe_concentration_mg_per_ml
                        )
                    )
                )
            if step.residual_withdrawn_fraction is not None:
                fraction = step.residual_withdrawn_fraction
                armed.append(InjectFaultAction(fault=IncompleteWithdrawalFault(withdrawn_fraction=fraction)))
            if step.into_catheter_access_port:
                armed.append(InjectFaultAction(fault=CatheterAccessPortInjectionFault()))
            actions = (*armed, refill)
        case ReprogramStep():
            actions = (
                ReprogramAction(
                    program=step.program,
                    concentration_mg_per_ml=step.concentration_mg_per_ml,
                    low_reservoir_threshold_ml=step.low_reservoir_threshold_ml,
                ),
            )
        case BolusStep():
            if step.source == "patient":
                actions = (PatientBolusAction(),)
            else:
                assert step.volume_ml is not None
                assert step.duration_minutes is not None
                actions = (ClinicianBolusAction(volume_ml=step.volume_ml, duration_minutes=step.duration_minutes),)
        case InterrogateStep():
            actions = (InterrogateAction(),)
    return Cue(at_s, index, name, step.step, member.device_id, actions, note=step.note)


def _refill(
    step: RefillStep,
    at_s: float,
    member: FleetMember,
    start: datetime,
    loc: Location,
    problems: list[ScenarioProblem],
) -> RefillAction | None:
    drug = step.drug or member.drug
    concentration = step.concentration_mg_per_ml or member.concentration_mg_per_ml
    if drug is None or concentration is None:
        problems.append(
            ScenarioProblem(
                loc, f"{member.device_id} has not reported its drug: give the refill's drug and concentration_mg_per_ml"
            )
        )
        return None
    capacity = member.reservoir_capacity_ml
    if capacity is not None and step.volume_ml > capacity:
        problems.append(
            ScenarioProblem(
                (*loc, "volume_ml"),
                f"{step.volume_ml:g} mL does not fit {member.device_id}'s {capacity:g} mL reservoir",
            )
        )
        return None
    reminder = None
    if step.refill_reminder_after is not None:
        reminder = start + timedelta(seconds=at_s) + step.refill_reminder_after
    return RefillAction(
        volume_ml=step.volume_ml,
        drug=drug,
        concentration_mg_per_ml=concentration,
        low_reservoir_threshold_ml=step.low_reservoir_threshold_ml,
        refill_reminder_at=reminder,
    )


def _window(
    after: str, within: timedelta | None, step_times: Mapping[str, float], duration_s: float, loc: Location
) -> tuple[float, float] | ScenarioProblem:
    if after not in step_times:
        known = ", ".join(sorted(step_times))
        return ScenarioProblem((*loc, "after"), f"no step with id {after!r} (known: {known})")
    begin = step_times[after]
    end = duration_s if within is None else min(duration_s, begin + within.total_seconds())
    return begin, end


def _expectations(
    scenario: Scenario,
    members: Sequence[FleetMember],
    step_times: Mapping[str, float],
    duration_s: float,
    problems: list[ScenarioProblem],
) -> list[ExpectedOutcome]:
    out: list[ExpectedOutcome] = []
    sites = {m.site for m in members}
    for i, expectation in enumerate(scenario.expect):
        loc: Location = ("expect", i)
        window = _window(expectation.after, expectation.within, step_times, duration_s, loc)
        if isinstance(window, ScenarioProblem):
            problems.append(window)
            devices = getattr(expectation, "devices", None)
            if isinstance(devices, DeviceSelection):  # its own mistakes, in the same pass
                problems += select(devices, members, (*loc, "devices"))[1]
            continue
        begin, end = window
        match expectation:
            case AlarmFloodExpectation():
                if expectation.site not in sites:
                    problems.append(ScenarioProblem((*loc, "site"), f"no site {expectation.site!r} in the fleet"))
                    continue
                out.append(
                    ExpectedOutcome(
                        i,
                        "alarm_flood",
                        None,
                        "raise",
                        (),
                        expectation.site,
                        expectation.after,
                        begin,
                        end,
                        tuple(expectation.responses),
                        expectation.note,
                    )
                )
            case AlarmExpectation():
                picked, found = select(expectation.devices, members, (*loc, "devices"))
                problems += found
                for member in picked:
                    out.append(
                        ExpectedOutcome(
                            i,
                            "alarm",
                            expectation.code.value,
                            expectation.event,
                            (member.device_id,),
                            member.site,
                            expectation.after,
                            begin,
                            end,
                            tuple(expectation.responses),
                            expectation.note,
                        )
                    )
            case NoAlarmExpectation():
                picked, found = select(expectation.devices, members, (*loc, "devices"))
                problems += found
                if picked:
                    out.append(
                        ExpectedOutcome(
                            i,
                            "no_alarm",
                            expectation.code.value,
                            expectation.event,
                            tuple(m.device_id for m in picked),
                            None,
                            expectation.after,
                            begin,
                            end,
                            (),
                            expectation.note,
                        )
                    )
    return out


def _aborts(scenario: Scenario, members: Sequence[FleetMember], problems: list[ScenarioProblem]) -> list[AbortRule]:
    out: list[AbortRule] = []
    for i, condition in enumerate(scenario.abort_when):
        loc: Location = ("abort_when", i)
        if condition.devices is None:
            picked = list(members)
        else:
            picked, found = select(condition.devices, members, (*loc, "devices"))
            problems += found
        devices = frozenset(m.device_id for m in picked)
        limit = condition.longer_than.total_seconds()
        match condition:
            case UnacknowledgedAlarmAbort():
                out.append(AbortRule(i, "unacknowledged_alarm", limit, devices, condition.priority))
            case NoDeliveryAbort():
                out.append(AbortRule(i, "no_delivery", limit, devices))
    return out
