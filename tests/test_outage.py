"""Issue 21's acceptance: nothing collected is lost when the database goes away.

Real parts throughout: ``fleetstat watch`` as a process over simulated hosts
(the sshd fixture), the shared PostgreSQL and MariaDB servers reached through a
:class:`~outage_helpers.Gate` that only this test's connections go through (the
servers themselves are never stopped), SQLite made immutable with ``chattr +i``,
and a real SMTP server (aiosmtpd) catching the alert and admin mail.

1. The database goes away for several rounds and comes back: every round that
   ran is stored once, with its own timestamps and in order; the alerts of the
   rounds that ran during the outage fire on replay, each mail once and late;
   the admin gets one DOWN and one BACK mail. PostgreSQL, MariaDB, SQLite.
2. ``kill -9`` during a replay, several times, then a restart: no round lost,
   none stored twice, no mail twice.
3. SIGTERM at random moments across start-up, rounds, outage and replay: exit 0
   every time, and every round that ran is stored in the end (50 moments under
   ``CI``, 12 otherwise: each is a new process, 2-3 s).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alert_helpers import DOCUMENT, checked
from conftest import _server_database
from fleet_fixtures import fleet_config
from outage_helpers import FLEETSTAT, Gate, Watch, field, immutable
from serve_fixtures import Served, serve_config
from smtp_fixtures import SmtpServer

from fleetstat.config import Config, load_config
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.simfleet import SimFleet, free_port
from fleetstat.spool import Spool
from fleetstat.store import Store
from fleetstat.store.schema import mail_outbox, rounds

pytestmark = pytest.mark.sshd

ADMIN = "root@example.com"
OWNER = "ops@example.com"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port()).start()
    yield server
    server.stop()


def outage_config(
    tmp_path: Path, fleet: SimFleet, smtp: SmtpServer, url: str, alert_after: str = "1s"
) -> Path:
    """Two hosts; host 0 breaks a memory rule that mails every round (repeat="0"),
    so each round that ran yields exactly one alert mail: a second one is a bug."""
    config = fleet_config(
        tmp_path,
        fleet,
        [0, 1],
        database_url=url,
        extra=smtp.xml().replace("timeout=", f'admin="{ADMIN}" timeout=')
        + f'\n  <spool dir="{tmp_path / "spool"}"/>',
    )
    text = config.path.read_text().replace(
        f'<database url="{url}"/>', f'<database url="{url}" alert-after="{alert_after}"/>'
    )
    first = fleet.client_xml(auth="key", mail=OWNER, indices=[0]).strip()
    assert first.endswith("/>") and first in text
    rule = '<alert type="memory" limit="1%" repeat="0"/>'
    text = text.replace(first, f"{first[:-2]}>{rule}</client>")
    config.path.write_text(text)
    return config.path


def stored_rounds(url: str) -> list[sa.Row]:
    with Store(url) as store, store.engine.connect() as conn:
        return list(conn.execute(sa.select(rounds).order_by(rounds.c.id)))


def unsent_mail(url: str) -> int:
    with Store(url) as store, store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(mail_outbox)
        return int(conn.execute(query.where(mail_outbox.c.sent_at.is_(None))).scalar_one())


def logged_uuids(watch: Watch) -> list[str]:
    """Every round that ran to the end: stored (event=round) or spooled."""
    return [
        str(field(line, "uuid"))
        for line in watch.lines
        if " event=round " in line or " event=spooled " in line
    ]


def run_outage(
    tmp_path: Path,
    fleet: SimFleet,
    smtp: SmtpServer,
    url: str,
    real_url: str,
    cut: Callable[[], object],
    restore: Callable[[], object],
) -> None:
    config = outage_config(tmp_path, fleet, smtp, url)
    watch = Watch(config, "1s")
    try:
        watch.wait_for("event=round ")
        cut()
        watch.wait_for("event=spooled ", 3)
        restore()
        watch.wait_for("event=replayed ")
        replayed_in = len(watch.events("round_start"))
        watch.wait_for("event=round ", len(watch.events("round")) + 1)
        watch.proc.send_signal(signal.SIGTERM)
        code = watch.proc.wait(60)
    finally:
        restore()
        watch.stop()
    assert code == 0, watch.log
    spooled = [str(field(line, "uuid")) for line in watch.events("spooled")]
    ran = logged_uuids(watch)
    assert len(spooled) >= 3 and len(set(ran)) == len(ran)

    # Every round that ran is stored, once, in the order it ran, with its own times.
    stored = stored_rounds(real_url)
    assert [row.uuid for row in stored] == ran, watch.log
    assert [row.started_at for row in stored] == sorted(row.started_at for row in stored)
    late = [row for row in stored if row.replayed_at is not None]
    assert [row.uuid for row in late] == spooled
    delays = [(row.replayed_at - row.finished_at).total_seconds() for row in late]
    assert min(delays) > 0 and max(delays) > 1.5, delays  # stored late, its own times kept
    assert all(row.alerts_at is not None for row in stored)
    with Store(real_url) as store:
        assert (store.count("attempts"), store.count("samples")) == (2 * len(ran), 2 * len(ran))
    assert unsent_mail(real_url) == 0
    assert len(watch.events("replayed")) == 1, f"replayed in round {replayed_in}:\n{watch.log}"

    # The alert of each round that ran: one mail each, late for the spooled ones.
    alerts = [m for m in smtp.messages if m.rcpt_tos == (OWNER,)]
    ids = {str(m.message["Message-ID"]) for m in alerts}  # one per outbox row
    assert len(alerts) == len(ids) == len(ran), [m.subject for m in alerts]
    assert sum("Late:     sent" in m.body for m in alerts) == len(spooled)
    assert all(m.subject.startswith("[fleetstat] FIRING memory") for m in alerts)

    # The admin: one mail when the database had been away a while, one when back.
    admin = [m.subject for m in smtp.messages if m.rcpt_tos == (ADMIN,)]
    assert len(admin) == 2, admin
    assert admin[0].startswith("[fleetstat] DATABASE DOWN for ")
    assert admin[1].startswith("[fleetstat] DATABASE BACK after ")


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new database on the shared server named by the test's ``backend``."""
    yield from _server_database(request.param)


@pytest.mark.parametrize("server_url", ["postgresql", "mariadb"], indirect=True)
def test_a_database_server_away_for_several_rounds(
    tmp_path: Path, sim_fleet: SimFleet, smtp: SmtpServer, server_url: str
) -> None:
    database = sa.make_url(server_url)
    gate = Gate(database.host or "127.0.0.1", database.port or 0)
    try:
        proxied = gate.url(server_url)
        run_outage(tmp_path, sim_fleet, smtp, proxied, server_url, gate.cut, gate.restore)
    finally:
        gate.close()


def test_a_sqlite_file_made_unwritable_for_several_rounds(
    tmp_path: Path, sim_fleet: SimFleet, smtp: SmtpServer
) -> None:
    path = tmp_path / "fleetstat.db"
    url = f"sqlite:///{path}"
    frozen = contextlib.ExitStack()
    try:
        run_outage(
            tmp_path,
            sim_fleet,
            smtp,
            url,
            url,
            lambda: frozen.enter_context(immutable(path)),
            frozen.close,
        )
    finally:
        frozen.close()


# -- 2. kill -9 during a replay ------------------------------------------------------------

SPOOLED = 40


def spooled_rounds(config: Config, count: int) -> list[RoundResult]:
    """``count`` rounds of the config's hosts as an outage leaves them in the spool."""
    start = datetime.now(UTC) - timedelta(hours=1)
    made = []
    for n in range(count):
        at = start + timedelta(seconds=30 * n)
        results = tuple(
            HostResult(c, Status.OK, at, 0.5, document=checked(copy.deepcopy(DOCUMENT)))
            for c in config.clients
        )
        made.append(RoundResult(at, at + timedelta(seconds=1), results))
    return made


def stored_count(url: str) -> int:
    with Store(url) as store:
        return store.count("rounds")


@pytest.mark.parametrize("server_url", ["postgresql"], indirect=True)
def test_kill_9_during_a_replay_then_a_restart(
    tmp_path: Path, sim_fleet: SimFleet, smtp: SmtpServer, server_url: str
) -> None:
    """Acceptance 2: three replays killed at random moments once they are writing
    (in a round's transaction, between the round and its alerts, between the commit
    and the file's removal: wherever it lands), then watch starts again."""
    path = outage_config(tmp_path, sim_fleet, smtp, server_url)
    config = load_config(path)
    spool = Spool.for_config(config)
    made = spooled_rounds(config, SPOOLED)
    for spooled in made:
        spool.put(spooled, "database down")
    with Store(server_url) as store:
        store.upgrade()
    rng = random.Random()
    kills = 0
    while kills < 3 and spool.entries():
        before = stored_count(server_url)
        replaying = subprocess.Popen([FLEETSTAT, "spool", "replay", "-c", str(path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while stored_count(server_url) == before and replaying.poll() is None:
            assert time.monotonic() < deadline, "the replay wrote nothing"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        replaying.kill()  # SIGKILL: no clean-up of any kind
        _, err = replaying.communicate(timeout=30)
        kills += replaying.returncode == -signal.SIGKILL
        assert replaying.returncode in (0, -signal.SIGKILL), err
    assert kills == 3, "the replays ended before they could be killed"
    assert 0 < len(spool.entries()) < SPOOLED

    watch = Watch(path, "1h")  # the restart: replays the rest, then its own round
    try:
        watch.wait_for("event=round ")
        watch.proc.send_signal(signal.SIGTERM)
        code = watch.proc.wait(60)
    finally:
        watch.stop()
    assert code == 0, watch.log
    assert spool.entries() == []
    ran = [r.uuid for r in made] + logged_uuids(watch)
    stored = stored_rounds(server_url)
    assert [row.uuid for row in stored] == ran  # none lost, none twice, in order
    assert all(row.alerts_at is not None for row in stored)
    with Store(server_url) as store, store.engine.connect() as conn:
        kinds = conn.execute(sa.select(mail_outbox.c.kind, mail_outbox.c.client_ip)).all()
    assert len(kinds) == len(ran)  # one alert mail per round: none twice, none lost
    alerts = [m for m in smtp.messages if m.rcpt_tos == (OWNER,)]
    assert len({str(m.message["Message-ID"]) for m in alerts}) == len(alerts) == len(ran)


# -- 3. SIGTERM at random moments ---------------------------------------------------------

# Each trial is a new watch process (2-3 s on a quiet machine): CI runs the 50 of
# the acceptance, a run without CI 12 (FLEETSTAT_SIGTERM_TRIALS overrides both).
TRIALS = int(os.environ.get("FLEETSTAT_SIGTERM_TRIALS") or (50 if os.environ.get("CI") else 12))
PHASES = ("start-up", "round", "outage", "replay")
_LANDED = (*PHASES, "between rounds")


@pytest.mark.parametrize("server_url", ["postgresql"], indirect=True)
def test_sigterm_at_random_moments_exits_0_and_loses_nothing(
    tmp_path: Path, sim_fleet: SimFleet, smtp: SmtpServer, server_url: str
) -> None:
    """Acceptance 3: SIGTERM at random moments across start-up, rounds, an outage
    and the replay after it; exit 0 every time; in the end every round that ran
    is stored, once."""
    gate = Gate(*_host_port(server_url))
    path = outage_config(tmp_path, sim_fleet, smtp, gate.url(server_url))
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    ran: list[str] = []
    hit: dict[str, int] = dict.fromkeys(_LANDED, 0)
    try:
        for trial in range(TRIALS):
            phase = PHASES[trial % len(PHASES)]
            # An outage spools rounds; the next trial with the database back (the
            # "replay" one) writes them first, while its first round runs.
            (gate.cut if phase == "outage" else gate.restore)()
            watch = Watch(path, "0.5s")
            try:
                # Each phase from its own starting point, then a random moment:
                # start-up from the signal handler, the replay from the loop's
                # start (it runs while the first round's hosts answer), rounds
                # and the outage from the first round's start.
                if phase == "start-up":
                    watch.wait_for_signal_handler()
                    delay = rng.uniform(0, 0.6)
                elif phase == "replay":
                    watch.wait_for("event=watch_start ")
                    delay = rng.uniform(0, 0.6)
                else:
                    watch.wait_for("event=round_start ")
                    delay = rng.uniform(0, 1.5)
                time.sleep(delay)
                watch.proc.send_signal(signal.SIGTERM)
                code = watch.proc.wait(60)
            finally:
                watch.stop()
            where = f"trial {trial} ({phase}, {delay:.3f} s, seed {seed})"
            assert code == 0, f"{where}: exit {code}\n{watch.log}"
            assert watch.events("watch_stop"), f"{where}\n{watch.log}"
            ran += logged_uuids(watch)
            hit[_landed(watch, phase)] += 1
        gate.restore()
        done = subprocess.run([FLEETSTAT, "spool", "replay", "-c", str(path)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        gate.close()
    stored = stored_rounds(server_url)
    assert sorted(row.uuid for row in stored) == sorted(ran), f"seed {seed}"
    assert len(set(ran)) == len(ran)
    print(f"SIGTERM landed ({TRIALS} trials, seed {seed}): {hit}")  # shown with -s


def _host_port(url: str) -> tuple[str, int]:
    parsed = sa.make_url(url)
    return parsed.host or "127.0.0.1", int(parsed.port or 0)


def _landed(watch: Watch, phase: str) -> str:
    """Where the stop request found the process, read from its log."""
    order = [str(field(line, "event")) for line in watch.lines if " event=" in line]
    stop = order.index("stopping") if "stopping" in order else 0
    before = order[:stop]
    if "watch_start" not in before:
        return "start-up"  # caught before the loop ran
    if before[-1] != "round_start":
        return "between rounds"
    cut_short = any(" event=replayed " in ln and "stopped=True" in ln for ln in watch.lines)
    if cut_short:
        return "replay"
    return "outage" if phase == "outage" else "round"


# -- serve: /health says how deep the spool is ---------------------------------------------


@pytest.mark.parametrize("server_url", ["postgresql"], indirect=True)
def test_serve_health_shows_the_spool_during_an_outage(
    tmp_path: Path, sim_fleet: SimFleet, server_url: str
) -> None:
    """``serve`` runs the same rounds: with its database cut off they are spooled,
    ``/api/v1/health`` says so (503, the depth from the spool directory alone),
    and once it is back they are written and the depth is 0 again."""
    gate = Gate(*_host_port(server_url))
    path = serve_config(tmp_path, sim_fleet, [0], database_url=gate.url(server_url))
    served = Served(path, "--every", "0.5s")
    try:
        served.wait_for("event=round ")
        with served.client() as http:
            assert http.get("/api/v1/health").json()["spool_rounds"] == 0
            gate.cut()
            served.wait_for("event=spooled ", 2)
            down = http.get("/api/v1/health")
            assert down.status_code == 503 and down.json()["database"] == "unreachable"
            assert down.json()["spool_rounds"] >= 2 and down.json()["spool_dropped"] == 0
            gate.restore()
            served.wait_for("event=replayed ")
            served.wait_for("event=round ", served.count("event=round ") + 1)
            back = http.get("/api/v1/health").json()
            assert (back["database"], back["spool_rounds"]) == ("ok", 0)
        assert served.stop() == 0, served.log
    finally:
        served.kill()
        gate.close()
    spooled = [field(line, "uuid") for line in served.lines if " event=spooled " in line]
    stored = {row.uuid for row in stored_rounds(server_url)}
    assert spooled and set(spooled) <= stored


@pytest.mark.parametrize("server_url", ["postgresql"], indirect=True)
def test_serve_starts_with_its_database_away_and_catches_up(
    tmp_path: Path, sim_fleet: SimFleet, server_url: str
) -> None:
    """A database that does not answer when ``serve`` starts (nothing listens on
    its port) does not stop it: it listens, /api/v1/health says the database is
    unreachable, the rounds are spooled as ``collect`` spools them; once the
    database answers, the schema is made, the spool written and health is ok."""
    gate = Gate(*_host_port(server_url))
    gate.cut()  # a closed port: connections are refused
    path = serve_config(tmp_path, sim_fleet, [0], database_url=gate.url(server_url))
    served = Served(path, "--every", "0.5s")
    try:
        assert served.count("event=database_unreachable") == 1, served.log
        served.wait_for("event=spooled ", 2)
        with served.client() as http:
            down = http.get("/api/v1/health")
            assert down.status_code == 503, down.text
            assert (down.json()["status"], down.json()["database"]) == ("degraded", "unreachable")
            assert down.json()["spool_rounds"] >= 2
            refused = http.post("/api/v1/login", data={"username": "a", "password": "b"})
            assert refused.status_code == 503 and refused.json()["error"] == "database_unavailable"
            gate.restore()
            served.wait_for("event=database_ready")
            served.wait_for("event=replayed ")
            served.wait_for("event=round ", served.count("event=round ") + 1)
            back = http.get("/api/v1/health")
            assert back.status_code == 200, back.text
            assert (back.json()["database"], back.json()["spool_rounds"]) == ("ok", 0)
        assert served.stop() == 0, served.log
    finally:
        served.kill()
        gate.close()
    spooled = [field(line, "uuid") for line in served.lines if " event=spooled " in line]
    stored = {row.uuid for row in stored_rounds(server_url)}
    assert spooled and set(spooled) <= stored
    assert "Traceback" not in served.log


def test_serve_starts_beside_a_sqlite_file_it_cannot_lock_yet(tmp_path: Path) -> None:
    """SQLite's round lock is a file beside the database: a folder where it cannot
    be made (immutable here) is a database not ready yet, not a crash."""
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'fleetstat.db'}"
    with Store(url) as store:
        store.upgrade()
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f'<fleetstat><database url="{url}"/><key path="{tmp_path / "server.key"}"/>'
        '<client ip="10.0.0.1" username="u" password="p"/></fleetstat>'
    )
    path.chmod(0o600)
    with immutable(folder):
        served = Served(path, "--no-watch")
    try:
        (line,) = [line for line in served.lines if "event=database_unreachable" in line]
        assert "round lock" in line and "Traceback" not in served.log, served.log
        served.wait_for("event=database_ready")
        with served.client() as http:
            assert http.get("/api/v1/health").json()["database"] == "ok"
        assert served.stop() == 0, served.log
    finally:
        served.kill()


# -- the database gone while a round holds the round lock ------------------------------------


@pytest.mark.parametrize("server_url", ["postgresql", "mariadb"], indirect=True)
def test_the_database_gone_while_the_round_holds_its_lock(
    tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is a session of the database (an advisory lock, GET_LOCK): when the
    database goes away after the round took it, the round is spooled and says so;
    letting go of a lock the server already dropped is not the round's error."""
    from fleetstat import app, collector
    from fleetstat.transport import ProbeRun

    gate = Gate(*_host_port(server_url))
    real_open = app._open_for_round

    def open_then_cut(*args: object) -> object:
        opened = real_open(*args)  # type: ignore[arg-type]
        gate.cut()  # the lock's session and the store's connections break
        return opened

    async def no_host(*args: object) -> ProbeRun:
        return ProbeRun(b"", b"", 1)

    monkeypatch.setattr(app, "_open_for_round", open_then_cut)
    monkeypatch.setattr(app, "collect_round", functools.partial(collector.collect_round,
                                                                runner=no_host))  # fmt: skip
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{gate.url(server_url)}"/>
  <key path="{tmp_path / "server.key"}"/>
  <spool dir="{tmp_path / "spool"}"/>
  <client ip="192.0.2.10" username="u" password="p"/>
</fleetstat>""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    try:
        outcome = app.collect_once(load_config(path))
    finally:
        gate.close()
    assert outcome.round_id is None and outcome.spooled is not None, outcome
    assert Spool(tmp_path / "spool", 1).status().rounds == 1
