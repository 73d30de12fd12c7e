"""The typed probe document (schema 1): what everything after the boundary reads.

Built only by :func:`fleetstat.document.parse` (or by tests, which then bypass
the checks on purpose). Every string here is clean (``fleetstat.text``) and
within its column's length, every number finite and within its range, every
timestamp aware UTC within a sane window, every list within its cap.
``extra`` keeps keys this server does not know (a newer probe's fields), cleaned
and bounded but untyped, so that they are stored and not lost.

:meth:`Document.as_json` gives the document as ``samples.document`` stores it:
the probe's shape, sanitised, with ``server_notes`` listing what the boundary
changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

Json = Any  # None | bool | int | float | str | list[Json] | dict[str, Json], cleaned
Extra = Mapping[str, Json]
_NO_EXTRA: Extra = {}


@dataclass(frozen=True)
class HostInfo:
    hostname: str | None = None
    os: str | None = None
    kernel: str | None = None
    arch: str | None = None
    python: str | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Memory:
    total_bytes: int | None = None
    available_bytes: int | None = None
    used_bytes: int | None = None
    used_percent: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Swap:
    total_bytes: int | None = None
    used_bytes: int | None = None
    free_bytes: int | None = None
    used_percent: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Cpu:
    count: int | None = None
    used_percent: float | None = None
    # The busiest online CPU (its number in /proc/stat) over the same window,
    # and each CPU's share in CPU order (the probe sends the first 128).
    busiest_core: int | None = None
    busiest_core_percent: float | None = None
    per_core_percent: tuple[float | None, ...] | None = None
    window_seconds: float | None = None
    counters: Mapping[str, float | None] | None = None
    total_seconds: float | None = None
    busy_seconds: float | None = None
    # Computed by the server (fleetstat.metrics), never taken from the host.
    interval_percent: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    avg1: float | None = None
    avg5: float | None = None
    avg15: float | None = None
    per_core1: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Disk:
    mount: str | None = None
    device: str | None = None
    fstype: str | None = None
    total_bytes: int | None = None
    used_bytes: int | None = None
    free_bytes: int | None = None
    used_percent: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class DiskIoDevice:
    """Cumulative counters since boot of one whole block device."""

    device: str | None = None
    reads: int | None = None
    writes: int | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_seconds: float | None = None
    write_seconds: float | None = None
    busy_seconds: float | None = None
    reads_merged: int | None = None
    writes_merged: int | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class DiskIo:
    devices: tuple[DiskIoDevice, ...] | None = None
    truncated: bool | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Cgroup:
    """The memory limit the probe's cgroup runs under, when below the host's RAM."""

    version: int | None = None
    path: str | None = None
    limit_bytes: int | None = None
    usage_bytes: int | None = None
    used_bytes: int | None = None  # usage less the inactive file cache
    used_percent: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Process:
    pid: int | None = None
    name: str | None = None
    user: str | None = None
    cpu_percent: float | None = None  # over the probe's window, of one CPU
    cpu_seconds: float | None = None  # CPU time since the process started
    rss_bytes: int | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Processes:
    count: int | None = None
    zombies: int | None = None  # null when the table was not read
    top_cpu: tuple[Process, ...] | None = None
    top_memory: tuple[Process, ...] | None = None
    window_seconds: float | None = None
    reason: str | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    event_key: str
    source: str | None = None
    record_id: int | None = None
    occurred_at: datetime | None = None
    event_id: int | None = None
    level: str | None = None
    provider: str | None = None
    computer: str | None = None
    account: str | None = None
    source_address: str | None = None
    logon_type: int | None = None
    summary: str | None = None
    data: Mapping[str, Json] | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class SecurityEvents:
    source: str | None = None
    events: tuple[Event, ...] = ()
    bookmark: Json = None
    truncated: bool | None = None
    warning: str | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class CollectorRun:
    ok: bool | None = None
    duration_seconds: float | None = None
    extra: Extra = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    """One host's document, checked. Families the probe could not read are None."""

    schema: int
    probe_version: str | None = None
    collected_at: datetime | None = None  # the host's clock
    platform: str | None = None
    host: HostInfo | None = None
    memory: Memory | None = None
    swap: Swap | None = None
    cpu: Cpu | None = None
    uptime_seconds: float | None = None
    boot_time: datetime | None = None
    load: Load | None = None
    disks: tuple[Disk, ...] | None = None
    disk_io: DiskIo | None = None
    cgroup: Cgroup | None = None
    processes: Processes | None = None
    security_events: SecurityEvents | None = None
    collectors: Mapping[str, CollectorRun] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    extra: Extra = field(default_factory=dict)
    # What the boundary changed or dropped, one "field: reason" line each.
    notes: tuple[str, ...] = ()

    @property
    def hostname(self) -> str | None:
        return self.host.hostname if self.host is not None else None

    def fullest_disk(self) -> Disk | None:
        """The disk with the highest ``used_percent`` (the first of equals), or None."""
        best: Disk | None = None
        for disk in self.disks or ():
            if disk.used_percent is not None and (
                best is None or best.used_percent is None or disk.used_percent > best.used_percent
            ):
                best = disk
        return best

    def as_json(self) -> dict[str, Any]:
        """The document as stored in ``samples.document``: the probe's shape, sanitised."""
        out = _to_json(self)
        notes = out.pop("notes")
        if notes:
            out["server_notes"] = notes
        return out


# Per dataclass: its field names without "extra", in order (dataclasses.fields is
# slow to ask for every object of every document, and as_json runs once per host).
_NAMES: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset((str, int, float, bool, type(None)))


def _to_json(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _NAMES.get(kind)
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _NAMES[kind] = tuple(f.name for f in fields(value) if f.name != "extra")
    if names is not None:
        out: dict[str, Any] = {name: _to_json(getattr(value, name)) for name in names}
        # Unknown keys after the known ones; a known key always wins.
        for key, item_value in getattr(value, "extra", _NO_EXTRA).items():
            out.setdefault(key, item_value)
        return out
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _to_json(item) for key, item in value.items()}
    return value


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with ``Z``, as the probe writes it (microseconds only when present)."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"
