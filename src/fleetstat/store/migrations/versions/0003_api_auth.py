"""``fleetstat serve``: users, API tokens, and the server's persisted state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

- ``users``: people who may log in (``fleetstat user add``), with a scrypt hash.
- ``api_tokens``: bearer tokens, only their SHA-256 kept; a login's session
  tokens (with their user) and programs' tokens (``fleetstat token create``).
- ``server_state``: named values kept across restarts (``monitoring.running``).

Frozen like 0001: types spelled out, nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0003"
down_revision: str | None = "0002"
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


def _id() -> sa.Column[Any]:
    kind = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Column("id", kind, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        _ts("created_at", nullable=False),
        _ts("last_login_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
        **_TABLE,
    )
    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("user_id", sa.BigInteger()),
        _ts("created_at", nullable=False),
        _ts("expires_at"),
        _ts("revoked_at"),
        _ts("last_used_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        **_TABLE,
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "server_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("updated_by", sa.String(255)),
        sa.PrimaryKeyConstraint("name", name="pk_server_state"),
        **_TABLE,
    )


def downgrade() -> None:
    op.drop_table("server_state")
    op.drop_table("api_tokens")
    op.drop_table("users")
