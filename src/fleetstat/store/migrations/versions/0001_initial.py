"""Initial schema: rounds, attempts, samples, security_events, alert_states, mail_outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Written by hand and frozen: the types are spelled out here rather than imported
from ``schema.py``, so a later change there cannot silently change what this
revision creates. ``tests/test_store.py`` checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True)


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    # timestamptz on PostgreSQL; naive UTC with microseconds elsewhere.
    kind = (
        sa.DateTime()
        .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
        .with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
    )
    return sa.Column(name, kind, nullable=nullable)


def _text(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL), nullable=nullable)


def _json(name: str, nullable: bool = True) -> sa.Column[Any]:
    kind = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    return sa.Column(name, kind, nullable=nullable)


def _str(name: str, length: int, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _host(nullable: bool = False) -> list[sa.Column[Any]]:
    return [
        sa.Column("client_ip", sa.String(255), nullable=nullable),
        sa.Column("client_port", sa.Integer(), nullable=nullable),
    ]


def upgrade() -> None:
    op.create_table(
        "rounds",
        _id(),
        _ts("started_at", nullable=False),
        _ts("finished_at", nullable=False),
        sa.Column("hosts_total", sa.Integer(), nullable=False),
        sa.Column("hosts_ok", sa.Integer(), nullable=False),
        sa.Column("hosts_failed", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rounds"),
        **_TABLE,
    )
    op.create_table(
        "attempts",
        _id(),
        sa.Column("round_id", sa.BigInteger(), nullable=False),
        *_host(),
        _str("client_name", 255),
        _str("status", 32, nullable=False),
        _text("error"),
        _text("stderr"),
        sa.Column("duration_seconds", sa.Double(), nullable=False),
        _ts("started_at", nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name="fk_attempts_round_id_rounds"),
        **_TABLE,
    )
    op.create_index(
        "ix_attempts_client_ip_client_port_started_at",
        "attempts",
        ["client_ip", "client_port", "started_at"],
    )
    op.create_index("ix_attempts_round_id", "attempts", ["round_id"])

    op.create_table(
        "samples",
        _id(),
        sa.Column("round_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt_id", sa.BigInteger(), nullable=True),
        *_host(),
        _ts("collected_at"),
        _ts("received_at", nullable=False),
        _str("hostname", 255),
        _str("os", 255),
        _str("kernel", 255),
        sa.Column("cpu_percent", sa.Double()),
        sa.Column("cpu_interval_percent", sa.Double()),
        sa.Column("cpu_count", sa.Integer()),
        sa.Column("memory_total_bytes", sa.BigInteger()),
        sa.Column("memory_used_bytes", sa.BigInteger()),
        sa.Column("memory_available_bytes", sa.BigInteger()),
        sa.Column("memory_percent", sa.Double()),
        sa.Column("swap_total_bytes", sa.BigInteger()),
        sa.Column("swap_used_bytes", sa.BigInteger()),
        sa.Column("swap_percent", sa.Double()),
        sa.Column("load1", sa.Double()),
        sa.Column("load5", sa.Double()),
        sa.Column("load15", sa.Double()),
        sa.Column("uptime_seconds", sa.Double()),
        sa.Column("disk_max_percent", sa.Double()),
        _str("disk_max_mount", 1024),
        _json("document", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name="fk_samples_round_id_rounds"),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["attempts.id"],
            name="fk_samples_attempt_id_attempts",
            ondelete="SET NULL",
        ),
        **_TABLE,
    )
    op.create_index(
        "ix_samples_client_ip_client_port_received_at",
        "samples",
        ["client_ip", "client_port", "received_at"],
    )
    op.create_index("ix_samples_round_id", "samples", ["round_id"])
    op.create_index("ix_samples_attempt_id", "samples", ["attempt_id"])

    op.create_table(
        "security_events",
        _id(),
        *_host(),
        _str("event_key", 255, nullable=False),
        _str("source", 16, nullable=False),
        sa.Column("record_id", sa.BigInteger()),
        _ts("occurred_at"),
        sa.Column("event_id", sa.Integer()),
        _str("level", 32),
        _str("provider", 255),
        _str("computer", 255),
        _str("account", 255),
        _str("source_address", 255),
        sa.Column("logon_type", sa.Integer()),
        _text("summary"),
        _json("data"),
        sa.Column("round_id", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name="fk_security_events_round_id_rounds"
        ),
        sa.UniqueConstraint(
            "client_ip",
            "client_port",
            "event_key",
            name="uq_security_events_client_ip_client_port_event_key",
        ),
        **_TABLE,
    )

    op.create_table(
        "alert_states",
        _id(),
        *_host(),
        _str("rule_key", 255, nullable=False),
        _str("metric", 32, nullable=False),
        _str("state", 16, nullable=False),
        sa.Column("breach_count", sa.Integer(), nullable=False, server_default="0"),
        _ts("first_breached_at"),
        sa.Column("last_value", sa.Double()),
        sa.Column("limit_value", sa.Double()),
        _ts("last_evaluated_at"),
        _ts("last_notified_at"),
        _ts("resolved_at"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_states"),
        sa.UniqueConstraint(
            "client_ip",
            "client_port",
            "rule_key",
            name="uq_alert_states_client_ip_client_port_rule_key",
        ),
        **_TABLE,
    )

    op.create_table(
        "mail_outbox",
        _id(),
        _ts("created_at", nullable=False),
        _str("kind", 16, nullable=False),
        *_host(nullable=True),
        _text("recipients", nullable=False),
        _text("subject", nullable=False),
        _text("body", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _ts("last_attempt_at"),
        _ts("next_attempt_at"),
        _text("last_error"),
        _ts("sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
        **_TABLE,
    )
    op.create_index(
        "ix_mail_outbox_sent_at_next_attempt_at", "mail_outbox", ["sent_at", "next_attempt_at"]
    )


def downgrade() -> None:
    for table in (
        "mail_outbox",
        "alert_states",
        "security_events",
        "samples",
        "attempts",
        "rounds",
    ):
        op.drop_table(table)
