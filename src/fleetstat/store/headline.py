"""The headline figures of a probe document, as the typed columns of ``samples``.

Pure: a document in, a dict of column values out. A family the probe could not
read is ``null`` (or missing, or the wrong shape from an older probe): its columns
become ``None``; nothing here raises on a bad document, because one odd host must
not cost the round its write.
"""

from __future__ import annotations

import math
from typing import Any

from fleetstat.store.schema import MOUNT_LEN, NAME_LEN
from fleetstat.units import parse_timestamp

_BIGINT_LIMIT = 2**63  # a signed 64-bit column; a larger count is junk, not data

HEADLINE_COLUMNS = (
    "collected_at",
    "hostname",
    "os",
    "kernel",
    "cpu_percent",
    "cpu_interval_percent",
    "cpu_count",
    "memory_total_bytes",
    "memory_used_bytes",
    "memory_available_bytes",
    "memory_percent",
    "swap_total_bytes",
    "swap_used_bytes",
    "swap_percent",
    "load1",
    "load5",
    "load15",
    "uptime_seconds",
    "disk_max_percent",
    "disk_max_mount",
)


def headline(document: dict[str, Any]) -> dict[str, Any]:
    """Column values for one sample; every key of ``HEADLINE_COLUMNS`` is present."""
    host = _family(document, "host")
    memory = _family(document, "memory")
    swap = _family(document, "swap")
    cpu = _family(document, "cpu")
    load = _family(document, "load")
    disk_percent, disk_mount = _fullest_disk(document.get("disks"))
    return {
        "collected_at": parse_timestamp(document.get("collected_at")),
        "hostname": _text(host.get("hostname"), NAME_LEN),
        "os": _text(host.get("os"), NAME_LEN),
        "kernel": _text(host.get("kernel"), NAME_LEN),
        "cpu_percent": _real(cpu.get("used_percent")),
        # Filled in by the server before the round is stored (fleetstat.metrics).
        "cpu_interval_percent": _real(cpu.get("interval_percent")),
        "cpu_count": _integer(cpu.get("count")),
        "memory_total_bytes": _integer(memory.get("total_bytes")),
        "memory_used_bytes": _integer(memory.get("used_bytes")),
        "memory_available_bytes": _integer(memory.get("available_bytes")),
        "memory_percent": _real(memory.get("used_percent")),
        "swap_total_bytes": _integer(swap.get("total_bytes")),
        "swap_used_bytes": _integer(swap.get("used_bytes")),
        "swap_percent": _real(swap.get("used_percent")),
        "load1": _real(load.get("avg1")),
        "load5": _real(load.get("avg5")),
        "load15": _real(load.get("avg15")),
        "uptime_seconds": _real(document.get("uptime_seconds")),
        "disk_max_percent": disk_percent,
        "disk_max_mount": disk_mount,
    }


def _family(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _fullest_disk(disks: object) -> tuple[float | None, str | None]:
    best: tuple[float | None, str | None] = (None, None)
    if not isinstance(disks, list):
        return best
    for disk in disks:
        if not isinstance(disk, dict):
            continue
        percent = _real(disk.get("used_percent"))
        if percent is not None and (best[0] is None or percent > best[0]):
            best = (percent, _text(disk.get("mount"), MOUNT_LEN))
    return best


def _real(value: object) -> float | None:
    # bool is an int; NaN and infinity are refused by MySQL and mean nothing here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int) and -_BIGINT_LIMIT <= value < _BIGINT_LIMIT:
        return value
    return None


def _text(value: object, limit: int) -> str | None:
    # Strict SQL modes reject an over-long value and with it the whole round; the
    # full string stays in the document.
    return value[:limit] if isinstance(value, str) else None
