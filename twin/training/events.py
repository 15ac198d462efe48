"""Events in the life of a training session, as the journal keeps them. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class TrainingEvent:
    """One event in the life of a training session (table ``training_event``): ``started`` (detail:
    the session's scenario, run, instructor, trainees, pumps, speed), ``paused-N``/``resumed-N``,
    and ``completed`` or ``aborted`` (detail: the final report). ``at``: the twin's clock."""

    session_id: str
    event: str
    actor: str
    at: datetime
    detail: dict[str, Any]
