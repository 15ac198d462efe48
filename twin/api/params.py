"""Query parameters shared by several routes, checked the same way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query


def _problem(status: int, reason: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "detail": detail})


def aware_since(
    since: Annotated[datetime | None, Query(description="ISO 8601 with a timezone")] = None,
) -> datetime | None:
    """The ``since`` query parameter as an aware UTC datetime; 422 when it has no timezone or
    falls outside the years a journal can hold (``0001-01-01T00:00:00+07:04`` is before year 1 in UTC)."""
    if since is None:
        return None
    if since.tzinfo is None:
        raise _problem(422, "naive_time", "since needs a timezone (e.g. Z)")
    try:
        moved = since.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _problem(422, "time_out_of_range", "since is outside the years a journal holds") from None
    if not 1000 <= moved.year <= 9998:
        raise _problem(422, "time_out_of_range", "since is outside the years a journal holds")
    return moved


Since = Annotated[datetime | None, Depends(aware_since)]
