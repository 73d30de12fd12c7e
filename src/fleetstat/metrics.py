"""Figures the server derives from more than one collection: the interval CPU.

The probe reports two CPU figures: ``used_percent`` over a short window (0.25 s,
a snapshot) and the cumulative counters since boot (``total_seconds``,
``busy_seconds``). From two collections of the same host the server gets the
average over the whole interval between them, which is what Prometheus's
``rate()`` gives: busy delta / total delta. A missed round only makes the interval
longer; a reboot (or any counter going backwards) makes it unknown, never
negative or huge.

Pure functions; the store supplies the previous counters (``host_latest``, one
query per round) and keeps the result in ``samples.cpu_interval_percent``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleetstat.units import parse_timestamp

if TYPE_CHECKING:
    from fleetstat.document import Document
    from fleetstat.model import HostResult, RoundResult

# The Linux probe reports the kernel's btime (fixed at boot, but moved by a clock
# step of the host); the Windows probe derives boot_time from the wall clock minus
# the uptime, rounded to the second, so two collections of a host that did not
# reboot can disagree by a second. A reboot moves it by far more than the time a
# machine takes to boot.
BOOT_TIME_TOLERANCE_SECONDS = 5.0


@dataclass(frozen=True)
class CpuCounters:
    """A host's cumulative CPU counters at one collection (seconds since boot)."""

    total_seconds: float | None
    busy_seconds: float | None
    boot_time: datetime | None = None

    @classmethod
    def from_document(cls, document: Document | None) -> CpuCounters | None:
        """The counters of a checked document, or None when its cpu family is missing."""
        if document is None or document.cpu is None:
            return None
        cpu = document.cpu
        return cls(cpu.total_seconds, cpu.busy_seconds, document.boot_time)


def interval_cpu_percent(
    prev_counters: Mapping[str, Any] | None,
    prev_boot_time: datetime | str | None,
    cur_counters: Mapping[str, Any] | None,
    cur_boot_time: datetime | str | None,
) -> float | None:
    """Average CPU use (0-100) between two collections of one host, or None.

    ``*_counters`` hold ``total_seconds`` and ``busy_seconds`` (the probe's ``cpu``
    family); ``*_boot_time`` is the host's boot time (ISO 8601 or aware datetime).
    None when either side lacks the counters, when the host rebooted in between
    (boot time moved, or a counter went backwards: the counters restart at zero),
    or when no CPU time passed (the same collection twice).

    Only the two sums are compared, not each field: busy excludes iowait, and the
    kernel documents that iowait itself can decrease (Documentation/filesystems/
    proc.rst), which would make a per-field check see reboots that never happened.
    """
    if not isinstance(prev_counters, Mapping) or not isinstance(cur_counters, Mapping):
        return None
    prev_total = _number(prev_counters.get("total_seconds"))
    prev_busy = _number(prev_counters.get("busy_seconds"))
    cur_total = _number(cur_counters.get("total_seconds"))
    cur_busy = _number(cur_counters.get("busy_seconds"))
    if None in (prev_total, prev_busy, cur_total, cur_busy):
        return None
    assert prev_total is not None and prev_busy is not None  # for mypy
    assert cur_total is not None and cur_busy is not None
    if _rebooted(_boot(prev_boot_time), _boot(cur_boot_time)):
        return None
    d_total = cur_total - prev_total
    d_busy = cur_busy - prev_busy
    if d_total <= 0 or d_busy < 0:
        return None  # a reset (counters restarted) or no time at all
    # The probe rounds each counter to 0.01 s, so a fully busy interval can come out
    # a hair over its total: clamp instead of reporting 100.02 %.
    return min(100.0, d_busy / d_total * 100.0)


def interval_between(previous: CpuCounters | None, current: CpuCounters | None) -> float | None:
    """``interval_cpu_percent`` for two :class:`CpuCounters`."""
    if previous is None or current is None:
        return None
    return interval_cpu_percent(
        _as_mapping(previous), previous.boot_time, _as_mapping(current), current.boot_time
    )


def fill_interval_cpu(
    round: RoundResult, previous: Mapping[tuple[str, int], CpuCounters]
) -> RoundResult:
    """``round`` with ``cpu.interval_percent`` set in every ok host's document.

    ``previous`` maps ``(client_ip, client_port)`` to the counters of that host's
    previous successful collection. The value is None when it cannot be known
    (first collection, reboot, no cpu family). The documents are frozen: the
    hosts that have a cpu family get new ones; a host for which this fails is
    demoted (fleetstat.hostfail), the others go on.
    """
    from fleetstat.hostfail import each_host

    return each_host(round, "interval CPU", lambda result: with_interval(result, previous))


def with_interval(
    result: HostResult, previous: Mapping[tuple[str, int], CpuCounters]
) -> HostResult:
    """One host's result with its interval CPU (unchanged without a cpu family)."""
    document = result.document
    if not result.ok or document is None or document.cpu is None:
        return result
    key = (result.client.ip, result.client.port)
    value = interval_between(previous.get(key), CpuCounters.from_document(document))
    percent = None if value is None else round_percent(value)
    cpu = replace(document.cpu, interval_percent=percent)
    return replace(result, document=replace(document, cpu=cpu))


def round_percent(value: float) -> float:
    return round(value, 2)


def _as_mapping(counters: CpuCounters) -> dict[str, float | None]:
    return {"total_seconds": counters.total_seconds, "busy_seconds": counters.busy_seconds}


def _boot(value: datetime | str | None) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    return parse_timestamp(value)


def _rebooted(before: datetime | None, after: datetime | None) -> bool:
    if before is None or after is None:
        return False  # unknown: the counters going backwards still catch a reboot
    return abs((after - before).total_seconds()) > BOOT_TIME_TOLERANCE_SECONDS


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
