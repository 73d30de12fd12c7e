"""What a rule measures in one host's result: pure functions over the checked document.

Every function here answers "no data" with ``None`` rather than guessing: a family
the probe could not read (``null`` plus an entry in ``errors``) must leave the
alert where it was, not resolve it (node_exporter's habit: no data is not "ok").
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetstat.config import AlertRule
from fleetstat.document import Document
from fleetstat.model import HostResult


@dataclass(frozen=True)
class Measurement:
    """A rule's value for one host, and what exactly was measured (for the mail)."""

    value: float
    detail: str | None = None  # "/var" for disk, "timeout" for unreachable, ...


def metric_value(rule: AlertRule, result: HostResult) -> float | None:
    """The number ``rule`` compares with its limit, or ``None`` when there is no data.

    memory, swap, cpu: ``used_percent`` (memory with ``scope="cgroup"``: the
    probe's cgroup's, see :func:`_cgroup_memory`); cpu-core: the busiest core's
    percent (the mail names the core); disk: the named mount's ``used_percent``,
    or the fullest filesystem the probe reported (it reports local ones only);
    load: the 1-minute load average per CPU core; unreachable: 1.0 when the
    attempt failed, else 0.0.
    """
    found = measure(rule, result)
    return None if found is None else found.value


def measure(rule: AlertRule, result: HostResult) -> Measurement | None:
    if rule.type == "unreachable":
        if result.ok:
            return Measurement(0.0)
        return Measurement(1.0, detail=result.status.value)
    document = result.document if result.ok else None
    if document is None:
        return None  # a failed attempt says nothing about memory or disks
    if rule.type == "memory" and rule.scope == "cgroup":
        return _cgroup_memory(document)
    if rule.type == "memory":
        return _value(document.memory.used_percent if document.memory else None)
    if rule.type == "swap":
        return _value(document.swap.used_percent if document.swap else None)
    if rule.type == "cpu":
        cpu = document.cpu
        if cpu is None:
            return None
        if rule.window == "interval" and cpu.interval_percent is not None:
            # The average since the previous collection, once the server computes it
            # from the cumulative counters (issue 5); until then the short window.
            return Measurement(cpu.interval_percent, detail="interval")
        return _value(cpu.used_percent)
    if rule.type == "cpu-core":
        # The busiest core over the same window as cpu: a hung single-threaded
        # service is one core at 100 %, 1.6 % of a 64-core host's total.
        cpu = document.cpu
        if cpu is None:
            return None
        core = f"cpu{cpu.busiest_core}" if cpu.busiest_core is not None else None
        return _value(cpu.busiest_core_percent, core)
    if rule.type == "load":
        return _load_per_core(document)
    if rule.type == "disk":
        return _disk(document, rule.mount)
    raise ValueError(f"unknown alert type {rule.type!r}")  # pragma: no cover - config checks


def _value(value: float | None, detail: str | None = None) -> Measurement | None:
    return None if value is None else Measurement(value, detail)


def _cgroup_memory(document: Document) -> Measurement | None:
    """The probe's cgroup's used share of its memory limit; the host's memory
    when no limit below the host's RAM applies (``cgroup`` is null: the host's
    RAM is then the limit); no data when the cgroup could not be read."""
    if document.cgroup is not None:
        return _value(document.cgroup.used_percent, document.cgroup.path or "cgroup")
    if "cgroup" in document.errors:
        return None  # the family failed: unknown, not "no limit"
    return _value(document.memory.used_percent if document.memory else None, "host")


def _load_per_core(document: Document) -> Measurement | None:
    load, cpu = document.load, document.cpu
    if load is None:
        return None
    if load.avg1 is not None and cpu is not None and cpu.count:
        return Measurement(load.avg1 / cpu.count)
    # No CPU count (the cpu family failed): the probe's own per-core figure, if any.
    return _value(load.per_core1)


def _disk(document: Document, mount: str | None) -> Measurement | None:
    if mount is None:
        fullest = document.fullest_disk()
        if fullest is None or fullest.used_percent is None:
            return None
        return Measurement(fullest.used_percent, detail=fullest.mount)
    for disk in document.disks or ():
        if disk.used_percent is not None and disk.mount and _same_mount(disk.mount, mount):
            return Measurement(disk.used_percent, detail=disk.mount)
    return None


def _same_mount(reported: str, wanted: str) -> bool:
    # "/var/" in the config is "/var"; Windows drive letters compare case-blind ("c:").
    def norm(path: str) -> str:
        path = path.rstrip("/\\") or path[:1]
        return path.lower() if len(path) >= 2 and path[1] == ":" else path

    return norm(reported) == norm(wanted)
