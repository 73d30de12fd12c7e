"""Retention (acceptance 4): old rows go; what a report, an alert or unsent mail needs stays.

Eleven daily rounds (10 days ago ... today) of three hosts:
- web (10.0.0.5): collected every day;
- gone (10.0.0.6): removed from the fleet 8 days ago: its last sample and attempt
  are old but are still its latest;
- hot (10.0.0.7): a memory alert firing since 6 days ago.
Retention: samples 3 days, attempts 2 days, events 5 days; batches of 3 rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alert_helpers import client, ok, round_of
from click.testing import CliRunner

from fleetstat.cli import app
from fleetstat.config import Retention
from fleetstat.store import Store
from fleetstat.store.retention import prune
from fleetstat.store.schema import (
    alert_states,
    attempts,
    mail_outbox,
    rounds,
    samples,
    samples_hourly,
    security_events,
)

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
WEB = client(ip="10.0.0.5", name="web")
GONE = client(ip="10.0.0.6", name="gone")
HOT = client(ip="10.0.0.7", name="hot")
RETENTION = Retention(samples=3 * 86400.0, attempts=2 * 86400.0, events=5 * 86400.0)


def at(days: int) -> datetime:
    # An hour off the day boundary, so no row sits exactly on a cutoff.
    return NOW - days * DAY - timedelta(hours=1)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        opened.upgrade()
        for days in range(10, -1, -1):
            hosts = [WEB, HOT] + ([GONE] if days >= 8 else [])
            opened.record_round(round_of(*(ok(host, at(days)) for host in hosts)))
        with opened.engine.begin() as conn:
            conn.execute(
                sa.insert(alert_states),
                [
                    # Firing since the round of 6 days ago was evaluated (6 s after it).
                    _alert(HOT.ip, "firing", at(6) + timedelta(seconds=6)),
                    # Resolved long ago: protects nothing.
                    _alert(WEB.ip, "ok", at(9)),
                ],
            )
            conn.execute(
                sa.insert(mail_outbox),
                [
                    _mail("unsent, 10 days old", created=at(10), sent=None),
                    _mail("sent 10 days ago", created=at(10), sent=at(10)),
                    _mail("sent 3 days ago", created=at(3), sent=at(3)),
                    _mail("sent yesterday", created=at(1), sent=at(1)),
                ],
            )
            conn.execute(
                sa.insert(security_events),
                [
                    _event("old", at(7)),
                    _event("recent", at(1)),
                    _event("undated", None),
                ],
            )
        yield opened


def _alert(ip: str, state: str, since: datetime) -> dict[str, object]:
    return {"client_ip": ip, "client_port": 22, "rule_key": "memory", "metric": "memory",
            "state": state, "breach_count": 3, "first_breached_at": since}  # fmt: skip


def _mail(subject: str, *, created: datetime, sent: datetime | None) -> dict[str, object]:
    return {"created_at": created, "kind": "alert", "recipients": "ops@example.com",
            "subject": subject, "body": "-", "attempts": 1, "sent_at": sent}  # fmt: skip


def _event(key: str, when: datetime | None) -> dict[str, object]:
    return {"client_ip": WEB.ip, "client_port": 22, "event_key": key, "source": "authlog",
            "occurred_at": when}  # fmt: skip


def days_of(store: Store, table: sa.Table, column: sa.Column[datetime], ip: str) -> list[int]:
    """How many whole days ago each remaining row of ``ip`` is, newest first."""
    query = sa.select(column).where(table.c.client_ip == ip).order_by(column.desc())
    with store.engine.connect() as conn:
        return [round((NOW - when) / DAY) for when in conn.execute(query).scalars()]


def test_old_rows_go_and_needed_rows_stay(store: Store) -> None:
    report = prune(store, RETENTION, now=NOW, batch_size=3)

    # Samples (3 days): web keeps 0-2; gone keeps its latest (8 days old); hot keeps
    # everything from an hour before its alert's first breach (6 days) on.
    assert days_of(store, samples, samples.c.received_at, WEB.ip) == [0, 1, 2]
    assert days_of(store, samples, samples.c.received_at, GONE.ip) == [8]
    assert days_of(store, samples, samples.c.received_at, HOT.ip) == [0, 1, 2, 3, 4, 5, 6]
    # Attempts (2 days): the same rules.
    assert days_of(store, attempts, attempts.c.started_at, WEB.ip) == [0, 1]
    assert days_of(store, attempts, attempts.c.started_at, GONE.ip) == [8]
    assert days_of(store, attempts, attempts.c.started_at, HOT.ip) == [0, 1, 2, 3, 4, 5, 6]
    with store.engine.connect() as conn:
        subjects = set(conn.execute(sa.select(mail_outbox.c.subject)).scalars())
        events = set(conn.execute(sa.select(security_events.c.event_key)).scalars())
        round_days = [
            round((NOW - when) / DAY)
            for when in conn.execute(
                sa.select(rounds.c.started_at).order_by(rounds.c.started_at.desc())
            ).scalars()
        ]
        orphans = conn.execute(
            sa.select(sa.func.count()).where(
                samples.c.client_ip == WEB.ip, samples.c.attempt_id.is_(None)
            )
        ).scalar_one()
    # Unsent mail is never pruned; sent mail goes with the attempts' age.
    assert subjects == {"unsent, 10 days old", "sent yesterday"}
    assert events == {"recent", "undated"}
    # Rounds 10 and 9 days old: nothing refers to them any more.
    assert round_days == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    # web's sample of 2 days ago outlived its attempt: the link is null, not dangling.
    assert orphans == 1

    assert (report.samples, report.attempts, report.mail, report.events, report.rounds) == (
        8 + 2 + 4,
        9 + 2 + 4,
        2,
        1,
        2,
    )
    # The hourly rows (revision 0010) go with the samples: the same hours are left,
    # and as many rows went (one sample per host and hour here).
    assert days_of(store, samples_hourly, samples_hourly.c.last_at, WEB.ip) == [0, 1, 2]
    assert days_of(store, samples_hourly, samples_hourly.c.last_at, GONE.ip) == [8]
    assert days_of(store, samples_hourly, samples_hourly.c.last_at, HOT.ip) == [
        0, 1, 2, 3, 4, 5, 6
    ]  # fmt: skip
    assert report.hourly == 8 + 2 + 4
    assert report.batches > 5  # 3 rows a batch
    assert not report.stopped
    again = prune(store, RETENTION, now=NOW, batch_size=3)
    assert again.total == 0


def test_report_still_has_every_host_after_a_prune(store: Store) -> None:
    from fleetstat.store.reports import HostRef, host_states

    prune(store, RETENTION, now=NOW)
    states = host_states(store, [HostRef(c.ip, 22, c.label) for c in (WEB, GONE, HOT)], now=NOW)
    assert [(s.name, s.status, s.sample_at is not None) for s in states] == [
        ("web", "ok", True),
        ("gone", "ok", True),
        ("hot", "ok", True),
    ]


def test_a_stop_request_ends_between_batches(store: Store) -> None:
    calls = iter(range(100))
    report = prune(store, RETENTION, now=NOW, batch_size=2, should_stop=lambda: next(calls) >= 2)
    assert report.stopped
    assert report.batches == 2 and report.samples == 4
    rest = prune(store, RETENTION, now=NOW, batch_size=2)
    assert report.samples + rest.samples == 14  # the next run carries on


def test_forever_keeps_everything(store: Store) -> None:
    counts = {t: store.count(t) for t in ("samples", "attempts", "rounds", "mail_outbox")}
    assert prune(store, Retention(), now=NOW).total == 0
    assert {t: store.count(t) for t in counts} == counts


def test_cli_prune(store: Store, tmp_path: Path) -> None:
    config = tmp_path / "fleetstat.xml"
    config.write_text(
        f'<fleetstat><database url="{store.engine.url.render_as_string(False)}"/>'
        '<retention samples="3d" attempts="2d" events="5d"/>'
        '<client ip="10.0.0.5" username="u" password="p" mail="a@example.com"/></fleetstat>'
    )
    config.chmod(0o600)
    done = CliRunner().invoke(app, ["prune", "-c", str(config)])
    assert done.exit_code == 0, done.output
    assert "pruned 14 sample(s), 15 attempt(s), 1 event(s), 2 sent mail" in done.stdout
    assert "2 round(s), 14 hourly row(s) in" in done.stdout
