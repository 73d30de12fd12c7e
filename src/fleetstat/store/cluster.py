"""``<cluster>``'s rows: workers' heartbeats, a coordinated round's row and shards.

The SQL of :mod:`fleetstat.cluster` (the store is the only part that speaks SQL).
A coordinated round is one ``rounds`` row that the coordinator opens before the
shards go out; each worker writes its shard's hosts into it in one transaction
with the shard's ``cluster_shards`` row (:func:`fleetstat.store.roundwrite.write_shard`);
the coordinator closes it with the counts of what was written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from fleetstat.model import RoundResult
from fleetstat.store.core import Store
from fleetstat.store.roundwrite import _insert_round
from fleetstat.store.schema import (
    attempts,
    cluster_shards,
    cluster_workers,
    rounds,
    samples,
)


@dataclass(frozen=True)
class WorkerRow:
    name: str
    zone: str
    hostname: str | None
    pid: int | None
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    shards_done: int
    last_shard_at: datetime | None
    last_shard_seconds: float | None


def heartbeat(
    store: Store,
    name: str,
    zone: str,
    *,
    hostname: str,
    pid: int,
    started_at: datetime,
    now: datetime | None = None,
    first: bool = False,
) -> None:
    """Insert or refresh this worker's row (its last heartbeat is ``now``); ``first``:
    the process just started (a worker restarted under its old name)."""
    now = now or datetime.now(UTC)
    values: dict[str, object] = {
        "zone": zone, "hostname": hostname, "pid": pid, "last_seen": now, "stopped_at": None,
    }  # fmt: skip
    if first:
        values["started_at"] = started_at
    with store.errors("write the worker's heartbeat"), store.engine.begin() as conn:
        seen = conn.execute(
            sa.update(cluster_workers).where(cluster_workers.c.name == name).values(**values)
        )
        if seen.rowcount == 0:
            conn.execute(
                sa.insert(cluster_workers).values(
                    name=name,
                    zone=zone,
                    hostname=hostname,
                    pid=pid,
                    started_at=started_at,
                    last_seen=now,
                    shards_done=0,
                )
            )


def worker_stopped(store: Store, name: str, now: datetime | None = None) -> None:
    """A clean stop: the coordinator gives this worker's shards to others at once."""
    with store.errors("mark the worker stopped"), store.engine.begin() as conn:
        conn.execute(
            sa.update(cluster_workers)
            .where(cluster_workers.c.name == name)
            .values(stopped_at=now or datetime.now(UTC))
        )


def shard_done(store: Store, worker: str, seconds: float, now: datetime | None = None) -> None:
    """Count a shard this worker committed (``fleetstat cluster status``)."""
    with store.errors("count the worker's shard"), store.engine.begin() as conn:
        conn.execute(
            sa.update(cluster_workers)
            .where(cluster_workers.c.name == worker)
            .values(
                shards_done=cluster_workers.c.shards_done + 1,
                last_shard_at=now or datetime.now(UTC),
                last_shard_seconds=seconds,
            )
        )


def workers(store: Store) -> list[WorkerRow]:
    """Every worker that ever sent a heartbeat, by zone and name."""
    query = sa.select(*cluster_workers.c).order_by(cluster_workers.c.zone, cluster_workers.c.name)
    with store.errors("read the workers"), store.engine.connect() as conn:
        return [WorkerRow(**row._mapping) for row in conn.execute(query)]


def live_workers(store: Store, dead_after: float, now: datetime | None = None) -> list[WorkerRow]:
    """The workers whose last heartbeat is younger than ``dead_after`` seconds and that
    did not stop. The database's clock is not used: every machine keeps UTC by NTP,
    and ``dead_after`` is several heartbeats."""
    since = (now or datetime.now(UTC)) - timedelta(seconds=dead_after)
    return [w for w in workers(store) if w.stopped_at is None and w.last_seen >= since]


def open_round(store: Store, uuid: str, started_at: datetime, hosts: int) -> int:
    """The coordinated round's row, before its shards go out; its id."""
    empty = RoundResult(started_at=started_at, finished_at=started_at, uuid=uuid)
    with store.errors("open the round"), store.engine.begin() as conn:
        round_id = _insert_round(conn, empty, None)
        conn.execute(sa.update(rounds).where(rounds.c.id == round_id).values(hosts_total=hosts))
        return round_id


def shard_outcomes(store: Store, round_id: int) -> dict[int, str]:
    """The round's shards that committed (``stored``) or were closed (``missed``)."""
    query = sa.select(cluster_shards.c.shard, cluster_shards.c.outcome).where(
        cluster_shards.c.round_id == round_id
    )
    with store.errors("read the round's shards"), store.engine.connect() as conn:
        return {int(row.shard): str(row.outcome) for row in conn.execute(query)}


def shard_known(store: Store, round_id: int, shard: int) -> bool:
    query = sa.select(cluster_shards.c.outcome).where(
        cluster_shards.c.round_id == round_id, cluster_shards.c.shard == shard
    )
    with store.errors("look up a shard"), store.engine.connect() as conn:
        return conn.execute(query).first() is not None


def close_round(store: Store, round_id: int, finished_at: datetime) -> None:
    """The round's counts from its attempts, its end and duration."""
    failed = sa.case((attempts.c.status == "ok", 0), else_=1)
    ok = sa.case((attempts.c.status == "ok", 1), else_=0)
    counts = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(ok), 0),
        sa.func.coalesce(sa.func.sum(failed), 0),
        sa.func.coalesce(sa.func.sum(attempts.c.retries), 0),
    ).where(attempts.c.round_id == round_id)
    with store.errors("close the round"), store.engine.begin() as conn:
        total, hosts_ok, hosts_failed, retries = conn.execute(counts).one()
        started = conn.execute(
            sa.select(rounds.c.started_at).where(rounds.c.id == round_id)
        ).scalar_one()
        conn.execute(
            sa.update(rounds)
            .where(rounds.c.id == round_id)
            .values(
                finished_at=finished_at,
                hosts_total=int(total),
                hosts_ok=int(hosts_ok),
                hosts_failed=int(hosts_failed),
                retries=int(retries),
                duration_seconds=(finished_at - started).total_seconds(),
            )
        )


def round_rows(store: Store, round_id: int) -> list[Row[Any]]:
    """Each attempt of the round with its sample's document and interval CPU (null
    when it has no sample): what the coordinator evaluates the alerts on."""
    query = (
        sa.select(
            attempts.c.client_ip,
            attempts.c.client_port,
            attempts.c.client_name,
            attempts.c.status,
            attempts.c.error,
            attempts.c.stderr,
            attempts.c.duration_seconds,
            attempts.c.started_at,
            attempts.c.retries,
            samples.c.document,
            samples.c.cpu_interval_percent,
        )
        .select_from(attempts.outerjoin(samples, samples.c.attempt_id == attempts.c.id))
        .where(attempts.c.round_id == round_id)
        .order_by(attempts.c.id)
    )
    with store.errors("read the round's results"), store.engine.connect() as conn:
        return list(conn.execute(query))


@dataclass(frozen=True)
class ShardTimes:
    """Shard times per worker over the recent rounds (``fleetstat cluster status``)."""

    worker: str | None
    zone: str
    shards: int
    hosts: int
    missed: int
    mean_seconds: float | None
    max_seconds: float | None


def shard_times(store: Store, since: datetime) -> list[ShardTimes]:
    c = cluster_shards.c
    query = (
        sa.select(
            c.worker,
            c.zone,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(c.hosts), 0),
            sa.func.coalesce(sa.func.sum(sa.case((c.outcome == "missed", 1), else_=0)), 0),
            sa.func.avg(c.seconds),
            sa.func.max(c.seconds),
        )
        .where(c.committed_at >= since)
        .group_by(c.worker, c.zone)
        .order_by(c.zone, c.worker)
    )
    with store.errors("read the shard times"), store.engine.connect() as conn:
        return [
            ShardTimes(
                row[0],
                row[1],
                int(row[2]),
                int(row[3]),
                int(row[4]),
                None if row[5] is None else float(row[5]),
                None if row[6] is None else float(row[6]),
            )
            for row in conn.execute(query)
        ]


def forget_workers(store: Store, names: Iterable[str]) -> int:
    """Delete the rows of workers that are gone for good; how many there were."""
    names = list(names)
    if not names:
        return 0
    with store.errors("forget workers"), store.engine.begin() as conn:
        done = conn.execute(sa.delete(cluster_workers).where(cluster_workers.c.name.in_(names)))
        return int(done.rowcount or 0)
