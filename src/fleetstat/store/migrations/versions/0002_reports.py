"""Reports at scale: a covering history index on samples and the host_latest table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

- ``ix_samples_host_received_covering`` replaces ``ix_samples_client_ip_client_port_
  received_at``: the same leading columns plus the figures ``fleetstat history``
  aggregates, so a host's window is read from the index alone.
- ``ix_attempts_host_started_covering`` likewise adds ``status`` to the attempts'
  host index, for the failed-attempt count of ``fleetstat history``.
- ``host_latest``: one row per host pointing at its last attempt and last good
  sample, with that sample's CPU counters (for the interval CPU). Filled here from
  the rows already stored; the counters start empty, so each host's first interval
  CPU after the upgrade is null.

Frozen like 0001: types spelled out, nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_OLD_INDEX = "ix_samples_client_ip_client_port_received_at"
_NEW_INDEX = "ix_samples_host_received_covering"
_OLD_ATTEMPTS_INDEX = "ix_attempts_client_ip_client_port_started_at"
_NEW_ATTEMPTS_INDEX = "ix_attempts_host_started_covering"
_COVERING = (
    "client_ip",
    "client_port",
    "received_at",
    "cpu_percent",
    "cpu_interval_percent",
    "memory_percent",
    "swap_percent",
    "disk_max_percent",
)


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    kind = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    return sa.Column(name, kind, nullable=nullable)


def upgrade() -> None:
    # Create the new index before dropping the old one: on MySQL the old one may be
    # what backs nothing else, but a moment without any host index would make every
    # concurrent read a full scan.
    op.create_index(_NEW_INDEX, "samples", list(_COVERING))
    op.drop_index(_OLD_INDEX, table_name="samples")
    op.create_index(
        _NEW_ATTEMPTS_INDEX, "attempts", ["client_ip", "client_port", "started_at", "status"]
    )
    op.drop_index(_OLD_ATTEMPTS_INDEX, table_name="attempts")

    host_latest = op.create_table(
        "host_latest",
        sa.Column("client_ip", sa.String(255), nullable=False),
        sa.Column("client_port", sa.Integer(), nullable=False),
        sa.Column("last_attempt_id", sa.BigInteger(), nullable=False),
        _ts("last_attempt_at", nullable=False),
        sa.Column("last_status", sa.String(32), nullable=False),
        sa.Column("sample_id", sa.BigInteger()),
        _ts("sample_received_at"),
        sa.Column("cpu_total_seconds", sa.Double()),
        sa.Column("cpu_busy_seconds", sa.Double()),
        _ts("boot_time"),
        sa.PrimaryKeyConstraint("client_ip", "client_port", name="pk_host_latest"),
        sa.ForeignKeyConstraint(
            ["last_attempt_id"], ["attempts.id"], name="fk_host_latest_last_attempt_id_attempts"
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name="fk_host_latest_sample_id_samples"
        ),
        **_TABLE,
    )
    op.create_index("ix_host_latest_last_attempt_id", "host_latest", ["last_attempt_id"])
    op.create_index("ix_host_latest_sample_id", "host_latest", ["sample_id"])
    assert host_latest is not None
    _backfill(host_latest)


def _backfill(host_latest: sa.Table) -> None:
    """One row per host already in the database: its newest attempt and sample (by id)."""
    conn = op.get_bind()
    meta = sa.MetaData()
    attempts = sa.Table(
        "attempts",
        meta,
        sa.Column("id", sa.BigInteger()),
        sa.Column("client_ip", sa.String(255)),
        sa.Column("client_port", sa.Integer()),
        sa.Column("status", sa.String(32)),
        _ts("started_at"),
    )
    samples = sa.Table(
        "samples",
        meta,
        sa.Column("id", sa.BigInteger()),
        sa.Column("client_ip", sa.String(255)),
        sa.Column("client_port", sa.Integer()),
        _ts("received_at"),
    )
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    newest_attempts = sa.select(sa.func.max(attempts.c.id)).group_by(
        attempts.c.client_ip, attempts.c.client_port
    )
    for row in conn.execute(sa.select(attempts).where(attempts.c.id.in_(newest_attempts))):
        rows[(row.client_ip, row.client_port)] = {
            "client_ip": row.client_ip,
            "client_port": row.client_port,
            "last_attempt_id": row.id,
            "last_attempt_at": row.started_at,
            "last_status": row.status,
            "sample_id": None,
            "sample_received_at": None,
        }
    newest_samples = sa.select(sa.func.max(samples.c.id)).group_by(
        samples.c.client_ip, samples.c.client_port
    )
    for row in conn.execute(sa.select(samples).where(samples.c.id.in_(newest_samples))):
        entry = rows.get((row.client_ip, row.client_port))
        if entry is not None:  # a sample whose attempts were all deleted: leave it out
            entry["sample_id"] = row.id
            entry["sample_received_at"] = row.received_at
    if rows:
        conn.execute(sa.insert(host_latest), list(rows.values()))


def downgrade() -> None:
    op.drop_table("host_latest")
    op.create_index(_OLD_ATTEMPTS_INDEX, "attempts", ["client_ip", "client_port", "started_at"])
    op.drop_index(_NEW_ATTEMPTS_INDEX, table_name="attempts")
    op.create_index(_OLD_INDEX, "samples", ["client_ip", "client_port", "received_at"])
    op.drop_index(_NEW_INDEX, table_name="samples")
