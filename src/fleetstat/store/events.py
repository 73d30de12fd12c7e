"""Security events: stored once per host, and the bookmark derived from what is stored.

- :func:`insert_events` runs inside ``Store.record_round``'s transaction: one
  batched INSERT per 500 events that skips rows whose ``(client_ip, client_port,
  event_key)`` is already there (SQLite ``ON CONFLICT DO NOTHING``, PostgreSQL
  ``ON CONFLICT DO NOTHING``, MariaDB/MySQL ``INSERT IGNORE``). A round that is
  retried, or a probe that sends an event again, never stores it twice.
- :func:`read_bookmarks` gives the ``--since`` of every host in one query: the
  position stored with each host's newest event (highest ``id``; the probe
  sends events in log order). Because it is read from the stored rows, it moves
  forward only once the events are committed: a round that fails after
  collecting makes the next round ask for the same events again.
- :func:`round_events` reads back the events a round stored (its ``round_id``;
  duplicates keep the round that first stored them): these are the new ones
  that the events mail lists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleetstat.errors import StoreError
from fleetstat.model import HostResult
from fleetstat.store.schema import HOST_LEN, NAME_LEN, security_events

if TYPE_CHECKING:
    from fleetstat.store.core import Store

BATCH = 500
_KEY_COLUMNS = ("client_ip", "client_port", "event_key")
_INT_MAX = 2**31 - 1
_BIGINT_MAX = 2**63 - 1
Host = tuple[str, int]


# -- writing --------------------------------------------------------------------------


def event_rows(round_id: int, results: Sequence[HostResult]) -> list[dict[str, Any]]:
    """Rows for every event in the round's documents, one per (host, event_key)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        family = (result.document or {}).get("security_events") if result.ok else None
        if not isinstance(family, dict) or not isinstance(family.get("events"), list):
            continue
        seen: set[str] = set()
        for event in family["events"]:
            row = _row(round_id, result, event)
            if row is not None and row["event_key"] not in seen:
                seen.add(row["event_key"])
                rows.append(row)
    return rows


def insert_events(conn: Connection, round_id: int, results: Sequence[HostResult]) -> int:
    """Insert the round's events, skipping those already stored; the rows offered."""
    rows = event_rows(round_id, results)
    statement = _insert_ignoring_duplicates(conn.dialect.name)
    for start in range(0, len(rows), BATCH):
        conn.execute(statement, rows[start : start + BATCH])
    return len(rows)


def _insert_ignoring_duplicates(dialect: str) -> Any:
    # Dialect modules imported here, not at the top: see store/types.py.
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(security_events).on_conflict_do_nothing(index_elements=_KEY_COLUMNS)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(security_events).on_conflict_do_nothing(
            index_elements=_KEY_COLUMNS
        )
    if dialect in ("mysql", "mariadb"):
        # INSERT IGNORE also turns other errors into warnings; every value is
        # truncated and typed in _row first, so only the duplicate key is left.
        return sa.insert(security_events).prefix_with("IGNORE")
    raise StoreError(f"security events: no duplicate-ignoring INSERT for {dialect!r}")


def _row(round_id: int, result: HostResult, event: Any) -> dict[str, Any] | None:
    if not isinstance(event, dict):
        return None
    key = event.get("event_key")
    if not isinstance(key, str) or not key:
        return None
    data = event.get("data")
    return {
        "client_ip": result.client.ip,
        "client_port": result.client.port,
        "event_key": key[:255],
        "source": _text(event.get("source"), 16) or "unknown",
        "record_id": _int(event.get("record_id"), _BIGINT_MAX),
        "occurred_at": parse_time(event.get("occurred_at")),
        "event_id": _int(event.get("event_id"), _INT_MAX),
        "level": _text(event.get("level"), 32),
        "provider": _text(event.get("provider"), NAME_LEN),
        "computer": _text(event.get("computer"), NAME_LEN),
        "account": _text(event.get("account"), NAME_LEN),
        "source_address": _text(event.get("source_address"), HOST_LEN),
        "logon_type": _int(event.get("logon_type"), _INT_MAX),
        "summary": _text(event.get("summary"), 4000),
        "data": data if isinstance(data, dict) else None,
        "round_id": round_id,
    }


def _text(value: Any, length: int) -> str | None:
    # Strict SQL modes reject the whole statement (the whole round) for one value
    # that is too long, so every string is cut to its column here.
    return value[:length] if isinstance(value, str) and value else None


def _int(value: Any, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -limit <= value <= limit else None


def parse_time(value: Any) -> datetime | None:
    """An event's ``occurred_at`` (ISO 8601, ``Z`` or an offset) as aware UTC; None if not."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# -- reading --------------------------------------------------------------------------


def bookmark_of(source: str, record_id: int | None, data: Any) -> dict[str, Any] | None:
    """The probe's ``--since`` for a stored event: where to continue after it."""
    if source == "windows" and record_id is not None:
        return {"source": "windows", "record_id": record_id}
    position = data.get("position") if isinstance(data, dict) else None
    if isinstance(position, dict) and position.get("source") == source:
        return position
    return None


def read_bookmarks(store: Store, hosts: Sequence[Host]) -> dict[Host, str]:
    """``{(ip, port): --since JSON}`` for the hosts that have stored events; one query."""
    wanted = sorted(set(hosts))
    if not wanted:
        return {}
    t = security_events
    newest = (
        sa.select(t.c.client_ip, t.c.client_port, sa.func.max(t.c.id).label("id"))
        .where(sa.tuple_(t.c.client_ip, t.c.client_port).in_(wanted))
        .group_by(t.c.client_ip, t.c.client_port)
        .subquery()
    )
    query = sa.select(t.c.client_ip, t.c.client_port, t.c.source, t.c.record_id, t.c.data).join(
        newest, t.c.id == newest.c.id
    )
    found: dict[Host, str] = {}
    with store.errors("read the event bookmarks"), store.engine.connect() as conn:
        for row in conn.execute(query):
            mark = bookmark_of(row.source, row.record_id, row.data)
            if mark is not None:
                found[(row.client_ip, row.client_port)] = json.dumps(mark, separators=(",", ":"))
    return found


def round_events(
    store: Store, round_id: int, results: Sequence[HostResult]
) -> dict[Host, list[Any]]:
    """The events this round stored, per host, oldest first (looked up by their unique keys)."""
    with store.errors("read the round's events"), store.engine.connect() as conn:
        return round_events_in(conn, round_id, results)


def round_events_in(
    conn: sa.Connection, round_id: int, results: Sequence[HostResult]
) -> dict[Host, list[Any]]:
    """:func:`round_events` on an open connection: sees the round's uncommitted rows."""
    keys = [
        (r["client_ip"], r["client_port"], r["event_key"]) for r in event_rows(round_id, results)
    ]
    found: dict[Host, list[Any]] = {}
    t = security_events
    for start in range(0, len(keys), BATCH):
        query = (
            sa.select(t)
            .where(
                sa.tuple_(t.c.client_ip, t.c.client_port, t.c.event_key).in_(
                    keys[start : start + BATCH]
                )
            )
            .where(t.c.round_id == round_id)
            .order_by(t.c.id)
        )
        for row in conn.execute(query):
            found.setdefault((row.client_ip, row.client_port), []).append(row)
    return found
