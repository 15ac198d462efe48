"""The catheter's dead space: drug reaches the tip in the order it left the reservoir.

An implanted catheter holds about 0.25 mL (0.0026 mL/cm × 60–110 cm, [V-S19]); it is always full.
Whatever leaves the reservoir pushes the same volume out of the tip, so a new drug or a new
concentration reaches the patient only once the catheter's volume has been pushed through: at
0.1 mL/day about 2.5 days for 0.25 mL, unless a bolus pushes it faster ([I] DOMAIN-RESEARCH §1.4).

:class:`CatheterContents` is a first-in first-out queue of segments (volume, concentration),
the oldest nearest the tip. Volumes are mL, concentrations mg/mL, masses mg. The total volume
never changes (the catheter is full), so the model's volume accounting is untouched: only the
*concentration* reaching the tip is delayed, and with it the dose.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from typing import Final

MERGE_TOLERANCE_MG_PER_ML: Final = 1e-12
"""Adjacent segments whose concentrations differ by less than this are one segment."""

DUST_ML: Final = 1e-7
"""A head segment this small has left the tip (what float rounding of crossing times leaves behind)."""

_EPS_ML: Final = 1e-12


class CatheterContents:
    """The drug inside the catheter, tip first. A catheter of volume 0 passes drug straight through."""

    def __init__(self, volume_ml: float, concentration_mg_per_ml: float) -> None:
        if volume_ml < 0:
            raise ValueError("a catheter volume cannot be negative")
        self.volume_ml = volume_ml
        self._segments: deque[list[float]] = deque()
        if volume_ml > 0:
            self._segments.append([volume_ml, concentration_mg_per_ml])

    @property
    def tip_concentration_mg_per_ml(self) -> float | None:
        """Concentration now leaving the tip; ``None`` for a catheter of volume 0."""
        return self._segments[0][1] if self._segments else None

    @property
    def segments(self) -> tuple[tuple[float, float], ...]:
        """(volume, concentration) from the tip back to the pump."""
        return tuple((v, c) for v, c in self._segments)

    def volume_to_next_change_ml(self, entering_mg_per_ml: float) -> float | None:
        """Volume to push (with ``entering_mg_per_ml`` coming in) before the tip concentration
        changes; ``None`` when it never will (the catheter and what enters are one concentration)."""
        if len(self._segments) >= 2:
            return self._segments[0][0]
        if self._segments and abs(self._segments[0][1] - entering_mg_per_ml) > MERGE_TOLERANCE_MG_PER_ML:
            return self._segments[0][0]
        return None

    def push(self, volume_ml: float, concentration_mg_per_ml: float) -> float:
        """Push ``volume_ml`` at ``concentration_mg_per_ml`` in at the pump end; return the mass (mg)
        that leaves the tip (the same volume, at the concentrations already inside)."""
        if volume_ml <= 0:
            return 0.0
        if not self._segments:
            return volume_ml * concentration_mg_per_ml
        tail = self._segments[-1]
        if abs(tail[1] - concentration_mg_per_ml) <= MERGE_TOLERANCE_MG_PER_ML:
            tail[0] += volume_ml
        else:
            self._segments.append([volume_ml, concentration_mg_per_ml])
        mass = 0.0
        left = volume_ml
        while left > _EPS_ML and self._segments:
            head = self._segments[0]
            taken = min(head[0], left)
            mass += taken * head[1]
            head[0] -= taken
            left -= taken
            if head[0] <= _EPS_ML and len(self._segments) > 1:
                self._segments.popleft()
        # keep the total exact against float drift: the catheter is always full
        total = sum(v for v, _ in self._segments)
        self._segments[-1][0] += self.volume_ml - total
        return mass

    def drop_head(self) -> float:
        """At the computed time the head segment leaves the tip: drop what float rounding left of it
        (at most :data:`DUST_ML`). Returns that dust's mass (counted as delivered); the catheter
        stays full. Does nothing when the head is already gone or is larger than dust."""
        if len(self._segments) < 2 or self._segments[0][0] > DUST_ML:
            return 0.0
        volume, concentration = self._segments.popleft()
        self._segments[-1][0] += volume
        return volume * concentration

    def refill_with(self, concentration_mg_per_ml: float) -> None:
        """A new catheter (revision), primed with ``concentration_mg_per_ml`` (a priming bolus)."""
        self._segments.clear()
        if self.volume_ml > 0:
            self._segments.append([self.volume_ml, concentration_mg_per_ml])
