"""One document's check: the bounds, the notes, and the checks of single values.

``fleetstat.document.check`` holds the rules that say which check applies to
which field; this module holds the checks themselves (:class:`Checker`) and the
bounds they enforce (:class:`Limits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetstat.document.model import Json
from fleetstat.errors import DocumentError
from fleetstat.text import clean
from fleetstat.units import parse_timestamp

SCHEMA = 1

# -- bounds -------------------------------------------------------------------------
# Measured (docs/contracts.md, "The document boundary"): a Linux document is about
# 3.8 KB of JSON without its process lists and about 27 KB with two full lists of
# 100 (116 bytes an entry), the most the probe sends; a Windows one is 1.5 KB
# without events, and Security events are 0.4-1.3 KB and 35-88 values each. The
# caps leave 9x or more of headroom.
BASE_BYTES = 256 * 1024
EVENT_BYTES = 4 * 1024
BASE_VALUES = 32_768
EVENT_VALUES = 160
MAX_DISKS = 512  # one per block device (the probe reports a device once)
MAX_TOP = 100  # the probe's own ceiling for --top
MAX_CORES = 1024  # per-core shares (the probe sends at most 128)
MAX_ENTRIES = 64  # errors, collectors, CPU counters: one per collector or field
MAX_NOTES = 50
EXTRA_ITEMS = 1024  # per list or map under a key this server does not know
EXTRA_DEPTH = 6
EXTRA_VALUES = 16_384
# String lengths: the store's columns (store/schema.py NAME_LEN, MOUNT_LEN, the
# events' source, level and summary), a log message, a dict key.
NAME = 255
PATH = 1024
SHORT = 64
MESSAGE = 2000
SUMMARY = 4000
KEY = 128
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
AHEAD = timedelta(days=366)
BIGINT = 2**63 - 1
INT = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    """What one client's document may hold (``fleetstat.collector.limits_for``).

    ``events``: the security events kept per round (the client's ``<events max>``
    when its config asks for events, else 0); with ``events_if_windows``, only
    when the document is a Windows host's (``os="auto"``: a Windows probe sends
    its Security log by default). ``top``: entries per top-process list.
    """

    events: int = 0
    events_if_windows: bool = False
    top: int = MAX_TOP

    @property
    def max_bytes(self) -> int:
        return BASE_BYTES + EVENT_BYTES * max(0, self.events)

    @property
    def max_values(self) -> int:
        return BASE_VALUES + EVENT_VALUES * max(0, self.events)


Rule = Callable[["Checker", str, Any], Any]
MISS: Any = object()  # a Leaf's fast answer: "not the common case, ask the rule itself"


class Leaf:
    """A rule for one value, with a fast answer for the common case.

    ``fast(value)`` returns the checked value when it needs no change and no note
    (a float in range, clean short text, ...), else :data:`MISS`; only then is
    the rule itself called, with the value's path for its notes. A document is
    some 300 values, nearly all of them fine: building each one's path and going
    through the :class:`Checker` methods was most of the check's cost.
    """

    __slots__ = ("fast", "rule")

    def __init__(self, fast: Callable[[Any], Any], rule: Rule) -> None:
        self.fast = fast
        self.rule = rule

    def __call__(self, c: Checker, path: str, value: Any) -> Any:
        checked = self.fast(value)
        return self.rule(c, path, value) if checked is MISS else checked


# Keys that are ours, not data: "schema" is checked first; "server_notes" is what we add.
RESERVED = ("schema", "notes", "server_notes")


class Checker:
    """One document's check: the limits, the notes so far, the budget for unknown keys."""

    def __init__(self, limits: Limits, now: datetime) -> None:
        self.limits = limits
        self.latest = now + AHEAD
        self.notes: list[str] = []
        self.more_notes = 0
        self.extra_left = EXTRA_VALUES
        self.allowed_events = limits.events
        self.events_why = ""

    def note(self, path: str, reason: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(f"{path}: {reason}")
        else:
            self.more_notes += 1

    # -- containers ------------------------------------------------------------------

    def fields(
        self, path: str, raw: Mapping[str, Any], rules: Mapping[str, Rule]
    ) -> tuple[dict[str, Any], dict[str, Json]]:
        """``(known, extra)``: known keys through their rules, every other key cleaned."""
        known: dict[str, Any] = dict.fromkeys(rules)
        extra: dict[str, Json] = {}
        for key, value in raw.items():
            rule = rules.get(key)
            if type(rule) is Leaf:
                checked = rule.fast(value)
                if checked is not MISS:
                    known[key] = checked
                    continue
                rule = rule.rule
            where = f"{path}.{key}" if path else key
            if rule is not None:
                known[key] = rule(self, where, value)
            elif key not in RESERVED:
                extra[self.key(path, key)] = self.extra(where, value, 1)
        return known, extra

    def listed(self, path: str, value: Any, cap: int, why: str, item: Rule) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise DocumentError(path, f"expected a list or null, got {kind(value)}")
        if len(value) > cap:
            self.note(path, f"{len(value)} entries, kept the first {cap} ({why})")
            value = value[:cap]
        return tuple(item(self, f"{path}[{index}]", entry) for index, entry in enumerate(value))

    def mapping(self, path: str, value: Any, item: Rule) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise DocumentError(path, f"expected an object or null, got {kind(value)}")
        if len(value) > MAX_ENTRIES:
            self.note(path, f"{len(value)} entries, kept the first {MAX_ENTRIES}")
        out = {}
        for key, entry in list(value.items())[:MAX_ENTRIES]:
            name = self.key(path, key)
            checked = item(self, f"{path}.{name}", entry)
            if checked is not None:
                out[name] = checked
        return out

    # -- leaves ----------------------------------------------------------------------

    def key(self, path: str, key: str) -> str:
        if len(key) <= KEY and key.isprintable():
            return key
        text, reasons = clean(key, KEY)
        if reasons:
            self.note(f"{path}.{text}" if path else text, "key " + "; ".join(reasons))
        return text

    def text(self, path: str, value: Any, limit: int) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.note(path, f"expected text, got {kind(value)}: dropped")
            return None
        text, reasons = clean(value, limit)
        for reason in reasons:
            self.note(path, reason)
        return text

    def number(
        self, path: str, value: Any, low: float, high: float, slack: float = 0.0
    ) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.note(path, f"expected a number, got {kind(value)}: dropped")
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer literal beyond a float's range
            self.note(path, f"{shown(value)}: too large, dropped")
            return None
        if not math.isfinite(number):
            self.note(path, f"{number} is not a finite number: dropped")
            return None
        if not low - slack <= number <= high + slack:
            self.note(path, f"{shown(value)} is outside {low:g}..{high:g}: dropped")
            return None
        return min(max(number, low), high)  # within the slack: rounding at the edge

    def integer(self, path: str, value: Any, low: int, high: int) -> int | None:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.note(path, f"expected an integer, got {kind(value)}: dropped")
            return None
        if not low <= value <= high:
            self.note(path, f"{shown(value)} is outside {low}..{high}: dropped")
            return None
        return value

    def when(self, path: str, value: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > 40:
            self.note(path, f"expected an ISO 8601 time, got {shown(value)}: dropped")
            return None
        moment = parse_timestamp(value)  # naive means UTC
        if moment is None:
            self.note(path, f"{shown(value)} is not a time: dropped")
            return None
        if not EARLIEST <= moment <= self.latest:
            self.note(path, f"{shown(value)} is outside {EARLIEST.year}..now + 1 year: dropped")
            return None
        return moment

    def flag(self, path: str, value: Any) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.note(path, f"expected true or false, got {kind(value)}: dropped")
        return None

    def extra(self, path: str, value: Any, depth: int) -> Json:
        """A value under a key this server does not know: kept, cleaned and bounded."""
        if self.extra_left <= 0:
            if self.extra_left == 0:
                self.note(path, f"more than {EXTRA_VALUES} values under unknown keys: dropped")
                self.extra_left = -1
            return None
        self.extra_left -= 1
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return self.integer(path, value, -BIGINT, BIGINT)
        if isinstance(value, float):
            return self.number(path, value, -math.inf, math.inf)
        if isinstance(value, str):
            return self.text(path, value, MESSAGE)
        if depth > EXTRA_DEPTH:
            self.note(path, f"nested deeper than {EXTRA_DEPTH} levels: dropped")
            return None
        if len(value) > EXTRA_ITEMS:
            self.note(path, f"{len(value)} entries, kept the first {EXTRA_ITEMS}")
        if isinstance(value, list):
            return [
                self.extra(f"{path}[{i}]", item, depth + 1)
                for i, item in enumerate(value[:EXTRA_ITEMS])
            ]
        items = list(value.items())[:EXTRA_ITEMS]
        return {self.key(path, k): self.extra(f"{path}.{k}", v, depth + 1) for k, v in items}


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def shown(value: object) -> str:
    """A short, clean picture of a value for a note or an error message."""
    if isinstance(value, str):
        return repr(clean(value, 40)[0])
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, list | dict) or value is None:
        return kind(value)
    return repr(value)
