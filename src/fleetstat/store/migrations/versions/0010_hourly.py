"""Hourly aggregates of the samples, for long history windows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

- ``samples_hourly``: one row per host and UTC hour (primary key ``(client_ip,
  client_port, hour)``): the sample count, first and last ``received_at``, and
  per figure (cpu, cpu_interval, memory, swap, disk, load) the count of non-null
  values, their sum, min and max; the charts' CPU (interval figure, else the
  short window) as count and sum. An index on ``hour`` for retention.
- Filled here from the samples already stored: one INSERT ... SELECT ... GROUP BY
  (on a large database this reads every sample once; the upgrade takes as long).

Frozen like 0001: types spelled out, nothing imported from ``schema.py``; the
hour expression is a copy of ``store/hourly.py``'s ``hour_start`` as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_FIGURES = {
    "cpu": "cpu_percent",
    "cpu_interval": "cpu_interval_percent",
    "memory": "memory_percent",
    "swap": "swap_percent",
    "disk": "disk_max_percent",
    "load": "load1",
}


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    kind = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    return sa.Column(name, kind, nullable=nullable)


def _figure(name: str) -> list[sa.Column[Any]]:
    return [
        sa.Column(f"{name}_n", sa.Integer(), nullable=False),
        sa.Column(f"{name}_sum", sa.Double()),
        sa.Column(f"{name}_min", sa.Double()),
        sa.Column(f"{name}_max", sa.Double()),
    ]


def upgrade() -> None:
    hourly = op.create_table(
        "samples_hourly",
        sa.Column("client_ip", sa.String(255), nullable=False),
        sa.Column("client_port", sa.Integer(), nullable=False),
        _ts("hour", nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        _ts("first_at", nullable=False),
        _ts("last_at", nullable=False),
        *(column for name in _FIGURES for column in _figure(name)),
        sa.Column("chart_cpu_n", sa.Integer(), nullable=False),
        sa.Column("chart_cpu_sum", sa.Double()),
        sa.PrimaryKeyConstraint("client_ip", "client_port", "hour", name="pk_samples_hourly"),
        **_TABLE,
    )
    op.create_index("ix_samples_hourly_hour", "samples_hourly", ["hour"])
    assert hourly is not None
    _backfill(hourly)


def _hour_start(dialect: str, column: Any) -> Any:
    if dialect == "postgresql":
        utc: Any = sa.literal_column("'UTC'")
        wall = sa.func.timezone(utc, column)
        return sa.func.timezone(utc, sa.func.date_trunc(sa.literal_column("'hour'"), wall))
    if dialect in _MYSQL:
        zero: Any = sa.literal_column("0")
        return sa.func.timestamp(
            sa.func.date(column), sa.func.maketime(sa.func.hour(column), zero, zero)
        )
    head = sa.func.substr(column, sa.literal_column("1"), sa.literal_column("13"))
    return head.op("||")(sa.literal_column("':00:00.000000'"))


def _backfill(hourly: sa.Table) -> None:
    """Every stored sample, per host and hour: one set-based statement."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # The default 4 MB makes the hash aggregate spill to disk in dozens of
        # batches: 20 hosts x 90 days (2.6 million samples) upgraded in 12.4 s,
        # against 4.9 and 6.8 s with 256 MB (load 7). LOCAL: this transaction only.
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
    meta = sa.MetaData()
    samples = sa.Table(
        "samples",
        meta,
        sa.Column("client_ip", sa.String(255)),
        sa.Column("client_port", sa.Integer()),
        _ts("received_at"),
        *(sa.Column(column, sa.Double()) for column in _FIGURES.values()),
    )
    received = samples.c.received_at
    columns: list[Any] = [
        samples.c.client_ip,
        samples.c.client_port,
        _hour_start(conn.dialect.name, received).label("hour"),
        sa.func.count().label("sample_count"),
        sa.func.min(received).label("first_at"),
        sa.func.max(received).label("last_at"),
    ]
    for name, column in _FIGURES.items():
        source = samples.c[column]
        columns += [
            sa.func.count(source).label(f"{name}_n"),
            sa.func.sum(source).label(f"{name}_sum"),
            sa.func.min(source).label(f"{name}_min"),
            sa.func.max(source).label(f"{name}_max"),
        ]
    chart_cpu = sa.func.coalesce(samples.c.cpu_interval_percent, samples.c.cpu_percent)
    columns += [
        sa.func.count(chart_cpu).label("chart_cpu_n"),
        sa.func.sum(chart_cpu).label("chart_cpu_sum"),
    ]
    query = sa.select(*columns).group_by(
        samples.c.client_ip, samples.c.client_port, sa.literal_column("hour")
    )
    conn.execute(sa.insert(hourly).from_select([c.name for c in hourly.c], query))


def downgrade() -> None:
    op.drop_index("ix_samples_hourly_hour", table_name="samples_hourly")
    op.drop_table("samples_hourly")
