"""Alert mail against real SMTP servers on loopback (aiosmtpd), and the outbox.

Acceptance lines of issue 3 covered here (each with subjects, bodies and
recipients asserted): 1 (breach, repeat, resolve, for=, unreachable, disk),
2 (STARTTLS + AUTH, wrong password), 3 (SMTP down during a round), 4 (two rounds:
one mail by default, two with repeat="0").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alert_helpers import ROUND, T0, client, failed, ok, round_of, rule
from click.testing import CliRunner
from fleet_fixtures import fleet_config
from smtp_fixtures import PASSWORD, USER, SmtpServer

from fleetstat.alerts import evaluate_round
from fleetstat.app import collect_once
from fleetstat.cli import app
from fleetstat.config import Defaults
from fleetstat.mail import backoff, flush_outbox
from fleetstat.model import RoundResult, Status
from fleetstat.simfleet import SimFleet, free_port
from fleetstat.store import Store
from fleetstat.store.schema import mail_outbox

WEB = client(
    rule("cpu", 20),
    rule("memory", 50, clear=40),
    ip="10.0.0.5",
    mail=("ops@example.com", "web@example.com"),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'fleetstat.db'}")
    store.ensure_schema()
    yield store
    store.close()


def outbox_rows(store: Store) -> list[sa.Row]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(mail_outbox).order_by(mail_outbox.c.id)))


def evaluate_and_send(
    store: Store, server: SmtpServer, round: RoundResult, minutes: float, **defaults: float
) -> list[str]:
    """One round's alerts and flush at T0 + minutes; the subjects caught by the flush."""
    before = len(server.messages)
    now = T0 + timedelta(minutes=minutes)
    evaluate_round(store, round, defaults=Defaults(**defaults), now=now)  # type: ignore[arg-type]
    report = flush_outbox(store, server.smtp(), now)
    assert report.error is None and not report.failed
    return [caught.subject for caught in server.messages[before:]]


# --- acceptance 1: what each situation mails -------------------------------------------


def test_a_breach_mails_firing_with_host_value_limit_since_and_top_processes(
    store: Store, smtp_server: SmtpServer
) -> None:
    round = round_of(ok(WEB, cpu={"used_percent": 93.4}))
    assert evaluate_and_send(store, smtp_server, round, 0) == [
        "[fleetstat] FIRING cpu 93.4% > 20% on web-01 (10.0.0.5)"
    ]
    caught = smtp_server.messages[0]
    assert caught.mail_from == "fleetstat@example.com"
    assert caught.rcpt_tos == ("ops@example.com", "web@example.com")
    assert caught.message["To"] == "ops@example.com, web@example.com"
    assert caught.message["Auto-Submitted"] == "auto-generated"
    body = caught.body
    assert "Host:     web-01 (10.0.0.5), address 10.0.0.5:22" in body
    assert "FIRING  cpu\n  value:  93.4% CPU busy\n  limit:  20%\n" in body
    assert "  since:  2026-11-22 10:00:00 UTC" in body
    assert "  repeat: every 4h while firing" in body
    assert "Top CPU consumers:" in body and "nginx" in body
    assert "Top memory consumers:" not in body  # memory is fine
    # Delivered once: the row is marked sent and a second flush has nothing to do.
    [row] = outbox_rows(store)
    assert row.sent_at is not None and row.attempts == 1
    report = flush_outbox(store, smtp_server.smtp(), T0 + ROUND)
    assert (report.sent, report.pending, len(smtp_server.messages)) == ((), 0, 1)


def test_a_firing_alert_is_mailed_again_after_the_repeat_interval(
    store: Store, smtp_server: SmtpServer
) -> None:
    hot = round_of(ok(WEB, memory={"used_percent": 70.0}))
    subjects = [
        evaluate_and_send(store, smtp_server, hot, minutes, repeat_seconds=3600)
        for minutes in (0, 5, 30, 55, 60, 65, 120)
    ]
    firing = "[fleetstat] FIRING memory 70% > 50% on web-01 (10.0.0.5)"
    assert subjects == [[firing], [], [], [], [firing], [], [firing]]
    repeat = smtp_server.messages[1].body
    assert "STILL FIRING  memory" in repeat
    assert "since:  2026-11-22 10:00:00 UTC (1h, 5 rounds)" in repeat
    assert "Top memory consumers:" in repeat and "postgres" in repeat


def test_a_resolved_alert_mails_once_below_clear(store: Store, smtp_server: SmtpServer) -> None:
    def memory(percent: float) -> RoundResult:
        return round_of(ok(WEB, memory={"used_percent": percent}))

    assert evaluate_and_send(store, smtp_server, memory(70), 0) != []
    assert evaluate_and_send(store, smtp_server, memory(45), 5) == []  # above clear=40
    assert evaluate_and_send(store, smtp_server, memory(38), 10) == [
        "[fleetstat] RESOLVED memory 38% < 40% on web-01 (10.0.0.5)"
    ]
    body = smtp_server.messages[-1].body
    assert "RESOLVED  memory\n  value:  38% memory used\n  limit:  50%, resolves below 40%" in body
    assert "since:  2026-11-22 10:00:00 UTC, resolved after 10m" in body
    assert smtp_server.messages[-1].rcpt_tos == ("ops@example.com", "web@example.com")
    assert evaluate_and_send(store, smtp_server, memory(10), 15) == []


def test_for_suppresses_mail_until_the_nth_breaching_round(
    store: Store, smtp_server: SmtpServer
) -> None:
    host = client(rule("cpu", 80, for_rounds=3), ip="10.0.0.6", name="api-01", mail=("a@x.io",))
    busy = round_of(ok(host, cpu={"used_percent": 97.0}))
    assert evaluate_and_send(store, smtp_server, busy, 0) == []
    assert evaluate_and_send(store, smtp_server, busy, 5) == []
    assert evaluate_and_send(store, smtp_server, busy, 10) == [
        "[fleetstat] FIRING cpu 97% > 80% on api-01 (10.0.0.6)"
    ]
    caught = smtp_server.messages[0]
    assert caught.rcpt_tos == ("a@x.io",)
    assert "since:  2026-11-22 10:00:00 UTC (10m, 3 rounds)" in caught.body


def test_an_unreachable_host_mails_firing_and_resolved(
    store: Store, smtp_server: SmtpServer
) -> None:
    host = client(rule("unreachable"), rule("memory", 50), ip="10.0.0.9", name=None)
    assert evaluate_and_send(store, smtp_server, round_of(failed(host)), 0) == [
        "[fleetstat] FIRING unreachable (timeout) on 10.0.0.9"
    ]
    assert "Status:   timeout: timeout after 5s" in smtp_server.messages[0].body
    assert "no answer (timeout)" in smtp_server.messages[0].body
    assert evaluate_and_send(store, smtp_server, round_of(ok(host)), 5) == [
        # the document's hostname names a client that has no name=
        "[fleetstat] RESOLVED unreachable on web-01 (10.0.0.9)"
    ]


def test_disk_rules_name_the_mount(store: Store, smtp_server: SmtpServer) -> None:
    host = client(
        rule("disk", 75, mount="/var"),
        rule("disk", 30),
        rule("disk", 50, mount="/boot/efi"),
        ip="10.0.0.7",
        name="db-02",
        mail=("dba@example.com",),
    )
    assert evaluate_and_send(store, smtp_server, round_of(ok(host)), 0) == [
        "[fleetstat] FIRING disk /var 79% > 75% on db-02 (10.0.0.7) (+1 more)"
    ]
    body = smtp_server.messages[0].body
    assert "FIRING  disk /var\n  value:  79% disk space used\n  limit:  75%" in body
    # No mount= means the fullest filesystem, and the mail says which one it was.
    assert "FIRING  disk /var\n  value:  79% disk space used\n  limit:  30%" in body
    assert "/boot/efi" not in body


# --- acceptance 1, 3, 4 through real rounds (sshd) ----------------------------------------


def alert_clients(fleet: SimFleet, alerts: dict[int, str], mail: str = "owner@example.com") -> str:
    """``<client>`` elements with ``<alert>`` children for the chosen simulated hosts."""
    elements = []
    for index, rules in alerts.items():
        line = fleet.client_xml(auth="password", mail=mail, indices=[index]).strip()
        elements.append(f"{line.removesuffix('/>')}>\n    {rules}\n  </client>")
    return "\n".join(elements)


def test_a_real_round_mails_an_unreachable_host_and_a_breaching_one(
    tmp_path: Path, sim_fleet: SimFleet, smtp_server: SmtpServer
) -> None:
    closed = free_port()
    extra = (
        alert_clients(sim_fleet, {0: '<alert type="memory" limit="0%"/>'})
        + f"""
  <client ip="127.0.0.1" port="{closed}" username="x" password="x" name="nothing-listening"
          mail="night@example.com">
    <alert type="unreachable"/>
  </client>"""
    )
    config = fleet_config(tmp_path, sim_fleet, [], extra=smtp_server.xml(), extra_clients=extra)
    outcome = collect_once(config)
    assert [r.status for r in outcome.round.results] == [Status.OK, Status.UNREACHABLE]
    assert (outcome.mail_sent, outcome.mail_queued, outcome.alerts_firing) == (2, 0, 2)
    by_rcpt = {caught.rcpt_tos: caught for caught in smtp_server.messages}
    memory = by_rcpt[("owner@example.com",)]
    assert memory.subject.startswith("[fleetstat] FIRING memory ")
    assert memory.subject.endswith(f"% > 0% on sim-000 ({sim_fleet.hosts[0].address})")
    assert "Top memory consumers:" in memory.body
    down = by_rcpt[("night@example.com",)]
    assert (
        down.subject
        == "[fleetstat] FIRING unreachable (unreachable) on nothing-listening (127.0.0.1)"
    )
    assert f"address 127.0.0.1:{closed}" in down.body


def test_two_rounds_mail_once_by_default_and_twice_with_repeat_zero(
    tmp_path: Path, sim_fleet: SimFleet, smtp_server: SmtpServer
) -> None:
    extra = alert_clients(
        sim_fleet,
        {1: '<alert type="memory" limit="0%"/>', 2: '<alert type="memory" limit="0%" repeat="0"/>'},
    )
    config = fleet_config(tmp_path, sim_fleet, [], extra=smtp_server.xml(), extra_clients=extra)
    first, second = collect_once(config), collect_once(config)
    assert (first.mail_sent, second.mail_sent) == (2, 1)
    hosts = [caught.subject.rsplit(" on ", 1)[1] for caught in smtp_server.messages]
    default, every_round = (f"sim-00{i} ({sim_fleet.hosts[i].address})" for i in (1, 2))
    assert sorted(hosts) == sorted([default, every_round, every_round])


def test_smtp_down_during_a_round_queues_and_the_next_round_delivers_once(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    relay = SmtpServer(free_port())  # not started: nothing listens there yet
    extra = alert_clients(sim_fleet, {3: '<alert type="memory" limit="0%"/>'})
    config = fleet_config(tmp_path, sim_fleet, [], extra=relay.xml(), extra_clients=extra)
    down = collect_once(config)
    assert down.round.ok_count == 1
    assert (down.mail_sent, down.mail_queued) == (0, 1)
    assert down.mail_error is not None and "connection refused" in down.mail_error
    store = Store(config.database_url)
    assert store.count("samples") == 1  # the round's data is stored
    [row] = outbox_rows(store)
    assert (row.sent_at, row.attempts) == (None, 1) and "connection refused" in row.last_error

    relay.start()
    try:
        up = collect_once(config)
        assert (up.mail_sent, up.mail_queued, up.mail_error) == (1, 0, None)
        again = collect_once(config)
        assert again.mail_sent == 0
        assert [caught.subject for caught in relay.messages] == [row.subject]
        assert relay.messages[0].rcpt_tos == ("owner@example.com",)
    finally:
        relay.stop()
    store.close()


# --- acceptance 2: STARTTLS, AUTH, wrong password ------------------------------------------


def queue_one(store: Store) -> None:
    evaluate_round(store, round_of(ok(WEB, cpu={"used_percent": 93.0})), now=T0)


def test_starttls_with_auth_delivers(store: Store, smtp_tls_server: SmtpServer) -> None:
    queue_one(store)
    report = flush_outbox(store, smtp_tls_server.smtp(), T0)
    assert report.ok and [e.subject for e in report.sent] == [
        "[fleetstat] FIRING cpu 93% > 20% on web-01 (10.0.0.5)"
    ]
    [caught] = smtp_tls_server.messages
    assert caught.rcpt_tos == ("ops@example.com", "web@example.com")
    assert "FIRING  cpu" in caught.body


def test_a_wrong_smtp_password_is_a_clear_error_and_the_mail_stays_queued(
    store: Store, smtp_tls_server: SmtpServer
) -> None:
    queue_one(store)
    report = flush_outbox(store, smtp_tls_server.smtp(password="wrong"), T0)
    assert report.error is not None
    message = str(report.error)
    assert message.startswith(
        f"SMTP server 127.0.0.1:{smtp_tls_server.port} refused the login for user {USER}: "
        "check password-env FLEETSTAT_SMTP_PASSWORD"
    )
    assert "535" in message  # the server's answer
    assert (len(report.sent), report.pending, smtp_tls_server.messages) == (0, 1, [])
    [row] = outbox_rows(store)
    assert (row.sent_at, row.attempts) == (None, 1)
    # Fixed: the next flush, a minute later, delivers it (no backoff after a login failure).
    report = flush_outbox(store, smtp_tls_server.smtp(password=PASSWORD), T0 + timedelta(minutes=1))
    assert len(report.sent) == 1 and len(smtp_tls_server.messages) == 1


def test_starttls_without_the_ca_says_how_to_trust_it(
    store: Store, smtp_tls_server: SmtpServer
) -> None:
    queue_one(store)
    report = flush_outbox(store, smtp_tls_server.smtp(cafile=None), T0)
    assert report.error is not None and "not trusted" in str(report.error)
    assert 'cafile="/path/ca.pem"' in str(report.error)
    assert report.pending == 1


def test_auth_against_a_plain_server_without_tls_is_explained(
    store: Store, smtp_tls_server: SmtpServer
) -> None:
    queue_one(store)
    report = flush_outbox(store, smtp_tls_server.smtp(starttls=False), T0)
    assert report.error is not None and 'starttls="true"' in str(report.error)


# --- the outbox: failing fast, refusals, backoff, reports --------------------------------


def test_an_unreachable_relay_fails_the_whole_flush_at_once(store: Store) -> None:
    hosts = [client(rule("memory", 10), ip=f"10.0.1.{i}", name=f"h{i}") for i in range(5)]
    evaluate_round(store, round_of(*(ok(h) for h in hosts)), now=T0)
    relay = SmtpServer(free_port())  # nothing listens
    started = time.monotonic()
    report = flush_outbox(store, relay.smtp(), T0)
    assert time.monotonic() - started < 2
    assert report.error is not None and "cannot connect" in str(report.error)
    assert (len(report.failed), report.pending) == (5, 5)
    assert {row.attempts for row in outbox_rows(store)} == {1}
    assert all(row.next_attempt_at == T0 for row in outbox_rows(store))  # still due


def test_a_refused_recipient_is_recorded_retried_with_backoff_and_not_duplicated(
    store: Store, smtp_server: SmtpServer
) -> None:
    # A transient refusal (4xx): retried for as long as it takes (a permanent one is
    # given up on after a few tries: tests/test_outbox_failures.py).
    smtp_server.sink.answer = "450 4.2.1 mailbox busy"
    smtp_server.sink.refuse.add("web@example.com")
    queue_one(store)
    report = flush_outbox(store, smtp_server.smtp(), T0)
    assert report.error is None and len(report.failed) == 1 and not report.sent
    [row] = outbox_rows(store)
    assert row.sent_at is None and row.attempts == 1
    assert row.last_error == (
        "sent to ops@example.com; refused web@example.com: 450 4.2.1 mailbox busy"
    )
    assert row.recipients == "web@example.com"  # the retry goes only where it failed
    assert row.next_attempt_at == T0 + timedelta(minutes=1)
    assert smtp_server.messages[0].rcpt_tos == ("ops@example.com",)
    # Not due yet: nothing happens; due: refused again, the wait doubles.
    assert flush_outbox(store, smtp_server.smtp(), T0 + timedelta(seconds=30)).failed == ()
    flush_outbox(store, smtp_server.smtp(), T0 + timedelta(minutes=1))
    [row] = outbox_rows(store)
    assert row.attempts == 2 and row.next_attempt_at == T0 + timedelta(minutes=3)
    # An hour and more later it is "failing for long", reported, and still kept.
    late = T0 + timedelta(hours=2)
    report = flush_outbox(store, smtp_server.smtp(), late)
    assert [entry.id for entry in report.failing_for_long] == [row.id]
    # Accepted at last: sent once, to the one who had not had it.
    smtp_server.sink.refuse.clear()
    report = flush_outbox(store, smtp_server.smtp(), late + timedelta(hours=1))
    assert len(report.sent) == 1 and report.pending == 0
    assert [c.rcpt_tos for c in smtp_server.messages] == [
        ("ops@example.com",),
        ("web@example.com",),
    ]


def test_backoff_doubles_from_a_minute_to_an_hour() -> None:
    minutes = [backoff(n) / timedelta(minutes=1) for n in range(1, 10)]
    assert minutes == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_the_message_id_is_stable_across_retries(store: Store, smtp_server: SmtpServer) -> None:
    smtp_server.sink.refuse.add("ops@example.com")
    smtp_server.sink.refuse.add("web@example.com")
    queue_one(store)
    assert len(flush_outbox(store, smtp_server.smtp(), T0).failed) == 1
    smtp_server.sink.refuse.clear()
    flush_outbox(store, smtp_server.smtp(), T0 + timedelta(minutes=5))
    [caught] = smtp_server.messages
    [row] = outbox_rows(store)
    assert caught.message["Message-ID"].startswith(f"<fleetstat.{row.id}.")
    assert caught.message["Date"] is not None


# --- the CLI -------------------------------------------------------------------------


def write_config(tmp_path: Path, store: Store, smtp: str) -> Path:
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{store.engine.url.render_as_string(hide_password=False)}"/>
  {smtp}
  <client ip="10.0.0.5" username="u" password="p" name="web-01" mail="ops@example.com">
    <alert type="cpu" limit="20%"/>
    <alert type="memory" limit="50%" clear="40%"/>
  </client>
</fleetstat>
"""
    )
    path.chmod(0o600)
    return path


def test_cli_mail_flush_and_alerts(tmp_path: Path, store: Store, smtp_server: SmtpServer) -> None:
    queue_one(store)
    runner = CliRunner()
    down = write_config(tmp_path, store, SmtpServer(free_port()).xml())
    result = runner.invoke(app, ["mail", "flush", "-c", str(down)])
    assert result.exit_code == 1
    assert "cannot connect" in result.output and "mail: 0 sent, 1 failed, 1 queued" in result.output

    up = write_config(tmp_path, store, smtp_server.xml())
    result = runner.invoke(app, ["mail", "flush", "-c", str(up)])
    assert result.exit_code == 0, result.output
    assert "sent 1: [fleetstat] FIRING cpu 93% > 20% on web-01 (10.0.0.5)" in result.output
    assert "mail: 1 sent, 0 failed, 0 queued" in result.output

    result = runner.invoke(app, ["alerts", "-c", str(up), "--json"])
    assert result.exit_code == 0, result.output
    [alert] = json.loads(result.output)
    assert (alert["host"], alert["rule"], alert["value"], alert["limit"]) == (
        "web-01",
        "cpu",
        93.0,
        20.0,
    )
    assert alert["since"] == alert["last_notified_at"] == T0.isoformat()
    result = runner.invoke(app, ["alerts", "-c", str(up)])
    assert result.exit_code == 0 and "web-01" in result.output and "93.0%" in result.output


def test_cli_mail_flush_without_smtp_says_so(tmp_path: Path, store: Store) -> None:
    result = CliRunner().invoke(
        app, ["mail", "flush", "-c", str(write_config(tmp_path, store, ""))]
    )
    assert result.exit_code == 1 and "has no <smtp>" in result.output


def test_the_demo_says_how_to_get_its_smtp_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from rich.console import Console

    from fleetstat.demo import _mail_sink

    monkeypatch.setitem(sys.modules, "aiosmtpd.controller", None)  # import fails
    console = Console(file=io.StringIO(), width=200)
    assert _mail_sink(tmp_path, console) is None
    assert "pip install 'fleetstat[demo]'" in console.file.getvalue()  # type: ignore[attr-defined]


def test_collect_prints_the_mail_counts() -> None:
    from fleetstat.app import CollectOutcome
    from fleetstat.present import mail_line as _mail_line

    outcome = CollectOutcome(round_of(ok(WEB)), 1, "sqlite://", mail_sent=2, mail_queued=1)
    assert _mail_line(outcome) == "mail: 2 sent, 1 queued"
    stuck = CollectOutcome(
        round_of(ok(WEB)), 1, "sqlite://", mail_queued=3, mail_error="no <smtp> in the config"
    )
    assert _mail_line(stuck) == "mail: 0 sent, 3 queued (no <smtp> in the config)"
