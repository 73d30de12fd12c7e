"""Rounds shared by worker processes (issue 17, acceptance 1), with the real parts:
RabbitMQ on 127.0.0.1:5672 (one test on Redis, 127.0.0.1:6379), PostgreSQL, a real
sshd serving 300 simulated hosts, real ``fleetstat worker`` processes, and the
coordinator of ``watch``/``serve`` (:class:`fleetstat.cluster.coordinator.Coordinator`).

Each test has its own database and its own queue prefix (RabbitMQ) or namespace
(Redis), deleted afterwards: two copies of the suite never share a queue.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _server_database
from fleet_fixtures import CONNECT_TIMEOUT, RUN_TIMEOUT, start_fleet
from smtp_fixtures import SmtpServer

from fleetstat.app import CollectOutcome
from fleetstat.cluster.coordinator import Coordinator
from fleetstat.cluster.placement import plan_shards
from fleetstat.config import Config, load_config
from fleetstat.simfleet import SimFleet

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
REDIS = "redis://127.0.0.1:6379/0"
HOSTS = 300
# A worker is taken for dead after 3 heartbeats: 6 s, which a loaded machine (two
# copies of the suite) never makes a live worker miss.
HEARTBEAT = 2.0
KILL_HOSTS = 150  # the kill -9 test: 3 workers, 2 shards each in flight, more queued
ALERTING = set(range(0, KILL_HOSTS, 15))  # 10 hosts whose memory alert fires at once


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the cluster tests", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimFleet]:
    # LogLevel INFO: sshd logs each accepted login (SimFleet.accepted_logins).
    fleet = start_fleet(tmp_path_factory.mktemp("cluster-fleet"), count=HOSTS, log_level="INFO")
    yield fleet
    fleet.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _server_database("postgresql")


@pytest.fixture(params=["postgresql", "mariadb"])
def server_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """PostgreSQL, then MariaDB: the store a cluster supports."""
    yield from _server_database(str(request.param))


@pytest.fixture
def prefix() -> str:
    return f"fst{secrets.token_hex(5)}"


def write_config(
    folder: Path,
    fleet: SimFleet,
    database_url: str,
    broker: str,
    prefix: str,
    *,
    indices: range | list[int] = range(HOSTS),
    zones: dict[int, str] | None = None,
    smtp: SmtpServer | None = None,
    shard_size: int = 20,
) -> Config:
    zones = zones or {}
    clients = []
    for i in indices:
        host = fleet.hosts[i]
        zone = f' zone="{zones[i]}"' if i in zones else ""
        alert = '<alert type="memory" limit="1%"/>' if i in ALERTING else ""
        clients.append(
            f'<client ip="{host.address}" port="{fleet.port}" username="{fleet.user}" '
            f'key="{fleet.client_key}" mail="ops{i}@example.com" name="sim-{i:03d}"{zone}>'
            f"{alert}</client>"
        )
    path = folder / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{database_url}"/>
  <key path="{folder / "server.key"}"/>
  {smtp.xml() if smtp else ""}
  <defaults concurrency="50" connect-timeout="{CONNECT_TIMEOUT}s" run-timeout="{RUN_TIMEOUT}s"
            host-keys="strict" known-hosts="{fleet.known_hosts}"/>
  <cluster broker="{broker}" shard-size="{shard_size}" heartbeat="{HEARTBEAT:g}s"
           queue-prefix="{prefix}"/>
{chr(10).join(clients)}
</fleetstat>
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_config(path)


@dataclass
class Workers:
    """``fleetstat worker`` processes; stopped (and their queues deleted) at the end."""

    config: Config
    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, zone: str = "default") -> None:
        command = [FLEETSTAT, "worker", "-c", str(self.config.path), "--name", name]
        with (self.folder / f"{name}.log").open("wb") as log:
            self.procs[name] = subprocess.Popen([*command, "--zone", zone], stderr=log)
        self.zones[name] = zone

    def wait_live(self, engine: sa.Engine, timeout: float = 150) -> None:
        """Until every started worker's heartbeat row is there (a worker imports
        SQLAlchemy and Dramatiq and opens the store first: over a minute was seen
        with the machine at a load of 25)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"worker {name} exited: {self.log(name)}"
            try:
                with engine.connect() as conn:
                    names = set(conn.scalars(sa.text("SELECT name FROM cluster_workers")))
                if set(self.procs) <= names:
                    return
            except sa.exc.ProgrammingError:  # the first worker is making the tables
                pass
            time.sleep(0.2)
        raise AssertionError(f"workers not live: {[self.log(n) for n in self.procs]}")

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                assert proc.wait(timeout=60) in (0, -signal.SIGKILL), self.log(name)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise

    def forget_queues(self, prefix: str) -> None:
        assert self.config.cluster is not None
        if self.config.cluster.kind == "redis":
            import redis

            client = redis.Redis.from_url(self.config.cluster.broker)
            for key in client.scan_iter(f"{prefix}*"):
                client.delete(key)
            client.close()
            return
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.config.cluster.broker))
        channel = connection.channel()
        for name, zone in self.zones.items():
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{prefix}.{zone}.{name}{suffix}")
        connection.close()


@pytest.fixture
def workers_for(tmp_path: Path, prefix: str) -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for workers in made:
        try:
            workers.stop()
        finally:
            workers.forget_queues(prefix)


def broker_up(url: str) -> None:
    try:
        if url.startswith("redis"):
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=5).ping()
        else:
            import pika

            pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception as exc:
        _unavailable(f"broker {url} unreachable: {exc}")


def start_workers(
    made: list[Workers], config: Config, folder: Path, names: dict[str, str]
) -> tuple[Workers, sa.Engine]:
    workers = Workers(config, folder)
    made.append(workers)
    engine = sa.create_engine(config.database_url, poolclass=sa.pool.NullPool)
    first, *others = names.items()
    workers.start(*first)  # the first makes the tables (db upgrade); the others wait
    workers.wait_live(engine)
    for name, zone in others:
        workers.start(name, zone)
    workers.wait_live(engine)
    return workers, engine


def attempts_of(engine: sa.Engine, round_id: int) -> list[tuple[str, int, str]]:
    query = "SELECT client_ip, client_port, status FROM attempts WHERE round_id = :r"
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query), {"r": round_id})]


def assert_every_host_once(engine: sa.Engine, outcome: CollectOutcome, hosts: int) -> None:
    assert outcome.round_id is not None
    rows = attempts_of(engine, outcome.round_id)
    per_host = Counter((ip, port) for ip, port, _ in rows)
    assert len(per_host) == hosts and set(per_host.values()) == {1}, per_host.most_common(3)
    assert Counter(status for _, _, status in rows) == {"ok": hosts}
    with engine.connect() as conn:
        samples = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT client_ip) FROM samples WHERE round_id = :r"),
            {"r": outcome.round_id},
        ).one()
        total, ok = conn.execute(
            sa.text("SELECT hosts_total, hosts_ok FROM rounds WHERE id = :r"),
            {"r": outcome.round_id},
        ).one()
    assert tuple(samples) == (hosts, hosts)
    assert (total, ok) == (hosts, hosts)


def assert_hourly_counts_each_sample_once(engine: sa.Engine) -> None:
    """The hourly aggregates (revision 0010), kept by the shards' transactions, count
    every stored sample of every host once: none twice (a redelivered shard), none lost."""
    per_host = "SELECT client_ip, client_port, {} FROM {} GROUP BY client_ip, client_port"
    with engine.connect() as conn:
        stored = dict(
            ((ip, port), int(n))
            for ip, port, n in conn.execute(sa.text(per_host.format("count(*)", "samples")))
        )
        hourly = dict(
            ((ip, port), int(n))
            for ip, port, n in conn.execute(
                sa.text(per_host.format("sum(sample_count)", "samples_hourly"))
            )
        )
    assert stored and hourly == stored


def placement(engine: sa.Engine, coordinator: Coordinator, round_id: int) -> dict[object, str]:
    """Which worker committed each host in ``round_id``."""
    with engine.connect() as conn:
        by_shard = dict(
            conn.execute(
                sa.text("SELECT shard, worker FROM cluster_shards WHERE round_id = :r"),
                {"r": round_id},
            ).all()
        )
    return {
        host: by_shard[shard.number] for shard in coordinator.last_shards for host in shard.hosts
    }


# -- the tests --------------------------------------------------------------------------


def test_three_workers_collect_300_hosts_over_three_rounds_each_host_once(
    tmp_path: Path, fleet: SimFleet, pg_url: str, prefix: str, workers_for: list[Workers]
) -> None:
    broker_up(RABBITMQ)
    config = write_config(tmp_path, fleet, pg_url, RABBITMQ, prefix)
    workers, engine = start_workers(
        workers_for, config, tmp_path, {"w1": "default", "w2": "default", "w3": "default"}
    )
    coordinator = Coordinator(config)
    logins_before = fleet.accepted_logins()

    async def rounds() -> list[tuple[CollectOutcome, dict[object, str]]]:
        done = []
        for _ in range(3):
            outcome = await coordinator.run_round()
            assert outcome.round_id is not None
            done.append((outcome, placement(engine, coordinator, outcome.round_id)))
        return done

    try:
        done = asyncio.run(rounds())
    finally:
        coordinator.close()
    for outcome, _ in done:
        assert_every_host_once(engine, outcome, HOSTS)
    assert_hourly_counts_each_sample_once(engine)
    placed = [where for _, where in done]
    assert len(placed[0]) == HOSTS and set(placed[0].values()) == {"w1", "w2", "w3"}
    assert placed[0] == placed[1] == placed[2], "a host stays on its worker while it lives"
    # ... so its kept connection is used again: a login per host in the first round,
    # (nearly) none after (a connection may be replaced when it went stale).
    logins = fleet.accepted_logins() - logins_before
    assert HOSTS <= logins < HOSTS + HOSTS // 10, logins
    # One message per shard, none sent twice: shard-size 20 -> at least 15 shards.
    assert coordinator.last_messages == len(coordinator.last_shards) >= HOSTS // 20
    # fleetstat cluster status: the three workers, live, with their shard times.
    shown = subprocess.run(
        [FLEETSTAT, "cluster", "status", "-c", str(config.path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "zone default: 300 host(s), 3 live worker(s)" in shown.stdout
    for name in ("w1", "w2", "w3"):
        assert any(line.startswith(name) and " live " in line for line in shown.stdout.splitlines())
    assert workers.procs["w1"].poll() is None


def test_a_worker_killed_mid_round_costs_no_host_and_no_mail_twice(
    tmp_path: Path,
    fleet: SimFleet,
    pg_url: str,
    prefix: str,
    workers_for: list[Workers],
    smtp_server: SmtpServer,
) -> None:
    broker_up(RABBITMQ)
    config = write_config(
        tmp_path, fleet, pg_url, RABBITMQ, prefix, smtp=smtp_server, indices=range(KILL_HOSTS)
    )
    workers, engine = start_workers(
        workers_for, config, tmp_path, {"w1": "default", "w2": "default", "w3": "default"}
    )
    coordinator = Coordinator(config)
    killed: list[str] = []

    # The coordinator places the round as the three live workers make it: which
    # worker holds which shards is known before the round starts.
    planned, _ = plan_shards(config.clients, {"default": ["w1", "w2", "w3"]}, 20)
    failures: list[BaseException] = []

    def kill_one_mid_round() -> None:
        """As soon as the round's first shard committed, kill -9 the worker with the
        most shards not committed yet (in flight and queued): on a slow machine every
        worker may have committed one by the time this thread looks."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT shard FROM cluster_shards WHERE round_id = "
                        "(SELECT max(id) FROM rounds)"
                    )
                ).all()
            if rows:
                committed = {shard for (shard,) in rows}
                open_shards = Counter(s.worker for s in planned if s.number not in committed)
                if not open_shards:
                    raise AssertionError("every shard committed before the kill")
                victim = max(sorted(open_shards), key=lambda name: open_shards[name])
                workers.kill(victim)
                killed.append(victim)
                return
            time.sleep(0.05)

    def killer_thread() -> None:
        try:
            kill_one_mid_round()
        except BaseException as exc:  # reported by the test, not lost in a thread
            failures.append(exc)

    async def rounds() -> tuple[CollectOutcome, float, int, CollectOutcome, float]:
        killer = threading.Thread(target=killer_thread)
        t0 = time.monotonic()
        killer.start()
        broken = await coordinator.run_round()
        broken_wall = time.monotonic() - t0
        broken_messages = coordinator.last_messages
        await asyncio.to_thread(killer.join)
        t1 = time.monotonic()
        healthy = await coordinator.run_round()
        return broken, broken_wall, broken_messages, healthy, time.monotonic() - t1

    try:
        broken, broken_wall, messages, healthy, healthy_wall = asyncio.run(rounds())
    finally:
        coordinator.close()
    assert not failures, failures
    assert len(killed) == 1, "a worker was killed mid-round"
    assert_every_host_once(engine, broken, KILL_HOSTS)
    assert messages > len(coordinator.last_shards), "the dead worker's shards were sent again"
    assert_every_host_once(engine, healthy, KILL_HOSTS)
    assert_hourly_counts_each_sample_once(engine)  # the dead worker's shards sent again
    # The killed round took at most one run-timeout more than a healthy round.
    assert broken_wall <= healthy_wall + RUN_TIMEOUT, (broken_wall, healthy_wall)
    # Mail: the alerting hosts' alert went out once each, in the first round only.
    subjects = Counter(m.rcpt_tos for m in smtp_server.messages)
    assert sorted(subjects) == sorted((f"ops{i}@example.com",) for i in ALERTING)
    assert set(subjects.values()) == {1}, subjects
    with engine.connect() as conn:
        outbox = conn.execute(sa.text("SELECT count(*) FROM mail_outbox")).scalar_one()
    assert outbox == len(ALERTING)


def test_a_zone_without_a_live_worker_is_marked_and_the_rest_stored(
    tmp_path: Path, fleet: SimFleet, server_db: str, prefix: str, workers_for: list[Workers]
) -> None:
    broker_up(RABBITMQ)
    indices = list(range(60))
    zones = {i: "dc2" for i in range(40, 60)}
    config = write_config(
        tmp_path, fleet, server_db, RABBITMQ, prefix, indices=indices, zones=zones
    )
    _, engine = start_workers(workers_for, config, tmp_path, {"w1": "default", "w2": "default"})
    coordinator = Coordinator(config)
    try:
        t0 = time.monotonic()
        outcome = asyncio.run(coordinator.run_round())
        wall = time.monotonic() - t0
    finally:
        coordinator.close()
    assert outcome.round_id is not None
    statuses = {(ip, port): status for ip, port, status in attempts_of(engine, outcome.round_id)}
    assert len(statuses) == 60
    assert_hourly_counts_each_sample_once(engine)
    for i in indices:
        key = (fleet.hosts[i].address, fleet.port)
        assert statuses[key] == ("zone_unavailable" if i in zones else "ok"), i
    zone_rows = [r for r in outcome.round.results if r.client.zone == "dc2"]
    assert zone_rows and all("no live worker of zone dc2" in (r.error or "") for r in zone_rows)
    # Not waited out: a zone with no worker at the start is marked at once.
    deadline = config.cluster.round_deadline(config.defaults.timeouts) if config.cluster else 0
    assert wall < deadline / 2
    shown = subprocess.run(
        [FLEETSTAT, "cluster", "status", "-c", str(config.path), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 1, "a zone with hosts and no live worker"
    assert '"zone": "dc2"' in shown.stdout and '"live_workers": []' in shown.stdout


def test_on_redis_two_workers_store_every_host_once(
    tmp_path: Path, fleet: SimFleet, pg_url: str, prefix: str, workers_for: list[Workers]
) -> None:
    broker_up(REDIS)
    config = write_config(tmp_path, fleet, pg_url, REDIS, prefix, indices=range(60))
    _, engine = start_workers(workers_for, config, tmp_path, {"r1": "default", "r2": "default"})
    coordinator = Coordinator(config)
    try:
        outcome = asyncio.run(coordinator.run_round())
    finally:
        coordinator.close()
    assert_every_host_once(engine, outcome, 60)
    placed = placement(engine, coordinator, outcome.round_id or 0)
    assert set(placed.values()) == {"r1", "r2"}
