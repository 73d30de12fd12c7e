"""The history index also covers the 1-minute load (``/api/v1/hosts/{host}/stats``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``ix_samples_host_history`` is ``ix_samples_host_received_covering`` (0002) plus
``load1``, so the min/avg/max of the load over a window is read from the index
alone like the other figures. The new index is built before the old one is
dropped, so the host index never goes missing; on a large database this builds
one index over every sample (minutes at tens of millions of rows).

Frozen like 0001: nothing imported from ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "ix_samples_host_received_covering"
_NEW = "ix_samples_host_history"
_COLUMNS = [
    "client_ip",
    "client_port",
    "received_at",
    "cpu_percent",
    "cpu_interval_percent",
    "memory_percent",
    "swap_percent",
    "disk_max_percent",
]


def upgrade() -> None:
    op.create_index(_NEW, "samples", [*_COLUMNS, "load1"])
    op.drop_index(_OLD, table_name="samples")


def downgrade() -> None:
    op.create_index(_OLD, "samples", _COLUMNS)
    op.drop_index(_NEW, table_name="samples")
