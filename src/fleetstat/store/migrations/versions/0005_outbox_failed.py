"""A message the outbox gave up on: ``mail_outbox.failed_at``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A message the mail library refuses to build, or that the SMTP server refused
permanently (5xx) a bounded number of times, is marked failed (``failed_at``, the
reason in ``last_error``) and no longer tried, so it can never hold up the
messages behind it. Null for every existing row: nothing was given up before.

Frozen like 0001: types spelled out, nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    kind = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    return sa.Column(name, kind, nullable=nullable)


def upgrade() -> None:
    op.add_column("mail_outbox", _ts("failed_at"))


def downgrade() -> None:
    op.drop_column("mail_outbox", "failed_at")
