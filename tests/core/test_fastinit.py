"""The cheaper ``__init__`` of the simulation's frozen dataclasses (twin.pump.fastinit) is the one
dataclasses generates: the same parameters, and the same fields after the same calls."""

from __future__ import annotations

import dataclasses
import inspect
import math
from datetime import UTC, datetime

import pytest

from twin.contract.alarms import AlarmCode
from twin.contract.messages import DeviceLogKind, Drug, State
from twin.contract.topics import Channel
from twin.mirror import effects
from twin.pump import flow, model
from twin.pump.fastinit import fast_frozen_init
from twin.sim import device

CLASSES = [
    model.AlarmChange,
    model.ClinicalEvent,
    model.LogEntry,
    model.Outcome,
    model.RefillLog,
    model.Bolus,
    model.Sample,
    flow.DailySchedule,
    flow.Overlay,
    flow.Flow,
    device.Outgoing,
    effects.AlarmTransitions,
    effects.Recorded,
    effects.DeviceChanged,
    effects.Counted,
]

_MISSING = inspect.Parameter.empty


def _parameters(function: object) -> list[tuple[str, object, object]]:
    out = []
    for p in list(inspect.signature(function).parameters.values())[1:]:  # type: ignore[arg-type]
        default = p.default
        if default is not _MISSING and type(default).__name__ in ("_HAS_DEFAULT_FACTORY_CLASS", "object"):
            default = "factory"
        out.append((p.name, p.kind, default))
    return out


def _state(obj: object) -> list[object]:
    return [getattr(obj, f.name) for f in dataclasses.fields(obj)]  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_same_parameters_as_the_generated_init(cls: type) -> None:
    fast = cls.__init__
    assert fast.generated is not fast
    assert _parameters(fast) == _parameters(fast.generated)


def _made_both_ways(cls: type, *args: object, **kwargs: object) -> tuple[object, object]:
    fast = cls(*args, **kwargs)
    slow = cls.__new__(cls)
    cls.__init__.generated(slow, *args, **kwargs)
    return fast, slow


SCHEDULE = flow.DailySchedule((0.0, 3600.0), (1e-6, 2e-6), -300.0)

CALLS: list[tuple[type, tuple[object, ...], dict[str, object]]] = [
    (model.AlarmChange, (AlarmCode.RESERVOIR_LOW, True, "a1-x", 1.0, 2.0, "m"), {}),
    (model.ClinicalEvent, ("refill", 3.0), {}),
    (model.ClinicalEvent, ("refill", 3.0, "d"), {}),
    (model.LogEntry, (1, 2.0, DeviceLogKind.REFILL), {"volume_ml": 3.0, "dose_after_mg_per_day": None}),
    (model.LogEntry, (1, 2.0, DeviceLogKind.REPROGRAM, "x", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0), {}),
    (model.Outcome, (True,), {}),
    (model.Outcome, (False, "no"), {"details": {"a": 1}, "effects": []}),
    (model.RefillLog, (1.0, 2.0, 3.0, 4.0, Drug.MORPHINE, 5.0), {}),
    (model.Bolus, ("patient", 0.1, 0.0, 60.0), {}),
    (flow.DailySchedule, ((0.0,), (1e-5,)), {}),
    (flow.DailySchedule, ((0.0, 3600.0), (1e-6, 2e-6), -300.0), {}),
    (flow.Overlay, (1.0, 2.0, 3.0), {}),
    (flow.Flow, (SCHEDULE,), {}),
    (flow.Flow, (SCHEDULE, flow.Overlay(1.0, 2.0, 3.0)), {}),
    (device.Outgoing, (Channel.STATE, State.model_construct()), {}),
    (effects.AlarmTransitions, ((),), {}),
    (effects.AlarmTransitions, ((), None, datetime(2026, 1, 1, tzinfo=UTC)), {}),
    (effects.Recorded, (("s", "d"), State.model_construct()), {}),
    (effects.DeviceChanged, (("s", "d"),), {}),
    (effects.DeviceChanged, (("s", "d"),), {"snapshot": False}),
    (effects.Counted, ("messages_in", "telemetry"), {}),
    (effects.Counted, ("gaps", "missing", 3), {}),
]


@pytest.mark.parametrize(("cls", "args", "kwargs"), CALLS, ids=lambda x: getattr(x, "__name__", ""))
def test_the_same_fields_as_the_generated_init(cls: type, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    fast, slow = _made_both_ways(cls, *args, **kwargs)
    assert fast == slow
    for a, b in zip(_state(fast), _state(slow), strict=True):
        assert type(a) is type(b)
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
    if cls is flow.DailySchedule:  # the fields __post_init__ derives
        for name in ("_bounds", "_cum", "_day_total", "_seg_rates", "_memo"):
            assert repr(getattr(fast, name)) == repr(getattr(slow, name))
    # default factories give each instance its own value
    if cls is model.Outcome and not kwargs:
        again = cls(*args)
        assert again.details is not fast.details
        assert again.effects is not fast.effects


def test_refuses_what_it_cannot_do() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    with pytest.raises(TypeError):
        fast_frozen_init(NoSlots)

    @fast_frozen_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Keywords:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)
        c: int = dataclasses.field(default=5, kw_only=True)
        d: int = dataclasses.field(default=7, init=False)

    k = Keywords(1, c=2)
    assert (k.a, k.b, k.c, k.d) == (1, [], 2, 7)
    assert _parameters(Keywords.__init__) == _parameters(Keywords.__init__.generated)
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.a = 2  # type: ignore[misc]
