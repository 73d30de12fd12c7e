"""A round's identity, so a round written again from the spool is stored once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

- ``rounds.uuid``: the round's UUID (``RoundResult.uuid``), a unique index, written in the
  round's own transaction. A round replayed from the local spool after a crash
  between the commit and the spool file's removal is recognised and skipped.
  Null for the rounds stored before this revision.
- ``rounds.alerts_at``: when the round's alerts were evaluated (the evaluation's
  transaction sets it, and only where it is null): the alerts of a round are
  evaluated, and mailed, once. Existing rounds were evaluated when stored: set to
  their ``finished_at``.
- ``rounds.replayed_at``: when a round was written from the spool (null for a
  round stored as it ran).

Frozen like 0001: types spelled out, nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def _ts(name: str) -> sa.Column[Any]:
    kind = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    return sa.Column(name, kind, nullable=True)


def upgrade() -> None:
    # A unique index rather than a constraint: SQLite adds neither a constraint nor
    # a column with one to an existing table, and the index does the same work.
    op.add_column("rounds", sa.Column("uuid", sa.String(36), nullable=True))
    op.add_column("rounds", _ts("alerts_at"))
    op.add_column("rounds", _ts("replayed_at"))
    op.create_index("ix_rounds_uuid", "rounds", ["uuid"], unique=True)
    rounds = sa.table("rounds", sa.column("alerts_at"), sa.column("finished_at"))
    op.execute(rounds.update().values(alerts_at=rounds.c.finished_at))


def downgrade() -> None:
    op.drop_index("ix_rounds_uuid", table_name="rounds")
    op.drop_column("rounds", "replayed_at")
    op.drop_column("rounds", "alerts_at")
    op.drop_column("rounds", "uuid")
