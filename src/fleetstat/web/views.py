"""What the templates show, built from the store's rows: numbers formatted, series
shaped for uPlot, a stored document read defensively.

Nothing here makes markup: host text goes to the templates as plain strings,
where Jinja's autoescaping makes it inert. Only numbers we formatted and SVG path
data we computed from numbers reach an attribute.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fleetstat.store.dashboard import CHART_COLUMNS, SeriesPoint
from fleetstat.store.reports import HostState
from fleetstat.units import format_duration
from fleetstat.web.sparks import SPARK_H, SPARK_W, Spark, spark

# The window picker: name -> seconds. 1 h to 90 days (what retention keeps by default).
WINDOWS: dict[str, int] = {
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "90d": 90 * 86400,
}
DEFAULT_WINDOW = "24h"
MAX_POINTS = 1000  # per series: the most a host page's chart receives
CHARTS = (  # (key, title, unit); keys are store.dashboard.CHART_COLUMNS
    ("cpu", "CPU busy", "%"),
    ("memory", "Memory used", "%"),
    ("swap", "Swap used", "%"),
    ("disk", "Fullest local filesystem", "%"),
    ("load", "Load average (1 min)", ""),
)
assert {key for key, _, _ in CHARTS} == set(CHART_COLUMNS)


def status_kind(status: str) -> str:
    """``ok``, ``never`` or ``failed``: what the colour and the shape say."""
    return status if status in ("ok", "never") else "failed"


def host_href(name: str) -> str:
    return "/hosts/" + quote(name, safe="")


# -- formatting (Jinja filters) ----------------------------------------------------------


def pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1f} %"


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def size(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return "–"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return "–"  # unreachable


def blank(value: float | int | None) -> str:
    """A number for a data attribute the page's script reads; empty when unknown."""
    return "" if value is None else str(value)


def utc(moment: datetime | None) -> str:
    return "–" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 90:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


# -- the fleet page ----------------------------------------------------------------------


@dataclass(frozen=True)
class FleetRow:
    state: HostState
    kind: str
    spark: Spark
    cpu: float | None  # the interval figure where the server has it, else the probe's
    last: int | None  # the last attempt, epoch seconds (what the page's script sorts by)
    shown: bool = True  # False: left out by the URL's filters (sent hidden)


@dataclass
class Counts:
    total: int = 0
    ok: int = 0
    failed: int = 0
    never: int = 0
    firing: int = 0  # hosts with at least one firing alert
    by_status: dict[str, int] = field(default_factory=dict)  # the failed ones, by status


NO_SPARK = spark([])


def fleet_rows(
    states: Sequence[HostState], sparks: dict[tuple[str, int], Spark]
) -> tuple[list[FleetRow], Counts]:
    rows, counts = [], Counts(total=len(states))
    for state in states:
        kind = status_kind(state.status)
        setattr(counts, kind, getattr(counts, kind) + 1)
        if kind == "failed":
            counts.by_status[state.status] = counts.by_status.get(state.status, 0) + 1
        if state.alerts:
            counts.firing += 1
        cpu = (
            state.cpu_interval_percent
            if state.cpu_interval_percent is not None
            else state.cpu_percent
        )
        last = int(state.last_attempt_at.timestamp()) if state.last_attempt_at else None
        line = sparks.get((state.client_ip, state.client_port), NO_SPARK)
        rows.append(FleetRow(state, kind, line, cpu, last))
    return rows, counts


def sort_and_filter(
    rows: list[FleetRow], *, status: str, name: str, firing: bool, sort: str
) -> list[FleetRow]:
    """The server's copy of what the page's script does, for browsers without it.

    Every row is kept, sorted; those the filters leave out are marked ``shown=False``
    (the page sends them ``hidden``), so the script can show them again when a
    filter given in the URL is cleared.
    """
    needle = name.strip().lower()
    marked = [
        replace(
            row,
            shown=bool(
                (status in ("", "all") or row.kind == status)
                and (not needle or needle in row.state.name.lower())
                and (not firing or row.state.alerts)
            ),
        )
        for row in rows
    ]
    key, _, order = sort.partition(":")
    getter = SORT_KEYS.get(key)
    if getter is None:
        return marked
    present = [row for row in marked if getter(row) is not None]
    absent = [row for row in marked if getter(row) is None]
    present.sort(key=getter, reverse=order == "desc")  # type: ignore[arg-type]
    return present + absent


SORT_KEYS: dict[str, Any] = {
    "name": lambda row: row.state.name.lower(),
    "status": lambda row: ("failed", "never", "ok").index(row.kind),
    "cpu": lambda row: row.cpu,
    "memory": lambda row: row.state.memory_percent,
    "disk": lambda row: row.state.disk_max_percent,
    "load": lambda row: row.state.load1,
    "last": lambda row: row.state.last_attempt_at,
    "alerts": lambda row: len(row.state.alerts),
}


# -- the host page -----------------------------------------------------------------------


def window_of(value: str | None) -> tuple[str, int]:
    name = value if value in WINDOWS else DEFAULT_WINDOW
    return name, WINDOWS[name]


def bucket_width(seconds: int) -> int:
    return max(1, -(-seconds // MAX_POINTS))


def chart_data(points: Sequence[SeriesPoint], width: int) -> dict[str, list[Any]]:
    """Columns for uPlot: ``t`` (epoch seconds) and one list per figure.

    A null point goes where samples stop for much longer than usual (a host
    down, a paused monitor), so the line breaks there instead of bridging it.
    """
    times = [point.at.timestamp() for point in points]
    steps = [b - a for a, b in itertools.pairwise(times)]
    usual = max(float(width), statistics.median(steps) if steps else float(width))
    data: dict[str, list[Any]] = {"t": []} | {key: [] for key, _, _ in CHARTS}
    for index, point in enumerate(points):
        if index and times[index] - times[index - 1] > 3 * usual:
            data["t"].append(times[index - 1] + usual)
            for key, _, _ in CHARTS:
                data[key].append(None)
        data["t"].append(times[index])
        for key, _, _ in CHARTS:
            value = point.values.get(key)
            data[key].append(None if value is None else round(value, 2))
    return data


def chart_summary(values: Sequence[float | None], unit: str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "no samples in this window"
    digits = 2 if not unit else 1
    return (
        f"lowest {min(known):.{digits}f}{unit}, average {statistics.fmean(known):.{digits}f}"
        f"{unit}, highest {max(known):.{digits}f}{unit}"
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


@dataclass(frozen=True)
class Details:
    """The parts of a stored document a host page shows (all host text, escaped later)."""

    host: dict[str, Any]
    disks: list[dict[str, Any]]
    top_cpu: list[dict[str, Any]] | None
    top_memory: list[dict[str, Any]] | None
    processes_reason: str | None
    errors: list[tuple[str, str]]
    cpu_count: object = None
    uptime_seconds: object = None


def details(document: dict[str, Any] | None) -> Details | None:
    if document is None:
        return None
    processes = _dict(document.get("processes"))
    top_cpu, top_memory = processes.get("top_cpu"), processes.get("top_memory")
    reason = processes.get("reason")
    errors = _dict(document.get("errors"))
    return Details(
        host=_dict(document.get("host")),
        disks=_list(document.get("disks")),
        top_cpu=_list(top_cpu) if isinstance(top_cpu, list) else None,
        top_memory=_list(top_memory) if isinstance(top_memory, list) else None,
        processes_reason=reason if isinstance(reason, str) else None,
        errors=[(str(k), str(v)) for k, v in errors.items()],
        cpu_count=_dict(document.get("cpu")).get("count"),
        uptime_seconds=document.get("uptime_seconds"),
    )


def uptime(seconds: object) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return "–"
    return str(timedelta(seconds=int(seconds)))


FILTERS = {"pct": pct, "blank": blank, "number": number, "size": size, "utc": utc, "iso": iso,
           "ago": ago, "duration": duration, "host_href": host_href, "kind": status_kind,
           "uptime": uptime, "every": format_duration}  # fmt: skip
SPARK_BOX = {"width": SPARK_W, "height": SPARK_H}  # fleetstat.css: canvas.spark
