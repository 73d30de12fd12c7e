"""One round at a time per database, and each mail to one sender (issue 13).

Real parts: the simulated fleet's sshd, SQLite, PostgreSQL and MariaDB, aiosmtpd,
and ``fleetstat collect`` as processes of their own.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fleet_fixtures import fleet_config
from smtp_fixtures import Sink, SmtpServer

from fleetstat.errors import RoundLockedError
from fleetstat.mail import flush_outbox
from fleetstat.simfleet import SimFleet, free_port
from fleetstat.store import Store
from fleetstat.store.outbox import NewMail, enqueue
from fleetstat.store.roundlock import RoundLock
from fleetstat.store.schema import mail_outbox
from fleetstat.watch import Watcher

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class GatedSink(Sink):
    """Holds every message at DATA until ``release`` is set; ``entered`` says one came."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.entered.set()
        await asyncio.to_thread(self.release.wait, 120)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class SlowSink(Sink):
    """Takes a moment over each message, so two senders at once overlap."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.2)
        return await super().handle_DATA(server, session, envelope)


def smtp_xml(server: SmtpServer) -> str:
    # A long timeout: the gated server answers only when the test says so.
    return (
        f'<smtp host="127.0.0.1" port="{server.port}" from="fleetstat@example.com" timeout="120s"/>'
    )


@pytest.mark.sshd
def test_two_collects_at_once_one_stores_the_other_exits_75(
    tmp_path: Path, sim_fleet: SimFleet, db_url: str
) -> None:
    host = sim_fleet.hosts[0]
    client = (
        f'<client ip="{host.address}" port="{sim_fleet.port}" username="{sim_fleet.user}" '
        f'key="{sim_fleet.client_key}" mail="ops@example.com" name="web-01">'
        '<alert type="memory" limit="0%" repeat="0"/></client>'
    )
    sink = GatedSink()
    smtp = SmtpServer(free_port(), sink=sink).start()
    try:
        config = fleet_config(tmp_path, sim_fleet, [], extra_clients=client, database_url=db_url,
                              extra=smtp_xml(smtp))  # fmt: skip
        command = [FLEETSTAT, "collect", "-q", "-c", str(config.path)]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The first round has stored, and holds the lock while its mail goes out.
            assert sink.entered.wait(120), "the first round never sent its mail"
            second = subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            sink.release.set()
            _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert second.returncode == 75, second.stdout + second.stderr
        assert "another round is running" in second.stderr
        assert f"fleetstat collect (pid {first.pid} on " in second.stderr
        assert len(smtp.messages) == 1

        # The lock went with the first round: the next one runs, stores and mails.
        third = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert third.returncode == 0, third.stderr
    finally:
        smtp.stop()
    assert len(smtp.messages) == 2
    with Store(db_url) as store, store.engine.connect() as conn:
        assert store.count("rounds") == 2
        sent = conn.execute(sa.select(mail_outbox.c.sent_at)).scalars().all()
    assert len(sent) == 2 and all(moment is not None for moment in sent)


def test_the_lock_says_who_holds_it_and_goes_when_released(db_url: str) -> None:
    with Store(db_url) as store, Store(db_url) as other:
        store.ensure_schema()
        with RoundLock(store, "fleetstat watch (pid 4242 on central01)").acquire() as lock:
            lock.announce(T0)
            with pytest.raises(RoundLockedError) as caught:
                RoundLock(other, "fleetstat collect (pid 7 on central01)").acquire()
            assert caught.value.exit_code == 75
            assert caught.value.holder == (
                "fleetstat watch (pid 4242 on central01), since 2026-12-01 12:00:00 UTC"
            )
        RoundLock(other, "fleetstat collect (pid 7 on central01)").acquire().release()


def test_two_flushes_at_once_send_each_message_once(db_url: str) -> None:
    """A ``mail flush`` beside a round's flush: each takes a message before it sends
    it (one conditional UPDATE), so none goes out twice."""
    smtp = SmtpServer(free_port(), sink=SlowSink()).start()
    try:
        with Store(db_url) as store:
            store.ensure_schema()
            mails = [NewMail(("ops@example.com",), f"message {i}", "body") for i in range(8)]
            with store.engine.begin() as conn:
                enqueue(conn, mails, now=T0, kind="alert")
        barrier = threading.Barrier(2)
        reports = []

        def flush() -> None:
            with Store(db_url) as own:
                barrier.wait()
                reports.append(flush_outbox(own, smtp.smtp(), T0))

        threads = [threading.Thread(target=flush) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        smtp.stop()
    subjects = sorted(message.subject for message in smtp.messages)
    assert subjects == sorted(f"message {i}" for i in range(8))
    assert sum(len(report.sent) for report in reports) == 8
    with Store(db_url) as store, store.engine.connect() as conn:
        rows = conn.execute(sa.select(mail_outbox.c.sent_at, mail_outbox.c.claimed_by)).all()
    assert all(row.sent_at is not None and row.claimed_by is None for row in rows)


def test_watch_skips_a_round_while_another_holds_the_lock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fleetstat.watch")

    async def locked() -> Any:
        raise RoundLockedError("held", "fleetstat collect (pid 7 on central01), since ...")

    watcher = Watcher(0.05, locked, max_rounds=1)

    async def two_then_stop() -> None:
        task = asyncio.create_task(watcher.run())
        while watcher.stats.skipped < 2:
            await asyncio.sleep(0.01)
        watcher.request_stop("test")
        await task

    asyncio.run(two_then_stop())
    assert (watcher.stats.skipped, watcher.stats.crashed, watcher.stats.rounds) == (2, 0, 0)
    lines = [r.getMessage() for r in caplog.records if "round_skipped" in r.getMessage()]
    assert len(lines) == 2 and 'holder="fleetstat collect (pid 7 on central01)' in lines[0]
