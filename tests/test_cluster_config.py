"""``<cluster>`` and ``zone=`` in the config, the placement of hosts on workers (pure),
and single-machine use untouched: without ``<cluster>`` nothing loads the broker code."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _server_database
from fleet_fixtures import fleet_config

from fleetstat.cluster.coordinator import run_cluster_round
from fleetstat.cluster.placement import pick, plan_shards
from fleetstat.config import Client, Cluster, Config, Timeouts, load_config
from fleetstat.errors import ConfigError, ConfigIssue
from fleetstat.model import Status
from fleetstat.simfleet import SimFleet
from fleetstat.store import Store
from fleetstat.store import cluster as rows
from fleetstat.watch import watcher_for

PG = "postgresql://fleetstat@db.example.com/fleetstat"
RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


def write(tmp_path: Path, body: str, database: str = PG) -> Path:
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        textwrap.dedent(
            f"""\
            <fleetstat>
              <database url="{database}"/>
            {textwrap.indent(textwrap.dedent(body).strip(), "  ")}
            </fleetstat>
            """
        ),
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def issues(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return caught.value.issues


def test_cluster_and_zones_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <cluster broker="amqp://guest:guest@127.0.0.1:5672/" shard-size="25" deadline="5m"
                 heartbeat="1s" queue-prefix="fs-test"/>
        <client ip="10.0.0.1" username="u" password="p" zone="dc2"/>
        <client ip="10.0.0.2" username="u" password="p"/>
        """,
    )
    config = load_config(path, env={})
    assert config.cluster == Cluster(
        "amqp://guest:guest@127.0.0.1:5672/", shard_size=25, deadline=300.0, heartbeat=1.0,
        queue_prefix="fs-test",
    )  # fmt: skip
    assert [c.zone for c in config.clients] == ["dc2", "default"]
    assert config.cluster.kind == "rabbitmq" and config.cluster.dead_after == 3.0
    redis = Cluster("redis://127.0.0.1:6379/0")
    assert redis.kind == "redis"
    # Without deadline=: twice the hosts' deadline, and 4 heartbeats to notice a death.
    assert redis.round_deadline(Timeouts(connect=10, run=60)) == 2 * 70 + 4 * 2.0


def test_without_cluster_nothing_changes(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '<client ip="10.0.0.1" username="u" password="p"/>'))
    assert config.cluster is None and config.clients[0].zone == "default"


def test_zone_without_cluster_warns(tmp_path: Path) -> None:
    path = write(tmp_path, '<client ip="10.0.0.1" username="u" password="p" zone="dc2"/>')
    config = load_config(path, env={})
    assert any("zone=" in w and "<cluster>" in w for w in config.warnings), config.warnings


def test_sqlite_is_refused_with_a_cluster(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <cluster broker="amqp://127.0.0.1/"/>
        <client ip="10.0.0.1" username="u" password="p"/>
        """,
        database="sqlite:///fleetstat.db",
    )
    (issue,) = issues(path)
    assert issue.line == 3 and issue.file == str(path)
    assert "SQLite" in issue.message and "postgresql://" in (issue.fix or "")


@pytest.mark.parametrize(
    ("attributes", "line", "words"),
    [
        ('broker="http://rabbit/"', 3, ("scheme", "amqp://")),
        ('broker="amqp://"', 3, ("names no host", "amqp://")),
        ('brokr="amqp://x/"', 3, ("brokr", "broker")),
        ('broker="amqp://x/" shard-size="0"', 3, ("shard-size", "1..10000")),
        ('broker="amqp://x/" deadline="soon"', 3, ("deadline", "duration")),
        ('broker="amqp://x/" heartbeat="10s" deadline="20s"', 3, ("3 heartbeats", "deadline")),
        ('broker="amqp://x/" queue-prefix="a b"', 3, ("queue prefix", "letters")),
    ],
)
def test_a_bad_cluster_value_names_file_line_and_fix(
    tmp_path: Path, attributes: str, line: int, words: tuple[str, str]
) -> None:
    path = write(
        tmp_path, f'<cluster {attributes}/>\n<client ip="10.0.0.1" username="u" password="p"/>'
    )
    found = issues(path)
    assert len(found) >= 1
    issue = found[0]
    text = f"{issue.message} {issue.fix}"
    assert issue.file == str(path) and issue.line == line, found
    assert all(word in text for word in words), text


def test_a_bad_zone_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <cluster broker="amqp://x/"/>
        <client ip="10.0.0.1" username="u" password="p"/>
        <client ip="10.0.0.2" username="u" password="p" zone="dc 2"/>
        """,
    )
    (issue,) = issues(path)
    assert issue.line == 5 and "zone" in issue.message and 'zone="dc2"' in (issue.fix or "")


# -- placement ----------------------------------------------------------------------------


def clients(count: int, zone: str = "default") -> list[Client]:
    return [Client(ip=f"10.0.{i // 250}.{i % 250 + 1}", zone=zone) for i in range(count)]


def placed(shards: list) -> dict[tuple[str, int], str]:
    return {host: shard.worker for shard in shards for host in shard.hosts}


def test_hosts_stay_on_their_worker_and_only_a_dead_workers_hosts_move() -> None:
    fleet = clients(600)
    before, _ = plan_shards(fleet, {"default": ["w1", "w2", "w3"]}, 50)
    again, _ = plan_shards(fleet, {"default": ["w3", "w1", "w2"]}, 50)
    assert placed(before) == placed(again), "the same workers: the same placement"
    shares = Counter(placed(before).values())
    assert all(150 <= n <= 250 for n in shares.values()), shares  # roughly even
    after, _ = plan_shards(fleet, {"default": ["w1", "w3"]}, 50)
    moved = {h for h, w in placed(after).items() if placed(before)[h] != w}
    assert moved == {h for h, w in placed(before).items() if w == "w2"}
    assert all(len(shard.hosts) <= 50 for shard in before)
    assert sorted(s.number for s in before) == list(range(len(before)))


def test_a_zone_without_workers_is_unplaced_not_forgotten() -> None:
    fleet = clients(10) + clients(5, "dc2")
    shards, unplaced = plan_shards(fleet, {"default": ["w1"]}, 4)
    assert sum(len(s.hosts) for s in shards) == 10 and {s.zone for s in shards} == {"default"}
    assert [c.zone for c in unplaced["dc2"]] == ["dc2"] * 5
    assert pick([], "x") is None


# -- acceptance 3: single-machine use imports no broker code -------------------------------

CHECK = """
import asyncio, sys
from fleetstat.app import collect_once
from fleetstat.config import load_config
from fleetstat.watch import watcher_for
config = load_config(sys.argv[1])
outcome = collect_once(config)
watcher = watcher_for(config, 60.0, max_rounds=1)
asyncio.run(watcher.run())
broker_code = ("dramatiq", "pika", "redis")
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in broker_code or m.startswith("fleetstat.cluster"))
print("rounds", outcome.round.ok_count, watcher.stats.rounds)
print("loaded", loaded)
"""


@pytest.mark.sshd
def test_without_cluster_collect_and_watch_import_no_broker_code(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    config = fleet_config(tmp_path, sim_fleet, [0, 1])
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(config.path)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rounds 2 1" in done.stdout, done.stdout + done.stderr
    assert "loaded []" in done.stdout, done.stdout


# -- the coordinator without workers or without a broker (PostgreSQL, no sshd) -------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _server_database("postgresql")


def coordinated(tmp_path: Path, url: str, broker: str) -> Config:
    path = write(
        tmp_path,
        f"""
        <cluster broker="{broker}" heartbeat="1s" queue-prefix="fst{secrets.token_hex(4)}"/>
        <client ip="192.0.2.1" username="u" password="p"/>
        <client ip="192.0.2.2" username="u" password="p" zone="dc2"/>
        """,
        database=url,
    )
    return load_config(path, env={})


def test_with_the_broker_down_every_host_is_marked_and_the_password_never_shown(
    tmp_path: Path, pg_url: str
) -> None:
    config = coordinated(tmp_path, pg_url, "amqp://guest:s3cret@127.0.0.1:1/")
    with Store(pg_url) as store:
        store.upgrade()
        now = datetime.now(UTC)
        rows.heartbeat(store, "w1", "default", hostname="h", pid=1, started_at=now, first=True)
    outcome = asyncio.run(run_cluster_round(config))
    status = {r.client.ip: (r.status, r.error or "") for r in outcome.round.results}
    assert status["192.0.2.1"][0] is Status.SHARD_LOST
    assert "message broker amqp://guest:***@127.0.0.1:1/" in status["192.0.2.1"][1]
    assert status["192.0.2.2"][0] is Status.ZONE_UNAVAILABLE
    assert "fleetstat worker -c CONFIG --zone dc2" in status["192.0.2.2"][1]
    assert all("s3cret" not in error for _, error in status.values())
    assert outcome.round_id is not None and outcome.alerts_firing == 0


def test_without_any_worker_the_round_is_marked_at_once_and_imports_no_broker(
    tmp_path: Path, pg_url: str
) -> None:
    config = coordinated(tmp_path, pg_url, RABBIT)
    watcher = watcher_for(config, 60.0, max_rounds=1)  # watch and serve: the coordinator
    t0 = time.monotonic()
    asyncio.run(watcher.run())
    assert watcher.stats.rounds == 1
    assert time.monotonic() - t0 < 30, "no worker at the start: marked at once, not waited out"
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        statuses = sorted(conn.scalars(sa.text("SELECT status FROM attempts")))
        total, failed = conn.execute(sa.text("SELECT hosts_total, hosts_failed FROM rounds")).one()
    assert statuses == ["zone_unavailable", "zone_unavailable"] and (total, failed) == (2, 2)


FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


def fleetstat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETSTAT, *args], capture_output=True, text=True, timeout=120)


def test_collect_with_a_cluster_coordinates_and_says_what_no_worker_took(
    tmp_path: Path, pg_url: str
) -> None:
    config = coordinated(tmp_path, pg_url, RABBIT)
    done = fleetstat("collect", "-c", str(config.path))
    assert done.returncode == 1, done.stderr  # hosts failed: nobody collected them
    assert done.stdout.count("zone_unavailable") == 2, done.stdout
    assert "round 1: 0/2 ok" in done.stdout


def test_a_worker_needs_a_cluster_and_a_shared_database(tmp_path: Path) -> None:
    plain = write(tmp_path, '<client ip="10.0.0.1" username="u" password="p"/>')
    done = fleetstat("worker", "-c", str(plain))
    assert done.returncode == 2 and "has no <cluster>" in done.stderr, done.stderr
    clustered = coordinated(tmp_path, PG, RABBIT)
    done = fleetstat("worker", "-c", str(clustered.path), "--db", f"sqlite:///{tmp_path}/x.db")
    assert done.returncode == 2 and "SQLite" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
