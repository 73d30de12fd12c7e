"""``<cluster>``: workers' heartbeat rows and the shards of a round.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

- ``cluster_workers``: one row per worker process (``fleetstat worker``), its zone
  and last heartbeat; the coordinator places hosts on the live ones.
- ``cluster_shards``: one row per shard of a round, written in the shard's own
  transaction; its primary key ``(round_id, shard)`` makes a redelivered shard's
  second commit fail, so each shard is stored once.

Frozen like 0001: types spelled out, nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    kind = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    return sa.Column(name, kind, nullable=nullable)


def _double(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Double(), nullable=True)


def upgrade() -> None:
    op.create_table(
        "cluster_workers",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(255)),
        sa.Column("pid", sa.Integer()),
        _ts("started_at", nullable=False),
        _ts("last_seen", nullable=False),
        _ts("stopped_at"),
        sa.Column("shards_done", sa.Integer(), nullable=False, server_default="0"),
        _ts("last_shard_at"),
        _double("last_shard_seconds"),
        sa.PrimaryKeyConstraint("name", name="pk_cluster_workers"),
        **_TABLE,
    )
    op.create_table(
        "cluster_shards",
        sa.Column("round_id", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("worker", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("hosts", sa.Integer(), nullable=False),
        _ts("committed_at", nullable=False),
        _double("seconds"),
        sa.PrimaryKeyConstraint("round_id", "shard", name="pk_cluster_shards"),
        **_TABLE,
    )
    op.create_index("ix_cluster_shards_committed_at", "cluster_shards", ["committed_at"])


def downgrade() -> None:
    op.drop_index("ix_cluster_shards_committed_at", table_name="cluster_shards")
    op.drop_table("cluster_shards")
    op.drop_table("cluster_workers")
