"""Training scores, on transitions made by the real alarm lifecycle: time to acknowledge, verdicts
against the scenario's expected responses, missed alarms, team credit, and the report's JSON, CSV
and InfluxDB forms."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.alarms.lifecycle import Transition, acknowledge, condition_cleared, condition_returned, raise_alarm, silence
from twin.alarms.responses import RESPONSE_CATALOGUE, AlarmResponse, ResponseAction
from twin.contract.alarms import Priority
from twin.scenarios.fleet import members_of, resolve_fleet
from twin.scenarios.model import AlarmExpectation, AlarmFloodExpectation, StaffResponse
from twin.scenarios.scenario_file import load_library
from twin.scenarios.timeline import expand
from twin.timeseries.points import TrainingVerdict, training_response_point
from twin.training.scoring import (
    ACK_TARGET_S,
    ANY_MATCH_CREDIT,
    COVERAGE_CREDIT,
    FLOOD_KEY_PREFIX,
    ORDER_CREDIT,
    SATISFIES,
    STRAY_RESPONSE_COST,
    TROUBLESHOOTING_ORDER,
    AlarmScore,
    Verdict,
    ack_credit,
    acts,
    expected_responses,
    flood_key,
    flood_sites,
    in_order,
    occurrences,
    score,
    scored_devices,
)
from twin.training.session import (
    TrainingSession,
    ended_event,
    fold,
    report_csv,
    score_from_json,
    score_json,
    started_event,
    training_points,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEVICES = frozenset({"p1", "p2"})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def response(actor: str, key: str, action: str, seconds: float) -> AlarmResponse:
    device_id, code = key.split("/")
    return AlarmResponse(
        response_id=f"r-{actor}-{action}-{seconds}",
        key=key,
        device_id=device_id,
        site="s1",
        code=code,
        priority="high",
        alarm_version=1,
        alarm_state="active_unacknowledged",
        action=action,
        note=None,
        actor=actor,
        role="trainee",
        at=at(seconds),
        command_id=None,
        detail={},
    )


def stall_with_acks(*acks: tuple[str, float]) -> list[Transition]:
    """A high-priority motor stall on p1 raised at 10 s, acknowledged by the first of ``acks``."""
    alarm, transitions = raise_alarm(
        "p1/motor_stall", "p1", "s1", "motor_stall", "device", Priority.HIGH, "stall", at(10)
    )
    for actor, seconds in acks[:1]:
        alarm, more = acknowledge(alarm, actor, at(seconds))
        transitions += more
    return transitions


EXPECTED = {"p1/motor_stall": ("rotor_study", "interrogate")}


def scored(transitions: list[Transition], responses: list[AlarmResponse], trainees: tuple[str, ...], *, ended: bool):
    occ = occurrences(transitions, DEVICES, T0, None)
    done = acts(transitions, responses, frozenset(trainees), DEVICES, T0, None)
    return score(occ, done, trainees, EXPECTED, ended=ended)


def test_an_acknowledgement_and_a_matching_response_are_correct_with_the_time_measured() -> None:
    transitions = stall_with_acks(("ann", 40))
    result = scored(transitions, [response("ann", "p1/motor_stall", "rotor_study", 55)], ("ann",), ended=True)
    (row,) = result.alarms
    assert row.time_to_ack_s == 30.0
    assert row.time_to_respond_s == 45.0
    assert row.acknowledged_by == "ann"
    assert (row.responses, row.matched) == (("rotor_study",), ("rotor_study",))
    assert row.verdict is Verdict.CORRECT
    assert row.in_order is None  # one step: nothing to order
    # acknowledged within the high-priority target; one of the two expected responses, nothing to order
    assert row.score == pytest.approx(0.5 + 0.5 * (ANY_MATCH_CREDIT + COVERAGE_CREDIT / 2 + ORDER_CREDIT))
    (summary,) = result.trainees
    assert (summary.alarms, summary.acknowledged, summary.correct, summary.missed) == (1, 1, 1, 0)
    assert summary.median_time_to_ack_s == 30.0
    assert summary.score == pytest.approx(100 * row.score)


def test_every_expected_step_done_in_the_troubleshooting_order_earns_full_marks() -> None:
    transitions = stall_with_acks(("ann", 40))
    in_order = [response("ann", "p1/motor_stall", a, 50 + i) for i, a in enumerate(["interrogate", "rotor_study"])]
    (row,) = scored(transitions, in_order, ("ann",), ended=True).alarms
    assert (row.matched, row.in_order, row.score) == (("rotor_study", "interrogate"), 1.0, 1.0)
    backwards = [response("ann", "p1/motor_stall", a, 50 + i) for i, a in enumerate(["rotor_study", "interrogate"])]
    (row,) = scored(transitions, backwards, ("ann",), ended=True).alarms
    assert row.in_order == 0.0  # the rotor study before the interrogation (DOMAIN-RESEARCH §4.4)
    assert row.score == pytest.approx(0.5 + 0.5 * (ANY_MATCH_CREDIT + COVERAGE_CREDIT))


def test_a_plain_x_ray_a_rotor_study_and_a_dye_study_are_credited_separately() -> None:
    assert SATISFIES[ResponseAction.ROTOR_STUDY] == {StaffResponse.ROTOR_STUDY}
    assert SATISFIES[ResponseAction.XRAY] == {StaffResponse.XRAY}
    assert SATISFIES[ResponseAction.DYE_STUDY] == {StaffResponse.DYE_STUDY}
    wanted = {"p1/motor_stall": ("xray", "side_port_aspiration", "dye_study")}
    transitions = stall_with_acks(("ann", 40))
    occ = occurrences(transitions, DEVICES, T0, None)

    def row(*actions: str) -> AlarmScore:
        done = acts(
            transitions,
            [response("ann", "p1/motor_stall", a, 50 + i) for i, a in enumerate(actions)],
            frozenset({"ann"}),
            DEVICES,
            T0,
            None,
        )
        (only,) = score(occ, done, ("ann",), wanted, ended=True).alarms
        return only

    assert row("rotor_study").verdict is Verdict.INCORRECT  # a rotor study is not an X-ray of the catheter
    assert row("xray").matched == ("xray",)
    assert row("xray", "dye_study").matched == ("xray", "dye_study")
    assert row("xray", "side_port_aspiration", "dye_study").score > row("xray", "dye_study").score
    assert row("side_port_aspiration", "dye_study").in_order == 1.0
    assert row("dye_study", "side_port_aspiration").in_order == 0.0
    assert in_order(["interrogate", "bridge_therapy", "dye_study", "rotor_study"]) == pytest.approx(5 / 6)
    assert in_order(["xray", "naloxone"]) is None  # not troubleshooting steps
    assert [s.value for s in TROUBLESHOOTING_ORDER][:5] == [
        "interrogate",
        "bridge_therapy",
        "rotor_study",
        "side_port_aspiration",
        "dye_study",
    ]


def test_a_wrong_response_is_incorrect_and_a_late_acknowledgement_earns_less() -> None:
    late = ACK_TARGET_S[Priority.HIGH] * 2.5  # halfway between target and no credit
    transitions = stall_with_acks(("ann", 10 + late))
    result = scored(transitions, [response("ann", "p1/motor_stall", "refill", 10 + late + 5)], ("ann",), ended=True)
    (row,) = result.alarms
    assert row.verdict is Verdict.INCORRECT
    assert row.matched == ()
    assert row.score == pytest.approx(0.25)  # half of the acknowledgement's half
    assert ack_credit(Priority.HIGH, late) == pytest.approx(0.5)


def test_ordering_every_study_costs_what_it_does_not_match() -> None:
    transitions = stall_with_acks(("ann", 40))
    shotgun = [
        response("ann", "p1/motor_stall", action, 50 + i)
        for i, action in enumerate(["dye_study", "refill", "rotor_study", "bridge_therapy"])
    ]
    (row,) = scored(transitions, shotgun, ("ann",), ended=True).alarms
    assert row.verdict is Verdict.CORRECT
    assert row.matched == ("rotor_study",)
    assert row.time_to_respond_s == 42.0  # the matching response, not the first one
    answer = ANY_MATCH_CREDIT + COVERAGE_CREDIT / 2 + ORDER_CREDIT - 3 * STRAY_RESPONSE_COST
    assert row.score == pytest.approx(0.5 + 0.5 * answer)


def test_nothing_done_is_pending_while_the_session_runs_and_missed_when_it_ends() -> None:
    transitions = stall_with_acks()
    assert scored(transitions, [], ("ann",), ended=False).alarms[0].verdict is Verdict.PENDING
    ended = scored(transitions, [], ("ann",), ended=True)
    assert ended.alarms[0].verdict is Verdict.MISSED
    assert ended.alarms[0].score == 0.0
    assert ended.trainees[0].missed == 1


def test_the_first_acknowledgement_is_the_teams_and_each_trainee_is_scored_on_their_own_acts() -> None:
    transitions = stall_with_acks(("ann", 20))
    responses = [response("bob", "p1/motor_stall", "interrogate", 30)]
    result = scored(transitions, responses, ("ann", "bob", "cat"), ended=True)
    rows = {r.trainee: r for r in result.alarms}
    assert rows["ann"].time_to_ack_s == 10.0
    assert rows["ann"].verdict is Verdict.INCORRECT  # acknowledged, but no expected response
    assert rows["bob"].acknowledged_by == "ann"
    assert rows["bob"].time_to_ack_s is None
    assert rows["bob"].verdict is Verdict.CORRECT
    # the response's half only
    assert rows["bob"].score == pytest.approx(0.5 * (ANY_MATCH_CREDIT + COVERAGE_CREDIT / 2 + ORDER_CREDIT))
    assert rows["cat"].verdict is Verdict.MISSED


def test_acts_count_for_the_latest_raise_before_them_and_others_acts_do_not_count() -> None:
    alarm, transitions = raise_alarm(
        "p2/reservoir_low", "p2", "s1", "reservoir_low", "device", Priority.MEDIUM, "low", at(5)
    )
    alarm, more = condition_cleared(alarm, at(50))
    transitions += more
    alarm, more = condition_returned(alarm, at(100))
    transitions += more
    alarm, more = silence(alarm, "ann", at(110), timedelta(minutes=2))
    transitions += more
    alarm, more = acknowledge(alarm, "instructor", at(120))  # not a trainee: not scored, not credited
    transitions += more
    result = score(
        occurrences(transitions, DEVICES, T0, None),
        acts(transitions, [], frozenset({"ann"}), DEVICES, T0, None),
        ("ann",),
        {},
        ended=True,
    )
    first, second = result.alarms
    assert first.verdict is Verdict.MISSED  # the first occurrence: nothing done before the second raise
    assert second.verdict is Verdict.INCORRECT  # silenced, never acknowledged: no expectation, so the ack decides
    assert [a.kind for a in result.actions] == ["silence"]


def test_the_window_and_the_pumps_bound_what_is_scored() -> None:
    transitions = stall_with_acks(("ann", 40))
    assert occurrences(transitions, frozenset({"p2"}), T0, None) == []
    assert occurrences(transitions, DEVICES, at(11), None) == []
    assert acts(transitions, [], frozenset({"ann"}), DEVICES, T0, at(39)) == []


def test_every_response_action_is_mapped_and_every_catalogue_expectation_can_be_met() -> None:
    assert set(SATISFIES) == set(ResponseAction) == set(RESPONSE_CATALOGUE)
    # triage_by_priority is met by the order of a trainee's acts, not by a response action
    reachable = {s.value for satisfied in SATISFIES.values() for s in satisfied} | {"triage_by_priority"}
    catalogue = load_library()
    assert len(catalogue) >= 13
    for scenario in catalogue.values():
        fleet = resolve_fleet(scenario)
        timeline = expand(scenario, members_of(fleet.specs), fleet.epoch)
        expected = expected_responses(timeline)
        wanted = [e for e in scenario.expect if isinstance(e, AlarmExpectation) and e.responses and e.event == "raise"]
        assert bool(expected) == bool(wanted), scenario.name
        for key, names in expected.items():
            assert reachable & set(names), (scenario.name, key)
            assert len(names) == len(set(names)), (scenario.name, key)
        for cue in timeline.cues:  # a recorded symptom is a patient_report alert, scored on its responses
            if cue.symptom is not None and cue.responses:
                site = timeline.sites[cue.device_id]
                assert {r.value for r in cue.responses} <= set(expected[f"{site}/{cue.device_id}/patient_report"])
        devices = scored_devices(timeline)
        assert set(devices) <= set(timeline.device_ids)
        alarm_keys = {key for key in expected if not key.startswith(FLOOD_KEY_PREFIX)}
        assert {key.split("/")[1] for key in alarm_keys} <= set(devices), scenario.name
        flooded = {e.site for e in scenario.expect if isinstance(e, AlarmFloodExpectation) and e.responses}
        assert set(flood_sites(expected)) == flooded, scenario.name
        for site in flooded:  # every response a flood expects can be met, and its site's pumps are scored
            assert set(expected[flood_key(site)]) <= reachable, (scenario.name, site)
            assert {d for d, s in timeline.sites.items() if s == site} <= set(devices)


def test_the_report_round_trips_through_json_and_reads_as_csv_and_influx_points() -> None:
    transitions = stall_with_acks(("ann", 40))
    result = scored(transitions, [response("ann", "p1/motor_stall", "rotor_study", 55)], ("ann", "bob"), ended=True)
    assert score_from_json(score_json(result)) == result
    session = TrainingSession("t-1", "stall", "Stall", "run-1", "ian", ("ann", "bob"), ("p1", "p2"), 60.0, T0)
    rows = list(csv.DictReader(io.StringIO(report_csv(session, result))))
    assert [(r["trainee"], r["verdict"], r["time_to_ack_s"]) for r in rows] == [
        ("ann", "correct", "30.000"),
        ("bob", "missed", ""),
    ]
    points = training_points(session, result)
    assert [(p.trainee, p.verdict) for p in points] == [
        ("ann", TrainingVerdict.CORRECT),
        ("bob", TrainingVerdict.MISSED),
    ]
    line = training_response_point(points[0]).line_protocol()
    assert line.startswith("training,session=t-1,site=s1,trainee=ann ")
    assert 'verdict="correct"' in line
    assert "time_to_ack_s=30" in line


def test_sessions_fold_from_their_events() -> None:
    session = TrainingSession("t-1", "stall", "Stall", "run-1", "ian", ("ann",), ("p1",), 60.0, T0)
    result = scored(stall_with_acks(("ann", 40)), [], ("ann",), ended=True)
    ended = replace(session, status="aborted", ended_at=at(100), aborted_reason="enough", final=result)
    folded = fold([started_event(session), ended_event(ended, "ian")])
    assert folded == {"t-1": ended}
    assert fold([started_event(session)])["t-1"].active


@given(
    ack_after=st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=5),
    actions=st.lists(st.sampled_from(list(ResponseAction)), max_size=4),
    ended=st.booleans(),
)
def test_scores_stay_within_bounds_and_summaries_add_up(
    ack_after: list[float], actions: list[ResponseAction], ended: bool
) -> None:
    trainees = ("ann", "bob")
    transitions = stall_with_acks(*((trainees[i % 2], 10 + s) for i, s in enumerate(ack_after)))
    responses = [response(trainees[i % 2], "p1/motor_stall", a.value, 20 + i) for i, a in enumerate(actions)]
    result = scored(transitions, responses, trainees, ended=ended)
    for row in result.alarms:
        assert 0.0 <= row.score <= 1.0
        assert (row.verdict is Verdict.PENDING) <= (not ended)
        assert (row.verdict is Verdict.MISSED) <= ended
    for summary in result.trainees:
        assert summary.correct + summary.incorrect + summary.missed + summary.pending == summary.alarms
        assert 0.0 <= summary.score <= 100.0
