"""One hostile host per round, every class: the others are stored, alerted and mailed.

Issue 12: a validly sealed document with hostile content used to lose the round
for every host (a value the database refused, a timestamp that overflowed, an
integer too large for a float, a NaN deep enough for the recursion limit). Here
each class of ``fleetstat.simhostile`` is sealed for the round's challenge by a
fake transport (the real sshd path is tests/test_hostile_sshd.py), next to three
healthy hosts, through ``app.run_round`` into SQLite and PostgreSQL, with
mail delivered to a real SMTP server (aiosmtpd).

Then the same guarantee past the boundary: a failure that only one host's data
reaches in the alert or mail step (injected, since the boundary leaves no real
value that would) marks that host and spares the others.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import _server_database
from smtp_fixtures import SmtpServer

from fleetstat import app, envelope, simhostile
from fleetstat.config import Client, Config, load_config
from fleetstat.model import Status
from fleetstat.store import Store
from fleetstat.store.schema import alert_states, attempts, samples
from fleetstat.transport import ProbeRun

HEALTHY = 3
DOCUMENT_CLASSES = [c for c in simhostile.CLASSES if c not in simhostile.NO_DOCUMENT]


# MariaDB's per-host fallback is covered in tests/test_store.py; a class per round
# on all three servers would cost the suite half a minute more.
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend for the module; each test's hosts have addresses of their own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('isolation') / 'fleetstat.db'}"
    else:
        yield from _server_database(request.param)


def config_for(tmp_path: Path, db_url: str, smtp: SmtpServer, net: int) -> Config:
    """Three healthy hosts (named) and one hostile (unnamed: its hostname labels its mail)."""
    healthy = "".join(
        f'<client ip="10.12.{net}.{i + 1}" username="u" password="p" os="linux" '
        f'mail="ops{i}@example.com" name="healthy-{i}"><alert type="memory" limit="50%"/>'
        "</client>\n"
        for i in range(HEALTHY)
    )
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{db_url}"/>
  <key path="{tmp_path / "server.key"}"/>
  {smtp.xml()}
  <defaults repeat="0"/>
  {healthy}
  <client ip="10.12.{net}.66" username="u" password="p" os="linux" mail="victim@example.com">
    <alert type="memory" limit="50%"/>
    <alert type="unreachable"/>
    <events enabled="true" max="5"/>
  </client>
</fleetstat>""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_config(path)


@functools.cache
def payload(name: str) -> bytes:
    return simhostile.payload(name)  # the flood and the bomb take a moment to build


def runner_for(hostile: str) -> Any:
    """The transport's stand-in: each host seals its document for this round's challenge."""

    async def runner(client: Client, probe: bytes, argv: Sequence[str], settings: Any) -> ProbeRun:
        key = envelope.b64url_decode(argv[list(argv).index("--recipient") + 1])
        challenge = envelope.b64url_decode(argv[list(argv).index("--challenge") + 1])
        if client.ip.endswith(".66"):
            plaintext = payload(hostile)
        else:
            healthy = simhostile.base_document(client.name or "?")
            plaintext = zlib.compress(simhostile.json.dumps(healthy).encode())
        return ProbeRun((envelope.seal_line(plaintext, key, challenge) + "\n").encode(), b"", 0)

    return runner


def one_round(config: Config, hostile: str) -> app.CollectOutcome:
    return asyncio.run(app.run_round(config, runner=runner_for(hostile)))


def assert_the_healthy_hosts_were_served(
    config: Config, outcome: app.CollectOutcome, smtp: SmtpServer
) -> None:
    healthy = [c for c in config.clients if c.name]
    results = {r.client.ip: r for r in outcome.round.results}
    assert [results[c.ip].status for c in healthy] == [Status.OK] * HEALTHY
    with Store(config.database_url) as store, store.engine.connect() as conn:
        stored = set(
            conn.execute(
                sa.select(samples.c.client_ip).where(samples.c.round_id == outcome.round_id)
            ).scalars()
        )
        firing = set(
            conn.execute(
                sa.select(alert_states.c.client_ip).where(
                    alert_states.c.state == "firing", alert_states.c.rule_key == "memory"
                )
            ).scalars()
        )
    assert {c.ip for c in healthy} <= stored
    assert {c.ip for c in healthy} <= firing
    mailed = {rcpt for caught in smtp.messages for rcpt in caught.rcpt_tos}
    assert {c.mail[0] for c in healthy} <= mailed
    assert outcome.mail_failed == 0 and outcome.mail_error is None


@pytest.mark.parametrize("hostile", DOCUMENT_CLASSES)
def test_one_hostile_host_costs_the_others_nothing(
    hostile: str,
    shared_db: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = DOCUMENT_CLASSES.index(hostile)
    config = config_for(tmp_path, shared_db, smtp_server, net)
    outcome = one_round(config, hostile)

    assert_the_healthy_hosts_were_served(config, outcome, smtp_server)
    result = outcome.round.results[-1]
    expected = Status.OK if hostile in simhostile.STORED else Status.BAD_PAYLOAD
    assert result.status is expected, result.error
    # The hostile host is a classified row of its own, and got its own (inert) mail:
    # its events mail when its document was stored, unreachable when refused.
    with Store(shared_db) as store, store.engine.connect() as conn:
        row = conn.execute(
            sa.select(attempts).where(
                attempts.c.round_id == outcome.round_id, attempts.c.client_ip == result.client.ip
            )
        ).one()
    assert row.status == expected.value
    if expected is Status.BAD_PAYLOAD:
        assert row.error.startswith(f"{result.client.ip}:22: ")
    victim = [m for m in smtp_server.messages if "victim@example.com" in m.rcpt_tos]
    assert victim, [m.subject for m in smtp_server.messages]
    for caught in victim:
        assert "\r" not in caught.subject and "\n" not in caught.subject
        assert caught.message["Bcc"] is None and caught.message["X-Injected"] is None
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


# -- past the boundary: a step that fails for one host ---------------------------------------


def test_a_host_whose_alert_mail_cannot_be_rendered_is_marked_and_the_rest_go_on(
    tmp_path: Path,
    shared_db: str,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fleetstat.alerts import evaluate

    real = evaluate.render_message

    def render(result: Any, notices: Any, **options: Any) -> Any:
        if result.client.name is None:  # the fourth host: a bug only its data reaches
            raise RuntimeError("a bug one host's data reaches")
        return real(result, notices, **options)

    monkeypatch.setattr(evaluate, "render_message", render)
    config = config_for(tmp_path, shared_db, smtp_server, 99)
    outcome = one_round(config, "markup")  # a document that is stored

    assert_the_healthy_hosts_were_served(config, outcome, smtp_server)
    marked = outcome.round.results[-1]
    assert marked.status is Status.BAD_PAYLOAD
    assert marked.error == (
        f"{marked.client.ip}:22: alerts failed: RuntimeError: a bug one host's data reaches"
    )
    with Store(shared_db) as store:
        hosts = store.round_summary(outcome.round_id).hosts
        round_row = store.round_summary(outcome.round_id).round
    assert [h.status for h in hosts] == ["ok"] * HEALTHY + ["bad_payload"]
    assert hosts[-1].error == marked.error
    assert (round_row.hosts_ok, round_row.hosts_failed) == (HEALTHY, 1)
    assert f"host {marked.client.ip} ({marked.client.ip}:22): alerts failed" in caplog.text
    victim = [m for m in smtp_server.messages if "victim@example.com" in m.rcpt_tos]
    assert [m.subject for m in victim if "FIRING" in m.subject] == []


def test_a_host_whose_events_mail_cannot_be_rendered_is_marked_and_the_rest_go_on(
    tmp_path: Path,
    shared_db: str,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleetstat.mail import events

    def render(result: Any, rows: Any, now: Any, late: Any = None) -> Any:
        raise RuntimeError("events mail broke")

    monkeypatch.setattr(events, "render_events_message", render)
    config = config_for(tmp_path, shared_db, smtp_server, 98)
    outcome = one_round(config, "strings")  # the hostile client is the one with <events>

    assert_the_healthy_hosts_were_served(config, outcome, smtp_server)
    marked = outcome.round.results[-1]
    assert marked.status is Status.BAD_PAYLOAD
    assert "queueing the events mail failed: RuntimeError: events mail broke" in (
        marked.error or ""
    )
    with Store(shared_db) as store:
        hosts = store.round_summary(outcome.round_id).hosts
    assert hosts[-1].status == "bad_payload"


def test_alert_rows_the_database_refuses_cost_only_their_host(shared_db: str) -> None:
    """Past the boundary (a bug's document): the batch of alert states and mail is
    refused, each host's is written alone, and only the one host is left out."""
    from dataclasses import replace

    from alert_helpers import client, ok, round_of, rule

    from fleetstat.alerts import evaluate_round
    from fleetstat.document import HostInfo
    from fleetstat.store.schema import mail_outbox

    good = client(rule("memory", 10), ip="10.12.97.1", name="good")
    bad = client(rule("memory", 10), ip="10.12.97.2", name=None)
    bad_result = ok(bad)
    assert bad_result.document is not None
    unstorable = replace(bad_result.document, host=HostInfo(hostname="lone\ud800"))
    round = round_of(ok(good), replace(bad_result, document=unstorable))
    with Store(shared_db) as store:
        store.ensure_schema()
        evaluation = evaluate_round(store, round)
        with store.engine.connect() as conn:
            firing = set(
                conn.execute(
                    sa.select(alert_states.c.client_ip).where(alert_states.c.state == "firing")
                ).scalars()
            )
            queued = list(
                conn.execute(
                    sa.select(mail_outbox.c.client_ip).where(
                        mail_outbox.c.client_ip.in_(["10.12.97.1", "10.12.97.2"])
                    )
                ).scalars()
            )
    assert set(evaluation.failures) == {("10.12.97.2", 22)}
    assert {"10.12.97.1"} <= firing and "10.12.97.2" not in firing
    assert queued == ["10.12.97.1"]
    assert evaluation.messages == 1
