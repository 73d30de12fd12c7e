"""``Store``: the one place fleetstat talks SQL, and where SQLAlchemy errors stop."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, Row

from fleetstat.errors import NoDatabaseError, StoreError
from fleetstat.metrics import CpuCounters
from fleetstat.model import RoundResult
from fleetstat.store import migrate
from fleetstat.store.errors import parse_url, sql_errors
from fleetstat.store.roundwrite import Host, Then, WrittenRound, mark_failed, write_round
from fleetstat.store.schema import (
    TABLE_NAMES,
    attempts,
    host_latest,
    metadata,
    rounds,
    samples,
)
from fleetstat.units import strict_json

# SQLite waits this long for another writer (a `watch` beside a `collect`) before
# giving up with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long a PostgreSQL connection may take to open (unless the URL says otherwise).
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class StoredRound:
    """What the database knows of a round by its uuid (:meth:`Store.round_state`)."""

    id: int
    alerts_at: datetime | None  # None: its alerts are still to be evaluated


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

    def __init__(self, url: str, *, echo: bool = False, create: bool = True) -> None:
        """``create=False`` (commands that only read): a SQLite file that is not there
        is a :class:`NoDatabaseError`, not a new empty database."""
        self._url = parse_url(url)
        # For messages and summaries: the URL with its password masked as ***.
        self.display_url = self._url.render_as_string(hide_password=True)
        if not create:
            _require_sqlite_file(self._url)
        with self.errors("open"):
            self.engine = _create_engine(self._url, echo=echo, create=create)

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

    def require_schema(self) -> None:
        """For a command that only reads: the database must be at the newest revision.

        Creates and migrates nothing: an empty database, or one an older fleetstat
        left, is a :class:`NoDatabaseError` (exit 2) that says to run ``db upgrade``.
        """
        current = self.current_revision()
        head = migrate.head_revision()
        if current == head:
            return
        if current is None:
            raise NoDatabaseError(
                f"database {self.display_url} has no fleetstat tables yet: create them "
                "with `fleetstat db upgrade -c CONFIG` (or run `fleetstat collect`)"
            )
        if current > head:
            raise StoreError(
                f"database {self.display_url} has schema revision {current!r}, which this "
                "fleetstat does not know: it was upgraded by a newer fleetstat"
            )
        raise NoDatabaseError(
            f"database {self.display_url} is at schema revision {current}, this fleetstat "
            f"reads revision {head}: run `fleetstat db upgrade -c CONFIG` first"
        )

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
        self, round: RoundResult, *, then: Then | None = None, replayed_at: datetime | None = None
    ) -> int:
        """Store a round, its attempts and its samples in one transaction; its id.

        See :meth:`write_round`, which also returns the round as stored.
        """
        return self.write_round(round, then=then, replayed_at=replayed_at).round_id

    def write_round(
        self, round: RoundResult, *, then: Then | None = None, replayed_at: datetime | None = None
    ) -> WrittenRound:
        """Store a round in one transaction; a host the database refuses fails alone.

        ``then(conn, round_id, round)`` runs last inside the same transaction, for
        work that must commit with the round or not at all (the events mail: the
        store itself knows nothing of mail); it returns the hosts it failed for, and
        why. The result's ``round`` is the round as stored: a host whose rows could
        not be built or written is ``bad_payload`` there and in its attempt row
        (store/roundwrite.py). ``replayed_at``: the round comes from the spool.

        ``round.uuid`` goes into ``rounds.uuid`` (unique): a second write of the
        same round fails as a whole, so check :meth:`round_state` first.
        """
        return write_round(self, round, then, replayed_at=replayed_at)

    def mark_failed(self, round_id: int, round: RoundResult, hosts: Mapping[Host, object]) -> None:
        """Record demoted ``hosts`` of a stored round (a later step failed for them)."""
        if hosts:
            with self.errors("mark hosts as failed"), self.engine.begin() as conn:
                mark_failed(conn, round_id, round, hosts)

    # -- reads -------------------------------------------------------------------

    def round_state(self, round_uuid: str) -> StoredRound | None:
        """The stored round with this uuid, or None when it was never stored."""
        query = sa.select(rounds.c.id, rounds.c.alerts_at).where(rounds.c.uuid == round_uuid)
        with self.errors("look up a round"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else StoredRound(int(row.id), row.alerts_at)

    def previous_cpu(
        self, hosts: Sequence[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], CpuCounters]:
        """Every host's CPU counters at its last good sample, in one query on host_latest;
        ``hosts``: only theirs (a ``<cluster>`` shard's)."""
        query = sa.select(
            host_latest.c.client_ip,
            host_latest.c.client_port,
            host_latest.c.cpu_total_seconds,
            host_latest.c.cpu_busy_seconds,
            host_latest.c.boot_time,
        ).where(host_latest.c.sample_id.is_not(None))
        wanted = None if hosts is None else set(hosts)
        if wanted is not None:
            query = query.where(host_latest.c.client_ip.in_(sorted({ip for ip, _ in wanted})))
        with self.errors("read the previous CPU counters"), self.engine.connect() as conn:
            return {
                (row.client_ip, row.client_port): CpuCounters(
                    row.cpu_total_seconds, row.cpu_busy_seconds, row.boot_time
                )
                for row in conn.execute(query)
                if wanted is None or (row.client_ip, row.client_port) in wanted
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

    @property
    def url(self) -> URL:
        """The database URL (with its password: for error messages use ``display_url``)."""
        return self._url

    def errors(self, doing: str) -> AbstractContextManager[None]:
        """The store's error boundary, for every caller that runs SQL on this store::

            with store.errors("read the alert states"), store.engine.connect() as conn:
                ...

        SQLAlchemy, driver and Alembic errors raised inside become :class:`StoreError`
        naming the database (password masked) and ``doing`` (see store/errors.py).
        """
        return sql_errors(self._url, doing)


# -- engine -----------------------------------------------------------------------


def _require_sqlite_file(url: URL) -> None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if not path.is_file():
        raise NoDatabaseError(
            f"no database at {path}: create it with `fleetstat db upgrade -c CONFIG` (or run "
            "`fleetstat collect`), or give the right one with --db"
        )


def _create_engine(url: URL, *, echo: bool, create: bool = True) -> Engine:
    # Strict JSON: PostgreSQL's JSONB and MariaDB's json_valid() check refuse a
    # NaN, and one odd host would cost the whole round its write.
    options: dict[str, Any] = {"echo": echo, "json_serializer": strict_json}
    if url.get_backend_name() == "sqlite":
        if create:
            _make_parent(url)
        engine = sa.create_engine(url, **options)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # A server restarts or a firewall drops idle connections between rounds.
    options["pool_pre_ping"] = True
    if url.get_backend_name() in ("mysql", "mariadb"):
        options["pool_recycle"] = 3600  # under MySQL's wait_timeout on most setups
    elif "connect_timeout" not in url.query:
        # libpq waits as long as TCP does (minutes) for a server that drops packets;
        # a round would wait that long before it is spooled. PyMySQL's default is 10.
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return sa.create_engine(url, **options)


def _make_parent(url: URL) -> None:
    """The SQLite file's folder, and the file itself, empty and mode 0600, when missing.

    sqlite3 would create it with the umask's mode (0644 for most users): the rows
    hold every host's figures and the outbox's mail. SQLite gives the -wal and
    -shm files the database file's mode.
    """
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise StoreError(
            f"database {url}: cannot create the folder or file {path}: {exc.strerror or exc}"
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


def claim_round_alerts(conn: Connection, round_uuid: str, at: datetime) -> bool:
    """Mark the round's alerts as evaluated at ``at``, in the caller's transaction.

    False when they already were: the row is locked by the UPDATE, so of two
    evaluations of one round (a crash and a replay, or two replayers) exactly one
    gets True, and the other must write nothing.
    """
    done = conn.execute(
        sa.update(rounds)
        .where(rounds.c.uuid == round_uuid, rounds.c.alerts_at.is_(None))
        .values(alerts_at=at)
    )
    return done.rowcount == 1


__all__: Sequence[str] = ("RoundSummary", "Store", "StoredRound", "claim_round_alerts")
