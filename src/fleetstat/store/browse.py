"""Reads for the HTTP API (``fleetstat serve``) beyond ``report`` and ``history``.

Each read is O(page) or O(hosts), whatever the size of the tables: the latest
document comes through ``host_latest`` by primary key, lists are keyset-paginated
on ``id`` (``before``/``after`` a given id, never OFFSET, which would walk every
skipped row), and the Prometheus figures read ``host_latest`` joined with the
samples it points to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from fleetstat.store.core import Store
from fleetstat.store.schema import attempts, host_latest, rounds, samples, security_events


@dataclass(frozen=True)
class LatestSample:
    """A host's last attempt and its last good sample with the whole document."""

    status: str
    last_attempt_at: datetime
    error: str | None
    sample_id: int | None
    received_at: datetime | None
    collected_at: datetime | None
    document: dict[str, Any] | None


def latest_sample(store: Store, client_ip: str, client_port: int) -> LatestSample | None:
    """None when the host was never tried."""
    query = (
        sa.select(
            host_latest.c.last_status,
            host_latest.c.last_attempt_at,
            attempts.c.error,
            samples.c.id,
            samples.c.received_at,
            samples.c.collected_at,
            samples.c.document,
        )
        .select_from(
            host_latest.outerjoin(samples, samples.c.id == host_latest.c.sample_id).outerjoin(
                attempts, attempts.c.id == host_latest.c.last_attempt_id
            )
        )
        .where(host_latest.c.client_ip == client_ip, host_latest.c.client_port == client_port)
    )
    with store.errors("read the latest sample"), store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    document = row.document if isinstance(row.document, dict) else None
    return LatestSample(
        row.last_status,
        row.last_attempt_at,
        row.error,
        row.id,
        row.received_at,
        row.collected_at,
        document,
    )


def recent_rounds(store: Store, *, limit: int, before: int | None = None) -> list[sa.Row[Any]]:
    """The newest rounds first, ``limit`` of them, with ids below ``before`` when given."""
    query = sa.select(rounds).order_by(rounds.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(rounds.c.id < before)
    with store.errors("read the rounds"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


def last_round(store: Store) -> sa.Row[Any] | None:
    rows = recent_rounds(store, limit=1)
    return rows[0] if rows else None


def ping(store: Store) -> None:
    """A trivial query: raises StoreError when the database does not answer."""
    with store.errors("reach the database"), store.engine.connect() as conn:
        conn.execute(sa.select(sa.literal(1))).scalar()


EVENT_COLUMNS = (
    "id",
    "client_ip",
    "client_port",
    "source",
    "record_id",
    "occurred_at",
    "event_id",
    "level",
    "provider",
    "computer",
    "account",
    "source_address",
    "logon_type",
    "summary",
    "round_id",
)


def security_event_page(
    store: Store,
    *,
    hosts: Sequence[tuple[str, int]] | None,
    since: datetime | None,
    limit: int,
    after: int | None = None,
) -> list[sa.Row[Any]]:
    """Security events oldest first (by id), ``limit`` of them after id ``after``.

    ``hosts`` None means every host; ``since`` filters on when the event occurred.
    Only the columns above: ``data`` (the raw event) stays in the database.
    """
    query = (
        sa.select(*(security_events.c[name] for name in EVENT_COLUMNS))
        .order_by(security_events.c.id)
        .limit(limit)
    )
    if hosts is not None:
        query = query.where(
            sa.or_(
                *(
                    sa.and_(
                        security_events.c.client_ip == ip, security_events.c.client_port == port
                    )
                    for ip, port in hosts
                )
            )
        )
    if since is not None:
        query = query.where(security_events.c.occurred_at >= since)
    if after is not None:
        query = query.where(security_events.c.id > after)
    with store.errors("read the security events"), store.engine.connect() as conn:
        return list(conn.execute(query).all())


@dataclass(frozen=True)
class HostFigures:
    """What ``/metrics`` says about one host: its last attempt and last good sample."""

    client_ip: str
    client_port: int
    last_status: str
    last_attempt_at: datetime
    sample_id: int | None
    received_at: datetime | None
    document: dict[str, Any] | None


def host_figures(
    store: Store, *, changed_since: int | None = None
) -> tuple[int, list[HostFigures]]:
    """Every host's latest state with its document, and a version number for caching.

    The version is the newest ``last_attempt_id``: it moves on every round. With
    ``changed_since`` equal to it, nothing else is read (the caller's copy is
    current) and the list is empty.
    """
    version_query = sa.select(sa.func.max(host_latest.c.last_attempt_id))
    query = sa.select(
        host_latest.c.client_ip,
        host_latest.c.client_port,
        host_latest.c.last_status,
        host_latest.c.last_attempt_at,
        host_latest.c.sample_id,
        samples.c.received_at,
        samples.c.document,
    ).select_from(host_latest.outerjoin(samples, samples.c.id == host_latest.c.sample_id))
    with store.errors("read the hosts' figures"), store.engine.connect() as conn:
        version = int(conn.execute(version_query).scalar() or 0)
        if changed_since is not None and version == changed_since:
            return version, []
        rows = conn.execute(query).all()
    return version, [
        HostFigures(
            row.client_ip,
            row.client_port,
            row.last_status,
            row.last_attempt_at,
            row.sample_id,
            row.received_at,
            row.document if isinstance(row.document, dict) else None,
        )
        for row in rows
    ]


def unsent_mail(store: Store) -> int:
    """Messages in the outbox that no SMTP server has accepted yet."""
    from fleetstat.store.schema import mail_outbox

    query = (
        sa.select(sa.func.count()).select_from(mail_outbox).where(mail_outbox.c.sent_at.is_(None))
    )
    with store.errors("count the unsent mail"), store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def generation(store: Store) -> tuple[Any, ...]:
    """What the fleet's latest state depends on, in one cheap query, for caches.

    It moves whenever a round is stored (by this process or another: ``collect``
    from cron, cluster workers): the newest attempt in ``host_latest``, the newest
    round; whenever alerts are evaluated (a separate transaction, possibly late:
    the spool's replay); and when the outbox sends or queues mail. Each part
    reads a small table (hosts, rules per host, the outbox) or an index's end.
    """
    from fleetstat.store.schema import alert_states, mail_outbox

    def scalar(query: sa.Select[Any]) -> sa.ScalarSelect[Any]:
        return query.scalar_subquery()

    query = sa.select(
        scalar(sa.select(sa.func.max(host_latest.c.last_attempt_id))),
        scalar(sa.select(sa.func.count()).select_from(host_latest)),
        scalar(sa.select(sa.func.max(rounds.c.id))),
        scalar(sa.select(sa.func.count()).select_from(alert_states)),
        scalar(sa.select(sa.func.max(alert_states.c.last_evaluated_at))),
        scalar(
            sa.select(sa.func.count())
            .select_from(alert_states)
            .where(alert_states.c.state == "firing")
        ),
        scalar(
            sa.select(sa.func.count())
            .select_from(mail_outbox)
            .where(mail_outbox.c.sent_at.is_(None))
        ),
    )
    with store.errors("read the store's generation"), store.engine.connect() as conn:
        return tuple(conn.execute(query).one())
