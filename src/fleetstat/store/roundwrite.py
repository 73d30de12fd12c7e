"""Writing a round: one transaction, one multi-row INSERT per table, a host at a time
only when the database refuses the batch.

The fast path is the only one a healthy fleet takes: the round row, then every
attempt in one executemany (their ids read back by round), every sample in one,
the security events 500 at a time, ``host_latest`` in two upserts, and the
caller's ``then`` (the events mail) last, all in one transaction.

A host must not cost the others their round (fleetstat.hostfail), so:

- before anything is written, each host's rows are built and its document
  serialised the way the engine will (:func:`_prepare`): a host whose rows
  cannot be built is demoted to ``bad_payload`` and written as a failed attempt;
- the attempts, samples and events go in a savepoint; when the database refuses
  the batch (one value it cannot store), the savepoint is rolled back and each
  host is written in a savepoint of its own; a host still refused is written
  as a failed attempt whose error quotes the database's reason. Should even that
  be refused, the database itself is the problem and the round fails as before.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleetstat.hostfail import demote, with_failures
from fleetstat.metrics import CpuCounters
from fleetstat.model import HostResult, RoundResult
from fleetstat.store import hourly
from fleetstat.store.errors import insert_once, reason
from fleetstat.store.events import host_event_rows, insert_event_rows
from fleetstat.store.headline import headline
from fleetstat.store.schema import attempts, cluster_shards, host_latest, rounds, samples
from fleetstat.units import Serialized

if TYPE_CHECKING:
    from fleetstat.store.core import Store

log = logging.getLogger(__name__)

Host = tuple[str, int]
# The events mail, run last in the round's transaction: the hosts it could not
# queue mail for, and why (they are marked failed with the rest).
Then = Callable[[Connection, int, RoundResult], Mapping[Host, str] | None]
STAGE = "storing"


@dataclass(frozen=True)
class WrittenRound:
    """A stored round: its id, and the round as stored (refused hosts demoted)."""

    round_id: int
    round: RoundResult


@dataclass
class _Rows:
    """One host's rows before they are written (ids set on the way)."""

    result: HostResult
    sample: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def write_round(
    store: Store,
    round: RoundResult,
    then: Then | None = None,
    *,
    replayed_at: datetime | None = None,
) -> WrittenRound:
    """Store ``round`` in one transaction (see the module's docstring)."""
    prepared = [_prepare(result) for result in round.results]
    round = replace(round, results=tuple(rows.result for rows in prepared))
    with store.errors("record the round"), store.engine.begin() as conn:
        round_id = _insert_round(conn, round, replayed_at)
        round = _write_results(store, conn, round_id, round, prepared, then, counts=True)
        return WrittenRound(round_id, round)


def write_shard(
    store: Store, shard: Mapping[str, Any], round: RoundResult, then: Then | None = None
) -> RoundResult | None:
    """One shard of a ``<cluster>`` round (fleetstat.cluster) in one transaction: its
    ``cluster_shards`` row (``shard``: its columns) first, then its hosts' rows into
    the round ``shard["round_id"]`` that the coordinator opened.

    None, with nothing written, when the shard's row is there already: another
    worker committed it (a redelivered message), or the coordinator closed the
    round and marked it missed. The primary key decides, so of two commits of one
    shard exactly one writes its hosts. The round's counts are the coordinator's.
    """
    prepared = [_prepare(result) for result in round.results]
    round = replace(round, results=tuple(rows.result for rows in prepared))
    round_id = int(shard["round_id"])
    with store.errors("record a shard"), store.engine.begin() as conn:
        if not insert_once(conn, sa.insert(cluster_shards).values(**shard)):
            return None
        return _write_results(store, conn, round_id, round, prepared, then, counts=False)


def _write_results(
    store: Store,
    conn: Connection,
    round_id: int,
    round: RoundResult,
    prepared: list[_Rows],
    then: Then | None,
    *,
    counts: bool,
) -> RoundResult:
    """The hosts' attempts, samples, events and latest rows, then ``then``."""
    latest: list[dict[str, Any]] = []
    if prepared:
        try:
            with conn.begin_nested():
                latest = _write_batch(conn, round_id, prepared, narrow=not counts)
        except Exception as exc:  # one value the database refuses: host by host
            log.warning(
                "round %d: the database refused the batch (%s); writing host by host",
                round_id, reason(exc, store.url),
            )  # fmt: skip
            latest = [_write_one(store, conn, round_id, rows) for rows in prepared]
            round = replace(round, results=tuple(rows.result for rows in prepared))
            if counts:
                _update_counts(conn, round_id, round)
        _refresh_hourly(conn, round_id, prepared, whole_round=counts)
    _upsert_latest(conn, list({(r["client_ip"], r["client_port"]): r for r in latest}.values()))
    failures = then(conn, round_id, round) if then is not None else None
    if failures:
        round = with_failures(round, "queueing the events mail", dict(failures))
        mark_failed(conn, round_id, round, failures, counts=counts)
    return round


def _refresh_hourly(
    conn: Connection, round_id: int, prepared: list[_Rows], *, whole_round: bool
) -> None:
    """The samples just written, added to their hourly rows (store/hourly.py): one
    statement, the work in SQL, none per host here. A whole round: its samples by
    round id; a shard of a round that others write too: by its own samples' ids."""
    ids = [rows.sample["id"] for rows in prepared if rows.sample is not None]
    if not ids:
        return
    if whole_round:
        hourly.refresh_round(conn, round_id)
    else:
        hourly.refresh_samples(conn, ids)


def mark_failed(
    conn: Connection,
    round_id: int,
    round: RoundResult,
    hosts: Mapping[Host, object],
    *,
    counts: bool = True,
) -> None:
    """Write the demoted results of ``hosts`` over their attempts of round ``round_id``."""
    for result in round.results:
        key = (result.client.ip, result.client.port)
        if key not in hosts:
            continue
        where = sa.and_(
            attempts.c.round_id == round_id,
            attempts.c.client_ip == key[0],
            attempts.c.client_port == key[1],
        )
        conn.execute(
            sa.update(attempts).where(where).values(status=str(result.status), error=result.error)
        )
        mine = sa.select(attempts.c.id).where(where).scalar_subquery()
        conn.execute(
            sa.update(host_latest)
            .where(host_latest.c.client_ip == key[0], host_latest.c.client_port == key[1])
            .where(host_latest.c.last_attempt_id.in_(mine))
            .values(last_status=str(result.status))
        )
    if counts:
        _update_counts(conn, round_id, round)


# -- building the rows (pure) -------------------------------------------------------------


def _prepare(result: HostResult) -> _Rows:
    if not (result.ok and result.document is not None):
        return _Rows(result)
    try:
        document = result.document
        sample = {
            "client_ip": result.client.ip,
            "client_port": result.client.port,
            # Ours: when the document reached us, as opposed to the probe's clock.
            "received_at": result.started_at + timedelta(seconds=result.duration_seconds),
            # Serialised here as the engine would (strict JSON), so that a value it
            # cannot write fails this host now, not the batch; the engine then sends
            # this text (units.Serialized) rather than serialising it again.
            "document": Serialized.of(document.as_json()),
            **headline(document),
        }
        return _Rows(result, sample, host_event_rows(None, result))
    except Exception as exc:  # this host's rows cannot be built: it alone fails
        return _Rows(demote(result, STAGE, exc))


def _attempt_row(round_id: int, result: HostResult) -> dict[str, Any]:
    client = result.client
    return {
        "round_id": round_id,
        "client_ip": client.ip,
        "client_port": client.port,
        "client_name": client.name,
        "status": str(result.status),
        "error": result.error,
        "stderr": result.stderr,
        "duration_seconds": result.duration_seconds,
        "started_at": result.started_at,
        "retries": result.retries,
    }


def _latest_row(attempt_id: int, rows: _Rows) -> dict[str, Any]:
    result = rows.result
    row: dict[str, Any] = {
        "client_ip": result.client.ip,
        "client_port": result.client.port,
        "last_attempt_id": attempt_id,
        "last_attempt_at": result.started_at,
        "last_status": str(result.status),
        "has_sample": rows.sample is not None,
    }
    if rows.sample is not None:
        counters = CpuCounters.from_document(result.document)
        row["sample_id"] = rows.sample.get("id")  # set once the sample is written
        row["sample_received_at"] = rows.sample["received_at"]
        row["cpu_total_seconds"] = counters.total_seconds if counters else None
        row["cpu_busy_seconds"] = counters.busy_seconds if counters else None
        row["boot_time"] = counters.boot_time if counters else None
    return row


# -- writing --------------------------------------------------------------------------------


def _insert_round(conn: Connection, round: RoundResult, replayed_at: datetime | None) -> int:
    inserted = conn.execute(
        sa.insert(rounds).values(
            started_at=round.started_at,
            finished_at=round.finished_at,
            hosts_total=len(round.results),
            hosts_ok=round.ok_count,
            hosts_failed=round.failed_count,
            retries=round.retries,
            duration_seconds=(round.finished_at - round.started_at).total_seconds(),
            # The round's identity (revision 0007): a round written again from the
            # spool after a crash is refused here, whole, and recognised.
            uuid=round.uuid,
            replayed_at=replayed_at,
        )
    ).inserted_primary_key
    assert inserted is not None  # a single-row INSERT always has its key
    return int(inserted[0])


def _update_counts(conn: Connection, round_id: int, round: RoundResult) -> None:
    conn.execute(
        sa.update(rounds)
        .where(rounds.c.id == round_id)
        .values(hosts_ok=round.ok_count, hosts_failed=round.failed_count)
    )


def _write_batch(
    conn: Connection, round_id: int, prepared: list[_Rows], *, narrow: bool = False
) -> list[dict[str, Any]]:
    """Every host's attempt, sample and events in one statement per table; the latest rows.

    executemany does not return ids portably, so the attempt and sample ids are
    read back by round, keyed by (client_ip, client_port); ``narrow`` (a shard of a
    round others write too): by round and the shard's addresses, so a shard never
    reads the whole round's rows back.
    """
    ips = sorted({rows.result.client.ip for rows in prepared}) if narrow else None
    conn.execute(sa.insert(attempts), [_attempt_row(round_id, rows.result) for rows in prepared])
    attempt_ids = _ids(conn, attempts, round_id, ips)
    # Popping in id order pairs a duplicated (ip, port), should one ever reach us,
    # with its attempts in the order they were inserted.
    attempt_of = [attempt_ids[_host(rows.result)].popleft() for rows in prepared]
    sample_rows = []
    for rows, attempt_id in zip(prepared, attempt_of, strict=True):
        if rows.sample is not None:
            sample_rows.append({**rows.sample, "round_id": round_id, "attempt_id": attempt_id})
    if sample_rows:
        conn.execute(sa.insert(samples), sample_rows)
        sample_ids = _ids(conn, samples, round_id, ips)
        for rows in prepared:
            if rows.sample is not None:
                rows.sample["id"] = sample_ids[_host(rows.result)].popleft()
    # Same transaction: the bookmark (derived from these rows) only moves once the
    # events are committed with the rest of the round.
    events = [{**row, "round_id": round_id} for rows in prepared for row in rows.events]
    insert_event_rows(conn, events)
    return [_latest_row(a, rows) for rows, a in zip(prepared, attempt_of, strict=True)]


def _write_one(store: Store, conn: Connection, round_id: int, rows: _Rows) -> dict[str, Any]:
    """One host's rows in a savepoint; refused, the host as a failed attempt alone."""
    try:
        with conn.begin_nested():
            attempt_id = _insert_one(conn, attempts, _attempt_row(round_id, rows.result))
            if rows.sample is not None:
                sample = {**rows.sample, "round_id": round_id, "attempt_id": attempt_id}
                rows.sample["id"] = _insert_one(conn, samples, sample)
            insert_event_rows(conn, [{**row, "round_id": round_id} for row in rows.events])
        return _latest_row(attempt_id, rows)
    except Exception as exc:
        why = f"the database refused this host's rows: {reason(exc, store.url)}"
        rows.result, rows.sample, rows.events = demote(rows.result, STAGE, why), None, []
    # Not caught: if the database refuses even this, it is the database that fails.
    with conn.begin_nested():
        attempt_id = _insert_one(conn, attempts, _attempt_row(round_id, rows.result))
    return _latest_row(attempt_id, rows)


def _insert_one(conn: Connection, table: sa.Table, row: dict[str, Any]) -> int:
    values = {key: value for key, value in row.items() if key != "id"}
    inserted = conn.execute(sa.insert(table).values(**values)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def _ids(
    conn: Connection, table: sa.Table, round_id: int, ips: Sequence[str] | None = None
) -> defaultdict[Host, deque[int]]:
    query = (
        sa.select(table.c.id, table.c.client_ip, table.c.client_port)
        .where(table.c.round_id == round_id)
        .order_by(table.c.id)
    )
    if ips is not None:
        query = query.where(table.c.client_ip.in_(ips))
    ids: defaultdict[Host, deque[int]] = defaultdict(deque)
    for row_id, ip, port in conn.execute(query):
        ids[(ip, port)].append(row_id)
    return ids


def _host(result: HostResult) -> Host:
    return (result.client.ip, result.client.port)


# -- host_latest ----------------------------------------------------------------------------

_SAMPLE_FIELDS = (
    "sample_id",
    "sample_received_at",
    "cpu_total_seconds",
    "cpu_busy_seconds",
    "boot_time",
)


def _upsert_latest(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update the host_latest rows: two statements (hosts with a sample, without).

    A failed attempt moves only the attempt columns: the pointer to the last good
    sample (and its counters) stays where it was.
    """
    with_sample = [_without("has_sample", r) for r in rows if r["has_sample"]]
    without = [_without("has_sample", r) for r in rows if not r["has_sample"]]
    attempt_fields = ("last_attempt_id", "last_attempt_at", "last_status")
    if with_sample:
        conn.execute(_upsert(conn, attempt_fields + _SAMPLE_FIELDS), with_sample)
    if without:
        for row in without:
            row.update(dict.fromkeys(_SAMPLE_FIELDS))  # used only when the row is new
        conn.execute(_upsert(conn, attempt_fields), without)


def _upsert(conn: Connection, fields: tuple[str, ...]) -> Any:
    dialect = conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        stmt = mysql.insert(host_latest)
        return stmt.on_duplicate_key_update({f: stmt.inserted[f] for f in fields})
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(host_latest)
        return pg.on_conflict_do_update(
            index_elements=["client_ip", "client_port"], set_={f: pg.excluded[f] for f in fields}
        )
    from sqlalchemy.dialects import sqlite

    lite = sqlite.insert(host_latest)
    return lite.on_conflict_do_update(
        index_elements=["client_ip", "client_port"], set_={f: lite.excluded[f] for f in fields}
    )


def _without(key: str, row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}
