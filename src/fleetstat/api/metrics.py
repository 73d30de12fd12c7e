"""``/metrics``: the fleet in Prometheus' text format, built at scrape time.

A ``prometheus_client`` custom collector (no gauges mutated by handlers): each
scrape reads ``host_latest`` and the samples it points to through
``store.browse.host_figures``. The text is rendered again only when the store's
generation (``store.browse.generation``: rounds, alerts, outbox) or this
process's round counters moved (api/cache.py): with 500 hosts that is ~11,000
lines, far slower than the one query that says nothing changed. The per-host
families are rebuilt only when a round has moved ``host_latest``.

Naming follows Prometheus' conventions: one ``fleetstat_`` prefix, base units
(bytes, seconds), ratios 0-1 (``_ratio``), ``_total`` only on counters, no
timestamps on samples, and ``host`` / ``mountpoint`` as labels, never in names.
The host label is the client's name from the config (its ip when unnamed), so
it is stable and ours, not what the host says about itself. A host's document
is untrusted: only finite numbers become values, a mount point is cut to 255
characters, and at most 64 filesystems per host are exported.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fleetstat.api import models
from fleetstat.api.deps import ServerContext, context_of, current_user
from fleetstat.store.browse import HostFigures, generation, host_figures, last_round, unsent_mail

MAX_FILESYSTEMS = 64
MAX_LABEL = 255

# (name, help, how to get the value from a document): one gauge per host each.
_HOST_GAUGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("memory_total_bytes", "Physical memory.", ("memory", "total_bytes")),
    ("memory_used_bytes", "Memory in use (total - available).", ("memory", "used_bytes")),
    ("swap_total_bytes", "Swap space.", ("swap", "total_bytes")),
    ("swap_used_bytes", "Swap in use.", ("swap", "used_bytes")),
    ("load1", "1-minute load average.", ("load", "avg1")),
    ("load5", "5-minute load average.", ("load", "avg5")),
    ("load15", "15-minute load average.", ("load", "avg15")),
    ("cpus", "Logical CPUs.", ("cpu", "count")),
    ("uptime_seconds", "Time since the host booted.", ("uptime_seconds",)),
)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _at(document: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = document
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return _number(value)


def _ratio(document: dict[str, Any], family: str) -> float | None:
    """used / total of a memory-like family, 0-1; the percent when bytes are missing."""
    used, total = _at(document, (family, "used_bytes")), _at(document, (family, "total_bytes"))
    if used is not None and total:
        return min(max(used / total, 0.0), 1.0)
    percent = _at(document, (family, "used_percent"))
    return None if percent is None else min(max(percent / 100, 0.0), 1.0)


@dataclass
class _HostSeries:
    """One host's values, keyed by metric name; disks as (mountpoint, used, size, ratio)."""

    host: str
    up: float
    last_success: float | None
    values: dict[str, float] = field(default_factory=dict)
    disks: list[tuple[str, float | None, float | None, float | None]] = field(default_factory=list)


def _series(host: str, figures: HostFigures) -> _HostSeries:
    found = _HostSeries(
        host,
        1.0 if figures.last_status == "ok" else 0.0,
        figures.received_at.timestamp() if figures.received_at else None,
    )
    document = figures.document
    if document is None:
        return found
    for name, _help, path in _HOST_GAUGES:
        value = _at(document, path)
        if value is not None:
            found.values[name] = value
    for family in ("memory", "swap"):
        ratio = _ratio(document, family)
        if ratio is not None:
            found.values[f"{family}_used_ratio"] = ratio
    busy = _at(document, ("cpu", "interval_percent"))
    busy = busy if busy is not None else _at(document, ("cpu", "used_percent"))
    if busy is not None:
        found.values["cpu_busy_ratio"] = min(max(busy / 100, 0.0), 1.0)
    disks = document.get("disks")
    if isinstance(disks, list):
        seen: set[str] = set()
        for disk in disks[:MAX_FILESYSTEMS]:
            mount = disk.get("mount") if isinstance(disk, dict) else None
            if not isinstance(mount, str) or mount in seen:
                continue
            seen.add(mount)
            used, size = _number(disk.get("used_bytes")), _number(disk.get("total_bytes"))
            percent = _number(disk.get("used_percent"))
            ratio = used / size if used is not None and size else (
                percent / 100 if percent is not None else None)  # fmt: skip
            ratio = None if ratio is None else min(max(ratio, 0.0), 1.0)
            found.disks.append((mount[:MAX_LABEL], used, size, ratio))
    return found


class FleetCollector:
    """The custom collector; one per server, registered in a private registry."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self._lock = threading.Lock()  # scrapes run in worker threads
        self._version: int | None = None
        self._hosts: list[_HostSeries] = []

    def describe(self) -> list[Metric]:
        return []  # registering must not read the database

    def _current_hosts(self) -> list[_HostSeries]:
        with self._lock:
            version, rows = host_figures(self.context.store, changed_since=self._version)
            if version != self._version:
                names = {(c.ip, c.port): c.label for c in self.context.config.clients}
                self._hosts = [
                    _series(names[(row.client_ip, row.client_port)], row)
                    for row in rows
                    if (row.client_ip, row.client_port) in names
                ]
                self._version = version
            return self._hosts

    def collect(self) -> Iterator[Metric]:
        hosts = self._current_hosts()
        yield from _host_families(hosts)
        yield from self._round_families()

    def _round_families(self) -> Iterator[Metric]:
        store = self.context.store
        latest = last_round(store)
        if latest is not None:
            yield _gauge("last_round_duration_seconds", "How long the last stored round took.",
                         latest.duration_seconds)  # fmt: skip
            yield _gauge("last_round_end_timestamp_seconds", "When the last stored round ended.",
                         latest.finished_at.timestamp())  # fmt: skip
            hosts = GaugeMetricFamily(
                "fleetstat_last_round_hosts",
                "Hosts in the last round, by result.",
                labels=["result"],
            )
            hosts.add_metric(["ok"], latest.hosts_ok)
            hosts.add_metric(["failed"], latest.hosts_failed)
            yield hosts
            yield _gauge("last_round_retries", "Connection retries in the last round.",
                         latest.retries)  # fmt: skip
        yield _gauge("mail_outbox_messages", "Mail not yet accepted by an SMTP server.",
                     unsent_mail(store))  # fmt: skip
        watcher = self.context.watcher
        if watcher is not None:
            stats = watcher.stats
            yield _counter("rounds", "Rounds this process completed and stored.", stats.rounds)
            yield _counter("round_failures", "Rounds this process could not complete.",
                           stats.crashed)  # fmt: skip
            yield _gauge("monitoring_running", "1 while rounds are scheduled, 0 while paused.",
                         1.0 if watcher.running else 0.0)  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"fleetstat_{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"fleetstat_{name}", documentation, value=value)


def _host_families(hosts: list[_HostSeries]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "fleetstat_host_up", "1 when the host's last attempt succeeded, else 0.", labels=["host"]
    )
    last = GaugeMetricFamily(
        "fleetstat_host_last_success_timestamp_seconds",
        "When the host's last good sample arrived.",
        labels=["host"],
    )
    for host in hosts:
        up.add_metric([host.host], host.up)
        if host.last_success is not None:
            last.add_metric([host.host], host.last_success)
    yield up
    yield last
    named = [
        *((name, text) for name, text, _ in _HOST_GAUGES),
        ("memory_used_ratio", "Memory in use, 0-1."),
        ("swap_used_ratio", "Swap in use, 0-1."),
        ("cpu_busy_ratio", "Busy CPU, 0-1, over the interval since the previous sample "
                           "(the probe's short window for a first sample)."),
    ]  # fmt: skip
    for name, text in named:
        family = GaugeMetricFamily(f"fleetstat_host_{name}", text, labels=["host"])
        for host in hosts:
            if name in host.values:
                family.add_metric([host.host], host.values[name])
        yield family
    labels = ["host", "mountpoint"]
    size = GaugeMetricFamily(
        "fleetstat_host_filesystem_size_bytes", "Filesystem size.", labels=labels
    )
    used = GaugeMetricFamily("fleetstat_host_filesystem_used_bytes", "Filesystem space in use.",
                             labels=labels)  # fmt: skip
    ratio = GaugeMetricFamily(
        "fleetstat_host_filesystem_used_ratio", "Filesystem space in use, 0-1.", labels=labels
    )
    for host in hosts:
        for mount, used_bytes, size_bytes, used_ratio in host.disks:
            for family, value in ((size, size_bytes), (used, used_bytes), (ratio, used_ratio)):
                if value is not None:
                    family.add_metric([host.host, mount], value)
    yield size
    yield used
    yield ratio


def registry_for(context: ServerContext) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(context))  # type: ignore[arg-type]
    return registry


router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {"model": models.Error}},
)
def metrics(request: Request) -> Response:
    """The fleet in Prometheus' text format; needs a token unless ``<http
    metrics-public="true">``."""
    context = context_of(request)
    if not context.metrics_public:
        from fastapi.security.utils import get_authorization_scheme_param

        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        current_user(request, context, token if scheme.lower() == "bearer" else None)
    registry: CollectorRegistry = request.app.state.fleetstat_registry
    watcher = context.watcher
    counters = None
    if watcher is not None:
        counters = (watcher.stats.rounds, watcher.stats.crashed, watcher.running)
    key = (generation(context.store), counters, id(context.config))
    body = context.bodies.get("metrics", key, lambda: generate_latest(registry))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
