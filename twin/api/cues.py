"""Patient reports as the cue cards of a clinical simulation, and the staff's answers to them.

A scenario's ``patient_symptom`` steps are how staff learn of what a pump cannot say (a catheter
that leaks, a pocket fill, withdrawal): the patient, or whoever is with them, reports it. Each
one a live run has reached is a *cue card*: who reports (the patient of that pump), what, when
(the simulation's time: the pump's clock, and the run's elapsed time), how bad, and, for
instructors or once the run has ended, the answers the scenario expects.

* ``GET /api/cues``: the cards of every run of this process, newest first, each with the answers
  recorded to it;
* ``POST /api/cues/{run_id}/{step_id}/{device_id}/responses`` ``{action, note}``: answer a card
  with a response action of the alarm vocabulary (:class:`twin.alarms.responses.ResponseAction`).
  The twin turns every recorded symptom into a ``patient_report`` alert on the pump
  (:meth:`TwinService.patient_report`, key ``<site>/<device>/patient_report``); the answer is a
  response to that alarm point, through :meth:`TwinService.respond`, so the journal, the live
  stream's ``response`` event, the training desk and the session's score see it exactly as an
  answer given from the alarm list. Its ``detail`` names the card (``run_id``, ``step_id``,
  ``symptom``): a card lists the answers given on it. A response whose command the catalogue fixes
  (interrogate, stop the pump) sends it, as the alarm list does; one whose command needs
  parameters (refill, reprogram, a bolus) is answered from the pump's alarm or page (422).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from twin.alarms.lifecycle import AlarmError, alarm_key
from twin.alarms.responses import MAX_NOTE_LENGTH, RESPONSE_CATALOGUE, ResponseAction
from twin.api import models, views
from twin.api.auth import Reader, Responder
from twin.api.responses import ResponseCommand
from twin.mirror.alerts import TwinAlertCode
from twin.mirror.commands import CommandRefused
from twin.roles import Permission, can
from twin.scenarios.model import Severity
from twin.scenarios.runner import ScenarioRun, ScenarioRunner
from twin.scenarios.timeline import Cue
from twin.service.twin_service import TwinService

CUE_CODE: Final = TwinAlertCode.PATIENT_REPORT.value
"""The twin alert a recorded symptom becomes; a cue's answers are responses to it."""

_COMMAND: Final = TypeAdapter[ResponseCommand](ResponseCommand)

SEVERITY_PRIORITY: Final[dict[Severity, str]] = {
    Severity.LIFE_THREATENING: "high",
    Severity.SEVERE: "high",
    Severity.MODERATE: "medium",
    Severity.MILD: "low",
}
"""How urgent a report is, on the alarms' IEC 60601-1-8 scale (for sorting and colour): a
life-threatening or severe report asks for an answer now, as a high-priority alarm does."""


class CueAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ResponseAction
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH)


def cue_key(site: str, device_id: str) -> str:
    """The alarm point of a pump's patient reports, ``<site>/<device>/patient_report``: one per
    pump, a new report re-raises it (a card is one of its occurrences)."""
    return alarm_key(site, device_id, CUE_CODE)


def on_card(detail: dict[str, Any], run_id: str, step_id: str) -> bool:
    """Was this response given on the card of ``run_id``'s step ``step_id``?"""
    return detail.get("run_id") == run_id and detail.get("step_id") == step_id


def cue_site(run: ScenarioRun, device_id: str, service: TwinService) -> str | None:
    """The site of the pump a cue is about: the simulation's, else the one twin of that id."""
    site = run.sim.sites.get(device_id)
    if site is not None:
        return site
    found = service.fleet.by_id(device_id)
    return found[0].site if len(found) == 1 else None


def _problem(status: int, reason: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "detail": detail})


async def cue_cards(runner: ScenarioRunner, service: TwinService, *, reveal: bool) -> list[dict[str, Any]]:
    """Every card reached so far, newest first. ``reveal``: show the expected answers of live runs
    too (instructors); a trainee sees them once the run has ended."""
    cards = []
    for run in runner.runs.values():
        for step in run.steps:
            cue = step.cue
            if cue.symptom is None or step.status != "recorded":
                continue
            cards.append(await _card(run, cue, service, reveal=reveal or run.status.final))
    cards.sort(key=lambda c: (c["reported_at"], c["cue_id"]), reverse=True)
    return cards


async def _card(run: ScenarioRun, cue: Cue, service: TwinService, *, reveal: bool) -> dict[str, Any]:
    site = cue_site(run, cue.device_id, service)
    key = cue_key(site, cue.device_id) if site is not None else None
    severity = cue.severity or Severity.MODERATE
    responses = [
        r for r in (await service.store.responses(key=key) if key else []) if on_card(r.detail, run.run_id, cue.step_id)
    ]
    return {
        "cue_id": f"{run.run_id}/{cue.step_id}/{cue.device_id}",
        "key": key,
        "run_id": run.run_id,
        "scenario": run.scenario.name,
        "title": run.scenario.title,
        "run_status": run.status.value,
        "step_id": cue.step_id,
        "device_id": cue.device_id,
        "site": site,
        "reported_by": f"the patient with pump {cue.device_id}",
        "reported_at": run.sim.at(run.start_s + cue.at_s).isoformat(),
        "elapsed_s": cue.at_s,
        "symptom": cue.symptom,
        "severity": severity.value,
        "priority": SEVERITY_PRIORITY[severity],
        "expected": [r.value for r in cue.responses] if reveal else None,
        "responses": [views.response_view(r).model_dump(mode="json") for r in responses],
    }


def cue_router(runner: ScenarioRunner, service: TwinService) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["scenarios"])

    @router.get("/cues")
    async def list_cues(user: Reader) -> list[dict[str, Any]]:
        return await cue_cards(runner, service, reveal=can(user.role, Permission.RUN_SCENARIO))

    @router.post("/cues/{run_id}/{step_id}/{device_id}/responses", status_code=201)
    async def answer_cue(run_id: str, step_id: str, device_id: str, body: CueAnswer, user: Responder) -> dict[str, Any]:
        run = runner.runs.get(run_id)
        step = None
        if run is not None:
            step = next((s for s in run.steps if s.cue.step_id == step_id and s.cue.device_id == device_id), None)
        if run is None or step is None or step.cue.symptom is None or step.status != "recorded":
            raise _problem(404, "unknown_cue", f"no patient report {run_id}/{step_id}/{device_id}")
        spec = RESPONSE_CATALOGUE[body.action]
        if spec.applies is not None and spec.preset is None:
            raise _problem(
                422,
                "command_needs_alarm",
                f"{body.action.value} sends a command: answer it from the pump's alarm or page",
            )
        site = cue_site(run, device_id, service)
        if site is None:
            raise _problem(409, "unknown_device", f"the twin mirrors no single device {device_id!r}")
        command = _COMMAND.validate_python(spec.preset) if spec.preset is not None else None
        detail = {"run_id": run_id, "step_id": step_id, "symptom": step.cue.symptom}

        async def respond(command: ResponseCommand | None) -> dict[str, Any]:
            response, tracked = await service.respond(
                cue_key(site, device_id),
                body.action.value,
                user.username,
                user.role.value,
                note=body.note,
                command=command,
                detail=detail | ({"command": command.model_dump(mode="json")} if command is not None else {}),
            )
            return models.RespondedView(
                **views.response_view(response).model_dump(),
                command=views.command_view(tracked) if tracked is not None else None,
            ).model_dump(mode="json")

        try:
            try:
                return await respond(command)
            except CommandRefused:
                if command is None or not spec.optional_command:
                    raise
                return await respond(None)  # a real pump: the act is recorded, its read-out comes by its gateway
        except AlarmError as exc:
            raise _problem(
                409, "no_patient_report_alarm", f"the twin raised no patient report on {device_id}: {exc}"
            ) from None
        except CommandRefused as exc:
            raise _problem(404 if exc.reason == "unknown_device" else 403, exc.reason, str(exc)) from None

    return router


__all__ = ["CUE_CODE", "cue_cards", "cue_key", "cue_router", "on_card"]
