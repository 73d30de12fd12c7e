"""Units shared by the config file, the command line and the probe's documents.

Durations are written the way operators say them: ``"10s"``, ``"5m"``, ``"4h"``,
``"7d"``, ``"2w"``, a bare number of seconds (``"90"``, ``"1.5"``), or a
sequence such as ``"1h30m"``. :func:`parse_duration` turns them into seconds
(a ``float``); :func:`format_duration` goes the other way for messages.
:func:`parse_timestamp` reads the ISO 8601 instants a probe writes.
:func:`strict_json` writes JSON as RFC 8259 has it, a NaN or an infinity as null.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DURATION_UNITS",
    "SIZE_UNITS",
    "Serialized",
    "finite",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
    "parse_timestamp",
    "strict_json",
]

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


#: Bytes per size unit. Binary, as ``du -h`` and ``ls -lh`` count: ``MB`` and
#: ``MiB`` are both 1,048,576 bytes.
SIZE_UNITS: dict[str, int] = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(rf"\s*({_NUMBER})\s*(?:([kmgt])(?:i?b)?|b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Return the number of bytes ``text`` means (``"512MB"``, ``"1GiB"``, ``"4096"``).

    >>> parse_size("512MB"), parse_size("1 GiB"), parse_size("64k"), parse_size("100")
    (536870912, 1073741824, 65536, 100)
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a size; write a number with a unit, such as 512MB or 2GB "
            "(binary units: 1MB = 1024 KB; a bare number means bytes)"
        )
    return int(float(match.group(1)) * SIZE_UNITS[(match.group(2) or "b").lower()])


def format_size(count: float) -> str:
    """``1536 -> "1.5 KiB"``: bytes in the largest binary unit that keeps a number >= 1."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Serialized:
    """A JSON object as its text: :func:`strict_json` returns ``text``.

    A host's document is serialised once when its rows are prepared (to find a
    value the engine could not write before the batch does), and the engine's
    serialiser, which is :func:`strict_json`, then sends that same text instead
    of serialising the document a second time. Only the text is kept: a round's
    rows are prepared all at once, and keeping each document's dict beside its
    text held some 4 MB more at a 500-host round's peak (docs/performance.md,
    "Sixth pass"). Not a dict: anything else that serialises it fails loudly
    rather than writing something else.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, value: dict[str, Any]) -> Serialized:
        return cls(strict_json(value))

    def __repr__(self) -> str:
        return f"Serialized({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


def strict_json(value: object, **options: Any) -> str:
    """``json.dumps(value, **options)`` with every NaN and infinity written as null.

    Python writes them as the tokens ``NaN`` and ``Infinity``, which are not JSON
    (RFC 8259 section 6): browsers' JSON.parse, PostgreSQL's JSONB and MariaDB's
    json_valid() refuse them. The walk that replaces them runs only when one occurs.
    """
    if type(value) is Serialized and not options:
        return value.text
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **options)


def finite(value: object) -> object:
    """``value`` with every float that is NaN or infinite, at any depth, as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
