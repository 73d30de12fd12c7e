"""Reads for ``fleetstat report`` and ``fleetstat history``, sized for 65 million samples.

SQLAlchemy Core, the same statements on SQLite, PostgreSQL and MariaDB/MySQL; the
only dialect-specific piece is turning a timestamp into seconds for the buckets of
the history plot. Why these queries stay fast (docs/reports.md):

- ``report`` never searches the samples for each host's newest row: it reads
  ``host_latest`` (one row per host, kept by ``Store.record_round``) and fetches
  the pointed-to samples and attempts by primary key: O(hosts), whatever the
  table size.
- ``history`` aggregates one host's window in SQL from the covering index
  ``(client_ip, client_port, received_at, <figures>)``: an index range scan that
  never touches the wide rows (the JSON document), bucketed for the plot in the
  same pass; failed attempts are counted from ``(..., started_at, status)``.
- a ``history`` window longer than six hours reads its whole hours from
  ``samples_hourly`` (store/hourly.py: one row per host and hour, about 2,200 for
  90 days) and only the partial hours at its two edges from that index, so
  min/avg/max stay exact; plot buckets of an hour or more are built the same way,
  each whole hour counted in the bucket of its start; narrower buckets keep the
  range scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from fleetstat.errors import UsageError
from fleetstat.store import hourly
from fleetstat.store.core import Store
from fleetstat.store.schema import alert_states, attempts, host_latest, samples

# cpu, cpu_interval, memory, swap, disk, load (the 1-minute load average, not per
# core, not a percentage): the samples' columns, as samples_hourly aggregates them.
HISTORY_METRICS = hourly.SOURCES
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The plot's figures: the samples' expression and the samples_hourly column prefix.
_SERIES_FIGURES = {
    "cpu": (hourly.CHART_CPU, "chart_cpu"),
    "memory": (samples.c.memory_percent, "memory"),
}


@dataclass(frozen=True)
class HostRef:
    """A configured host as reports name it: address, display name, its rule keys."""

    client_ip: str
    client_port: int
    name: str
    rules: frozenset[str] | None = None  # None: every alert state counts


@dataclass(frozen=True)
class HostState:
    """One row of ``fleetstat report``: a host's last attempt and last good sample."""

    name: str
    client_ip: str
    client_port: int
    status: str  # the last attempt's status; "never" when there was none
    last_attempt_at: datetime | None
    error: str | None
    sample_at: datetime | None
    sample_age_seconds: float | None
    hostname: str | None = None
    cpu_percent: float | None = None
    cpu_interval_percent: float | None = None
    memory_percent: float | None = None
    swap_percent: float | None = None
    disk_max_percent: float | None = None
    disk_max_mount: str | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    uptime_seconds: float | None = None
    alerts: tuple[str, ...] = ()  # rule keys firing now

    @property
    def failing(self) -> bool:
        """The last attempt did not succeed (or there never was one)."""
        return self.status != "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "ip": self.client_ip,
            "port": self.client_port,
            "status": self.status,
            "last_attempt_at": _iso(self.last_attempt_at),
            "error": self.error,
            "sample_at": _iso(self.sample_at),
            "sample_age_seconds": _rounded(self.sample_age_seconds, 3),
            "hostname": self.hostname,
            "cpu_percent": self.cpu_percent,
            "cpu_interval_percent": self.cpu_interval_percent,
            "memory_percent": self.memory_percent,
            "swap_percent": self.swap_percent,
            "disk_max_percent": self.disk_max_percent,
            "disk_max_mount": self.disk_max_mount,
            "load1": self.load1,
            "load5": self.load5,
            "load15": self.load15,
            "uptime_seconds": self.uptime_seconds,
            "alerts": list(self.alerts),
        }


@dataclass(frozen=True)
class Stat:
    min: float | None
    avg: float | None
    max: float | None

    def as_json(self) -> dict[str, float | None]:
        return {"min": self.min, "avg": _rounded(self.avg, 4), "max": self.max}


@dataclass(frozen=True)
class History:
    """``fleetstat history``: one host's figures over ``[since, until)``."""

    name: str
    client_ip: str
    client_port: int
    since: datetime
    until: datetime
    samples: int
    first_sample_at: datetime | None
    last_sample_at: datetime | None
    attempts: int
    failed_attempts: int
    stats: dict[str, Stat]
    bucket_seconds: int
    # One value per bucket from ``since`` (None: no sample in it): the average CPU
    # (interval figure where known, else the short window) and memory.
    cpu_series: list[float | None] = field(default_factory=list)
    memory_series: list[float | None] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "ip": self.client_ip,
            "port": self.client_port,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "samples": self.samples,
            "first_sample_at": _iso(self.first_sample_at),
            "last_sample_at": _iso(self.last_sample_at),
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            **{name: stat.as_json() for name, stat in self.stats.items()},
            "series": {
                "bucket_seconds": self.bucket_seconds,
                "cpu": [_rounded(v, 2) for v in self.cpu_series],
                "memory": [_rounded(v, 2) for v in self.memory_series],
            },
        }


# -- report ----------------------------------------------------------------------------


def host_states(
    store: Store, hosts: Sequence[HostRef], *, now: datetime | None = None
) -> list[HostState]:
    """The latest state of each host in ``hosts``, in that order: three small queries."""
    now = now or datetime.now(UTC)
    latest_query = sa.select(
        host_latest.c.client_ip,
        host_latest.c.client_port,
        host_latest.c.last_status,
        host_latest.c.last_attempt_at,
        attempts.c.error,
        host_latest.c.sample_received_at,
        samples.c.hostname,
        samples.c.cpu_percent,
        samples.c.cpu_interval_percent,
        samples.c.memory_percent,
        samples.c.swap_percent,
        samples.c.disk_max_percent,
        samples.c.disk_max_mount,
        samples.c.load1,
        samples.c.load5,
        samples.c.load15,
        samples.c.uptime_seconds,
    ).select_from(
        host_latest.outerjoin(samples, samples.c.id == host_latest.c.sample_id).outerjoin(
            attempts, attempts.c.id == host_latest.c.last_attempt_id
        )
    )
    firing_query = (
        sa.select(alert_states.c.client_ip, alert_states.c.client_port, alert_states.c.rule_key)
        .where(alert_states.c.state == "firing")
        .order_by(alert_states.c.rule_key)
    )
    with store.errors("read the latest host states"), store.engine.connect() as conn:
        rows = {(r.client_ip, r.client_port): r for r in conn.execute(latest_query)}
        firing: dict[tuple[str, int], list[str]] = {}
        for ip, port, rule in conn.execute(firing_query):
            firing.setdefault((ip, port), []).append(rule)
    states = []
    for host in hosts:
        key = (host.client_ip, host.client_port)
        alerts = tuple(
            rule for rule in firing.get(key, []) if host.rules is None or rule in host.rules
        )
        row = rows.get(key)
        if row is None:
            states.append(
                HostState(host.name, *key, "never", None, None, None, None, alerts=alerts)
            )
            continue
        sample_at = row.sample_received_at
        states.append(
            HostState(
                name=host.name,
                client_ip=host.client_ip,
                client_port=host.client_port,
                status=row.last_status,
                last_attempt_at=row.last_attempt_at,
                error=row.error,
                sample_at=sample_at,
                sample_age_seconds=(now - sample_at).total_seconds() if sample_at else None,
                hostname=row.hostname,
                cpu_percent=row.cpu_percent,
                cpu_interval_percent=row.cpu_interval_percent,
                memory_percent=row.memory_percent,
                swap_percent=row.swap_percent,
                disk_max_percent=row.disk_max_percent,
                disk_max_mount=row.disk_max_mount,
                load1=row.load1,
                load5=row.load5,
                load15=row.load15,
                uptime_seconds=row.uptime_seconds,
                alerts=alerts,
            )
        )
    return states


# -- history ---------------------------------------------------------------------------


def host_history(
    store: Store,
    host: HostRef,
    since: datetime,
    until: datetime | None = None,
    *,
    buckets: int = 48,
) -> History:
    """Min/avg/max over ``[since, until)``, counts, and ``buckets`` averages for the plot."""
    until = until or datetime.now(UTC)
    if until <= since:
        raise UsageError("the history window is empty: since must be before until")
    span = (until - since).total_seconds()
    width = max(1, -(-int(span) // max(1, buckets)))  # ceil; whole seconds for DIV
    in_window = sa.and_(
        samples.c.client_ip == host.client_ip,
        samples.c.client_port == host.client_port,
        samples.c.received_at >= since,
        samples.c.received_at < until,
    )
    aggregates: list[ColumnElement[Any]] = [
        sa.func.count().label("n"),
        sa.func.min(samples.c.received_at).label("first"),
        sa.func.max(samples.c.received_at).label("last"),
    ]
    for name, column in HISTORY_METRICS.items():
        aggregates += [
            sa.func.min(column).label(f"{name}_min"),
            sa.func.avg(column).label(f"{name}_avg"),
            sa.func.max(column).label(f"{name}_max"),
        ]
    summary_query = sa.select(*aggregates).where(in_window)
    attempts_query = sa.select(
        sa.func.count().label("n"),
        sa.func.coalesce(sa.func.sum(sa.case((attempts.c.status != "ok", 1), else_=0)), 0).label(
            "failed"
        ),
    ).where(
        attempts.c.client_ip == host.client_ip,
        attempts.c.client_port == host.client_port,
        attempts.c.started_at >= since,
        attempts.c.started_at < until,
    )
    # A long window (store/hourly.py): whole hours from samples_hourly, the partial
    # hours at its edges from the samples; min/avg/max stay exact.
    hours = hourly.whole_hours(since, until)
    count = -(-int(span) // width)
    cpu_series: list[float | None] = [None] * count
    memory_series: list[float | None] = [None] * count
    with store.errors("read the host history"), store.engine.connect() as conn:
        tried = conn.execute(attempts_query).one()
        if hours is None:
            summary = conn.execute(summary_query).one()
            totals = None
        else:
            totals = hourly.window_totals(
                conn, host.client_ip, host.client_port, since, until, hours
            )
        if hours is not None and width >= hourly.HOUR.total_seconds():
            # Buckets of an hour or more: each whole hour counts in the bucket of its
            # start (an hour straddling two buckets counts in the first).
            found = hourly.bucket_sums(
                conn, host.client_ip, host.client_port, since, until, hours,
                lambda column, early: _bucket(conn, column, since - early, width), _SERIES_FIGURES,
            )  # fmt: skip
            series = [
                (index, _ratio(sums.get("cpu")), _ratio(sums.get("memory")))
                for index, (_, sums) in found.items()
            ]
        else:
            bucket = _bucket(conn, samples.c.received_at, since, width).label("bucket")
            series_query = (
                sa.select(
                    bucket,
                    sa.func.avg(hourly.CHART_CPU).label("cpu"),
                    sa.func.avg(samples.c.memory_percent).label("memory"),
                )
                .where(in_window)
                .group_by(sa.literal_column("bucket"))
            )
            series = [
                (int(r.bucket), _float(r.cpu), _float(r.memory)) for r in conn.execute(series_query)
            ]
    for index, cpu, memory in series:
        if 0 <= index < count:
            cpu_series[index] = cpu
            memory_series[index] = memory
    if totals is None:
        stats = {
            name: Stat(
                _float(getattr(summary, f"{name}_min")),
                _float(getattr(summary, f"{name}_avg")),
                _float(getattr(summary, f"{name}_max")),
            )
            for name in HISTORY_METRICS
        }
        n, first, last = int(summary.n), summary.first, summary.last
    else:
        stats = {
            name: Stat(totals.min.get(name), totals.avg(name), totals.max.get(name))
            for name in HISTORY_METRICS
        }
        n, first, last = totals.count, totals.first, totals.last
    return History(
        name=host.name,
        client_ip=host.client_ip,
        client_port=host.client_port,
        since=since,
        until=until,
        samples=n,
        first_sample_at=first,
        last_sample_at=last,
        attempts=int(tried.n),
        failed_attempts=int(tried.failed),
        stats=stats,
        bucket_seconds=width,
        cpu_series=cpu_series,
        memory_series=memory_series,
    )


def _bucket(conn: Connection, column: Any, since: datetime, width: int) -> ColumnElement[Any]:
    """``floor((column - since) / width)`` as an integer, for each backend.

    The only dialect-specific SQL of the reports: each backend spells "seconds since
    the epoch" differently, and MySQL's CAST rounds where we need to truncate.
    """
    offset = (since - _EPOCH).total_seconds()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # EXTRACT gives numeric since PostgreSQL 14, slow arithmetic over a 90-day
        # window's 130,000 rows; double precision is exact enough for buckets.
        epoch = sa.cast(sa.extract("epoch", column), sa.Float)
        return sa.func.floor((epoch - offset) / width)
    if dialect in ("mysql", "mariadb"):
        # DATETIME holds naive UTC; TIMESTAMPDIFF between two of them involves no
        # time zone (UNIX_TIMESTAMP would apply the session's). Integer DIV: CAST
        # rounds on MySQL. Literals only: both values are ours, not user text.
        start = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        name = f"{column.table.name}.{column.name}"
        return sa.literal_column(
            f"TIMESTAMPDIFF(MICROSECOND, '{start}', {name}) DIV {width * 1_000_000}"
        )
    # SQLite: naive UTC text; julianday() reads it. The window starts at ``since``, so
    # the difference is never negative and CAST's truncation is a floor.
    seconds = (sa.func.julianday(column) - 2440587.5) * 86400.0
    return sa.cast((seconds - offset) / width, sa.Integer)


def _ratio(pair: tuple[int, float] | None) -> float | None:
    """An average from its (count, sum); None without values."""
    return pair[1] / pair[0] if pair and pair[0] else None


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
