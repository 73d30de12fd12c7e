"""Query parameters shared by several routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleetstat.api.errors import ApiError
from fleetstat.units import parse_duration

MOMENT_HELP = "an ISO 8601 time (2026-12-01T08:00:00Z) or a duration ago (7d, 2h, 30m)"


def moment(value: str | None, name: str, now: datetime) -> datetime | None:
    """``7d`` (that long before ``now``) or an ISO 8601 time; naive times are UTC."""
    if value is None or value == "":
        return None
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: give {MOMENT_HELP}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
