"""The headline figures of a probe document, as the typed columns of ``samples``.

Pure: a checked :class:`~fleetstat.document.Document` in, a dict of column values
out. The document boundary already made every value fit its column (lengths,
ranges, finite numbers, UTC times); a family the probe could not read is None
and its columns are null.
"""

from __future__ import annotations

from typing import Any

from fleetstat.document import Document

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


def headline(document: Document) -> dict[str, Any]:
    """Column values for one sample; every key of ``HEADLINE_COLUMNS`` is present."""
    host, memory, swap = document.host, document.memory, document.swap
    cpu, load = document.cpu, document.load
    fullest = document.fullest_disk()
    return {
        "collected_at": document.collected_at,
        "hostname": host.hostname if host else None,
        "os": host.os if host else None,
        "kernel": host.kernel if host else None,
        "cpu_percent": cpu.used_percent if cpu else None,
        # Filled in by the server before the round is stored (fleetstat.metrics).
        "cpu_interval_percent": cpu.interval_percent if cpu else None,
        "cpu_count": cpu.count if cpu else None,
        "memory_total_bytes": memory.total_bytes if memory else None,
        "memory_used_bytes": memory.used_bytes if memory else None,
        "memory_available_bytes": memory.available_bytes if memory else None,
        "memory_percent": memory.used_percent if memory else None,
        "swap_total_bytes": swap.total_bytes if swap else None,
        "swap_used_bytes": swap.used_bytes if swap else None,
        "swap_percent": swap.used_percent if swap else None,
        "load1": load.avg1 if load else None,
        "load5": load.avg5 if load else None,
        "load15": load.avg15 if load else None,
        "uptime_seconds": document.uptime_seconds,
        "disk_max_percent": fullest.used_percent if fullest else None,
        "disk_max_mount": fullest.mount if fullest else None,
    }
