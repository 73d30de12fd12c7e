"""Outbox claims: a message is handed to one sender at a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``mail_outbox.claimed_by`` names the sender (machine, pid, a random part) that
took the message for sending, ``claimed_until`` until when: another sender (a
``mail flush`` beside a round, or two flushes) skips it meanwhile, and a sender
that died lets it go when the time is up. Both are null when nobody holds it.

Frozen like 0001: types spelled out, nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")


def upgrade() -> None:
    timestamp = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    with op.batch_alter_table("mail_outbox") as table:
        table.add_column(sa.Column("claimed_by", sa.String(64)))
        table.add_column(sa.Column("claimed_until", timestamp))


def downgrade() -> None:
    with op.batch_alter_table("mail_outbox") as table:
        table.drop_column("claimed_until")
        table.drop_column("claimed_by")
