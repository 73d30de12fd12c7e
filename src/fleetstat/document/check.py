"""Checking a host's JSON into a :class:`~fleetstat.document.model.Document`.

The rules, per field (docs/contracts.md, "The document boundary"):

- a family, list or list entry of the wrong kind (``"memory": [1, 2]``,
  ``"disks": {}``, a disk that is a string) means the document is not what it
  claims to be: :class:`~fleetstat.errors.DocumentError` naming the field (the
  host's attempt is ``bad_payload``);
- a value of the wrong type or out of range (percentages beyond a 0.5 tolerance,
  negative sizes, non-finite numbers, integers too large for their column, a
  timestamp outside 2000-01-01 .. now + 1 year) becomes null;
- a string is cleaned (``fleetstat.text``: no NUL, control, bidi or surrogate
  character) and cut to its column's length;
- a list or map longer than its cap is cut; events beyond what the client's
  config allows are dropped;
- every change is one line in ``Document.notes`` (the first ``MAX_NOTES``, then
  a count), stored with the sample.

Size and shape are bounded *before* ``json.loads`` builds anything: the caller
inflates at most ``Limits.max_bytes`` (``envelope.inflate``) and :func:`parse`
refuses more than ``Limits.max_values`` JSON values, so a small payload cannot
become gigabytes of tiny objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fleetstat.document.checker import (
    BIGINT,
    INT,
    MAX_CORES,
    MAX_DISKS,
    MAX_TOP,
    MESSAGE,
    MISS,
    NAME,
    PATH,
    SCHEMA,
    SHORT,
    SUMMARY,
    Checker,
    Leaf,
    Limits,
    Rule,
    kind,
    shown,
)
from fleetstat.document.model import (
    Cgroup,
    CollectorRun,
    Cpu,
    Disk,
    DiskIo,
    DiskIoDevice,
    Document,
    Event,
    HostInfo,
    Load,
    Memory,
    Process,
    Processes,
    SecurityEvents,
    Swap,
)
from fleetstat.errors import DocumentError


def count_values(data: bytes) -> int:
    """An upper bound of the values and keys in JSON ``data``, without parsing it.

    Every value after the first follows a ``,`` or a ``:``, or opens a container;
    the same bytes inside strings count too, which only overestimates.
    """
    return sum(data.count(mark) for mark in (b",", b":", b"[", b"{")) + 1


def parse(data: bytes, limits: Limits | None = None, *, now: datetime | None = None) -> Document:
    """Inflated document bytes, checked into a :class:`Document`.

    Raises :class:`DocumentError` (``bad_payload``) when they are larger than
    ``limits`` allow, are not a JSON object of schema 1, or a field cannot be
    made sane.
    """
    limits = limits or Limits()
    if len(data) > limits.max_bytes:
        raise DocumentError(None, f"{len(data)} bytes, more than the {limits.max_bytes} allowed")
    values = count_values(data)
    if values > limits.max_values:
        raise DocumentError(
            None, f"about {values} values, more than the {limits.max_values} allowed"
        )
    return check(load_json(data), limits, now=now)


def load_json(data: bytes) -> dict[str, Any]:
    """``json.loads`` of UTF-8 ``data``, which must be an object."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DocumentError(None, "not UTF-8") from None
    except RecursionError:
        raise DocumentError(None, "nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError; integers of more than 4,300 digits
        raise DocumentError(None, f"not JSON ({str(exc)[:200]})") from None
    if not isinstance(raw, dict):
        raise DocumentError(None, f"{kind(raw)}, not an object")
    return raw


def check(
    raw: Mapping[str, Any], limits: Limits | None = None, *, now: datetime | None = None
) -> Document:
    """A decoded document (a dict, untrusted) checked into a :class:`Document`."""
    checker = Checker(limits or Limits(), now or datetime.now(UTC))
    schema = raw.get("schema")
    if type(schema) is not int or schema != SCHEMA:
        raise DocumentError("schema", f"expected {SCHEMA}, got {shown(schema)}")
    known, extra = checker.fields("", raw, _TOP)
    known["collectors"] = known["collectors"] or {}
    known["errors"] = known["errors"] or {}
    known["security_events"] = _events_family(
        checker, raw.get("security_events"), known["platform"]
    )
    notes = checker.notes
    if checker.more_notes:
        notes = [*notes, f"... and {checker.more_notes} more"]
    return Document(schema=schema, **known, extra=extra, notes=tuple(notes))


# -- the rules, field by field ----------------------------------------------------------


def text(limit: int) -> Rule:
    def fast(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is str and len(value) <= limit and value.isprintable():
            return value
        return MISS

    return Leaf(fast, lambda c, path, value: c.text(path, value, limit))


def real(low: float, high: float, slack: float = 0.0) -> Rule:
    # Checker.number's answer for an in-range float or (exactly convertible) int.
    exact = max(abs(low), abs(high)) <= 2**53

    def fast(value: Any) -> Any:
        kind = type(value)
        if kind is float and low <= value <= high:
            return value
        if kind is int and exact and low <= value <= high:
            return float(value)
        return None if value is None else MISS

    return Leaf(fast, lambda c, path, value: c.number(path, value, low, high, slack))


def integer(low: int, high: int) -> Rule:
    def fast(value: Any) -> Any:
        if type(value) is int and low <= value <= high:
            return value
        return None if value is None else MISS

    return Leaf(fast, lambda c, path, value: c.integer(path, value, low, high))


def _when(c: Checker, path: str, value: Any) -> datetime | None:
    return c.when(path, value)


def _flag_fast(value: Any) -> Any:
    return value if value is None or type(value) is bool else MISS


_flag = Leaf(_flag_fast, lambda c, path, value: c.flag(path, value))


def _later(c: Checker, path: str, value: Any) -> None:
    return None  # checked on its own, after the others (see check)


def _server_only(c: Checker, path: str, value: Any) -> None:
    if value is not None:
        c.note(path, "computed by the server: the host's value ignored")


def family(cls: type[Any], rules: Mapping[str, Rule], *, nullable: bool = True) -> Rule:
    """An object checked key by key into ``cls`` (unknown keys into its ``extra``)."""

    def rule(c: Checker, path: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            null = " or null" if nullable else ""
            raise DocumentError(path, f"expected an object{null}, got {kind(value)}")
        known, extra = c.fields(path, value, rules)
        return cls(**known, extra=extra)

    return rule


def listed(cap: Callable[[Limits], int], why: str, item: Rule) -> Rule:
    def rule(c: Checker, path: str, value: Any) -> tuple[Any, ...] | None:
        return None if value is None else c.listed(path, value, cap(c.limits), why, item)

    return rule


def mapping(item: Rule) -> Rule:
    return lambda c, path, value: None if value is None else c.mapping(path, value, item)


PERCENT = real(0.0, 100.0, slack=0.5)
BYTES = integer(0, BIGINT)
SECONDS = real(0.0, 1e13)  # cumulative CPU seconds: thousands of cores over decades
LOAD = real(0.0, 1e6)
COUNT = integer(0, BIGINT)  # cumulative I/O operations

_PROCESS = family(
    Process,
    {
        "pid": integer(0, 2**32),
        "name": text(NAME),
        "user": text(NAME),
        "cpu_percent": real(0.0, 1e7),  # beyond 100 on many cores
        "cpu_seconds": SECONDS,
        "rss_bytes": BYTES,
    },
    nullable=False,
)
_PROCESSES = listed(lambda limits: min(MAX_TOP, max(0, limits.top)), "top-processes", _PROCESS)

_EVENT_FIELDS: dict[str, Rule] = {
    "event_key": text(NAME),
    "source": text(16),
    "record_id": integer(0, BIGINT),
    "occurred_at": _when,
    "event_id": integer(0, INT),
    "level": text(32),
    "provider": text(NAME),
    "computer": text(NAME),
    "account": text(NAME),
    "source_address": text(NAME),
    "logon_type": integer(0, INT),
    "summary": text(SUMMARY),
    "data": mapping(lambda c, path, value: c.extra(path, value, 2)),
}
_EVENT = family(Event, _EVENT_FIELDS, nullable=False)


def _event(c: Checker, path: str, value: Any) -> Event | None:
    event: Event = _EVENT(c, path, value)
    key = value.get("event_key")
    if not event.event_key or event.event_key != key:
        # The key is what makes an event unique on its host: a changed one is not it.
        c.note(f"{path}.event_key", "missing, too long or not clean: event dropped")
        return None
    return event


def _events(c: Checker, path: str, value: Any) -> tuple[Event, ...]:
    if value is None:
        return ()
    allowed = c.allowed_events
    if isinstance(value, list) and len(value) > allowed:
        # Cut before checking one: a flood costs the server nothing more.
        c.note(path, f"{len(value)} events, kept {allowed} ({c.events_why})")
        value = value[:allowed]
    found = c.listed(path, value, allowed, c.events_why, _event)
    return tuple(event for event in found if event is not None)


def _events_family(c: Checker, value: Any, platform: str | None) -> SecurityEvents | None:
    """The events family, with only as many events as the client's config allows."""
    allowed, why = c.limits.events, "the client's <events max>"
    if allowed == 0:
        why = "the client's config does not ask for events"
    elif c.limits.events_if_windows and platform != "windows":
        allowed, why = 0, "events are kept for Windows hosts and clients with <events>"
    c.allowed_events, c.events_why = allowed, why
    family: SecurityEvents | None = _EVENTS_FAMILY(c, "security_events", value)
    return family


_EVENTS_FAMILY = family(
    SecurityEvents,
    {
        "source": text(16),
        "events": _events,
        "bookmark": lambda c, path, value: c.extra(path, value, 1),
        "truncated": _flag,
        "warning": text(MESSAGE),
    },
)

_TOP: dict[str, Rule] = {
    "probe_version": text(SHORT),
    "collected_at": _when,
    "platform": text(SHORT),
    "host": family(
        HostInfo,
        {
            "hostname": text(NAME),
            "os": text(NAME),
            "kernel": text(NAME),
            "arch": text(SHORT),
            "python": text(SHORT),
        },
    ),
    "memory": family(
        Memory,
        {
            "total_bytes": BYTES,
            "available_bytes": BYTES,
            "used_bytes": BYTES,
            "used_percent": PERCENT,
        },
    ),
    "swap": family(
        Swap,
        {"total_bytes": BYTES, "used_bytes": BYTES, "free_bytes": BYTES, "used_percent": PERCENT},
    ),
    "cpu": family(
        Cpu,
        {
            "count": integer(1, 1 << 20),
            "used_percent": PERCENT,
            "busiest_core": integer(0, 1 << 20),
            "busiest_core_percent": PERCENT,
            "per_core_percent": listed(lambda _limits: MAX_CORES, "per-core shares", PERCENT),
            "window_seconds": real(0.0, 3600.0),
            "counters": mapping(SECONDS),
            "total_seconds": SECONDS,
            "busy_seconds": SECONDS,
            "interval_percent": _server_only,
        },
    ),
    "uptime_seconds": real(0.0, 1e10),
    "boot_time": _when,
    "load": family(Load, {"avg1": LOAD, "avg5": LOAD, "avg15": LOAD, "per_core1": LOAD}),
    "disks": listed(
        lambda _limits: MAX_DISKS,
        "one per block device",
        family(
            Disk,
            {
                "mount": text(PATH),
                "device": text(PATH),
                "fstype": text(SHORT),
                "total_bytes": BYTES,
                "used_bytes": BYTES,
                "free_bytes": BYTES,
                "used_percent": PERCENT,
            },
            nullable=False,
        ),
    ),
    "disk_io": family(
        DiskIo,
        {
            "devices": listed(
                lambda _limits: MAX_DISKS,
                "one per block device",
                family(
                    DiskIoDevice,
                    {
                        "device": text(SHORT),
                        "reads": COUNT,
                        "writes": COUNT,
                        "read_bytes": BYTES,
                        "write_bytes": BYTES,
                        "read_seconds": SECONDS,
                        "write_seconds": SECONDS,
                        "busy_seconds": SECONDS,
                        "reads_merged": COUNT,
                        "writes_merged": COUNT,
                    },
                    nullable=False,
                ),
            ),
            "truncated": _flag,
        },
    ),
    "cgroup": family(
        Cgroup,
        {
            "version": integer(1, 2),
            "path": text(PATH),
            "limit_bytes": BYTES,
            "usage_bytes": BYTES,
            "used_bytes": BYTES,
            "used_percent": PERCENT,
        },
    ),
    "processes": family(
        Processes,
        {
            "count": integer(0, INT),
            "zombies": integer(0, INT),
            "top_cpu": _PROCESSES,
            "top_memory": _PROCESSES,
            "window_seconds": real(0.0, 3600.0),
            "reason": text(NAME),
        },
    ),
    "security_events": _later,
    "collectors": mapping(
        family(CollectorRun, {"ok": _flag, "duration_seconds": real(0.0, 86400.0)}, nullable=False)
    ),
    "errors": mapping(text(MESSAGE)),
}
