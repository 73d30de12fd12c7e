"""The outbox: every message is a row in ``mail_outbox`` before it is sent, and stays.

The rows are read and written by ``fleetstat.store.outbox`` (SQL stays in the store);
this module decides what to send, talks to the SMTP server and applies the retry
policy. A row is *sent* once ``sent_at`` is set, which happens only after the SMTP server
accepted the message (``sendmail`` returned without refusing anyone), in its own
transaction right after, so a crash mid-flush re-sends at most that one message.
Rows are never deleted here (retention is issue 5's).

Each message goes to one sender: a flush claims a row just before it sends it
(``store/outbox.py``, one conditional UPDATE), and skips the rows another flush
holds, so a ``mail flush`` beside a round, or two flushes, never send one twice.

Retry policy (one message never holds up the others):

- The server refused *this* message for now (a 4xx answer): ``attempts + 1``,
  ``last_error`` = the server's answer, and ``next_attempt_at`` backs off
  exponentially, 1 minute doubling to a 1-hour cap: retried, not hammered.
- The server refused it permanently (a 5xx answer, RFC 5321 section 4.2.1): the
  same, and after ``MAX_PERMANENT_REFUSALS`` attempts the outbox gives up:
  ``failed_at`` is set, the reason kept in ``last_error``, and it is no longer
  tried (``fleetstat mail list --failed`` shows it).
- The mail library refuses to build it (it never will): given up at once.
- The *session* failed (relay unreachable, TLS or login refused): the flush stops
  at the first failure (one connection attempt per flush, never one timeout per
  message), every due row gets ``attempts + 1`` and the error, but stays due: the
  next round reaches the relay once and delivers everything as soon as it is back,
  rather than up to an hour later. When the session broke while *one* message was
  being sent, that message backs off as a refused one: it is then queued behind
  the others (``store.outbox.due`` orders by retry time), so a message that keeps
  breaking the session cannot keep the ones after it from going out.
- Some recipients refused and others accepted: the message went out to the
  accepted ones, so the row keeps only the refused addresses for its retries
  (nobody gets it twice) and counts as failed, with the answers recorded.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import TYPE_CHECKING

from fleetstat.config import Smtp
from fleetstat.errors import MailError
from fleetstat.mail.headers import header_text
from fleetstat.mail.render import Message
from fleetstat.mail.smtp import MessageRefused, SmtpSession
from fleetstat.store import Store, outbox
from fleetstat.store.outbox import NewMail, OutboxEntry
from fleetstat.text import clean

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
# An unsent message older than this is "failing for long": shown by collect and
# `mail flush` until it goes out, so a broken relay cannot stay unnoticed.
FAILING_AFTER = timedelta(hours=1)
FLUSH_BATCH = 500  # rows per flush; the rest wait for the next one
# 5xx answers to one message before the outbox gives up on it: a server that
# answers 5xx by mistake (a full mailbox reported as permanent) gets a second and
# third chance, a minute and two minutes later.
MAX_PERMANENT_REFUSALS = 3
# How long a sender holds a message it took (store/outbox.py claim()): four SMTP
# timeouts, at least this; a sender that died lets go when the time is up.
CLAIM_MIN = timedelta(minutes=5)
# RFC 5322 section 2.1.1: lines SHOULD stay under 78 characters but MUST under 998.
# The email package folds an over-long Subject by putting all of it on a
# continuation line, which some clients show with a leading space; the subjects
# here stay far below 998, so they are left on one line.
_POLICY = SMTP_POLICY.clone(max_line_length=998)


@dataclass(frozen=True)
class FlushReport:
    """What one flush did. ``error``: the session failure that stopped it, if any."""

    sent: tuple[OutboxEntry, ...]
    failed: tuple[OutboxEntry, ...]  # attempted and not (fully) accepted, after the attempt
    pending: int  # queued rows left in the outbox, due or waiting for their backoff
    failing_for_long: tuple[OutboxEntry, ...]  # queued for more than FAILING_AFTER
    error: MailError | None = None
    given_up: int = 0  # messages the outbox gave up on, all flushes (mail list --failed)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed


def backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts + 1`` of a refused message: 1m, 2m, 4m ... 1h."""
    if attempts <= 0:
        return timedelta(0)
    return min(BACKOFF_FIRST * 2 ** min(attempts - 1, 16), BACKOFF_CAP)


# -- writing ------------------------------------------------------------------------


def enqueue(
    conn: Connection,
    messages: Sequence[tuple[Message, str, int]],
    *,
    now: datetime,
    kind: str = "alert",
) -> None:
    """Queue ``(message, client_ip, client_port)``, due now, in the caller's transaction."""
    mails = [
        NewMail(message.recipients, message.subject, message.body, ip, port)
        for message, ip, port in messages
    ]
    outbox.enqueue(conn, mails, now=now, kind=kind)


# -- flushing -----------------------------------------------------------------------


def flush_outbox(
    store: Store, smtp: Smtp, now: datetime | None = None, *, everything: bool = False
) -> FlushReport:
    """Send the due messages (``everything``: every unsent one, ignoring backoff).

    Never raises for SMTP trouble: a session failure is ``report.error`` (a
    :class:`MailError` with a sentence an operator can act on) and the messages
    stay queued. Database trouble raises :class:`StoreError`.
    """
    now = now or datetime.now(UTC)
    due = outbox.due(store, now, everything=everything, limit=FLUSH_BATCH)
    sent: list[OutboxEntry] = []
    failed: list[OutboxEntry] = []
    error: MailError | None = None
    me = sender_id()
    until = now + max(CLAIM_MIN, timedelta(seconds=smtp.timeout * 4))
    if due:
        session = SmtpSession(smtp)
        try:
            session.open()
        except MailError as exc:
            error = exc
            failed += _session_failed(store, due, str(exc), now, me)
        else:
            try:
                for index, entry in enumerate(due):
                    # Another sender (a `mail flush` beside a round) may hold it: skip.
                    if not outbox.claim(store, entry.id, by=me, until=until, now=now):
                        continue
                    try:
                        outcome = _send_one(store, session, smtp, entry, now)
                    except MailError as exc:  # the session broke: stop here
                        error = exc
                        failed.append(_refused(store, entry, str(exc), entry.recipients, now))
                        failed += _session_failed(store, due[index + 1 :], str(exc), now, me)
                        break
                    (sent if outcome.sent_at is not None else failed).append(outcome)
            finally:
                session.close()
    pending, failing = _backlog(store, now)
    for entry in failing:
        log.warning(
            "mail %d to %s unsent since %s after %d attempt(s): %s",
            entry.id, ", ".join(entry.recipients), entry.created_at.isoformat(),
            entry.attempts, entry.last_error,
        )  # fmt: skip
    given_up = outbox.failed_count(store)
    return FlushReport(tuple(sent), tuple(failed), pending, failing, error, given_up)


def outbox_backlog(
    store: Store, now: datetime | None = None
) -> tuple[int, tuple[OutboxEntry, ...]]:
    """``(unsent rows, those unsent for more than FAILING_AFTER)`` without sending."""
    return _backlog(store, now or datetime.now(UTC))


def _backlog(store: Store, now: datetime) -> tuple[int, tuple[OutboxEntry, ...]]:
    return outbox.backlog(store, created_before=now - FAILING_AFTER)


def build_email(entry: OutboxEntry, body: str, sender: str) -> EmailMessage:
    """The RFC 5322 message for a row. The Message-ID derives from the row, so every
    retry of one row carries the same ID and a receiving system can spot a duplicate."""
    message = EmailMessage(policy=_POLICY)
    domain = sender.rpartition("@")[2] or "localhost"
    message["From"] = sender
    message["To"] = ", ".join(entry.recipients)
    message["Subject"] = header_text(entry.subject)
    message["Date"] = format_datetime(entry.created_at.astimezone(UTC))
    message["Message-ID"] = f"<fleetstat.{entry.id}.{int(entry.created_at.timestamp())}@{domain}>"
    # RFC 3834 section 5: no vacation auto-replies to a robot.
    message["Auto-Submitted"] = "auto-generated"
    if entry.client_ip is not None:
        message["X-Fleetstat-Host"] = f"{entry.client_ip}:{entry.client_port}"
    message.set_content(body)
    return message


def _send_one(
    store: Store, session: SmtpSession, smtp: Smtp, entry: OutboxEntry, now: datetime
) -> OutboxEntry:
    body = outbox.body(store, entry.id)
    try:
        data = build_email(entry, body, smtp.sender).as_bytes()
    except Exception as exc:  # the email package refuses it; it always will
        reason = clean(f"cannot build the message: {type(exc).__name__}: {exc}", 500)[0]
        return _give_up(entry, store=store, error=reason, now=now)
    try:
        refused = session.send(smtp.sender, list(entry.recipients), data)
    except MessageRefused as exc:
        return _refused(store, entry, exc.answer, entry.recipients, now, permanent=exc.permanent)
    if refused:
        accepted = [rcpt for rcpt in entry.recipients if rcpt not in refused]
        answers = "; ".join(f"{rcpt}: {refusal.answer}" for rcpt, refusal in refused.items())
        note = f"sent to {', '.join(accepted)}; refused {answers}"
        permanent = all(refusal.permanent for refusal in refused.values())
        return _refused(store, entry, note, tuple(refused), now, permanent=permanent)
    outbox.mark_sent(store, entry.id, now)
    return replace(entry, attempts=entry.attempts + 1, sent_at=now, last_error=None)


def _refused(
    store: Store,
    entry: OutboxEntry,
    error: str,
    recipients: tuple[str, ...],
    now: datetime,
    *,
    permanent: bool = False,
) -> OutboxEntry:
    attempts = entry.attempts + 1
    if permanent and attempts >= MAX_PERMANENT_REFUSALS:
        why = f"refused permanently {attempts} times, given up: {error}"
        return _give_up(replace(entry, recipients=recipients), store=store, error=why, now=now)
    retry_at = now + backoff(attempts)
    outbox.mark_refused(
        store, entry.id, attempts=attempts, error=error, retry_at=retry_at,
        recipients=recipients, now=now,
    )  # fmt: skip
    log.warning(
        "mail %d refused (attempt %d, retry at %s): %s", entry.id, attempts, retry_at, error
    )
    return replace(
        entry, attempts=attempts, last_error=error, next_attempt_at=retry_at, recipients=recipients
    )


def _give_up(entry: OutboxEntry, *, store: Store, error: str, now: datetime) -> OutboxEntry:
    attempts = entry.attempts + 1
    outbox.give_up(store, entry.id, attempts=attempts, error=error, now=now)
    log.warning("mail %d failed for good (fleetstat mail list --failed): %s", entry.id, error)
    return replace(entry, attempts=attempts, last_error=error, next_attempt_at=None, failed_at=now)


def _session_failed(
    store: Store, entries: Sequence[OutboxEntry], error: str, now: datetime, me: str
) -> list[OutboxEntry]:
    outbox.mark_failed(store, [entry.id for entry in entries], error, now, by=me)
    return [replace(entry, attempts=entry.attempts + 1, last_error=error) for entry in entries]


def sender_id() -> str:
    """This flush, as ``mail_outbox.claimed_by`` names it: machine, pid, a random part."""
    host = socket.gethostname()[:32]
    return f"{host}:{os.getpid()}:{secrets.token_hex(6)}"


__all__ = [
    "FlushReport",
    "OutboxEntry",
    "backoff",
    "build_email",
    "enqueue",
    "flush_outbox",
    "outbox_backlog",
]
