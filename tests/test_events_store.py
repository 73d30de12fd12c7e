"""Security events in the store: stored once, bookmarks from stored rows, the events mail.

A fake Windows host answers rounds the way the probe does (events after the
``--since`` bookmark, at most ``--events``), from the wevtutil fixture parsed by
the real parser; the rounds run through ``app.collect_once`` with only the
transport replaced, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alert_helpers import checked

from fleetstat import app, collector, envelope
from fleetstat.config import Client, load_config
from fleetstat.errors import StoreError
from fleetstat.mail import events as mail_events
from fleetstat.mail.events import render_events_message
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.probe import windows_events
from fleetstat.store import Store
from fleetstat.store import events as store_events
from fleetstat.store.schema import mail_outbox, security_events
from fleetstat.transport import ProbeRun

FIXTURE = Path(__file__).parent / "fixtures" / "windows" / "security_sample.xml"
LOG = list(windows_events.iter_events([FIXTURE.read_bytes()]))
NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


class FakeWindowsHost:
    """The probe's event semantics over a fixed log; records each run's arguments."""

    def __init__(self, log: list[dict[str, Any]]) -> None:
        self.log = log
        self.calls: list[dict[str, Any]] = []

    def document(self, argv: Sequence[str]) -> dict[str, Any]:
        args = dict(zip(argv[::2], argv[1::2], strict=True))
        since = json.loads(args["--since"]) if "--since" in args else None
        limit = int(args.get("--events", "500"))
        self.calls.append({"since": since, "events": limit})
        after = since["record_id"] if since else -1
        batch = [e for e in self.log if e["record_id"] > after][:limit]
        mark = {"source": "windows", "record_id": batch[-1]["record_id"]} if batch else since
        return {
            "schema": 1,
            "platform": "windows",
            "host": {"hostname": "SRV-DC01", "os": "Windows Server 2022", "kernel": "10.0.20348"},
            "security_events": {
                "source": "windows",
                "events": batch,
                "bookmark": mark,
                "truncated": len(batch) >= limit,
                "warning": None,
            },
            "errors": {},
        }


def config_for(tmp_path: Path, db_url: str, extra: str = "") -> Any:
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{db_url}"/>
  <key path="{tmp_path / "server.key"}"/>
  <client ip="192.0.2.10" username="u" password="p" mail="sec@example.com" name="dc01" os="windows">
    <events max="6"/>
  </client>
  {extra}
</fleetstat>""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_config(path)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> FakeWindowsHost:
    fake = FakeWindowsHost(LOG)

    async def runner(client: Client, probe: bytes, argv: Sequence[str], settings: Any) -> ProbeRun:
        key_b64 = argv[list(argv).index("--recipient") + 1]
        challenge = envelope.b64url_decode(argv[list(argv).index("--challenge") + 1])
        plain = zlib.compress(json.dumps(fake.document(argv)).encode())
        line = envelope.seal_line(plain, envelope.b64url_decode(key_b64), challenge)
        return ProbeRun((line + "\n").encode(), b"", 0)

    monkeypatch.setattr(app, "collect_round", partial(collector.collect_round, runner=runner))
    return fake


def stored_keys(db_url: str) -> list[str]:
    with Store(db_url) as store, store.engine.connect() as conn:
        query = sa.select(security_events.c.event_key).order_by(security_events.c.id)
        return list(conn.execute(query).scalars())


def outbox(db_url: str) -> list[Any]:
    with Store(db_url) as store, store.engine.connect() as conn:
        return list(conn.execute(sa.select(mail_outbox).order_by(mail_outbox.c.id)))


def test_bookmark_moves_only_after_the_events_are_stored(
    tmp_path: Path, db_url: str, host: FakeWindowsHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, db_url)

    # Round 1 collects six events, then the database refuses the write: the round
    # is kept in the spool, and the spool's bookmark moves past its events.
    def broken(self: Store, round: RoundResult, **kwargs: Any) -> int:
        raise StoreError("database went away")

    with monkeypatch.context() as m:
        m.setattr(Store, "write_round", broken)
        spooled = app.collect_once(config, now=NOW)
    assert spooled.round_id is None and spooled.spooled is not None
    assert host.calls[0] == {"since": None, "events": 6}
    host.calls.clear()
    assert stored_keys(db_url) == []

    # Round 2 writes round 1 from the spool first (its six events and their mail),
    # so the bookmark read afterwards continues after the sixth.
    later = app.collect_once(config, now=NOW)
    assert later.replayed is not None and later.replayed.written == 1
    assert host.calls[-1]["since"] == {"source": "windows", "record_id": LOG[5]["record_id"]}
    assert stored_keys(db_url) == [e["event_key"] for e in LOG[:12]]

    # Round 3 reads the rest; round 4 finds nothing.
    app.collect_once(config, now=NOW)
    assert host.calls[-1]["since"] == {"source": "windows", "record_id": LOG[11]["record_id"]}
    app.collect_once(config, now=NOW)
    assert host.calls[-1]["since"] == {"source": "windows", "record_id": LOG[-1]["record_id"]}
    assert stored_keys(db_url) == [e["event_key"] for e in LOG]  # each exactly once

    # One events mail per round (the spooled one late, saying so), new events only.
    mails = outbox(db_url)
    assert [m.kind for m in mails] == ["events"] * 4
    assert mails[0].subject == "[fleetstat] 6 new security events on dc01 (192.0.2.10)"
    assert mails[0].recipients == "sec@example.com"
    assert "event 4625" in mails[0].body and "CORP\\Дмитрий" in mails[0].body
    assert "from 203.0.113.7" in mails[0].body
    assert "Late: sent" in mails[0].body and "Late:" not in mails[1].body
    assert mails[1].subject.startswith("[fleetstat] 6 new security events")
    assert mails[2].subject.startswith("[fleetstat] 1 new security event on")
    assert mails[3].subject == "[fleetstat] no new security events on dc01 (192.0.2.10)"
    assert "no new security events since the last run" in mails[3].body


def test_events_and_their_mail_commit_together_or_not_at_all(
    tmp_path: Path, db_url: str, host: FakeWindowsHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, db_url)

    def crash(*args: Any, **kwargs: Any) -> int:
        raise StoreError("connection lost while queueing the events mail")

    with monkeypatch.context() as m:
        m.setattr(mail_events, "queue_event_mail", crash)
        spooled = app.collect_once(config, now=NOW)
    # The events were written in the same transaction as their mail: both rolled
    # back, and the round waits in the spool.
    assert spooled.spooled is not None
    assert stored_keys(db_url) == []
    assert outbox(db_url) == []

    app.collect_once(config, now=NOW)  # writes the spooled round first, then its own
    assert stored_keys(db_url) == [e["event_key"] for e in LOG[:12]]
    assert [m.subject for m in outbox(db_url)] == [
        "[fleetstat] 6 new security events on dc01 (192.0.2.10)"
    ] * 2


def test_a_round_stored_twice_keeps_one_row_per_event(tmp_path: Path, db_url: str) -> None:
    doc = FakeWindowsHost(LOG).document([])
    client = Client(ip="192.0.2.10", username="u", password="p", os="windows")
    result = HostResult(client, Status.OK, NOW, 1.0, document=checked(doc))
    doc_again = json.loads(json.dumps(doc))
    doc_again["security_events"]["events"].append(doc_again["security_events"]["events"][0])
    again = HostResult(client, Status.OK, NOW, 1.0, document=checked(doc_again))
    with Store(db_url) as store:
        store.ensure_schema()
        first = store.record_round(RoundResult(NOW, NOW, (result,)))
        second = store.record_round(RoundResult(NOW, NOW, (again,)))
        assert store.count("security_events") == len(LOG)
        assert sum(len(v) for v in store_events.round_events(store, first, [result]).values()) == 13
        assert store_events.round_events(store, second, [again]) == {}
        marks = store_events.read_bookmarks(store, [("192.0.2.10", 22), ("192.0.2.99", 22)])
    assert marks == {
        ("192.0.2.10", 22): json.dumps(
            {"source": "windows", "record_id": 1048583}, separators=(",", ":")
        )
    }


def test_rows_keep_non_ascii_nulls_and_linux_positions(tmp_path: Path, db_url: str) -> None:
    position = {"source": "authlog", "path": "/var/log/auth.log", "inode": 42, "offset": 900}
    linux_event = {
        "event_key": "authlog:42:800",
        "source": "authlog",
        "record_id": 800,
        "occurred_at": "2024-05-14T09:12:33Z",
        "event_id": None,
        "level": "warning",
        "provider": "sshd",
        "computer": "web-01",
        "account": "jürgen",
        "source_address": "192.0.2.1",
        "logon_type": None,
        "summary": "SSH login failed",
        "data": {"kind": "ssh_failed", "position": position},
    }
    odd = {"event_key": "authlog:42:1900", "account": "a" * 400, "record_id": "nan",
           "occurred_at": "bad"}  # fmt: skip
    long_key = {"event_key": "x" * 300}  # cut, it would no longer be unique: dropped
    family = {"source": "authlog", "events": [linux_event, odd, {"no": "key"}, long_key]}
    doc = {"schema": 1, "platform": "linux", "security_events": family}
    client = Client(ip="2001:db8::5", port=2222, username="u", password="p", events=True)
    checked_doc = checked(doc)
    assert sum(note.endswith("event dropped") for note in checked_doc.notes) == 2
    result = HostResult(client, Status.OK, NOW, 1.0, document=checked_doc)
    with Store(db_url) as store:
        store.ensure_schema()
        store.record_round(RoundResult(NOW, NOW, (result,)))
        with store.engine.connect() as conn:
            rows = list(conn.execute(sa.select(security_events).order_by(security_events.c.id)))
        marks = store_events.read_bookmarks(store, [("2001:db8::5", 2222)])
    assert len(rows) == 2
    assert rows[0].account == "jürgen" and rows[0].event_id is None
    assert rows[0].occurred_at == datetime(2024, 5, 14, 9, 12, 33, tzinfo=UTC)
    assert len(rows[1].account) == 255 and rows[1].account.endswith("…")
    assert rows[1].record_id is None and rows[1].occurred_at is None
    # the newest row here is the odd one, which has no position: no bookmark
    assert marks == {}
    assert store_events.bookmark_of("authlog", 800, rows[0].data) == position


def test_events_mail_names_a_reading_problem() -> None:
    client = Client(
        ip="192.0.2.10", username="u", password="p", mail=("a@example.com",), name="dc01"
    )
    denied = "PermissionError: " + windows_events.ACCESS_DENIED
    doc = {"schema": 1, "platform": "windows", "security_events": None,
           "errors": {"security_events": denied}}  # fmt: skip
    result = HostResult(client, Status.OK, NOW, 1.0, document=checked(doc))
    message = render_events_message(result, [], NOW)
    assert message.recipients == ("a@example.com",)
    assert message.subject == "[fleetstat] no new security events on dc01 (192.0.2.10)"
    assert "could not be read: PermissionError: cannot read the Security event log" in message.body
    assert "Event Log Readers" in message.body
