"""The coordinator: a ``<cluster>`` round, for ``watch``, ``serve`` and ``collect``.

1. Take the round lock (one round at a time per database, as a single-machine
   round), open the round's row, read the live workers (heartbeat rows).
2. Place the hosts (:mod:`fleetstat.cluster.placement`) and send one message per
   shard to its worker's queue.
3. Every ``POLL`` seconds read which shards committed and which workers live. A
   shard whose worker stopped or whose heartbeat is older than ``3 x heartbeat``
   is sent again, to the live worker of its zone that rendezvous hashing ranks
   next; the dead worker's message, if it is ever delivered, finds the shard
   committed and is dropped.
4. When every shard committed, or the round's deadline passed, close the round:
   each shard still open is written "missed" in its own transaction (the same
   ``(round, shard)`` key a worker's commit would take, so of the two exactly
   one writes), its hosts stored as ``shard_lost``, or ``zone_unavailable`` when
   their zone has no live worker. No host is forgotten.
5. Evaluate the alerts of the collected hosts, once (``rounds.alerts_at``), and
   send the mail: exactly once, here, after the round closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fleetstat.app import CollectOutcome, deliver_mail, require_round_secrets, round_holder
from fleetstat.cluster.placement import Shard, host_key, pick, plan_shards, queue_name
from fleetstat.cluster.worker import require_cluster
from fleetstat.config import Client, Config
from fleetstat.errors import BrokerError, DocumentError, StoreError
from fleetstat.model import HostResult, RoundResult, Status, new_round_uuid
from fleetstat.store import cluster as rows

if TYPE_CHECKING:
    import dramatiq

    from fleetstat.document import Document
    from fleetstat.store import Store

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between two looks at the round's shards


@dataclass
class _Round:
    """A coordinated round in flight."""

    round_id: int
    uuid: str
    started_at: datetime
    deadline: float  # time.time() after which the round closes
    shards: list[Shard]
    unplaced: dict[str, list[Client]]
    assigned: dict[int, str] = field(default_factory=dict)  # shard -> worker it was sent to
    messages: int = 0  # messages sent (the shards, and the shards sent again)
    unsent: dict[int, str] = field(default_factory=dict)  # shard -> why the broker refused it


class Coordinator:
    """Rounds of one config over its broker; the broker is made at the first round."""

    def __init__(self, config: Config, database_url: str | None = None) -> None:
        require_cluster(config, database_url)
        assert config.cluster is not None
        self.config = config
        self.cluster = config.cluster
        self.database_url = database_url
        self._broker: dramatiq.Broker | None = None
        self.last_messages = 0  # messages of the last round (bench/cluster_bench.py)
        self.last_shards: list[Shard] = []  # the last round's shards, as first placed

    def broker(self) -> dramatiq.Broker:
        if self._broker is None:
            from fleetstat.cluster.broker import make_broker

            self._broker = make_broker(self.cluster)
        return self._broker

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    def round_fn(self) -> Callable[[], Awaitable[CollectOutcome]]:
        """The watch loop's round: this coordinator's :meth:`run_round`."""

        async def one_round() -> CollectOutcome:
            return await self.run_round()

        return one_round

    async def run_round(self, *, now: datetime | None = None) -> CollectOutcome:
        """One round over the workers (see the module's docstring)."""
        from fleetstat.app import open_store
        from fleetstat.store.roundlock import RoundLock

        require_round_secrets(self.config, self.database_url)
        store = await asyncio.to_thread(open_store, self.config, self.database_url)
        try:
            lock = await asyncio.to_thread(RoundLock(store, round_holder()).acquire)
            try:
                await asyncio.to_thread(lock.announce)
                return await self._round(store, now)
            finally:
                await asyncio.to_thread(_release, lock)
        finally:
            await asyncio.to_thread(store.close)

    async def _round(self, store: Store, now: datetime | None) -> CollectOutcome:
        clients = self.config.clients
        started = datetime.now(UTC)
        uuid = new_round_uuid()
        limit = self.cluster.round_deadline(self.config.defaults.timeouts)
        round_id = await asyncio.to_thread(rows.open_round, store, uuid, started, len(clients))
        live = await asyncio.to_thread(self._live, store)
        shards, unplaced = plan_shards(clients, live, self.cluster.shard_size)
        state = _Round(round_id, uuid, started, time.time() + limit, shards, unplaced)
        for zone, missing in unplaced.items():
            log.warning("round %d: no live worker in zone %s: its %d host(s) are %s",
                        round_id, zone, len(missing), Status.ZONE_UNAVAILABLE)  # fmt: skip
        await asyncio.to_thread(self._send, state, shards)
        await self._wait(store, state)
        await asyncio.to_thread(self._close, store, state)
        self.last_messages, self.last_shards = state.messages, state.shards
        return await asyncio.to_thread(self._finish, store, state, now)

    # -- placing and sending -----------------------------------------------------------

    def _live(self, store: Store) -> dict[str, list[str]]:
        by_zone: dict[str, list[str]] = {}
        for worker in rows.live_workers(store, self.cluster.dead_after):
            by_zone.setdefault(worker.zone, []).append(worker.name)
        return by_zone

    def _send(self, state: _Round, shards: Sequence[Shard]) -> None:
        """Each shard to its worker's queue. A shard the broker does not take is
        remembered (``state.unsent``): the round does not wait for it, and its
        hosts are ``shard_lost`` at the close, with the broker's error."""
        from fleetstat.cluster.broker import broker_errors, shard_message

        max_age = max(1, int((state.deadline - time.time()) * 1000))
        sent: set[int] = set()
        try:
            with broker_errors(self.cluster, "send the round's shards"):
                broker = self.broker()
                for shard in shards:
                    worker = state.assigned.get(shard.number, shard.worker)
                    body = {
                        "round_id": state.round_id,
                        "round_uuid": state.uuid,
                        "shard": shard.number,
                        "zone": shard.zone,
                        "hosts": [list(host) for host in shard.hosts],
                        "deadline": state.deadline,
                    }
                    queue = queue_name(self.cluster.queue_prefix, shard.zone, worker)
                    broker.enqueue(shard_message(queue, body, max_age))
                    state.assigned[shard.number] = worker
                    state.messages += 1
                    sent.add(shard.number)
        except BrokerError as exc:
            log.error("round %d: %s", state.round_id, exc)
            for shard in shards:
                if shard.number not in sent:
                    state.unsent[shard.number] = str(exc)

    async def _wait(self, store: Store, state: _Round) -> None:
        """Until every shard is in, or the deadline; dead workers' shards move."""
        while time.time() < state.deadline:
            done = await asyncio.to_thread(rows.shard_outcomes, store, state.round_id)
            pending = [
                s for s in state.shards if s.number not in done and s.number not in state.unsent
            ]
            if not pending:
                return
            live = await asyncio.to_thread(self._live, store)
            moved = []
            for shard in pending:
                workers = live.get(shard.zone, [])
                if state.assigned[shard.number] in workers or not workers:
                    continue
                worker = pick(workers, host_key(*shard.hosts[0]))
                assert worker is not None
                log.warning(
                    "round %d: worker %s of zone %s is gone; its shard %d goes to %s",
                    state.round_id, state.assigned[shard.number], shard.zone, shard.number, worker,
                )  # fmt: skip
                state.assigned[shard.number] = worker
                moved.append(shard)
            if moved:
                await asyncio.to_thread(self._send, state, moved)
            await asyncio.sleep(POLL)

    # -- closing ---------------------------------------------------------------------------

    def _close(self, store: Store, state: _Round) -> None:
        """The shards still open, and the unplaced hosts, written as missed."""
        from fleetstat.store.roundwrite import write_shard

        done = rows.shard_outcomes(store, state.round_id)
        live = self._live(store)
        clients = {(c.ip, c.port): c for c in self.config.clients}
        missed: list[tuple[int, str, list[Client], Status, str]] = []
        for shard in state.shards:
            if shard.number in done:
                continue
            zone_gone = not live.get(shard.zone) and shard.number not in state.unsent
            status = Status.ZONE_UNAVAILABLE if zone_gone else Status.SHARD_LOST
            why = state.unsent.get(shard.number) or (
                f"no live worker of zone {shard.zone} (the last, "
                f"{state.assigned[shard.number]}, stopped or died mid-round)"
                if zone_gone
                else f"its shard {shard.number} (worker {state.assigned[shard.number]}) was "
                "not committed within the round's deadline"
            )
            missed.append((shard.number, shard.zone, [clients[h] for h in shard.hosts], status,
                           why))  # fmt: skip
        number = len(state.shards)
        for zone, zone_clients in sorted(state.unplaced.items()):
            why = (
                f"no live worker of zone {zone}: start one with "
                f"`fleetstat worker -c CONFIG --zone {zone}`"
            )
            missed.append((number, zone, zone_clients, Status.ZONE_UNAVAILABLE, why))
            number += 1
        now = datetime.now(UTC)
        for shard_number, zone, shard_clients, status, why in missed:
            result = RoundResult(
                started_at=state.started_at,
                finished_at=now,
                results=tuple(HostResult(c, status, now, 0.0, error=why) for c in shard_clients),
                uuid=state.uuid,
            )
            row = {
                "round_id": state.round_id, "shard": shard_number, "zone": zone, "worker": None,
                "outcome": "missed", "hosts": len(shard_clients), "committed_at": now,
                "seconds": None,
            }  # fmt: skip
            if write_shard(store, row, result) is not None:
                log.warning("round %d: %d host(s) of zone %s not collected: %s",
                            state.round_id, len(shard_clients), zone, why)  # fmt: skip
        rows.close_round(store, state.round_id, datetime.now(UTC))

    def _finish(self, store: Store, state: _Round, now: datetime | None) -> CollectOutcome:
        """Alerts once, on the collected hosts; then the mail."""
        from fleetstat.alerts import evaluate_round
        from fleetstat.hostfail import with_failures

        result = stored_round(store, self.config, state.round_id, state.uuid, state.started_at)
        collected = replace(result, results=tuple(r for r in result.results if r.status.collected))
        evaluation = evaluate_round(
            store, collected, defaults=self.config.defaults, now=now, once=True
        )
        if evaluation.failures:
            result = with_failures(result, "alerts", evaluation.failures)
            store.mark_failed(state.round_id, result, evaluation.failures)
        for address in evaluation.unaddressed:
            log.warning("alert for %s not mailed: the client has no mail address", address)
        outcome = CollectOutcome(
            round=result,
            round_id=state.round_id,
            database=store.display_url,
            alerts_firing=evaluation.firing,
        )
        try:
            return replace(outcome, **deliver_mail(self.config, store, now=now))
        except StoreError as exc:  # the round is stored; the mail waits in the outbox
            return replace(outcome, mail_error=str(exc))


def _release(lock: Any) -> None:
    try:
        lock.release()
    except StoreError as exc:
        log.info("round lock released by the database going away: %s", exc)


def stored_round(
    store: Store, config: Config, round_id: int, uuid: str, started_at: datetime
) -> RoundResult:
    """The round as its shards stored it: one result per attempt, with its document
    read back through the document boundary (a row is still a file on disk)."""
    clients: Mapping[tuple[str, int], Client] = {(c.ip, c.port): c for c in config.clients}
    results = []
    for row in rows.round_rows(store, round_id):
        key = (row.client_ip, row.client_port)
        client = clients.get(key) or Client(ip=key[0], port=key[1], name=row.client_name)
        document = None
        if row.document is not None and row.status == Status.OK:
            checked_at = row.started_at + timedelta(seconds=row.duration_seconds)
            try:
                document = _document(dict(row.document), checked_at, row.cpu_interval_percent)
            except DocumentError as exc:  # stored, so checked once: this host alone
                log.warning("round %d: %s:%d's stored document: %s; its alerts see no data",
                            round_id, key[0], key[1], exc)  # fmt: skip
        results.append(
            HostResult(
                client=client,
                status=Status(row.status),
                started_at=row.started_at,
                duration_seconds=row.duration_seconds,
                error=row.error,
                document=document,
                retries=row.retries,
                stderr=row.stderr,
            )
        )
    return RoundResult(started_at, datetime.now(UTC), tuple(results), uuid=uuid)


def _document(raw: dict[str, Any], checked_at: datetime, interval: float | None) -> Document:
    from fleetstat.document import Limits, check

    raw.pop("server_notes", None)
    cpu = raw.get("cpu")
    if isinstance(cpu, dict):
        cpu.pop("interval_percent", None)
    family = raw.get("security_events")
    events = family.get("events") if isinstance(family, dict) else None
    document = check(raw, Limits(events=len(events) if isinstance(events, list) else 0),
                     now=checked_at)  # fmt: skip
    if document.cpu is not None:
        document = replace(document, cpu=replace(document.cpu, interval_percent=interval))
    return document


async def run_cluster_round(
    config: Config,
    *,
    database_url: str | None = None,
    now: datetime | None = None,
    coordinator: Coordinator | None = None,
) -> CollectOutcome:
    """One coordinated round (``collect``); ``watch`` keeps one :class:`Coordinator`."""
    own = coordinator is None
    coordinator = coordinator or Coordinator(config, database_url)
    try:
        return await coordinator.run_round(now=now)
    finally:
        if own:
            await asyncio.to_thread(coordinator.close)
