"""Reads for the dashboard (``fleetstat.web``): chart series, sparklines, a host's recent rows.

Every query is bounded whatever the size of the tables:

- chart series are averaged into buckets in SQL from the covering index
  ``(client_ip, client_port, received_at, <figures>)`` (an index range scan, never
  the wide rows), so a window of 90 days returns at most ``buckets`` points; a
  window longer than six hours in buckets of an hour or more reads its whole hours
  from ``samples_hourly`` instead (store/hourly.py), each counted in the bucket of
  its start, and only the partial hours at its edges from the index;
- the fleet's sparklines are the same range scan per host (one statement each,
  on one connection); the caller asks only for the buckets it does not hold yet;
- lists of a host's attempts, events and alert mail are ``LIMIT``-ed and walk an
  index that starts with the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from fleetstat.store import hourly
from fleetstat.store.browse import EVENT_COLUMNS
from fleetstat.store.core import Store
from fleetstat.store.reports import _bucket
from fleetstat.store.schema import (
    alert_states,
    attempts,
    host_latest,
    mail_outbox,
    samples,
    security_events,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The figures a host page charts, as averages per bucket. CPU is the interval
# figure where the server computed one, else the probe's short window.
CHART_COLUMNS: dict[str, Any] = {
    "cpu": sa.func.coalesce(samples.c.cpu_interval_percent, samples.c.cpu_percent),
    "memory": samples.c.memory_percent,
    "swap": samples.c.swap_percent,
    "disk": samples.c.disk_max_percent,
    "load": samples.c.load1,
}


# The same figures' columns in samples_hourly (their ``_n`` and ``_sum``).
_HOURLY_CHART: dict[str, tuple[Any, str]] = {
    name: (column, "chart_cpu" if name == "cpu" else name) for name, column in CHART_COLUMNS.items()
}


def aligned(moment: datetime, width: int) -> datetime:
    """``moment`` rounded down to a multiple of ``width`` seconds since the epoch, so
    bucket numbers are the same whichever window asks (sparkline buckets are cached)."""
    seconds = int((moment - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=seconds - seconds % width)


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket that holds samples: its start and the averages in it (None: no value)."""

    at: datetime
    values: dict[str, float | None]


def host_series(
    store: Store, client_ip: str, client_port: int, since: datetime, until: datetime, width: int
) -> list[SeriesPoint]:
    """Averages of CPU, memory, swap, fullest disk and load per ``width``-second bucket
    over ``[since, until)``; only the buckets that hold samples, oldest first."""
    start = aligned(since, width)
    hours = hourly.whole_hours(since, until)
    if hours is not None and width >= hourly.HOUR.total_seconds():
        return _hourly_series(store, client_ip, client_port, since, until, width, hours)
    with store.errors("read the chart series"), store.engine.connect() as conn:
        bucket = _bucket(conn, samples.c.received_at, start, width).label("bucket")
        query = (
            sa.select(bucket, *(sa.func.avg(c).label(name) for name, c in CHART_COLUMNS.items()))
            .where(
                samples.c.client_ip == client_ip,
                samples.c.client_port == client_port,
                samples.c.received_at >= since,
                samples.c.received_at < until,
            )
            .group_by(sa.literal_column("bucket"))
            .order_by(sa.literal_column("bucket"))
        )
        rows = conn.execute(query).all()
    return [
        SeriesPoint(
            start + timedelta(seconds=int(row.bucket) * width),
            {name: _float(getattr(row, name)) for name in CHART_COLUMNS},
        )
        for row in rows
    ]


def _hourly_series(
    store: Store,
    client_ip: str,
    client_port: int,
    since: datetime,
    until: datetime,
    width: int,
    hours: tuple[datetime, datetime],
) -> list[SeriesPoint]:
    """``host_series`` of a long window in buckets of an hour or more: the whole hours
    from ``samples_hourly``, each counted in the bucket of its start (exact when the
    width is a multiple of an hour: the buckets then start on whole hours), the
    partial hours at the window's edges from the samples (store/hourly.py)."""
    start = aligned(since, width)
    with store.errors("read the chart series"), store.engine.connect() as conn:
        found = hourly.bucket_sums(
            conn, client_ip, client_port, since, until, hours,
            lambda column, early: _bucket(conn, column, start - early, width), _HOURLY_CHART,
        )  # fmt: skip
    points = []
    for index in sorted(found):
        count, sums = found[index]
        if not count:
            continue
        values: dict[str, float | None] = {}
        for name in CHART_COLUMNS:
            n, total = sums.get(name, (0, 0.0))
            values[name] = total / n if n else None
        points.append(SeriesPoint(start + timedelta(seconds=index * width), values))
    return points


def newest_sample_id(store: Store) -> int:
    """The largest sample id (0: none), from the primary key."""
    with store.errors("read the newest sample id"), store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(samples.c.id))).scalar() or 0)


def oldest_received_after(store: Store, sample_id: int) -> datetime | None:
    """The earliest ``received_at`` of the samples stored after ``sample_id`` (None: none):
    a primary-key range scan of the new rows only. A round replayed from the spool
    stores samples of the past; a cache of closed buckets must see them."""
    query = sa.select(sa.func.min(samples.c.received_at)).where(samples.c.id > sample_id)
    with store.errors("read the newest samples"), store.engine.connect() as conn:
        found = conn.execute(query).scalar()
    if isinstance(found, datetime) and found.tzinfo is None:
        found = found.replace(tzinfo=UTC)  # the column holds UTC
    return found if isinstance(found, datetime) else None


def fleet_buckets(
    store: Store,
    hosts: Sequence[tuple[str, int]],
    since: datetime,
    until: datetime,
    width: int,
    metric: str = "cpu",
) -> list[tuple[str, int, int, float | None]]:
    """``(client_ip, client_port, bucket, average)`` of ``metric`` for each of ``hosts``;
    ``bucket`` counts ``width`` seconds from the epoch.

    One statement per host on one connection, each a range scan of that host's part
    of the covering index: a join from ``host_latest`` would be one statement, but
    SQLite's planner may then scan the whole index, every host and every day.
    """
    start = aligned(since, width)
    base = int((start - _EPOCH).total_seconds()) // width
    found: list[tuple[str, int, int, float | None]] = []
    with store.errors("read the fleet's sparklines"), store.engine.connect() as conn:
        bucket = _bucket(conn, samples.c.received_at, start, width).label("bucket")
        query = (
            sa.select(bucket, sa.func.avg(CHART_COLUMNS[metric]).label("v"))
            .where(
                samples.c.client_ip == sa.bindparam("ip"),
                samples.c.client_port == sa.bindparam("port"),
                samples.c.received_at >= since,
                samples.c.received_at < until,
            )
            .group_by(sa.literal_column("bucket"))
        )
        for ip, port in hosts:
            for row in conn.execute(query, {"ip": ip, "port": port}):
                found.append((ip, port, base + int(row.bucket), _float(row.v)))
    return found


def fleet_version(store: Store) -> str:
    """A token that changes whenever what the fleet page shows may have: a round stored
    an attempt (the newest attempt id) or changed an alert state (the newest
    evaluation written, and how many states there are). A round writes its alerts
    after its attempts: a page read between the two would otherwise keep the alerts
    of the round before until the next round."""
    evaluated = sa.select(
        sa.func.max(alert_states.c.last_evaluated_at), sa.func.count()
    ).subquery()  # the count: a state deleted (a rule gone) moves it
    query = sa.select(sa.func.max(host_latest.c.last_attempt_id)).scalar_subquery()
    with store.errors("read the fleet's version"), store.engine.connect() as conn:
        attempt, at, states = conn.execute(sa.select(query, *evaluated.c)).one()
    if isinstance(at, datetime) and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # the column holds UTC
    stamp = round(at.timestamp() * 1000) if isinstance(at, datetime) else 0
    return f"{int(attempt or 0)}-{stamp}-{int(states)}"


def recent_attempts(
    store: Store, client_ip: str, client_port: int, *, limit: int = 20
) -> list[Any]:
    """The host's latest attempts, newest first, with status, error and stderr."""
    query = (
        sa.select(
            attempts.c.id,
            attempts.c.round_id,
            attempts.c.started_at,
            attempts.c.status,
            attempts.c.duration_seconds,
            attempts.c.retries,
            attempts.c.error,
            attempts.c.stderr,
        )
        .where(attempts.c.client_ip == client_ip, attempts.c.client_port == client_port)
        .order_by(attempts.c.started_at.desc())
        .limit(limit)
    )
    with store.errors("read the host's attempts"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


def host_alert_states(store: Store, client_ip: str, client_port: int) -> list[sa.Row[Any]]:
    """Every alert state of the host (one per rule), most recently changed first."""
    query = (
        sa.select(alert_states)
        .where(alert_states.c.client_ip == client_ip, alert_states.c.client_port == client_port)
        .order_by(alert_states.c.rule_key)
    )
    with store.errors("read the host's alerts"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


def resolved_alerts(store: Store, since: datetime) -> list[sa.Row[Any]]:
    """Alert states that resolved at or after ``since``, newest first."""
    query = (
        sa.select(alert_states)
        .where(alert_states.c.state == "ok", alert_states.c.resolved_at >= since)
        .order_by(alert_states.c.resolved_at.desc())
        .limit(200)
    )
    with store.errors("read the resolved alerts"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


def alert_mail(store: Store, host: tuple[str, int] | None = None, *, limit: int = 20) -> list[Any]:
    """The latest alert messages (the record of what fired and resolved), newest first."""
    query = (
        sa.select(
            mail_outbox.c.id,
            mail_outbox.c.created_at,
            mail_outbox.c.client_ip,
            mail_outbox.c.client_port,
            mail_outbox.c.subject,
            mail_outbox.c.sent_at,
        )
        .where(mail_outbox.c.kind == "alert")
        .order_by(mail_outbox.c.id.desc())
        .limit(limit)
    )
    if host is not None:
        query = query.where(
            mail_outbox.c.client_ip == host[0], mail_outbox.c.client_port == host[1]
        )
    with store.errors("read the alert mail"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


def recent_events(store: Store, client_ip: str, client_port: int, *, limit: int = 20) -> list[Any]:
    """The host's newest security events, newest first (``data`` stays in the database)."""
    query = (
        sa.select(*(security_events.c[name] for name in EVENT_COLUMNS))
        .where(
            security_events.c.client_ip == client_ip, security_events.c.client_port == client_port
        )
        .order_by(security_events.c.id.desc())
        .limit(limit)
    )
    with store.errors("read the host's security events"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
