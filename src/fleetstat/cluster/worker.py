"""``fleetstat worker``: one worker process of a ``<cluster>``.

- It writes a heartbeat row (``cluster_workers``) every ``heartbeat`` seconds; the
  coordinator places hosts only on workers whose heartbeat is recent.
- It consumes its own queue, ``<prefix>.<zone>.<name>``: the coordinator sends it
  the shards whose hosts rendezvous hashing puts on it, so a host stays on the
  same worker round after round.
- A shard runs with the collector of a single-machine round (``collect_round``
  on the shard's clients, read from this worker's own config), then is
  committed in ONE transaction with its ``(round, shard)`` row
  (:func:`fleetstat.store.roundwrite.write_shard`); a shard that is already
  there (a redelivery, or a round the coordinator closed) is dropped, and the
  message acknowledged, only after that.
- Its SSH connections are kept between rounds (``keep-connections``, as for
  ``watch``): placement sends a host to the same worker while it lives, so the
  next round runs the probe on a new channel of the same connection.
- SIGTERM or Ctrl-C: the shards in flight finish, the kept connections are
  closed, the row says "stopped" (the coordinator gives this worker's hosts to
  the others at once), exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import Middleware

from fleetstat.app import (
    connection_pool,
    load_or_create_key,
    open_store,
    require_round_secrets,
    round_probe,
)
from fleetstat.cluster.broker import make_broker, register_actor
from fleetstat.cluster.placement import clean_name, queue_name
from fleetstat.collector import collect_round, plan_round
from fleetstat.config import Client, Config
from fleetstat.config.model import DEFAULT_ZONE
from fleetstat.errors import StoreError, UsageError
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.store import cluster as rows
from fleetstat.transport import run_probe

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from fleetstat.store import Store

log = logging.getLogger(__name__)

DEFAULT_THREADS = 2  # shards one worker runs at once (each with <defaults concurrency>)


def require_cluster(config: Config, database_url: str | None) -> None:
    """``<cluster>`` is there, and the database is one the workers share."""
    if config.cluster is None:
        raise UsageError(
            f"{config.path} has no <cluster>: add "
            '<cluster broker="amqp://guest:guest@127.0.0.1:5672/"/> to run workers'
        )
    url = database_url or config.database_url
    if url.startswith("sqlite"):
        raise UsageError(
            "a <cluster> needs a database every worker and the coordinator reach: SQLite is "
            "a file on one machine; give --db postgresql://... (or mysql://...)"
        )


def default_name(zone: str) -> str:
    return clean_name(f"{socket.gethostname()}-{zone}-{os.getpid()}")


class ShardRunner:
    """What the shard actor does, with the worker's config, store and key."""

    def __init__(self, config: Config, store: Store, name: str) -> None:
        self.config = config
        self.store = store
        self.name = name
        # Kept SSH connections (transport/pool.py), used on Dramatiq's event loop only.
        self.pool = connection_pool(config)
        self.plan = plan_round(config, load_or_create_key(config.key_path), round_probe())
        self.clients: Mapping[tuple[str, int], Client] = {(c.ip, c.port): c for c in config.clients}

    async def actor(self, **body: Any) -> None:
        """The shard actor (Dramatiq discards what an actor returns)."""
        await self.run(**body)

    async def run(
        self,
        round_id: int,
        round_uuid: str,
        shard: int,
        zone: str,
        hosts: list[list[Any]],
        deadline: float,
    ) -> str:
        """Collect and commit one shard; what became of it (for the log and tests)."""
        if time.time() > deadline:
            log.warning("round %d shard %d: past the round's deadline, dropped", round_id, shard)
            return "late"
        if await asyncio.to_thread(rows.shard_known, self.store, round_id, shard):
            log.info("round %d shard %d: committed already, dropped", round_id, shard)
            return "known"
        wanted = [(str(ip), int(port)) for ip, port in hosts]
        t0 = time.monotonic()
        targets = [self.clients[key] for key in wanted if key in self.clients]
        previous, bookmarks = await asyncio.to_thread(self._read, wanted)
        plan = replace(self.plan, bookmarks=bookmarks)
        runner = self.pool.run_probe if self.pool is not None else run_probe
        result = await collect_round(self.config, plan, clients=targets, runner=runner)
        unknown = tuple(self._unknown(key) for key in wanted if key not in self.clients)
        result = replace(result, uuid=round_uuid, results=result.results + unknown)
        written = await asyncio.to_thread(
            self._commit, round_id, shard, zone, result, previous, time.monotonic() - t0
        )
        return "stored" if written else "known"

    def _read(self, hosts: list[tuple[str, int]]) -> tuple[Any, dict[tuple[str, int], str]]:
        from fleetstat.store.events import read_bookmarks

        return self.store.previous_cpu(hosts), read_bookmarks(self.store, hosts)

    def _commit(
        self,
        round_id: int,
        shard: int,
        zone: str,
        result: RoundResult,
        previous: Any,
        seconds: float,
    ) -> bool:
        from fleetstat.mail.events import queue_event_mail
        from fleetstat.metrics import fill_interval_cpu
        from fleetstat.store.roundwrite import write_shard

        result = fill_interval_cpu(result, previous)
        url = self.store.url

        def events_mail(conn: Connection, round_id: int, stored: RoundResult) -> Any:
            return queue_event_mail(conn, stored, round_id, url=url)

        row = {
            "round_id": round_id,
            "shard": shard,
            "zone": zone,
            "worker": self.name,
            "outcome": "stored",
            "hosts": len(result.results),
            "committed_at": datetime.now(UTC),
            "seconds": seconds,
        }
        written = write_shard(self.store, row, result, then=events_mail)
        if written is None:
            log.info("round %d shard %d: committed by another meanwhile, dropped", round_id, shard)
            return False
        rows.shard_done(self.store, self.name, seconds)
        log.info(
            "round %d shard %d: %d host(s) stored in %.2fs (%d ok)",
            round_id, shard, len(written.results), seconds, written.ok_count,
        )  # fmt: skip
        return True

    def _unknown(self, key: tuple[str, int]) -> HostResult:
        ip, port = key
        return HostResult(
            client=Client(ip=ip, port=port),
            status=Status.PROBE_ERROR,
            started_at=datetime.now(UTC),
            duration_seconds=0.0,
            error=(
                f"worker {self.name} has no client {ip}:{port} in {self.config.path}: the "
                "coordinator and the workers must read the same client list"
            ),
        )


class ClosePool(Middleware):
    """Closes the kept SSH connections when the worker stops: after its shards
    finished, on Dramatiq's event loop, before the AsyncIO middleware stops it
    (``after_`` hooks run in reverse order: this one is added after AsyncIO)."""

    def __init__(self, runner: ShardRunner) -> None:
        self.runner = runner

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        pool, thread = self.runner.pool, get_event_loop_thread()
        if pool is not None and thread is not None:
            thread.run_coroutine(pool.close())


class Heartbeat(threading.Thread):
    """Writes the worker's heartbeat row every ``every`` seconds until stopped."""

    def __init__(self, store: Store, name: str, zone: str, every: float) -> None:
        super().__init__(name="fleetstat-heartbeat", daemon=True)
        self.store, self.worker, self.zone, self.every = store, name, zone, every
        self.started_at = datetime.now(UTC)
        self.halt = threading.Event()

    def beat(self, *, first: bool = False) -> None:
        rows.heartbeat(self.store, self.worker, self.zone, hostname=socket.gethostname(),
                       pid=os.getpid(), started_at=self.started_at, first=first)  # fmt: skip

    def run(self) -> None:
        while not self.halt.wait(self.every):
            try:
                self.beat()
            except StoreError as exc:  # the database is away: the coordinator sees us dead
                log.warning("heartbeat not written: %s", exc)


def run_worker(
    config: Config,
    *,
    zone: str | None = None,
    name: str | None = None,
    threads: int = DEFAULT_THREADS,
    database_url: str | None = None,
    ready: threading.Event | None = None,
) -> int:
    """Run until SIGTERM or SIGINT; the exit code."""
    require_cluster(config, database_url)
    assert config.cluster is not None
    require_round_secrets(config, database_url)
    zone = zone or DEFAULT_ZONE
    name = clean_name(name) if name else default_name(zone)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _signum, _frame: stop.set())
    with open_store(config, database_url) as store:
        runner = ShardRunner(config, store, name)
        broker = make_broker(config.cluster)
        queue = queue_name(config.cluster.queue_prefix, zone, name)
        register_actor(broker, runner.actor, queue)
        broker.add_middleware(ClosePool(runner))
        broker.declare_queue(queue)
        heartbeat = Heartbeat(store, name, zone, config.cluster.heartbeat)
        heartbeat.beat(first=True)
        worker = dramatiq.Worker(broker, queues={queue}, worker_threads=max(1, threads))
        worker.start()
        heartbeat.start()
        log.info("worker %s of zone %s: consuming %s", name, zone, queue)
        if ready is not None:
            ready.set()
        try:
            stop.wait()
        finally:
            heartbeat.halt.set()
            worker.stop()
            broker.close()
            try:
                rows.worker_stopped(store, name)
            except StoreError as exc:
                log.warning("%s", exc)
    log.info("worker %s stopped", name)
    return 0
