"""``Store``: the one place fleetstat talks SQL, and where SQLAlchemy errors stop."""

from __future__ import annotations

import json
import math
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, Row

from fleetstat.errors import StoreError
from fleetstat.metrics import CpuCounters
from fleetstat.model import HostResult, RoundResult
from fleetstat.store import migrate
from fleetstat.store.errors import parse_url, sql_errors
from fleetstat.store.events import insert_events
from fleetstat.store.headline import headline
from fleetstat.store.schema import (
    TABLE_NAMES,
    attempts,
    host_latest,
    metadata,
    rounds,
    samples,
)

# SQLite waits this long for another writer (a `watch` beside a `collect`) before
# giving up with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class RoundSummary:
    """A stored round and one row per host attempt, in the order they were recorded."""

    round: Row
    hosts: list[Row]


class Store:
    """fleetstat's database: schema upgrades, the round write, and the reads.

    ``url`` is any SQLAlchemy URL: ``sqlite:///path/fleetstat.db``,
    ``postgresql+psycopg://user@host/db``, ``mysql+pymysql://user@host/db``.
    Every method raises :class:`~fleetstat.errors.StoreError` (never a SQLAlchemy
    exception), with the URL's password masked.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self._url = parse_url(url)
        # For messages and summaries: the URL with its password masked as ***.
        self.display_url = self._url.render_as_string(hide_password=True)
        with self.errors("open"):
            self.engine = _create_engine(self._url, echo=echo)

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    # -- schema ------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest revision shipped with this fleetstat."""
        with self.errors("upgrade the schema"), self.engine.begin() as conn:
            migrate.upgrade(conn, self.display_url)

    def current_revision(self) -> str | None:
        """The database's Alembic revision; ``None`` for an empty database."""
        with self.errors("read the schema revision"), self.engine.connect() as conn:
            return migrate.current_revision(conn)

    def ensure_schema(self) -> bool:
        """Upgrade when the database is empty or behind; True when it did.

        At the newest revision (every run but the first after an install or an
        upgrade of fleetstat) this reads one row and imports no Alembic.
        """
        with self.errors("upgrade the schema"), self.engine.begin() as conn:
            if migrate.is_current(conn):
                return False
            migrate.upgrade(conn, self.display_url)
            return True

    # -- writes ------------------------------------------------------------------

    def record_round(
        self,
        round: RoundResult,
        *,
        then: Callable[[sa.Connection, int], object] | None = None,
    ) -> int:
        """Store a round, its attempts and its samples in one transaction; its id.

        ``then(conn, round_id)`` runs last inside the same transaction, for work that
        must commit with the round or not at all (the events mail: the store itself
        knows nothing of mail).

        Three INSERTs whatever the number of hosts (attempts and samples each sent as
        one executemany) plus one SELECT that reads back the attempt ids, which
        executemany does not return portably, keyed by (client_ip, client_port).
        """
        results = round.results
        with self.errors("record the round"), self.engine.begin() as conn:
            inserted = conn.execute(
                sa.insert(rounds).values(
                    started_at=round.started_at,
                    finished_at=round.finished_at,
                    hosts_total=len(results),
                    hosts_ok=round.ok_count,
                    hosts_failed=round.failed_count,
                    retries=round.retries,
                    duration_seconds=(round.finished_at - round.started_at).total_seconds(),
                )
            ).inserted_primary_key
            assert inserted is not None  # a single-row INSERT always has its key
            round_id = int(inserted[0])
            if not results:
                if then is not None:
                    then(conn, round_id)
                return round_id
            conn.execute(sa.insert(attempts), [_attempt_row(round_id, r) for r in results])
            attempt_ids = _attempt_ids(conn, round_id)
            sample_rows = []
            latest: dict[tuple[str, int], dict[str, Any]] = {}
            for result in results:
                # Popping in id order pairs a duplicated (ip, port), should one ever
                # reach us, with its attempts in the order they were inserted.
                attempt_id = attempt_ids[(result.client.ip, result.client.port)].popleft()
                latest[(result.client.ip, result.client.port)] = _latest_row(attempt_id, result)
                if _has_sample(result):
                    sample_rows.append(_sample_row(round_id, attempt_id, result))
            if sample_rows:
                conn.execute(sa.insert(samples), sample_rows)
                _link_samples(conn, round_id, latest)
            _upsert_latest(conn, list(latest.values()))
            # Same transaction: the bookmark (derived from these rows) only moves
            # once the events are committed with the rest of the round.
            insert_events(conn, round_id, results)
            if then is not None:
                then(conn, round_id)
            return round_id

    # -- reads -------------------------------------------------------------------

    def previous_cpu(self) -> dict[tuple[str, int], CpuCounters]:
        """Every host's CPU counters at its last good sample, in one query on host_latest."""
        query = sa.select(
            host_latest.c.client_ip,
            host_latest.c.client_port,
            host_latest.c.cpu_total_seconds,
            host_latest.c.cpu_busy_seconds,
            host_latest.c.boot_time,
        ).where(host_latest.c.sample_id.is_not(None))
        with self.errors("read the previous CPU counters"), self.engine.connect() as conn:
            return {
                (row.client_ip, row.client_port): CpuCounters(
                    row.cpu_total_seconds, row.cpu_busy_seconds, row.boot_time
                )
                for row in conn.execute(query)
            }

    def latest_samples(self) -> list[Row]:
        """The newest sample of every host that ever sent one, by (client_ip, client_port).

        A GROUP BY on the host index, which walks all of it: fine for tests and small
        databases; ``fleetstat report`` reads ``host_latest`` instead (store/reports.py).
        """
        newest = (
            sa.select(
                samples.c.client_ip,
                samples.c.client_port,
                sa.func.max(samples.c.received_at).label("received_at"),
            )
            .group_by(samples.c.client_ip, samples.c.client_port)
            .subquery()
        )
        query = (
            sa.select(samples)
            .join(
                newest,
                sa.and_(
                    samples.c.client_ip == newest.c.client_ip,
                    samples.c.client_port == newest.c.client_port,
                    samples.c.received_at == newest.c.received_at,
                ),
            )
            .order_by(samples.c.client_ip, samples.c.client_port, samples.c.id.desc())
        )
        with self.errors("read the latest samples"), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        latest: dict[tuple[str, int], Row] = {}
        for row in rows:  # two samples with the same received_at: keep the later id
            latest.setdefault((row.client_ip, row.client_port), row)
        return list(latest.values())

    def round_summary(self, round_id: int) -> RoundSummary:
        """The round row and, per host, its attempt joined with its sample's headline."""
        hosts_query = (
            sa.select(
                attempts.c.client_ip,
                attempts.c.client_port,
                attempts.c.client_name,
                attempts.c.status,
                attempts.c.error,
                attempts.c.duration_seconds,
                attempts.c.retries,
                attempts.c.started_at,
                samples.c.id.label("sample_id"),
                samples.c.hostname,
                samples.c.cpu_percent,
                samples.c.memory_percent,
                samples.c.swap_percent,
                samples.c.load1,
                samples.c.uptime_seconds,
                samples.c.disk_max_percent,
                samples.c.disk_max_mount,
            )
            .select_from(attempts.outerjoin(samples, samples.c.attempt_id == attempts.c.id))
            .where(attempts.c.round_id == round_id)
            .order_by(attempts.c.id)
        )
        with self.errors("read the round"), self.engine.connect() as conn:
            head = conn.execute(sa.select(rounds).where(rounds.c.id == round_id)).first()
            if head is None:
                raise StoreError(f"database {self.display_url} has no round {round_id}")
            return RoundSummary(round=head, hosts=list(conn.execute(hosts_query).all()))

    def count(self, table_name: str) -> int:
        """Rows in one of fleetstat's tables (for tests and diagnostics)."""
        if table_name not in TABLE_NAMES:
            raise ValueError(f"unknown table {table_name!r}; one of {', '.join(TABLE_NAMES)}")
        table = metadata.tables[table_name]
        with self.errors(f"count {table_name}"), self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    # -- errors ------------------------------------------------------------------

    def errors(self, doing: str) -> AbstractContextManager[None]:
        """The store's error boundary, for every caller that runs SQL on this store::

            with store.errors("read the alert states"), store.engine.connect() as conn:
                ...

        SQLAlchemy, driver and Alembic errors raised inside become :class:`StoreError`
        naming the database (password masked) and ``doing`` (see store/errors.py).
        """
        return sql_errors(self._url, doing)


# -- engine -----------------------------------------------------------------------


def _create_engine(url: URL, *, echo: bool) -> Engine:
    options: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps}
    if url.get_backend_name() == "sqlite":
        _make_parent(url)
        engine = sa.create_engine(url, **options)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # A server restarts or a firewall drops idle connections between rounds.
    options["pool_pre_ping"] = True
    if url.get_backend_name() in ("mysql", "mariadb"):
        options["pool_recycle"] = 3600  # under MySQL's wait_timeout on most setups
    return sa.create_engine(url, **options)


def _make_parent(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"database {url}: cannot create the folder {folder}: {exc.strerror or exc}"
        ) from None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Driver-level autocommit, so that the "begin" hook below issues BEGIN itself:
    # the sqlite3 module's legacy mode does not BEGIN before DDL, which would commit
    # each CREATE TABLE of a migration on its own (SQLAlchemy's documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")  # off by default, per connection
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers (a report) never block the round's writer nor it them; with
        # WAL, synchronous=NORMAL is still safe from corruption and only a power
        # loss can cost the last commit.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _json_dumps(value: object) -> str:
    # Python writes NaN/Infinity, which are not JSON: PostgreSQL's JSONB and
    # MariaDB's json_valid() check refuse them, and one odd host would cost the
    # whole round its write. Replace them with null only when they occur.
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# -- rows -------------------------------------------------------------------------


def _has_sample(result: HostResult) -> bool:
    return result.ok and result.document is not None


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


def _attempt_ids(conn: Connection, round_id: int) -> defaultdict[tuple[str, int], deque[int]]:
    query = (
        sa.select(attempts.c.id, attempts.c.client_ip, attempts.c.client_port)
        .where(attempts.c.round_id == round_id)
        .order_by(attempts.c.id)
    )
    ids: defaultdict[tuple[str, int], deque[int]] = defaultdict(deque)
    for attempt_id, ip, port in conn.execute(query):
        ids[(ip, port)].append(attempt_id)
    return ids


def _sample_row(round_id: int, attempt_id: int, result: HostResult) -> dict[str, Any]:
    document = result.document
    assert document is not None  # _has_sample
    return {
        "round_id": round_id,
        "attempt_id": attempt_id,
        "client_ip": result.client.ip,
        "client_port": result.client.port,
        # Ours: when the document reached us, as opposed to the probe's clock.
        "received_at": result.started_at + timedelta(seconds=result.duration_seconds),
        "document": document.as_json(),
        **headline(document),
    }


# -- host_latest ----------------------------------------------------------------------

_SAMPLE_FIELDS = (
    "sample_id",
    "sample_received_at",
    "cpu_total_seconds",
    "cpu_busy_seconds",
    "boot_time",
)


def _latest_row(attempt_id: int, result: HostResult) -> dict[str, Any]:
    row: dict[str, Any] = {
        "client_ip": result.client.ip,
        "client_port": result.client.port,
        "last_attempt_id": attempt_id,
        "last_attempt_at": result.started_at,
        "last_status": str(result.status),
        "has_sample": _has_sample(result),
    }
    if _has_sample(result):
        counters = CpuCounters.from_document(result.document)
        row["sample_id"] = row["sample_received_at"] = None  # set by _link_samples
        row["cpu_total_seconds"] = counters.total_seconds if counters else None
        row["cpu_busy_seconds"] = counters.busy_seconds if counters else None
        row["boot_time"] = counters.boot_time if counters else None
    return row


def _link_samples(
    conn: Connection, round_id: int, latest: dict[tuple[str, int], dict[str, Any]]
) -> None:
    """Add the new sample ids (read back by round, like the attempt ids) to ``latest``."""
    query = sa.select(
        samples.c.id, samples.c.client_ip, samples.c.client_port, samples.c.received_at
    ).where(samples.c.round_id == round_id)
    for sample_id, ip, port, received_at in conn.execute(query):
        row = latest.get((ip, port))
        if row is not None and row["has_sample"]:
            previous = row.get("sample_id")
            if previous is None or sample_id > previous:
                row["sample_id"] = sample_id
                row["sample_received_at"] = received_at


def _upsert_latest(conn: Connection, rows: list[dict[str, Any]]) -> None:
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


__all__: Sequence[str] = ("RoundSummary", "Store")
