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
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleetstat.document import Event
from fleetstat.errors import StoreError
from fleetstat.model import HostResult
from fleetstat.store.schema import security_events

if TYPE_CHECKING:
    from fleetstat.store.core import Store

BATCH = 500
_KEY_COLUMNS = ("client_ip", "client_port", "event_key")
Host = tuple[str, int]


# -- writing --------------------------------------------------------------------------


def event_rows(round_id: int, results: Sequence[HostResult]) -> list[dict[str, Any]]:
    """Rows for every event in the round's documents, one per (host, event_key)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        rows += host_event_rows(round_id, result)
    return rows


def host_event_rows(round_id: int | None, result: HostResult) -> list[dict[str, Any]]:
    """One host's event rows, one per event_key (``round_id`` may be set later)."""
    document = result.document if result.ok else None
    if document is None or document.security_events is None:
        return []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for event in document.security_events.events:
        if event.event_key not in seen:
            seen.add(event.event_key)
            rows.append(_row(round_id, result, event))
    return rows


def insert_events(conn: Connection, round_id: int, results: Sequence[HostResult]) -> int:
    """Insert the round's events, skipping those already stored; the rows offered."""
    return insert_event_rows(conn, event_rows(round_id, results))


def insert_event_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert event rows (round_id set), 500 at a time, skipping those already stored."""
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


def _row(round_id: int | None, result: HostResult, event: Event) -> dict[str, Any]:
    # The document boundary made every value fit its column (fleetstat.document).
    return {
        "client_ip": result.client.ip,
        "client_port": result.client.port,
        "event_key": event.event_key,
        "source": event.source or "unknown",
        "record_id": event.record_id,
        "occurred_at": event.occurred_at,
        "event_id": event.event_id,
        "level": event.level,
        "provider": event.provider,
        "computer": event.computer,
        "account": event.account,
        "source_address": event.source_address,
        "logon_type": event.logon_type,
        "summary": event.summary,
        "data": dict(event.data) if event.data is not None else None,
        "round_id": round_id,
    }


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
