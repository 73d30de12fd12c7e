"""What a rule measures in one host's result: pure functions over the probe document.

Every function here answers "no data" with ``None`` rather than guessing: a family
the probe could not read (``null`` plus an entry in ``errors``) must leave the
alert where it was, not resolve it (node_exporter's habit: no data is not "ok").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fleetstat.config import AlertRule
from fleetstat.model import HostResult


@dataclass(frozen=True)
class Measurement:
    """A rule's value for one host, and what exactly was measured (for the mail)."""

    value: float
    detail: str | None = None  # "/var" for disk, "timeout" for unreachable, ...


def metric_value(rule: AlertRule, result: HostResult) -> float | None:
    """The number ``rule`` compares with its limit, or ``None`` when there is no data.

    memory, swap, cpu: ``used_percent``; disk: the named mount's ``used_percent``,
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
    if not isinstance(document, dict):
        return None  # a failed attempt says nothing about memory or disks
    if rule.type in ("memory", "swap"):
        return _percent(_family(document, rule.type).get("used_percent"))
    if rule.type == "cpu":
        cpu = _family(document, "cpu")
        if rule.window == "interval":
            # The average since the previous collection, once the server computes it
            # from the cumulative counters (issue 5); until then the short window.
            interval = _percent(cpu.get("interval_percent"))
            if interval is not None:
                return Measurement(interval.value, detail="interval")
        return _percent(cpu.get("used_percent"))
    if rule.type == "load":
        return _load_per_core(document)
    if rule.type == "disk":
        return _disk(document.get("disks"), rule.mount)
    raise ValueError(f"unknown alert type {rule.type!r}")  # pragma: no cover - config checks


def _family(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _percent(value: object, detail: str | None = None) -> Measurement | None:
    number = _number(value)
    return None if number is None else Measurement(number, detail)


def _load_per_core(document: dict[str, Any]) -> Measurement | None:
    load = _family(document, "load")
    avg1 = _number(load.get("avg1"))
    count = _number(_family(document, "cpu").get("count"))
    if avg1 is not None and count is not None and count >= 1:
        return Measurement(avg1 / count)
    # No CPU count (the cpu family failed): the probe's own per-core figure, if any.
    return _percent(load.get("per_core1"))


def _disk(disks: object, mount: str | None) -> Measurement | None:
    if not isinstance(disks, list):
        return None
    best: Measurement | None = None
    for disk in disks:
        if not isinstance(disk, dict):
            continue
        percent = _number(disk.get("used_percent"))
        name = disk.get("mount")
        if percent is None or not isinstance(name, str):
            continue
        if mount is not None:
            if _same_mount(name, mount):
                return Measurement(percent, detail=name)
            continue
        if best is None or percent > best.value:
            best = Measurement(percent, detail=name)
    return best


def _same_mount(reported: str, wanted: str) -> bool:
    # "/var/" in the config is "/var"; Windows drive letters compare case-blind ("c:").
    def norm(path: str) -> str:
        path = path.rstrip("/\\") or path[:1]
        return path.lower() if len(path) >= 2 and path[1] == ":" else path

    return norm(reported) == norm(wanted)
