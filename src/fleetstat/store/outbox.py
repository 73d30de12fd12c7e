"""The ``mail_outbox`` rows: what is queued, what was sent, what waits and why.

SQL only. What to send, when to retry and how to talk to the SMTP server are the
mail part's (``fleetstat.mail.outbox``); it calls these functions, which know
nothing of messages beyond their recipients, subject and body. A row is *sent*
once ``sent_at`` is set, *failed* once ``failed_at`` is (the outbox gave up on it:
it is no longer tried, and shown by ``fleetstat mail list --failed``), *queued*
otherwise; rows are never deleted here (``store/retention.py`` prunes sent and
failed mail).

A sender takes a row with :func:`claim` before it sends it: the claim is one
conditional UPDATE in its own transaction, so of two senders at once (a round's
flush and a ``mail flush``, or two flushes) exactly one gets the row, the other
skips it. Recording the outcome lets the claim go; a sender that died holds it
only until ``claimed_until``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fleetstat.store.schema import mail_outbox

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from fleetstat.store.core import Store

ERROR_LIMIT = 4000  # characters of an SMTP answer kept in last_error


@dataclass(frozen=True)
class NewMail:
    """A message to queue for one host (``client_ip`` None: not about one host)."""

    recipients: tuple[str, ...]
    subject: str
    body: str
    client_ip: str | None = None
    client_port: int | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """One ``mail_outbox`` row without its body, as flushes and reports use it."""

    id: int
    created_at: datetime
    kind: str
    client_ip: str | None
    client_port: int | None
    recipients: tuple[str, ...]
    subject: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None = None

    @property
    def state(self) -> str:
        """``sent``, ``failed`` (given up) or ``queued``."""
        if self.sent_at is not None:
            return "sent"
        return "failed" if self.failed_at is not None else "queued"


# -- writing ------------------------------------------------------------------------


def enqueue(conn: Connection, mails: Sequence[NewMail], *, now: datetime, kind: str) -> None:
    """Insert ``mails`` (those with recipients), due now, in the caller's transaction."""
    rows = [
        {
            "created_at": now,
            "kind": kind,
            "client_ip": mail.client_ip,
            "client_port": mail.client_port,
            "recipients": ", ".join(mail.recipients),
            "subject": mail.subject,
            "body": mail.body,
            "attempts": 0,
            "next_attempt_at": now,
        }
        for mail in mails
        if mail.recipients
    ]
    if rows:
        conn.execute(sa.insert(mail_outbox), rows)


def claim(store: Store, entry_id: int, *, by: str, until: datetime, now: datetime) -> bool:
    """Take an unsent row for sender ``by`` until ``until``: True when it is now this
    sender's, False when it was sent meanwhile or another sender holds it.

    The database decides: the UPDATE waits for a concurrent one on the same row
    and then re-checks its condition, so two senders never both see True.
    """
    free = sa.or_(
        mail_outbox.c.claimed_until.is_(None),
        mail_outbox.c.claimed_until <= now,
        mail_outbox.c.claimed_by == by,
    )
    with store.errors("claim a mail for sending"), store.engine.begin() as conn:
        done = conn.execute(
            sa.update(mail_outbox)
            .where(mail_outbox.c.id == entry_id, mail_outbox.c.sent_at.is_(None), free)
            .values(claimed_by=by, claimed_until=until)
        )
        return done.rowcount == 1


_UNCLAIMED = {"claimed_by": None, "claimed_until": None}


def mark_sent(store: Store, entry_id: int, now: datetime) -> None:
    """The SMTP server accepted the message: it leaves the queue."""
    with store.errors("mark a mail as sent"), store.engine.begin() as conn:
        conn.execute(
            sa.update(mail_outbox)
            .where(mail_outbox.c.id == entry_id)
            .values(
                sent_at=now,
                attempts=mail_outbox.c.attempts + 1,
                last_attempt_at=now,
                last_error=None,
                **_UNCLAIMED,
            )
        )


def mark_refused(
    store: Store,
    entry_id: int,
    *,
    attempts: int,
    error: str,
    retry_at: datetime,
    recipients: Sequence[str],
    now: datetime,
) -> None:
    """The server refused the message (or some recipients, who are kept): retry later."""
    with store.errors("record a refused mail"), store.engine.begin() as conn:
        conn.execute(
            sa.update(mail_outbox)
            .where(mail_outbox.c.id == entry_id)
            .values(
                attempts=attempts,
                last_attempt_at=now,
                last_error=error[:ERROR_LIMIT],
                next_attempt_at=retry_at,
                recipients=", ".join(recipients),
                **_UNCLAIMED,
            )
        )


def give_up(store: Store, entry_id: int, *, attempts: int, error: str, now: datetime) -> None:
    """No more tries for this message (it cannot be built, or was refused for good)."""
    with store.errors("record a failed mail"), store.engine.begin() as conn:
        conn.execute(
            sa.update(mail_outbox)
            .where(mail_outbox.c.id == entry_id)
            .values(
                attempts=attempts,
                last_attempt_at=now,
                last_error=error[:ERROR_LIMIT],
                next_attempt_at=None,
                failed_at=now,
                **_UNCLAIMED,
            )
        )


def mark_failed(
    store: Store, entry_ids: Sequence[int], error: str, now: datetime, *, by: str | None = None
) -> None:
    """The session failed before these were tried: one more attempt each, still due.

    With ``by``, only the rows no other sender holds (and ``by``'s own claims go).
    """
    query = sa.update(mail_outbox).where(mail_outbox.c.id.in_(list(entry_ids)))
    if by is not None:
        query = query.where(
            sa.or_(
                mail_outbox.c.claimed_until.is_(None),
                mail_outbox.c.claimed_until <= now,
                mail_outbox.c.claimed_by == by,
            )
        )
    with store.errors("record a failed mail delivery"), store.engine.begin() as conn:
        conn.execute(
            query.values(
                attempts=mail_outbox.c.attempts + 1,
                last_attempt_at=now,
                last_error=error[:ERROR_LIMIT],
                **_UNCLAIMED,
            )
        )


# -- reading ------------------------------------------------------------------------

_ENTRY_COLUMNS = (
    mail_outbox.c.id,
    mail_outbox.c.created_at,
    mail_outbox.c.kind,
    mail_outbox.c.client_ip,
    mail_outbox.c.client_port,
    mail_outbox.c.recipients,
    mail_outbox.c.subject,
    mail_outbox.c.attempts,
    mail_outbox.c.last_error,
    mail_outbox.c.next_attempt_at,
    mail_outbox.c.sent_at,
    mail_outbox.c.failed_at,
)
_QUEUED = sa.and_(mail_outbox.c.sent_at.is_(None), mail_outbox.c.failed_at.is_(None))


def due(store: Store, now: datetime, *, everything: bool, limit: int) -> list[OutboxEntry]:
    """Queued rows whose retry time has come (``everything``: all queued ones).

    In order of their retry time, then of their id: a message that was just tried
    and backed off goes behind the others, so one that keeps failing (even one that
    breaks the SMTP session) never holds up those queued after it.
    """
    query = sa.select(*_ENTRY_COLUMNS).where(_QUEUED)
    if not everything:
        query = query.where(
            sa.or_(mail_outbox.c.next_attempt_at.is_(None), mail_outbox.c.next_attempt_at <= now)
        )
    retry = sa.func.coalesce(mail_outbox.c.next_attempt_at, mail_outbox.c.created_at)
    query = query.order_by(retry, mail_outbox.c.id).limit(limit)
    with store.errors("read the mail outbox"), store.engine.connect() as conn:
        return [_entry(row) for row in conn.execute(query)]


def listing(store: Store, *, which: str = "unsent", limit: int = 200) -> list[OutboxEntry]:
    """``unsent`` (queued and failed), ``failed``, ``queued`` or ``all`` rows, newest first."""
    query = sa.select(*_ENTRY_COLUMNS)
    if which == "unsent":
        query = query.where(mail_outbox.c.sent_at.is_(None))
    elif which == "failed":
        query = query.where(mail_outbox.c.failed_at.is_not(None))
    elif which == "queued":
        query = query.where(_QUEUED)
    elif which != "all":
        raise ValueError(f"unknown mail listing {which!r}")
    query = query.order_by(mail_outbox.c.id.desc()).limit(limit)
    with store.errors("read the mail outbox"), store.engine.connect() as conn:
        return [_entry(row) for row in conn.execute(query)]


def failed_count(store: Store) -> int:
    """Messages the outbox gave up on (never pruned until their age says so)."""
    query = sa.select(sa.func.count()).select_from(mail_outbox)
    query = query.where(mail_outbox.c.failed_at.is_not(None))
    with store.errors("read the mail outbox"), store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def body(store: Store, entry_id: int) -> str:
    """One message's body. Read one at a time: a backlog of a few hundred stays small."""
    query = sa.select(mail_outbox.c.body).where(mail_outbox.c.id == entry_id)
    with store.errors("read a mail body"), store.engine.connect() as conn:
        return str(conn.execute(query).scalar_one())


def backlog(
    store: Store, *, created_before: datetime, limit: int = 100
) -> tuple[int, tuple[OutboxEntry, ...]]:
    """``(queued rows, the oldest ``limit`` of them created before created_before)``."""
    unsent = _QUEUED
    count = sa.select(sa.func.count()).select_from(mail_outbox).where(unsent)
    old = (
        sa.select(*_ENTRY_COLUMNS)
        .where(unsent, mail_outbox.c.created_at <= created_before)
        .order_by(mail_outbox.c.id)
        .limit(limit)
    )
    with store.errors("read the mail outbox"), store.engine.connect() as conn:
        pending = int(conn.execute(count).scalar_one())
        failing = tuple(_entry(row) for row in conn.execute(old)) if pending else ()
    return pending, failing


def _entry(row: Any) -> OutboxEntry:
    recipients = tuple(part.strip() for part in (row.recipients or "").split(",") if part.strip())
    return OutboxEntry(
        id=int(row.id),
        created_at=row.created_at,
        kind=row.kind,
        client_ip=row.client_ip,
        client_port=row.client_port,
        recipients=recipients,
        subject=row.subject,
        attempts=int(row.attempts),
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        failed_at=row.failed_at,
    )
