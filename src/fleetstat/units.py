"""Units shared by the config file, the command line and the probe's documents.

Durations are written the way operators say them: ``"10s"``, ``"5m"``, ``"4h"``,
``"7d"``, ``"2w"``, a bare number of seconds (``"90"``, ``"1.5"``), or a
sequence such as ``"1h30m"``. :func:`parse_duration` turns them into seconds
(a ``float``); :func:`format_duration` goes the other way for messages.
:func:`parse_timestamp` reads the ISO 8601 instants a probe writes.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["DURATION_UNITS", "format_duration", "parse_duration", "parse_timestamp"]

#: Seconds per unit. Months and years are left out on purpose: their length varies.
DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_BARE = re.compile(rf"\s*{_NUMBER}\s*")


def parse_duration(text: str) -> float:
    """Return the number of seconds ``text`` means; raise ``ValueError`` if it means none.

    >>> parse_duration("5m"), parse_duration("1h30m"), parse_duration("1.5s"), parse_duration("90")
    (300.0, 5400.0, 1.5, 90.0)
    """
    if _BARE.fullmatch(text):
        seconds = float(text)
    else:
        seconds = 0.0
        position = 0
        for match in _PART.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * DURATION_UNITS[match.group(2).lower()]
            position = match.end()
        if position == 0 or text[position:].strip():
            raise ValueError(
                f"{text!r} is not a duration; write a number with a unit, "
                "such as 30s, 5m, 4h or 7d (a bare number means seconds)"
            )
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """Render ``seconds`` compactly: ``14400 -> "4h"``, ``5400 -> "1h30m"``, ``1.5 -> "1.5s"``."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format a duration of {seconds!r} seconds")
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    remaining = int(seconds)
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = int(DURATION_UNITS[unit])
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 string from the probe as aware UTC; naive means UTC; junk is None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11+: accepts the trailing "Z"
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # year 1 at +05:00 is before year 1 in UTC
        return None
