"""The hourly aggregates of the samples (``samples_hourly``, revision 0010).

One row per host and UTC hour: how many samples, the first and last
``received_at``, and per figure the count of non-null values, their sum, min and
max. Long history windows read whole hours here (about 2,200 rows for a host's 90
days instead of 130,000 samples) and the raw samples only for the partial hours
at the window's edges, so min/avg/max over the window stay exact: min and max of
whole hours are the hours' min and max, the average is the sum of sums over the
sum of counts (the same figure as SQL's ``avg`` over the rows, up to float
rounding).

The table is kept up to date in SQL, one statement per round (or ``<cluster>``
shard), inside the round's own transaction (:func:`refresh_round`,
:func:`refresh_samples`): the round's new
samples aggregated per host and hour, upserted onto what is there (sums and
counts added, min/max of the two). A shard redelivered and dropped writes no
samples and so adds nothing; a round that rolls back takes its hourly change
with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from fleetstat.store.schema import HOURLY_FIGURES, samples, samples_hourly

HOUR = timedelta(hours=1)
# Windows at most this long keep the raw path: the hourly rows would save little.
LONG_WINDOW = timedelta(hours=6)
_MYSQL = ("mysql", "mariadb")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUDGE = timedelta(milliseconds=10)

# The samples' column behind each figure (keys: store/reports.py HISTORY_METRICS).
SOURCES: dict[str, sa.Column[Any]] = {
    "cpu": samples.c.cpu_percent,
    "cpu_interval": samples.c.cpu_interval_percent,
    "memory": samples.c.memory_percent,
    "swap": samples.c.swap_percent,
    "disk": samples.c.disk_max_percent,
    "load": samples.c.load1,
}
assert tuple(SOURCES) == HOURLY_FIGURES
# What the charts plot as CPU: the interval figure where known, else the short window.
CHART_CPU = sa.func.coalesce(samples.c.cpu_interval_percent, samples.c.cpu_percent)


# -- hours ----------------------------------------------------------------------------------


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    seconds = (moment - _EPOCH) // timedelta(microseconds=1)
    whole = seconds - seconds % 3_600_000_000
    return _EPOCH + timedelta(microseconds=whole)


def ceil_hour(moment: datetime) -> datetime:
    """The first UTC hour start at or after ``moment``."""
    start = floor_hour(moment)
    return start if start == moment else start + HOUR


def whole_hours(since: datetime, until: datetime) -> tuple[datetime, datetime] | None:
    """``(first, end)``: the whole UTC hours inside ``[since, until)`` are
    ``[first, end)``; None when the window is too short for the hourly rows to pay
    (``LONG_WINDOW``) or holds no whole hour."""
    if until - since <= LONG_WINDOW:
        return None
    first, end = ceil_hour(since), floor_hour(until)
    return (first, end) if first < end else None


def hour_start(dialect: str, column: Any) -> ColumnElement[Any]:
    """SQL for the start of the UTC hour of the timestamp ``column``.

    Constants are literals (no bound parameters), so the expression can be
    repeated in a GROUP BY on PostgreSQL. ``migrations/versions/0010_hourly.py``
    holds a frozen copy: keep the two the same.
    """
    if dialect == "postgresql":
        # timestamptz: truncate the UTC wall time, whatever the session's zone.
        utc: ColumnElement[Any] = sa.literal_column("'UTC'")
        wall = sa.func.timezone(utc, column)
        return sa.func.timezone(utc, sa.func.date_trunc(sa.literal_column("'hour'"), wall))
    if dialect in _MYSQL:
        # DATETIME(6) holding naive UTC.
        zero: ColumnElement[Any] = sa.literal_column("0")
        return sa.func.timestamp(
            sa.func.date(column), sa.func.maketime(sa.func.hour(column), zero, zero)
        )
    # SQLite: SQLAlchemy's text "YYYY-MM-DD HH:MM:SS.ffffff"; the hour in the same form
    # (text comparisons with bound datetimes must see the same format).
    head = sa.func.substr(column, sa.literal_column("1"), sa.literal_column("13"))
    return head.op("||")(sa.literal_column("':00:00.000000'"))


# -- writing --------------------------------------------------------------------------------


def aggregate(dialect: str, where: ColumnElement[bool] | None = None) -> sa.Select[Any]:
    """The hourly rows of the samples matching ``where`` (all of them: None), with the
    columns of ``samples_hourly`` in its order, grouped by host and hour."""
    hour = hour_start(dialect, samples.c.received_at).label("hour")
    columns: list[ColumnElement[Any]] = [
        samples.c.client_ip,
        samples.c.client_port,
        hour,
        sa.func.count().label("sample_count"),
        sa.func.min(samples.c.received_at).label("first_at"),
        sa.func.max(samples.c.received_at).label("last_at"),
    ]
    for name, column in SOURCES.items():
        columns += [
            sa.func.count(column).label(f"{name}_n"),
            sa.func.sum(column).label(f"{name}_sum"),
            sa.func.min(column).label(f"{name}_min"),
            sa.func.max(column).label(f"{name}_max"),
        ]
    columns += [
        sa.func.count(CHART_CPU).label("chart_cpu_n"),
        sa.func.sum(CHART_CPU).label("chart_cpu_sum"),
    ]
    query = sa.select(*columns)
    if where is not None:
        query = query.where(where)
    # By the label: the expression's literals are the same, but one spelling is safest.
    by_hour: ColumnElement[Any] = sa.literal_column("hour")
    return query.group_by(samples.c.client_ip, samples.c.client_port, by_hour).order_by(
        samples.c.client_ip, samples.c.client_port, by_hour
    )  # in key order: concurrent writers lock rows in the same order


def refresh_round(conn: Connection, round_id: int) -> None:
    """Add the samples of round ``round_id`` (just written, in this transaction) to
    their hourly rows: one INSERT ... SELECT ... GROUP BY with an upsert, in SQL."""
    conn.execute(_upsert(conn.dialect.name, "round"), {"hourly_round_id": round_id})


def refresh_samples(conn: Connection, ids: Sequence[int]) -> None:
    """The same for the samples with these ids (a ``<cluster>`` shard's): primary-key
    lookups of its own rows only, so MariaDB locks no other shard's rows or gaps."""
    conn.execute(_upsert(conn.dialect.name, "ids"), {"hourly_sample_ids": list(ids)})


# The upserts, built once per dialect and kind: building this statement of some
# sixty columns and its cache key costs a few milliseconds of CPU (measured 2.6 ms
# on the loaded machine), every round; one built already has its key memoized.
_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(dialect: str, by: str) -> Any:
    found = _UPSERTS.get((dialect, by))
    if found is None:
        if by == "round":
            where = samples.c.round_id == sa.bindparam("hourly_round_id")
        else:
            where = samples.c.id.in_(sa.bindparam("hourly_sample_ids", expanding=True))
        found = _UPSERTS[(dialect, by)] = _build_upsert(dialect, where)
    return found


def _build_upsert(dialect: str, where: ColumnElement[bool]) -> Any:
    query = aggregate(dialect, where)
    names = [column.name for column in samples_hourly.c]
    key = ["client_ip", "client_port", "hour"]
    if dialect in _MYSQL:
        from sqlalchemy.dialects import mysql

        my = mysql.insert(samples_hourly).from_select(names, query)
        return my.on_duplicate_key_update(_merged(dialect, my.inserted))
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(samples_hourly).from_select(names, query)
        return pg.on_conflict_do_update(index_elements=key, set_=_merged(dialect, pg.excluded))
    from sqlalchemy.dialects import sqlite

    lite = sqlite.insert(samples_hourly).from_select(names, query)
    return lite.on_conflict_do_update(index_elements=key, set_=_merged(dialect, lite.excluded))


def _merged(dialect: str, new: Any) -> dict[str, Any]:
    """The SET of the upsert: the stored row (``samples_hourly``) and the new one."""
    old = samples_hourly.c

    def least(a: Any, b: Any) -> Any:
        # PostgreSQL's least() skips nulls; MariaDB's and SQLite's min(a, b) do not.
        if dialect == "postgresql":
            return sa.func.least(a, b)
        two = sa.func.least(a, b) if dialect in _MYSQL else sa.func.min(a, b)
        return sa.func.coalesce(two, a, b)

    def greatest(a: Any, b: Any) -> Any:
        if dialect == "postgresql":
            return sa.func.greatest(a, b)
        two = sa.func.greatest(a, b) if dialect in _MYSQL else sa.func.max(a, b)
        return sa.func.coalesce(two, a, b)

    def plus(a: Any, b: Any) -> Any:
        return sa.func.coalesce(a + b, a, b)  # a null sum: no value in that row

    merged: dict[str, Any] = {
        "sample_count": old.sample_count + new.sample_count,
        "first_at": least(old.first_at, new.first_at),
        "last_at": greatest(old.last_at, new.last_at),
        "chart_cpu_n": old.chart_cpu_n + new.chart_cpu_n,
        "chart_cpu_sum": plus(old.chart_cpu_sum, new.chart_cpu_sum),
    }
    for name in HOURLY_FIGURES:
        merged[f"{name}_n"] = old[f"{name}_n"] + new[f"{name}_n"]
        merged[f"{name}_sum"] = plus(old[f"{name}_sum"], new[f"{name}_sum"])
        merged[f"{name}_min"] = least(old[f"{name}_min"], new[f"{name}_min"])
        merged[f"{name}_max"] = greatest(old[f"{name}_max"], new[f"{name}_max"])
    return merged


# -- reading --------------------------------------------------------------------------------


@dataclass
class Totals:
    """Counts, sums, mins and maxes of some samples, added up from parts."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    n: dict[str, int] = field(default_factory=dict)
    sum: dict[str, float] = field(default_factory=dict)
    min: dict[str, float] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)

    def add(
        self, count: int, first: Any, last: Any, figures: Iterable[tuple[str, Any, Any, Any, Any]]
    ) -> None:
        """One part: its sample count, first and last, and per figure (name, n, sum,
        min, max); a part without samples changes nothing."""
        if not count:
            return
        self.count += int(count)
        self.first = (
            first
            if self.first is None or (first is not None and first < self.first)
            else self.first
        )
        self.last = (
            last if self.last is None or (last is not None and last > self.last) else self.last
        )
        for name, n, total, low, high in figures:
            if not n:
                continue
            self.n[name] = self.n.get(name, 0) + int(n)
            self.sum[name] = self.sum.get(name, 0.0) + float(total)
            low, high = float(low), float(high)
            self.min[name] = low if name not in self.min else min(self.min[name], low, key=_order)
            self.max[name] = high if name not in self.max else max(self.max[name], high, key=_order)

    def avg(self, name: str) -> float | None:
        n = self.n.get(name, 0)
        return self.sum[name] / n if n else None


def _order(value: float) -> tuple[bool, float]:
    """SQL's order of floats (PostgreSQL's: NaN above everything), not Python's, where
    every comparison with NaN is false and min/max depend on the order of arguments."""
    return (math.isnan(value), value)


def window_totals(
    conn: Connection,
    client_ip: str,
    client_port: int,
    since: datetime,
    until: datetime,
    hours: tuple[datetime, datetime],
) -> Totals:
    """The figures of ``HOURLY_FIGURES`` over ``[since, until)``: the whole ``hours``
    from ``samples_hourly``, the partial hours at the edges from the samples."""
    first, end = hours
    h = samples_hourly.c
    hourly = sa.select(
        sa.func.sum(h.sample_count),
        sa.func.min(h.first_at),
        sa.func.max(h.last_at),
        *(
            column
            for name in HOURLY_FIGURES
            for column in (
                sa.func.sum(h[f"{name}_n"]),
                sa.func.sum(h[f"{name}_sum"]),
                sa.func.min(h[f"{name}_min"]),
                sa.func.max(h[f"{name}_max"]),
            )
        ),
    ).where(h.client_ip == client_ip, h.client_port == client_port, h.hour >= first, h.hour < end)
    totals = Totals()
    parts = [conn.execute(hourly).one()]
    for low, high in _edges(since, until, hours):
        raw = sa.select(
            sa.func.count(),
            sa.func.min(samples.c.received_at),
            sa.func.max(samples.c.received_at),
            *(
                column
                for source in SOURCES.values()
                for column in (
                    sa.func.count(source),
                    sa.func.sum(source),
                    sa.func.min(source),
                    sa.func.max(source),
                )
            ),
        ).where(_raw_window(client_ip, client_port, low, high))
        parts.append(conn.execute(raw).one())
    for row in parts:
        figures = [
            (name, row[3 + 4 * i], row[4 + 4 * i], row[5 + 4 * i], row[6 + 4 * i])
            for i, name in enumerate(HOURLY_FIGURES)
        ]
        totals.add(row[0] or 0, row[1], row[2], figures)
    return totals


# The chart figures' sources in the samples and their (n, sum) columns in samples_hourly.
ChartFigure = tuple[Any, str]


def bucket_sums(
    conn: Connection,
    client_ip: str,
    client_port: int,
    since: datetime,
    until: datetime,
    hours: tuple[datetime, datetime],
    bucket: Any,
    figures: dict[str, ChartFigure],
) -> dict[int, tuple[int, dict[str, tuple[int, float]]]]:
    """Per bucket: how many samples and, per figure of ``figures`` (name: (the samples'
    expression, the hourly columns' prefix)), the count and sum of its values.

    ``bucket(column, early)`` is the SQL bucket number of a timestamp, with the
    buckets starting ``early`` before they do. Whole ``hours`` come from
    ``samples_hourly``, each assigned whole to the bucket of its start (with buckets
    an hour wide or wider, an hour that straddles two buckets counts in the first);
    the partial hours at the edges come from the samples, by their own time.
    """
    h = samples_hourly.c
    found: dict[int, tuple[int, dict[str, tuple[int, float]]]] = {}
    # An hour's start often sits exactly on a bucket's: the float arithmetic of
    # SQLite's julianday() (and of a window start with microseconds on PostgreSQL)
    # may land it a hair before, in the bucket before. A few milliseconds early fixes it.
    hourly_bucket = bucket(h.hour, _NUDGE).label("bucket")
    hourly = (
        sa.select(
            hourly_bucket,
            sa.func.sum(h.sample_count),
            *(
                column
                for _, prefix in figures.values()
                for column in (sa.func.sum(h[f"{prefix}_n"]), sa.func.sum(h[f"{prefix}_sum"]))
            ),
        )
        .where(
            h.client_ip == client_ip,
            h.client_port == client_port,
            h.hour >= hours[0],
            h.hour < hours[1],
        )
        .group_by(sa.literal_column("bucket"))
    )
    statements = [hourly]
    for low, high in _edges(since, until, hours):
        raw_bucket = bucket(samples.c.received_at, timedelta(0)).label("bucket")
        statements.append(
            sa.select(
                raw_bucket,
                sa.func.count(),
                *(
                    column
                    for source, _ in figures.values()
                    for column in (sa.func.count(source), sa.func.sum(source))
                ),
            )
            .where(_raw_window(client_ip, client_port, low, high))
            .group_by(sa.literal_column("bucket"))
        )
    for statement in statements:
        for row in conn.execute(statement):
            index = int(row[0])
            count, sums = found.get(index, (0, {}))
            count += int(row[1] or 0)
            for i, name in enumerate(figures):
                n, total = int(row[2 + 2 * i] or 0), row[3 + 2 * i]
                if n:
                    had_n, had_sum = sums.get(name, (0, 0.0))
                    sums[name] = (had_n + n, had_sum + float(total))
            found[index] = (count, sums)
    return found


def _edges(
    since: datetime, until: datetime, hours: tuple[datetime, datetime]
) -> list[tuple[datetime, datetime]]:
    """The partial hours of ``[since, until)`` around the whole ``hours``."""
    return [(low, high) for low, high in ((since, hours[0]), (hours[1], until)) if low < high]


def _raw_window(
    client_ip: str, client_port: int, low: datetime, high: datetime
) -> ColumnElement[bool]:
    return sa.and_(
        samples.c.client_ip == client_ip,
        samples.c.client_port == client_port,
        samples.c.received_at >= low,
        samples.c.received_at < high,
    )
