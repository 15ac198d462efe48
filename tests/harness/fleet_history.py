"""A month of a simulated fleet as InfluxDB points: what the dashboards are checked against.

The SimPy fleet runs with the clinic refilling and random faults on; on top of that a script of
events gives every panel something to show: commands (applied, rejected, replayed, one never
answered), refills that set refill reminders, motor stalls, a catheter occlusion, premature ERIs,
an alarm flood at the training site, two training sessions, and two pumps that fall silent near
the end. Every device
message becomes points through ``device_points``; the twin's side (alarm lifecycle steps,
command outcomes, its health) and the training responses are built with the ``points``
functions, as the twin will. Everything is seeded: the same call gives the same points.

The :class:`FleetHistory` also keeps the facts the test compares panels with (who is silent,
which alarms are active), computed here from the events, not from InfluxDB.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from twin.contract.alarms import AlarmCode, Priority
from twin.contract.messages import (
    Action,
    AlarmEvent,
    AlarmEventType,
    BatteryDepletionFault,
    Birth,
    CatheterOcclusionFault,
    ClinicianBolusAction,
    Command,
    CommandResult,
    CommandStatus,
    DeviceMessage,
    FaultModel,
    InfusionMode,
    InjectFaultAction,
    MemoryErrorFault,
    MotorStallFault,
    Program,
    RefillAction,
    ReprogramAction,
    State,
    TelemetryLossFault,
)
from twin.sim.clinic import ClinicPolicy
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.timeseries.points import (
    AlarmTransitionPoint,
    CommandOutcome,
    CommandOutcomePoint,
    DeviceTags,
    InfluxPoint,
    TrainingResponsePoint,
    TrainingVerdict,
    TwinHealthPoint,
    alarm_transition_point,
    command_point,
    device_points,
    training_response_point,
    twin_health_point,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DAY_S = 86_400.0
SITES = ("north-general", "st-olaf-clinic", "sim-lab")
TRAINING_SITE = "sim-lab"
TWIN_OF_SITE = {"north-general": "twin-a", "st-olaf-clinic": "twin-a", "sim-lab": "twin-b"}
STAFF = ("nurse.jones", "nurse.okafor", "dr.ng", "dr.silva")
TRAINEES = ("nurse.jones", "nurse.okafor", "dr.ng")

# Median seconds to acknowledge, by priority (assumed: high alarms are answered first).
ACK_MEDIAN_S = {Priority.HIGH: 45.0, Priority.MEDIUM: 240.0, Priority.LOW: 900.0}
NEVER_ACKNOWLEDGED = 0.12  # share of alarms nobody acknowledges (left unacknowledged)
SHELVED = 0.15  # share of acknowledged medium/low alarms then shelved

ACK_COMMENT = {
    AlarmCode.MOTOR_STALL: "rotor study requested",
    AlarmCode.MEMORY_ERROR: "physician paged",
    AlarmCode.RESERVOIR_LOW: "refill booked",
    AlarmCode.RESERVOIR_EMPTY: "urgent refill, withdrawal watch",
    AlarmCode.BATTERY_ERI: "replacement to schedule",
    AlarmCode.REFILL_REMINDER: "patient called",
}

EXPECTED_RESPONSE = {
    AlarmCode.MOTOR_STALL: "rotor_study",
    AlarmCode.MEMORY_ERROR: "escalate_physician",
    AlarmCode.RESERVOIR_LOW: "refill",
    AlarmCode.RESERVOIR_EMPTY: "refill",
    AlarmCode.BATTERY_ERI: "schedule_replacement",
    AlarmCode.LOW_BATTERY_RESET: "reprogram",
}


@dataclass(frozen=True, slots=True)
class Raised:
    """A device alarm raise, and its clear if one came."""

    site: str
    device: str
    alarm_id: str
    code: AlarmCode
    priority: Priority
    at: datetime
    cleared_at: datetime | None = None


@dataclass
class FleetHistory:
    start: datetime
    end: datetime
    points: list[InfluxPoint] = field(default_factory=list)
    tags: dict[str, DeviceTags] = field(default_factory=dict)
    raised: list[Raised] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)
    depleted: set[str] = field(default_factory=set)
    sessions: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)

    def last_state(self, field_key: str) -> dict[str, object]:
        """Each pump's ``field_key`` in its last state point."""
        last: dict[str, tuple[int, object]] = {}
        for point in self.points:
            if point.measurement == "state":
                device = point.tags["device"]
                if device not in last or last[device][0] < point.time_ns:
                    last[device] = (point.time_ns, point.fields.get(field_key))
        return {device: value for device, (_, value) in last.items()}

    def battery_not_ok(self) -> set[str]:
        """Pumps whose last reported state has a battery status other than ``ok`` (ERI, EOS)."""
        return {device for device, status in self.last_state("battery_status").items() if status != "ok"}

    def active_by_priority(self) -> dict[str, int]:
        """Alarms raised in the history and not cleared by its end, per priority."""
        counts: dict[str, int] = {}
        for alarm in self.raised:
            if alarm.cleared_at is None:
                counts[alarm.priority.value] = counts.get(alarm.priority.value, 0) + 1
        return counts


class _Recorder:
    """The sink of the simulation: device messages to points, and what the script needs to know."""

    def __init__(self, history: FleetHistory, sim_start: datetime) -> None:
        self.history = history
        self.sim_start = sim_start
        self.results: dict[str, CommandResult] = {}
        self.open_alarms: dict[tuple[str, str], int] = {}

    def __call__(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        message = outgoing.message
        site = device.identity.site
        if isinstance(message, Birth):
            self.history.tags[message.device_id] = DeviceTags.from_birth(site, message)
            return
        tags = self.history.tags[device.device_id]
        if isinstance(message, State) and tags.drug is not message.drug:
            tags = self.history.tags[device.device_id] = replace(tags, drug=message.drug)
        if isinstance(message, CommandResult):
            self.results.setdefault(message.command_id, message)
            if message.replay:
                self.results[message.command_id + "#replay"] = message
            return
        if isinstance(message, AlarmEvent):
            self._alarm(site, message)
        if isinstance(message, DeviceMessage):
            self.history.points.extend(device_points(tags, message))

    def _alarm(self, site: str, event: AlarmEvent) -> None:
        key = (event.device_id, event.alarm_id)
        if event.event is AlarmEventType.RAISED:
            self.open_alarms[key] = len(self.history.raised)
            self.history.raised.append(
                Raised(site, event.device_id, event.alarm_id, event.code, event.priority, event.device_time)
            )
        elif key in self.open_alarms:
            index = self.open_alarms.pop(key)
            self.history.raised[index] = replace(self.history.raised[index], cleared_at=event.device_time)


def simulate_fleet_history(*, pumps: int = 30, days: int = 30, seed: int = 20260102) -> FleetHistory:
    """Run the fleet for ``days`` from :data:`EPOCH` and return every point the twin would write."""
    specs = generate_fleet(pumps, seed=seed, start=EPOCH, sites=list(SITES))
    history = FleetHistory(start=EPOCH, end=EPOCH + timedelta(days=days))
    recorder = _Recorder(history, EPOCH)
    sim = FleetSimulation(
        specs,
        epoch=EPOCH,
        seed=seed,
        sink=recorder,
        telemetry_interval_s=1800.0,
        clinic_refills=True,
        random_faults=True,
        # the scripted premature ERIs, stalls and memory errors stay in place through the month shown
        # (their replacement surgery is booked after it), as the dashboards' panels need
        clinic=ClinicPolicy(eri_replacement_days=(45.0, 80.0), stall_replacement_days=(30.0, 40.0)),
    )
    sim.open_sessions(1)
    by_site = {site: [spec.device_id for spec in specs if spec.site == site] for site in SITES}
    first, second, third = (spec.device_id for spec in specs[:3])
    # Grafana's device dashboard opens on the first pump of the selected sites: those must raise alarms
    # (a Prometra has no audible alarm and publishes none), which the seed was chosen for.
    audible = {spec.device_id for spec in specs if spec.audible_alarms}
    assert {first, second, third, *(by_site[site][0] for site in SITES)} <= audible
    silent = [by_site["north-general"][1], by_site["st-olaf-clinic"][1]]  # one per clinic, near the end
    # a third premature ERI, on an audible pump: medium alarms that stay open to be shelved, now that
    # the clinic refills before the low-reservoir alarm (DOMAIN-RESEARCH §7) and leaves none open
    depleted = [third, by_site["st-olaf-clinic"][2], next(d for d in by_site["north-general"][4:] if d in audible)]
    outcomes: list[CommandOutcomePoint] = []
    counter = iter(range(1, 10_000))

    def at(day: float) -> datetime:
        return EPOCH + timedelta(seconds=day * DAY_S)

    def fault(device_id: str, model: FaultModel) -> Callable[[], None]:
        def inject() -> None:
            sim.bedside(device_id, InjectFaultAction(fault=model))

        return inject

    def command(
        device_id: str, action: Action, *, actor: str, expired: bool = False, command_id: str | None = None
    ) -> Callable[[], None]:
        def send() -> None:
            issued = sim.at(sim.now)
            cid = command_id or f"cmd-{next(counter):04d}"
            cmd = Command(
                command_id=cid,
                device_id=device_id,
                issued_at=issued,
                expires_at=issued - timedelta(minutes=1) if expired else issued + timedelta(hours=1),
                actor=actor,
                action=action,
            )
            outcomes.append(_outcome(sim.sites[device_id], cmd, CommandOutcome.PENDING, issued))
            sim.command(device_id, cmd)
            sim.run(sim.now + 30.0)  # the device answers within the simulated half minute
            result = recorder.results.pop(cid + "#replay", None) or recorder.results.get(cid)
            if result is None:
                return  # held: the radio is down (a telemetry-loss fault); see the timeout below
            status = CommandOutcome.APPLIED if result.status is CommandStatus.APPLIED else CommandOutcome.REJECTED
            outcomes.append(
                replace(
                    _outcome(sim.sites[device_id], cmd, status, result.device_time),
                    latency_s=(result.device_time - issued).total_seconds() + 0.8,  # plus the network's round trip
                    reason=result.reason,
                    replay=result.replay,
                    session=result.session,
                    seq=result.seq,
                )
            )

        return send

    continuous = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.45)
    specs_by_id = {spec.device_id: spec for spec in specs}

    def refill(device_id: str, reminder_day: float) -> RefillAction:
        spec = specs_by_id[device_id]
        return RefillAction(
            volume_ml=spec.reservoir_capacity_ml,
            drug=spec.drug,
            concentration_mg_per_ml=spec.concentration_mg_per_ml,
            refill_reminder_at=at(reminder_day),  # a low-priority alarm on that day
        )

    reminded = (second, by_site["north-general"][2], by_site["north-general"][3])
    flood = [fault(device_id, MotorStallFault(cause="mri", recover_after_s=5400.0)) for device_id in by_site["sim-lab"]]
    flood += [fault(device_id, MemoryErrorFault()) for device_id in by_site["sim-lab"][:3]]
    script: list[tuple[float, Callable[[], None]]] = [
        (1.0, command(first, refill(first, 45.0), actor="nurse.okafor")),  # its next refill is after the month
        (2.5, command(first, ReprogramAction(program=continuous), actor="dr.ng")),
        (3.0, command(reminded[0], refill(reminded[0], 9.0), actor="nurse.okafor")),
        (3.5, command(second, ClinicianBolusAction(volume_ml=0.1, duration_minutes=30), actor="dr.ng", expired=True)),
        (3.1, command(reminded[1], refill(reminded[1], 10.0), actor="nurse.okafor")),
        (20.0, command(reminded[2], refill(reminded[2], 29.5), actor="nurse.jones")),  # still active at the end
        (4.0, command(first, ClinicianBolusAction(volume_ml=0.2, duration_minutes=60), actor="dr.ng")),
        (6.0, command(first, ClinicianBolusAction(volume_ml=0.1, duration_minutes=30), actor="dr.ng", expired=True)),
        (6.1, command(first, ReprogramAction(program=continuous), actor="dr.ng", command_id="cmd-0001")),  # a repeat
        (8.0, fault(second, MotorStallFault(cause="wear"))),
        (10.0, fault(first, CatheterOcclusionFault(fraction=0.6))),
        (11.4, fault(by_site["sim-lab"][0], MotorStallFault(cause="mri", recover_after_s=3600.0))),
        (11.41, fault(by_site["sim-lab"][1], MemoryErrorFault())),
        *((12.0, fault(device_id, BatteryDepletionFault(eos_after_days=90.0))) for device_id in depleted),
        (15.0, fault(first, MotorStallFault(cause="mri", recover_after_s=7200.0))),
        *((25.4 + index * 0.0002, step) for index, step in enumerate(flood)),  # 17 s apart: one 10-minute bucket
        *((27.0, fault(device_id, TelemetryLossFault(duration_s=10 * DAY_S))) for device_id in silent),
        (28.0, command(silent[0], ClinicianBolusAction(volume_ml=0.1, duration_minutes=30), actor="nurse.jones")),
    ]
    for day, step in sorted(script, key=lambda item: item[0]):
        sim.run(day * DAY_S)
        step()
    sim.run(days * DAY_S)
    history.silent = set(silent)
    history.depleted = set(depleted)

    answered = {outcome.command_id for outcome in outcomes if outcome.status is not CommandOutcome.PENDING}
    for outcome in [o for o in outcomes if o.command_id not in answered]:
        outcomes.append(replace(outcome, status=CommandOutcome.TIMED_OUT, at=outcome.at + timedelta(hours=1)))
    for outcome in outcomes:
        history.points.append(command_point(history.tags[outcome.device_id], outcome))

    rng = random.Random(f"twin:{seed}")
    history.points += _lifecycle(history, rng, showcase={first, second})
    history.points += _twin_health(history, specs_by_site={s: len(d) for s, d in by_site.items()}, silent_at=at(27.0))
    history.points += _training(history, rng, "ts-2026-01-12-am", at(11.39), at(11.5))
    history.points += _training(history, rng, "ts-2026-01-26-flood", at(25.39), at(25.5))
    return history


def _outcome(site: str, cmd: Command, status: CommandOutcome, at: datetime) -> CommandOutcomePoint:
    return CommandOutcomePoint(
        command_id=cmd.command_id,
        device_id=cmd.device_id,
        site=site,
        action=cmd.action.type,
        status=status,
        actor=cmd.actor,
        at=at,
    )


def _step(
    history: FleetHistory,
    alarm: Raised,
    source: str,
    target: str,
    actor: str,
    at: datetime,
    *,
    comment: str | None = None,
    time_to_ack_s: float | None = None,
) -> InfluxPoint:
    transition = AlarmTransitionPoint(
        alarm_id=alarm.alarm_id,
        device_id=alarm.device,
        site=alarm.site,
        code=alarm.code,
        priority=alarm.priority,
        from_state=source,
        to_state=target,
        actor=actor,
        comment=comment,
        at=at,
        time_to_ack_s=time_to_ack_s,
    )
    return alarm_transition_point(history.tags[alarm.device], transition)


def _lifecycle(history: FleetHistory, rng: random.Random, showcase: set[str]) -> list[InfluxPoint]:
    """The twin's ISA-18.2 steps for every device alarm: raised, acknowledged (mostly), shelved
    (sometimes), back to normal at the clear (or cleared but unacknowledged).

    Chance decides, except that every site and every priority gets at least one alarm nobody
    acknowledges and (for medium and low, where alarms stay active) one still shelved at the end,
    so that every panel filtered to one site or one priority has something to show; and the
    ``showcase`` pumps (the ones the device dashboard opens on) have every alarm acknowledged.
    Acknowledgements carry a comment, as staff write one.
    """
    out: list[InfluxPoint] = []
    unacknowledged: set[str] = set()
    shelved: set[str] = set()
    for alarm in history.raised:
        out.append(_step(history, alarm, "normal", "active_unacknowledged", "twin", alarm.at))
        ack_s = rng.lognormvariate(0.0, 0.8) * ACK_MEDIAN_S[alarm.priority]
        acknowledged_at = alarm.at + timedelta(seconds=ack_s)
        cleared_at = alarm.cleared_at
        shelved_at = acknowledged_at + timedelta(minutes=2)
        shelvable = alarm.priority is not Priority.HIGH and (cleared_at is None or shelved_at < cleared_at)
        still_shelved = shelvable and cleared_at is None and shelved_at < history.end  # shelved at the end
        must_shelve = still_shelved and not {alarm.site, alarm.priority.value} <= shelved
        must_ignore = not {alarm.site, alarm.priority.value} <= unacknowledged
        ignored = alarm.device not in showcase and (
            must_ignore or (not must_shelve and rng.random() < NEVER_ACKNOWLEDGED)
        )
        if ignored or acknowledged_at > history.end:
            unacknowledged |= {alarm.site, alarm.priority.value}
            if cleared_at is not None:
                out.append(
                    _step(history, alarm, "active_unacknowledged", "cleared_unacknowledged", "device", cleared_at)
                )
            continue
        user = rng.choice(STAFF)
        note = ACK_COMMENT.get(alarm.code, "seen")
        if cleared_at is not None and cleared_at < acknowledged_at:
            out.append(_step(history, alarm, "active_unacknowledged", "cleared_unacknowledged", "device", cleared_at))
            out.append(
                _step(
                    history,
                    alarm,
                    "cleared_unacknowledged",
                    "normal",
                    user,
                    acknowledged_at,
                    comment=note,
                    time_to_ack_s=ack_s,
                )
            )
            continue
        out.append(
            _step(
                history,
                alarm,
                "active_unacknowledged",
                "active_acknowledged",
                user,
                acknowledged_at,
                comment=note,
                time_to_ack_s=ack_s,
            )
        )
        state = "active_acknowledged"
        if must_shelve or (shelvable and rng.random() < SHELVED):
            if still_shelved:
                shelved |= {alarm.site, alarm.priority.value}
            out.append(_step(history, alarm, state, "shelved", user, shelved_at, comment="refill booked"))
            state = "shelved"
        if cleared_at is not None:
            out.append(_step(history, alarm, state, "normal", "device", cleared_at))
    return out


def _twin_health(history: FleetHistory, *, specs_by_site: dict[str, int], silent_at: datetime) -> list[InfluxPoint]:
    """Each twin replica's health every hour: devices known and online, messages in (cumulative)."""
    known = dict.fromkeys(TWIN_OF_SITE.values(), 0)
    for site, count in specs_by_site.items():
        known[TWIN_OF_SITE[site]] += count
    silent = dict.fromkeys(known, 0)
    for device in history.silent:
        silent[TWIN_OF_SITE[history.tags[device].site]] += 1
    out: list[InfluxPoint] = []
    hours = int((history.end - history.start) / timedelta(hours=1))
    for twin, devices in sorted(known.items()):
        for hour in range(hours + 1):
            at = history.start + timedelta(hours=hour)
            health = TwinHealthPoint(
                twin=twin,
                at=at,
                messages_in=devices * 2 * hour,
                rejects_by_reason={"schema": hour // 100},
                lag_s=0.05,
                devices_online=devices - (silent[twin] if at >= silent_at else 0),
                devices_known=devices,
            )
            out.append(twin_health_point(health))
    return out


def _training(
    history: FleetHistory, rng: random.Random, session: str, start: datetime, end: datetime
) -> list[InfluxPoint]:
    """Each trainee responds to every alarm raised at the training site during the session; each
    trainee's first responses are correct, incorrect and missed (in a rotating order), so every
    verdict occurs for every trainee of a session with three alarms or more."""
    history.sessions[session] = (start, end)
    alarms = [a for a in history.raised if a.site == TRAINING_SITE and start <= a.at <= end]
    if not alarms:
        raise AssertionError(f"no alarm at {TRAINING_SITE} during {session}: the script lost its faults")
    out: list[InfluxPoint] = []
    verdicts = list(TrainingVerdict)
    for number, trainee in enumerate(TRAINEES):
        forced = iter(verdicts[number:] + verdicts[:number])
        for alarm in alarms:
            verdict = next(forced, None) or rng.choices(list(TrainingVerdict), weights=(6, 2, 1))[0]
            expected = EXPECTED_RESPONSE.get(alarm.code, "acknowledge")
            ack_s = None if verdict is TrainingVerdict.MISSED else rng.uniform(8.0, 120.0)
            respond_s = None if ack_s is None else ack_s + rng.uniform(20.0, 300.0)
            response = TrainingResponsePoint(
                session=session,
                trainee=trainee,
                site=TRAINING_SITE,
                scenario="alarm flood" if "flood" in session else "stall and memory error",
                alarm_id=alarm.alarm_id,
                code=alarm.code,
                priority=alarm.priority,
                response={
                    TrainingVerdict.CORRECT: expected,
                    TrainingVerdict.INCORRECT: "acknowledge" if expected != "acknowledge" else "none",
                    TrainingVerdict.MISSED: "none",
                }[verdict],
                expected_response=expected,
                verdict=verdict,
                score={TrainingVerdict.CORRECT: 1.0, TrainingVerdict.INCORRECT: 0.25, TrainingVerdict.MISSED: 0.0}[
                    verdict
                ],
                at=alarm.at + timedelta(seconds=respond_s if respond_s is not None else 600.0),
                time_to_ack_s=ack_s,
                time_to_respond_s=respond_s,
                device=alarm.device,
            )
            out.append(training_response_point(response))
    return out
