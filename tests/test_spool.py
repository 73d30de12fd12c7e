"""The local spool (issue 21): files, the size bound, the config, and the replay
into the database, each round once (SQLite, PostgreSQL and MariaDB).

The process-level guarantees (a real database cut off under ``watch``, ``kill -9``
during a replay, SIGTERM at random moments) are in ``test_outage.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alert_helpers import T0, client, failed, ok, round_of, rule
from smtp_fixtures import SmtpServer

from fleetstat.app import CollectOutcome
from fleetstat.config import Config, SpoolSettings, load_config
from fleetstat.config.validate import default_spool_directory
from fleetstat.errors import ConfigError
from fleetstat.model import RoundResult
from fleetstat.present import spool_lines
from fleetstat.simfleet import free_port
from fleetstat.spool import Spool, Spooled
from fleetstat.spool.codec import decode_round, encode_round
from fleetstat.spool.health import DatabaseHealth
from fleetstat.spool.replay import replay, store_round_once
from fleetstat.store import Store
from fleetstat.store.schema import mail_outbox, rounds
from fleetstat.units import parse_size
from fleetstat.watch import Watcher

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
WEB = client(rule("memory", 10), ip="10.0.0.5")
DOWN = client(rule("unreachable"), ip="10.0.0.6", name="db-01")


def a_round(minutes: int, **families: object) -> RoundResult:
    at = T0 + timedelta(minutes=minutes)
    return round_of(ok(WEB, at, **families), failed(DOWN, at))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETSTAT, *args], capture_output=True, text=True, timeout=120)


def config_with(tmp_path: Path, db_url: str, spool: str = "", extra: str = "") -> Config:
    """A config with two clients; ``db_url`` may be a whole ``<database .../>``."""
    database = db_url if db_url.startswith("<") else f'<database url="{db_url}"/>'
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        textwrap.dedent(
            f"""\
            <fleetstat>
              {database}
              {spool or f'<spool dir="{tmp_path / "spool"}"/>'}
              {extra}
              <client ip="10.0.0.5" name="web-01" username="u" password="p"
                      mail="ops@example.com"><alert type="memory" limit="10%"/></client>
              <client ip="10.0.0.6" name="db-01" username="u" password="p"
                      mail="ops@example.com"><alert type="unreachable"/></client>
            </fleetstat>"""
        ),
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_config(path)


# -- files ------------------------------------------------------------------------------


def test_a_round_goes_to_disk_whole_private_and_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10 * 1024**2)
    later, earlier = a_round(5), a_round(0, errors={"disks": "wéb ☃ \x00"})
    spool.put(later, "database down")
    spooled = spool.put(earlier, "database down")
    assert spooled.path is not None and spooled.depth == 2 and spooled.dropped == ()
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    entries = spool.entries()
    assert [e.started_at for e in entries] == [earlier.started_at, later.started_at]
    for entry in entries:
        assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert not [name for name in os.listdir(tmp_path / "spool") if name.endswith(".tmp")]
    # gzip'd JSON an operator can read with zcat; no pickle anywhere.
    raw = json.loads(gzip.decompress(entries[0].path.read_bytes()))
    assert (raw["format"], raw["uuid"], raw["reason"]) == (
        "fleetstat-spool/1", earlier.uuid, "database down"
    )  # fmt: skip
    back = spool.load(entries[0], {(WEB.ip, WEB.port): WEB})
    # The same hosts, statuses, times, documents and uuid; a host no longer in the
    # config (not in the mapping) keeps its address and name, without rules.
    assert back.results[0] == earlier.results[0]
    gone = back.results[1].client
    assert (gone.ip, gone.name, gone.alerts) == ("10.0.0.6", "db-01", ())
    assert back == replace(
        earlier, results=(earlier.results[0], replace(earlier.results[1], client=gone))
    )


def test_a_checked_document_comes_back_as_the_boundary_left_it() -> None:
    """Notes, unknown keys and all; only the interval CPU, which the server computes
    from the store at the time of writing, is left for the replay to compute again."""
    odd = a_round(0, cpu={"used_percent": 250.0, "interval_percent": 12.5}, newer={"x": [1, 2]})
    original = odd.results[0].document
    assert original is not None and original.notes and original.extra
    back = decode_round(encode_round(odd, "x"), {}).results[0].document
    assert back is not None and back.cpu is not None and original.cpu is not None
    assert back.cpu.interval_percent is None
    assert back == replace(original, cpu=replace(original.cpu, interval_percent=None))


def test_the_bound_drops_the_oldest_first_and_counts_them(tmp_path: Path) -> None:
    """Acceptance 4: the spool never passes its bound; what it drops is counted and said."""
    one = len(encode_round(a_round(0), "database down"))
    spool = Spool(tmp_path / "spool", int(one * 3.5))  # room for three rounds
    made = [a_round(minutes) for minutes in range(5)]
    outcomes = [spool.put(r, "database down") for r in made]
    assert [o.dropped for o in outcomes[:3]] == [(), (), ()]
    assert len(outcomes[3].dropped) == 1 and made[0].uuid in outcomes[3].dropped[0]
    assert len(outcomes[4].dropped) == 1 and made[1].uuid in outcomes[4].dropped[0]
    status = spool.status()
    assert (status.rounds, status.dropped) == (3, 2)
    assert status.bytes <= status.max_bytes
    assert status.oldest == made[2].started_at and status.newest == made[4].started_at
    assert status.last_dropped_at is not None
    # A round larger than the whole bound is itself dropped (and counted): the
    # bound holds, and the rounds already kept are not thrown away for it.
    tiny = Spool(tmp_path / "tiny", one // 2)
    refused = tiny.put(made[0], "database down")
    assert refused.path is None and refused.dropped and tiny.status().dropped == 1
    assert tiny.entries() == []
    assert Spool(tmp_path / "spool", 1).status().as_json()["dropped"] == 2  # kept on disk


def test_spooled_events_move_the_bookmark_used_while_the_database_is_away(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", 10 * 1024**2)
    spool.save_bookmarks({("10.0.0.5", 22): '{"source":"windows","record_id":7}'})
    events = {
        "source": "windows",
        "events": [
            {"event_key": "w:8", "source": "windows", "record_id": 8},
            {"event_key": "w:9", "source": "windows", "record_id": 9},
        ],
    }
    spool.put(round_of(ok(WEB, T0, security_events=events)), "database down")
    assert spool.bookmarks() == {("10.0.0.5", 22): '{"source":"windows","record_id":9}'}


# -- config -----------------------------------------------------------------------------


def test_spool_settings_and_their_defaults(tmp_path: Path) -> None:
    config = config_with(tmp_path, "sqlite:///x.db", spool='<spool dir="q" max-size="64MB"/>')
    assert config.spool == SpoolSettings(tmp_path / "q", 64 * 1024**2)
    assert config.database_alert_after == 300
    assert config.admin_addresses == ("ops@example.com",)  # the first owner
    fallback = config_with(tmp_path, "sqlite:///x.db", spool=" ")
    assert fallback.spool.max_bytes == 1024**3
    file = tmp_path / "etc" / "fleetstat.xml"
    env = {"HOME": "/home/op"}
    under_xdg = default_spool_directory(file, {**env, "XDG_STATE_HOME": "/var/state"})
    assert under_xdg.parent == Path("/var/state/fleetstat")
    assert under_xdg.name.startswith("spool-fleetstat-") and len(under_xdg.name) == 24
    assert default_spool_directory(file, env).parent == Path("/home/op/.local/state/fleetstat")
    systemd = default_spool_directory(file, {**env, "STATE_DIRECTORY": "/var/lib/fleetstat"})
    assert systemd.parent == Path("/var/lib/fleetstat")
    other = default_spool_directory(tmp_path / "other" / "fleetstat.xml", env)
    assert other != default_spool_directory(file, env)  # two configs never share one


def test_admin_address_and_alert_after(tmp_path: Path) -> None:
    smtp = '<smtp host="127.0.0.1" from="f@example.com" admin="root@example.com, b@example.com"/>'
    config = config_with(tmp_path, "sqlite:///x.db", extra=smtp.replace("/>", "/>\n") + "")
    assert config.admin_addresses == ("root@example.com", "b@example.com")
    owner = config_with(tmp_path, "sqlite:///x.db", extra='<smtp host="127.0.0.1"/>')
    assert owner.admin_addresses == ("ops@example.com",)
    later = config_with(tmp_path, '<database url="sqlite:///x.db" alert-after="2m"/>')
    assert later.database_alert_after == 120


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ('<spool max-size="lots"/>', "<spool> max-size: 'lots' is not a size"),
        ('<spool max-size="10k"/>', "<spool> max-size: '10k' is under 1MB"),
        ('<spool size="1GB"/>', "unknown attribute size= on <spool>"),
    ],
)
def test_bad_spool_settings_are_config_errors(tmp_path: Path, xml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, "sqlite:///x.db", spool=xml)
    assert message in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, '<database url="sqlite:///x.db" alert-after="soon"/>')
    assert "<database> alert-after: 'soon' is not a duration" in str(caught.value)


def test_sizes() -> None:
    assert parse_size("1GB") == parse_size("1 GiB") == 1024**3
    assert parse_size("512m") == 512 * 1024**2
    with pytest.raises(ValueError, match="not a size"):
        parse_size("-1")


# -- into the database, once --------------------------------------------------------------


@pytest.fixture
def store(db_url: str) -> Store:
    store = Store(db_url)
    store.ensure_schema()
    yield store  # type: ignore[misc]
    store.close()


def outbox(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [
            (row.subject, row.body)
            for row in conn.execute(sa.select(mail_outbox).order_by(mail_outbox.c.id))
        ]


def test_a_round_stored_once_even_when_written_again(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """What a replay after ``kill -9`` between the commit and the file's removal does:
    the round is recognised by its uuid, its alerts by alerts_at; nothing twice."""
    config = config_with(tmp_path, db_url)
    first = a_round(0)
    done = store_round_once(config, store, first, now=first.finished_at)
    again = store_round_once(config, store, first, now=first.finished_at)
    assert (done.written, again.written, again.evaluation) == (True, False, None)
    assert done.evaluation is not None and done.evaluation.messages == 2
    assert (store.count("rounds"), store.count("attempts"), store.count("samples")) == (1, 2, 1)
    assert len(outbox(store)) == 2


def test_replay_writes_in_order_with_the_rounds_own_times_and_late_mail(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    config = config_with(tmp_path, db_url)
    spool = Spool.for_config(config)
    made = [a_round(minutes) for minutes in (0, 5, 10)]
    for r in reversed(made):  # the order on disk comes from the rounds, not the writes
        spool.put(r, "database down")
    written = []
    report = replay(config, store, spool, on_round=lambda r, s: written.append(r.uuid))
    assert (report.written, report.already, report.left, report.complete) == (3, 0, 0, True)
    assert written == [r.uuid for r in made]
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(rounds).order_by(rounds.c.id)).all()
    assert [row.uuid for row in stored] == [r.uuid for r in made]
    assert [row.started_at for row in stored] == [r.started_at for r in made]
    assert all(row.replayed_at is not None for row in stored)
    # The memory alert fired in the first round (and repeats only after 4 h); the
    # unreachable one too: two messages, both late and saying so.
    mail = outbox(store)
    assert len(mail) == 2
    assert all(
        "Late:     sent" in body and "waited in fleetstat's spool" in body for _, body in mail
    )
    assert all("Checked:  2026-11-22 10:00:06 UTC" in body for _, body in mail)  # its end
    assert spool.entries() == []


def test_replay_stops_between_rounds_when_asked(store: Store, db_url: str, tmp_path: Path) -> None:
    config = config_with(tmp_path, db_url)
    spool = Spool.for_config(config)
    for minutes in (0, 5, 10):
        spool.put(a_round(minutes), "database down")
    calls = iter([False, True])
    report = replay(config, store, spool, should_stop=lambda: next(calls))
    assert (report.written, report.left, report.stopped, report.complete) == (1, 2, True, False)
    assert store.count("rounds") == 1


def test_an_unreadable_spool_file_is_moved_aside_and_counted(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    config = config_with(tmp_path, db_url)
    spool = Spool.for_config(config)
    spool.put(a_round(0), "database down")
    spool.put(a_round(5), "database down")
    broken = spool.entries()[0].path
    broken.write_bytes(b"not gzip")
    report = replay(config, store, spool)
    assert (report.written, report.unreadable, report.left) == (1, 1, 0)
    assert (spool.directory / "unreadable" / broken.name).exists()
    assert spool.status().unreadable == 1


# -- the admin hears of the database ----------------------------------------------------


def test_one_mail_when_the_database_is_down_a_while_and_one_when_it_is_back(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Straight over SMTP (the outbox is in the database that is down), once each,
    kept on disk across processes; a relay that is down is tried again later."""
    smtp = smtp_server.xml().replace("timeout=", 'admin="root@example.com" timeout=')
    config = config_with(tmp_path, '<database url="sqlite:///x.db" alert-after="10m"/>', extra=smtp)
    spool = Spool.for_config(config)
    spool.put(a_round(0), "database down")
    health = DatabaseHealth(config, spool, "postgresql+psycopg://fleet:***@db/fleet")
    health.failed("connection refused", now=T0)
    health.failed("connection refused", now=T0 + timedelta(minutes=5))
    assert smtp_server.messages == []  # not yet 10 minutes

    smtp_server.stop()  # the relay is away too: the mail waits for the next failure
    health.failed("connection refused", now=T0 + timedelta(minutes=10))
    smtp_server.start()
    # A new process (cron's next collect) reads the outage from the spool directory.
    again = DatabaseHealth(config, Spool.for_config(config), health.database)
    again.failed("connection refused", now=T0 + timedelta(minutes=15))
    again.failed("connection refused", now=T0 + timedelta(minutes=20))
    (down,) = smtp_server.messages
    assert down.subject == (
        "[fleetstat] DATABASE DOWN for 15m: postgresql+psycopg://fleet:***@db/fleet"
    )
    assert down.rcpt_tos == ("root@example.com",)
    assert down.message["Auto-Submitted"] == "auto-generated"
    assert "Since:    2026-11-22 10:00:00 UTC" in down.body
    assert "1 round(s) waiting" in down.body and "connection refused" in down.body

    ended = again.recovered(written=1, now=T0 + timedelta(minutes=30))
    assert ended is not None and ended.since == T0
    assert again.recovered(written=0, now=T0 + timedelta(minutes=35)) is None
    assert [m.subject for m in smtp_server.messages][1:] == [
        "[fleetstat] DATABASE BACK after 30m: postgresql+psycopg://fleet:***@db/fleet"
    ]
    assert "Written:  1 spooled round(s)" in smtp_server.messages[1].body


def test_a_short_outage_mails_nobody(tmp_path: Path, smtp_server: SmtpServer) -> None:
    config = config_with(tmp_path, "sqlite:///x.db", extra=smtp_server.xml())
    health = DatabaseHealth(config, Spool.for_config(config), "sqlite:///x.db")
    health.failed("disk I/O error", now=T0)
    assert health.recovered(written=2, now=T0 + timedelta(minutes=4)) is not None
    assert smtp_server.messages == []
    assert health.outage() is None


# -- the commands -----------------------------------------------------------------------


def test_collect_spools_with_status_69_and_spool_replay_writes_it(tmp_path: Path) -> None:
    """From cron: the database away, ``collect`` keeps the round and exits 69;
    ``spool status`` reads only the spool; ``spool replay`` writes it."""
    nobody = free_port()  # the client's sshd and the database: nothing listens
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="postgresql://postgres@127.0.0.1:{nobody}/test"/>
  <key path="{tmp_path / "server.key"}"/>
  <spool dir="{tmp_path / "spool"}"/>
  <defaults connect-timeout="2s"/>
  <client ip="127.0.0.1" port="{nobody}" username="u" password="p" name="gone"/>
</fleetstat>""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    done = run_cli("collect", "-q", "-c", str(path))
    assert done.returncode == 69, done.stderr
    assert done.stdout.startswith("round spooled: 0/1 ok, 1 failed")
    assert "database unavailable:" in done.stderr and "1 round(s) waiting" in done.stderr

    status = run_cli("spool", "status", "-c", str(path), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["rounds"] == 1
    report = run_cli("report", "-c", str(path))  # the database cannot be read: say both
    assert report.returncode == 1
    assert "spool: 1 round(s) waiting (oldest " in report.stderr and "error:" in report.stderr

    still_down = run_cli("spool", "replay", "-c", str(path))
    assert still_down.returncode == 69 and "database unavailable" in still_down.stderr
    db = f"sqlite:///{tmp_path / 'fleetstat.db'}"
    done = run_cli("spool", "replay", "-c", str(path), "--db", db)
    assert done.returncode == 0, done.stderr
    assert "spool: 1 round(s) written" in done.stdout and "0 waiting" in done.stdout
    with Store(db) as store:
        assert (store.count("rounds"), store.count("attempts")) == (1, 1)
    assert Spool(tmp_path / "spool", 1).entries() == []
    report = run_cli("report", "-c", str(path), "--db", db, "--json")
    assert report.returncode == 0 and "spool:" not in report.stderr + report.stdout
    assert json.loads(report.stdout)[0]["status"] == "unreachable"


def test_a_round_stored_but_not_evaluated_before_a_crash_is_evaluated_once(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """The other window: the round committed, the process died before its alerts'
    transaction did. The replay only evaluates it (once), and removes the file."""
    config = config_with(tmp_path, db_url)
    spool = Spool.for_config(config)
    first = a_round(0)
    store.record_round(first)  # ... and then the crash
    spool.put(first, "the database went away during the evaluation")
    report = replay(config, store, spool)
    again = replay(config, store, spool)
    assert (report.written, report.already, report.left) == (0, 1, 0)
    assert (again.written, again.already) == (0, 0)
    assert store.count("rounds") == 1 and len(outbox(store)) == 2


def test_what_the_bound_dropped_is_said_by_collect_and_watch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Acceptance 4, the reporting: collect's lines, watch's event=spool_dropped."""
    dropped = ("round-20261122T100000.000000Z-a.json.gz", "round-20261122T100500.000000Z-b.json.gz")
    outcome = CollectOutcome(
        a_round(10),
        None,
        "postgresql+psycopg://db/fleet",
        spooled=Spooled(tmp_path / "r.json.gz", dropped, 3),
        database_error="connection refused",
    )
    lines = spool_lines(outcome)
    assert "database unavailable: connection refused" in lines
    assert any("dropped 2 round(s), oldest first: round-20261122T1000" in line for line in lines)

    caplog.set_level(logging.INFO, logger="fleetstat.watch")

    async def round_fn() -> CollectOutcome:
        return outcome

    asyncio.run(Watcher(0.01, round_fn, max_rounds=1).run())
    logged = [r.getMessage() for r in caplog.records if r.name == "fleetstat.watch"]
    assert any(m.startswith("event=spool_dropped n=1 rounds=2 names=") for m in logged)
    assert any(m.startswith("event=spooled n=1") and "spool_depth=3" in m for m in logged)
