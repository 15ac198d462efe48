"""What the debrief adds to training scores, on transitions made by the real lifecycle: whether the
team acknowledged before an alarm escalated, triage by priority (from the order of a trainee's acts),
flood rows (common cause, connectivity, triage) and a trainee's own view of a report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.alarms import lifecycle as lc
from twin.alarms.escalation import DEFAULT_POLICY, Roster, due
from twin.alarms.lifecycle import Transition
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import Priority
from twin.training.scoring import (
    FLOOD_CODE,
    TeamSummary,
    Verdict,
    acts,
    flood_key,
    floods,
    occurrences,
    score,
)
from twin.training.session import only_trainee, score_from_json, score_json

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SITE = "ward"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def response(actor: str, key: str, action: str, seconds: float) -> AlarmResponse:
    device_id, code = key.split("/")
    return AlarmResponse(
        f"r-{actor}-{key}-{action}-{seconds}",
        key,
        device_id,
        SITE,
        code,
        "high",
        1,
        "active_unacknowledged",
        action,
        None,
        actor,
        "trainee",
        at(seconds),
        None,
        {},
    )


def raised(device: str, code: str, priority: Priority, seconds: float) -> tuple[lc.Alarm, list[Transition]]:
    return lc.raise_alarm(f"{device}/{code}", device, SITE, code, "device", priority, code, at(seconds))


def scored(
    transitions: list[Transition],
    responses: list[AlarmResponse],
    trainees: tuple[str, ...],
    expected: dict[str, tuple[str, ...]],
    **extra: object,
):
    devices = frozenset(t.device_id for t in transitions)
    return score(
        occurrences(transitions, devices, T0, None),
        acts(transitions, responses, frozenset(trainees), devices, T0, None),
        trainees,
        expected,
        ended=True,
        **extra,  # type: ignore[arg-type]
    )


def test_rows_say_whether_and_how_far_an_alarm_escalated_and_the_team_counts_acks_before_escalation() -> None:
    stall, made = raised("p1", "motor_stall", Priority.HIGH, 0)
    memory, more = raised("p2", "memory_error", Priority.HIGH, 10)
    made += more
    stall, more = lc.acknowledge(stall, "ann", at(30))  # answered well before its 2 minutes
    made += more
    ladder = due([memory], {}, DEFAULT_POLICY, at(10 + 6 * 60), Roster())  # nobody answered: both tiers
    memory, more = lc.acknowledge(memory, "bob", at(10 + 7 * 60))  # bob, at last
    made += more
    result = scored(made, [], ("ann", "bob"), {}, escalations=ladder)
    rows = {(r.trainee, r.occurrence.code): r for r in result.alarms}
    assert (rows[("ann", "motor_stall")].escalated_at, rows[("ann", "motor_stall")].escalation_level) == (None, 0)
    late = rows[("bob", "memory_error")]
    assert (late.escalated_at, late.escalation_level) == (at(10 + 120), 2)
    assert rows[("ann", "memory_error")].escalation_level == 2  # the alarm's, whoever was scored
    assert result.team == TeamSummary(alarms=2, acknowledged=2, acknowledged_before_escalation=1, escalated=1)
    assert score_from_json(score_json(result)) == result


def test_an_escalation_belongs_to_the_occurrence_it_escalated_not_a_later_one() -> None:
    stall, made = raised("p1", "motor_stall", Priority.HIGH, 0)
    ladder = due([stall], {}, DEFAULT_POLICY, at(150), Roster())
    stall, more = lc.acknowledge(stall, "ann", at(160))
    made += more
    stall, more = lc.condition_cleared(stall, at(170))
    made += more
    stall, more = lc.condition_returned(stall, at(200))  # a new occurrence
    made += more
    first, second = scored(made, [], ("ann",), {}, escalations=ladder).alarms
    assert (first.escalation_level, second.escalation_level) == (1, 0)


def test_triage_is_met_when_a_trainee_deals_with_the_high_alarm_before_lower_ones() -> None:
    _, made = raised("p1", "device_silent", Priority.LOW, 0)
    stall, more = raised("p2", "motor_stall", Priority.HIGH, 5)
    made += more
    expected = {"p2/motor_stall": ("triage_by_priority", "rotor_study")}
    # ann goes to the stall first; bob answers the low alarm while the stall waits
    responses = [
        response("ann", "p2/motor_stall", "interrogate", 8),
        response("ann", "p1/device_silent", "check_connectivity", 20),
        response("bob", "p1/device_silent", "check_connectivity", 9),
        response("bob", "p2/motor_stall", "rotor_study", 30),
    ]
    rows = {
        r.trainee: r
        for r in scored(made, responses, ("ann", "bob"), expected).alarms
        if r.occurrence.key == "p2/motor_stall"
    }
    assert rows["ann"].matched == ("triage_by_priority",)
    assert rows["ann"].verdict is Verdict.CORRECT
    assert rows["bob"].matched == ("rotor_study",)  # right study, wrong order
    # once someone acknowledged the stall, nothing waits: the low alarm may be answered
    stall, more = lc.acknowledge(stall, "ann", at(7))
    acked = made + more
    rows = {
        r.trainee: r
        for r in scored(acked, responses, ("ann", "bob"), expected).alarms
        if r.occurrence.key == "p2/motor_stall"
    }
    assert rows["bob"].matched == ("triage_by_priority", "rotor_study")  # the low alarm at 9 s, after the ack at 7 s
    # triage needs an act of one's own on the alarm
    rows = {
        r.trainee: r
        for r in scored(acked, responses[:3], ("ann", "bob"), expected).alarms
        if r.occurrence.key == "p2/motor_stall"
    }
    assert rows["bob"].verdict is Verdict.MISSED


def flood_at_ward() -> tuple[list[Transition], lc.Alarm]:
    """Twelve silent pumps within a minute (a flood from the eleventh), then a stall among them."""
    made: list[Transition] = []
    for n in range(12):
        made += raised(f"g{n:02d}", "device_silent", Priority.LOW, 5 * n)[1]
    stall, more = raised("p9", "motor_stall", Priority.HIGH, 70)
    return made + more, stall


def test_a_flood_is_found_from_the_eleventh_annunciation_within_ten_minutes() -> None:
    made, _ = flood_at_ward()
    (flood,) = floods(made, [SITE], T0, at(3600))
    assert (flood.site, flood.start, flood.count) == (SITE, at(50), 13)
    assert floods(made, ["elsewhere"], T0, at(3600)) == []
    assert floods(made[:10], [SITE], T0, at(3600)) == []  # ten alarms are not a flood


def test_a_flood_row_scores_the_common_cause_connectivity_and_triage_of_each_trainee() -> None:
    made, _ = flood_at_ward()
    expected = {flood_key(SITE): ("find_common_cause", "triage_by_priority", "check_connectivity")}
    periods = floods(made, [SITE], T0, at(3600))
    responses = [
        # ann: the stall first, then one report of the gateway as the cause
        response("ann", "p9/motor_stall", "interrogate", 75),
        response("ann", "g03/device_silent", "report_common_cause", 90),
        # bob: works the silent pumps one by one, the stall waiting
        response("bob", "g00/device_silent", "check_connectivity", 80),
        response("bob", "g01/device_silent", "check_connectivity", 85),
    ]
    result = scored(made, responses, ("ann", "bob", "cat"), expected, flood_periods=periods)
    rows = {r.trainee: r for r in result.alarms if r.occurrence.code == FLOOD_CODE}
    assert rows["ann"].matched == ("find_common_cause", "triage_by_priority")
    assert rows["ann"].score == round(2 / 3, 4)
    assert rows["ann"].verdict is Verdict.CORRECT
    assert rows["bob"].matched == ("check_connectivity",)
    assert rows["bob"].responses == ("check_connectivity",)
    assert rows["cat"].verdict is Verdict.MISSED
    flood_row = rows["ann"]
    assert (flood_row.occurrence.key, flood_row.occurrence.site, flood_row.occurrence.device_id) == (
        flood_key(SITE),
        SITE,
        "",
    )
    assert flood_row.occurrence.priority is Priority.HIGH  # the stall came in the flood
    assert flood_row.occurrence.raised_at == at(50)
    assert score_from_json(score_json(result)) == result
    # the flood rows do not count as alarms of the team
    assert result.team.alarms == 13


def test_a_trainee_sees_their_own_rows_and_acts_and_the_teams_figures() -> None:
    stall, made = raised("p1", "motor_stall", Priority.HIGH, 0)
    stall, more = lc.acknowledge(stall, "ann", at(20))
    result = scored(made + more, [response("bob", "p1/motor_stall", "rotor_study", 30)], ("ann", "bob"), {})
    mine = only_trainee(result, "bob")
    assert [t.trainee for t in mine.trainees] == ["bob"]
    assert {r.trainee for r in mine.alarms} == {"bob"}
    assert [a.trainee for a in mine.actions] == ["bob"]
    assert mine.team == result.team
    assert only_trainee(result, "viewer").alarms == ()


def test_a_report_stored_before_escalations_and_floods_reads_back() -> None:
    _, made = raised("p1", "motor_stall", Priority.HIGH, 0)
    body = score_json(scored(made, [], ("ann",), {}))
    del body["team"]
    for row in body["alarms"]:
        del row["escalated_at"], row["escalation_level"]
    old = score_from_json(body)
    assert old.team == TeamSummary()
    assert old.alarms[0].escalation_level == 0
