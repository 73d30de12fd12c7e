"""The document boundary: a host's decoded JSON in, a typed, checked, bounded object out.

Everything a monitored host returns is untrusted (its sealed document proves only
that *some* holder of the server's public key wrote it for this round). It is
checked here once, right after the envelope is opened (``fleetstat.collector``),
and everything downstream (headline columns, interval CPU, store, alerts, mail,
CLI tables) reads only the :class:`Document` this returns, never the raw dict.

- ``model``: the dataclasses (``Document``, ``Memory``, ``Disk``, ``Event`` ...)
  and ``Document.as_json()``, the sanitised form stored in ``samples.document``;
- ``check``: :func:`parse` (bytes -> Document) and the rules per field;
- ``checker``: the bounds (``Limits``) and the checks of single values.

Imports nothing of store, mail or transport (import-linter checks it).
"""

from fleetstat.document.check import check, count_values, load_json, parse
from fleetstat.document.checker import (
    BASE_BYTES,
    BASE_VALUES,
    EVENT_BYTES,
    EVENT_VALUES,
    SCHEMA,
    Limits,
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
    iso,
)

__all__ = [
    "BASE_BYTES",
    "BASE_VALUES",
    "EVENT_BYTES",
    "EVENT_VALUES",
    "SCHEMA",
    "Cgroup",
    "CollectorRun",
    "Cpu",
    "Disk",
    "DiskIo",
    "DiskIoDevice",
    "Document",
    "Event",
    "HostInfo",
    "Limits",
    "Load",
    "Memory",
    "Process",
    "Processes",
    "SecurityEvents",
    "Swap",
    "check",
    "count_values",
    "iso",
    "load_json",
    "parse",
]
