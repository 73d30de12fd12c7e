"""Alert mail: render plain-text messages, keep them in an outbox, deliver over SMTP.

Modules: ``render`` (notices -> subject and body, pure), ``outbox`` (queue in the
caller's transaction, flush with retries; the rows' SQL is ``fleetstat.store.outbox``),
``smtp`` (one SMTP session; smtplib, ssl and socket errors become
:class:`~fleetstat.errors.MailError` there and nowhere else).
"""

from fleetstat.mail.outbox import (
    FlushReport,
    OutboxEntry,
    backoff,
    build_email,
    enqueue,
    flush_outbox,
    outbox_backlog,
)
from fleetstat.mail.render import Message, Notice, NoticeKind, host_label, render_message
from fleetstat.mail.smtp import MessageRefused, SmtpSession

__all__ = [
    "FlushReport",
    "Message",
    "MessageRefused",
    "Notice",
    "NoticeKind",
    "OutboxEntry",
    "SmtpSession",
    "backoff",
    "build_email",
    "enqueue",
    "flush_outbox",
    "host_label",
    "outbox_backlog",
    "render_message",
]
