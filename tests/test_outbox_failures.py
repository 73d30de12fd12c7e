"""The outbox never blocks on one message (issue 12, acceptance 4), against aiosmtpd.

A message the server refuses permanently (5xx) is given up on after a bounded
number of tries and no longer tried; one the mail library cannot build is given
up on at once; transient refusals (4xx) and an unreachable relay keep waiting.
Every message queued beside them is delivered in the same flush. Headers are
built only from inert text, whatever the outbox row holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from smtp_fixtures import SmtpServer

from fleetstat.mail import flush_outbox
from fleetstat.mail.headers import header_text
from fleetstat.mail.outbox import MAX_PERMANENT_REFUSALS
from fleetstat.store import Store, outbox
from fleetstat.store.outbox import NewMail
from fleetstat.store.schema import mail_outbox

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'fleetstat.db'}") as opened:
        opened.ensure_schema()
        yield opened


def queue(store: Store, *mails: NewMail, at: datetime = T0) -> None:
    with store.errors("queue"), store.engine.begin() as conn:
        outbox.enqueue(conn, mails, now=at, kind="alert")


def mail(to: str, subject: str, body: str = "body\n") -> NewMail:
    return NewMail((to,), subject, body, "10.0.0.5", 22)


def rows(store: Store) -> dict[str, sa.Row]:
    with store.engine.connect() as conn:
        return {row.subject: row for row in conn.execute(sa.select(mail_outbox))}


def test_a_message_refused_for_good_stops_being_tried_and_never_blocks_the_others(
    store: Store, smtp_server: SmtpServer
) -> None:
    smtp_server.sink.refuse.add("gone@example.com")  # 550 5.1.1 for this one only
    queue(store, mail("ops@example.com", "first"), mail("gone@example.com", "never"))
    queue(store, mail("ops@example.com", "second"))
    delivered: list[list[str]] = []
    for attempt in range(MAX_PERMANENT_REFUSALS + 2):
        before = len(smtp_server.messages)
        # `mail flush` ignores the backoff: the worst case for a message stuck in front.
        report = flush_outbox(store, smtp_server.smtp(), T0 + timedelta(minutes=attempt),
                              everything=True)  # fmt: skip
        assert report.error is None
        delivered.append([c.subject for c in smtp_server.messages[before:]])
        queue(store, mail("ops@example.com", f"later {attempt}"))
    # Every message behind the refused one went out in the flush after it was queued.
    assert delivered == [
        ["first", "second"],
        ["later 0"],
        ["later 1"],
        ["later 2"],
        ["later 3"],
    ]
    never = rows(store)["never"]
    assert never.sent_at is None and never.failed_at is not None
    assert never.attempts == MAX_PERMANENT_REFUSALS
    assert never.last_error == (
        f"refused permanently {MAX_PERMANENT_REFUSALS} times, given up: "
        "gone@example.com: 550 5.1.1 mailbox unavailable"
    )
    # Given up: no longer due, no longer counted as queued, listed as failed.
    assert [e.subject for e in outbox.due(store, T0 + timedelta(days=1), everything=True,
                                          limit=10)] == ["later 4"]  # fmt: skip
    assert [e.subject for e in outbox.listing(store, which="failed")] == ["never"]
    assert report.given_up == 1
    assert outbox.backlog(store, created_before=T0)[0] == 1  # "later 4" only


def test_a_transient_refusal_keeps_waiting(store: Store, smtp_server: SmtpServer) -> None:
    smtp_server.sink.answer = "451 4.3.0 try again later"
    smtp_server.sink.refuse.add("busy@example.com")
    queue(store, mail("busy@example.com", "busy"))
    for attempt in range(2 * MAX_PERMANENT_REFUSALS):
        flush_outbox(store, smtp_server.smtp(), T0 + timedelta(hours=attempt), everything=True)
    busy = rows(store)["busy"]
    assert busy.failed_at is None and busy.sent_at is None
    assert busy.attempts == 2 * MAX_PERMANENT_REFUSALS
    smtp_server.sink.refuse.clear()
    report = flush_outbox(store, smtp_server.smtp(), T0 + timedelta(days=1))
    assert [e.subject for e in report.sent] == ["busy"]


def test_an_unreachable_relay_never_fails_a_message(store: Store) -> None:
    down = SmtpServer(port=1).smtp()  # nothing listens on port 1
    queue(store, mail("ops@example.com", "waiting"))
    for attempt in range(2 * MAX_PERMANENT_REFUSALS):
        report = flush_outbox(store, down, T0 + timedelta(minutes=attempt))
        assert report.error is not None
    waiting = rows(store)["waiting"]
    assert waiting.failed_at is None and waiting.attempts == 2 * MAX_PERMANENT_REFUSALS


def test_a_message_the_mail_library_cannot_build_is_failed_at_once(
    store: Store, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No stored message fails to build any more (headers come from header_text, the
    # databases refuse text that cannot be encoded); this guards what is not
    # foreseen, so the failure is injected where the email package is called.
    from fleetstat.mail import outbox as mail_outbox_module

    real = mail_outbox_module.build_email

    def build(entry: Any, body: str, sender: str) -> Any:
        if entry.subject == "unbuildable":
            raise ValueError("the email package said no")
        return real(entry, body, sender)

    monkeypatch.setattr(mail_outbox_module, "build_email", build)
    queue(store, mail("ops@example.com", "unbuildable"))
    queue(store, mail("ops@example.com", "fine"))
    report = flush_outbox(store, smtp_server.smtp(), T0)
    assert [c.subject for c in smtp_server.messages] == ["fine"]
    assert report.given_up == 1
    bad = rows(store)["unbuildable"]
    assert bad.failed_at == T0 and bad.attempts == 1
    assert bad.last_error == "cannot build the message: ValueError: the email package said no"
    flush_outbox(store, smtp_server.smtp(), T0 + timedelta(hours=1), everything=True)
    assert rows(store)["unbuildable"].attempts == 1  # not tried again


HOSTILE_SUBJECT = (
    "[fleetstat] FIRING on evil\r\nBcc: victim@evil.example\r\nX-Injected: yes "
    "=?utf-8?q?=0D=0ABcc:_second@evil.example?= \u202egnp.exe\u202c \x1b]0;title\x07 " + "x" * 500
)


def test_headers_come_only_from_inert_text(store: Store, smtp_server: SmtpServer) -> None:
    queue(store, mail("ops@example.com", HOSTILE_SUBJECT))
    report = flush_outbox(store, smtp_server.smtp(), T0)
    assert len(report.sent) == 1
    [caught] = smtp_server.messages
    assert caught.rcpt_tos == ("ops@example.com",)
    message = caught.message
    assert message["Bcc"] is None and message["X-Injected"] is None
    subject = str(message["Subject"])
    assert subject == header_text(HOSTILE_SUBJECT)
    assert len(subject) == 200 and subject.endswith("…")
    assert "\u202e" not in subject and "\x1b" not in subject and "\r" not in subject
    assert "evil\u240d\u240aBcc: victim@evil.example" in subject  # shown, not obeyed
    assert "= ?utf-8?q?" in subject  # an encoded word is never decoded from a host
    assert set(message.keys()) == {
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Fleetstat-Host",
        "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
    }  # fmt: skip


def test_mail_list_shows_failed_messages(
    tmp_path: Path, store: Store, smtp_server: SmtpServer
) -> None:
    smtp_server.sink.refuse.add("gone@example.com")
    queue(store, mail("gone@example.com", "[blink]x[/] \x1b[2J"))
    queue(store, mail("ops@example.com", "goes out"))
    config = tmp_path / "fleetstat.xml"
    config.write_text(
        f"""<fleetstat>
  <database url="{store.engine.url.render_as_string(hide_password=False)}"/>
  <client ip="10.0.0.5" username="u" password="p" mail="ops@example.com"/>
</fleetstat>"""
    )
    for attempt in range(MAX_PERMANENT_REFUSALS):
        flush_outbox(store, smtp_server.smtp(), T0 + timedelta(hours=attempt), everything=True)
    done = subprocess.run(
        [FLEETSTAT, "mail", "list", "--failed", "-c", str(config)],
        capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[blink]x[/] \u241b[2J" in done.stdout  # as text, not markup or escape
    assert "\x1b" not in done.stdout
    assert " failed " in done.stdout and "given up:" in done.stdout
    assert "goes out" not in done.stdout
    every = subprocess.run(
        [FLEETSTAT, "mail", "list", "--all", "--json", "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert every.returncode == 0, every.stderr
    listed = {entry["subject"]: entry for entry in json.loads(every.stdout)}
    assert listed["goes out"]["state"] == "sent"
    assert listed["[blink]x[/] \x1b[2J"]["state"] == "failed"
    assert listed["[blink]x[/] \x1b[2J"]["last_error"] == (
        "refused permanently 3 times, given up: gone@example.com: 550 5.1.1 mailbox unavailable"
    )


def test_failed_mail_goes_with_the_attempts_age_and_queued_mail_stays(
    store: Store, smtp_server: SmtpServer
) -> None:
    from fleetstat.config import Retention
    from fleetstat.store.retention import prune

    smtp_server.sink.refuse.add("gone@example.com")
    queue(store, mail("gone@example.com", "given up"), mail("ops@example.com", "queued"))
    for attempt in range(MAX_PERMANENT_REFUSALS):
        flush_outbox(store, smtp_server.smtp(), T0 + timedelta(hours=attempt), everything=True)
    queue(store, mail("ops@example.com", "new"), at=T0)  # queued, never flushed
    done = prune(store, Retention(attempts=86400.0), now=T0 + timedelta(days=3))
    assert done.mail == 2  # the failed one and the sent one
    assert set(rows(store)) == {"new"}
