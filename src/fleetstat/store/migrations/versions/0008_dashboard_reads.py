"""Indexes for the dashboard's per-host lists: alert mail and security events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

A host page lists the host's latest alert mail and security events, newest
first. Without an index that starts with the host, a host with few or none of
them would cost a scan of the whole outbox or event table on every view (a
Windows host alone stores up to 500 events a round). Both indexes end in ``id``,
so "this host, newest first, 20 of them" is a short backward range scan.

Frozen like 0001: nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_mail_outbox_host", "mail_outbox", ["client_ip", "client_port", "kind", "id"]
    )
    op.create_index(
        "ix_security_events_host", "security_events", ["client_ip", "client_port", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_security_events_host", table_name="security_events")
    op.drop_index("ix_mail_outbox_host", table_name="mail_outbox")
