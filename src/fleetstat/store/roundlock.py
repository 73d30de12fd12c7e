"""The round lock: one round at a time writes a database.

A ``collect`` by hand beside ``watch``, or a slow cron round overlapping the next,
would otherwise both probe every host, both store a round and both mail the same
alerts. The lock lives with the database the round writes, so it holds for every
machine that writes there:

- SQLite: an exclusive ``flock`` on ``<database file>.round-lock`` (mode 0600) next
  to the database. Not on the database file itself: closing any other descriptor
  of that file would drop the POSIX locks SQLite holds on it in this process.
- PostgreSQL: the session advisory lock ``ADVISORY_KEY`` (advisory locks are per
  database), on a connection kept for the round.
- MySQL/MariaDB: ``GET_LOCK('fleetstat.round.<database>', 0)`` on a connection kept
  for the round (these names are per server, hence the database's name in it).

All three are released by the operating system or the server when the process or
its connection dies, so a crashed round never leaves the lock behind. Who holds
it (command, pid, machine, since when) is written to ``server_state`` once the
schema is there, for the message a second round prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from fleetstat.errors import RoundLockedError, StoreError
from fleetstat.store.accounts import read_state_row, write_state

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from fleetstat.store.core import Store

# b"fleetsta" as a signed 64-bit number: pg_try_advisory_lock(bigint).
ADVISORY_KEY = int.from_bytes(b"fleetsta", "big", signed=True)
STATE_NAME = "round.lock"
_MYSQL_NAME_LIMIT = 64  # MariaDB and MySQL refuse longer lock names


class RoundLock:
    """A held round lock; :meth:`release` (or leaving the ``with`` block) lets it go."""

    def __init__(self, store: Store, holder: str) -> None:
        self.store = store
        self.holder = holder
        self._fd: int | None = None
        self._conn: Connection | None = None
        self._name: str | None = None

    # -- taking it ---------------------------------------------------------------------

    def acquire(self) -> RoundLock:
        """Take the lock now or raise :class:`RoundLockedError` saying who holds it."""
        backend = self.store.url.get_backend_name()
        if backend == "sqlite":
            taken = self._flock()
        elif backend == "postgresql":
            taken = self._on_connection("SELECT pg_try_advisory_lock(:key)", {"key": ADVISORY_KEY})
        else:
            self._name = mysql_lock_name(self.store.url.database or "")
            taken = self._on_connection("SELECT GET_LOCK(:name, 0)", {"name": self._name})
        if not taken:
            raise self._locked()
        return self

    def announce(self, now: datetime | None = None) -> None:
        """Say in the database who holds the lock (the schema must be there)."""
        write_state(self.store, STATE_NAME, self.holder, now or datetime.now(UTC), None)

    def _flock(self) -> bool:
        path = sqlite_lock_path(self.store.url.database)
        if path is None:  # an in-memory database belongs to this process alone
            return True
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _on_connection(self, statement: str, params: dict[str, object]) -> bool:
        with self.store.errors("take the round lock"):
            conn = self.store.engine.connect()
            try:
                taken = conn.execute(sa.text(statement), params).scalar()
                conn.commit()  # the lock is the session's: no transaction stays open
            except BaseException:
                conn.close()
                raise
        if taken != 1 and taken is not True:
            conn.close()
            return False
        self._conn = conn
        return True

    def _locked(self) -> RoundLockedError:
        holder = None
        with contextlib.suppress(StoreError):  # no schema yet: the holder is not known
            row = read_state_row(self.store, STATE_NAME)
            if row is not None:
                since = row.updated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                holder = f"{row.value}, since {since}"
        who = holder or "another fleetstat (it did not say who)"
        return RoundLockedError(
            f"another round is running on {self.store.display_url}: {who}. This one "
            "stopped before storing anything (exit 75: try again when that round is done)",
            holder,
        )

    # -- letting it go -----------------------------------------------------------------

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock
        if self._conn is not None:
            conn, self._conn = self._conn, None
            statement = (
                "SELECT pg_advisory_unlock(:key)"
                if self.store.url.get_backend_name() == "postgresql"
                else "SELECT RELEASE_LOCK(:name)"
            )
            params = {"key": ADVISORY_KEY, "name": self._name}
            try:
                with self.store.errors("release the round lock"):
                    conn.execute(sa.text(statement), params)
                    conn.commit()
            finally:
                conn.close()  # the server drops a session's locks with it in any case

    def __enter__(self) -> RoundLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def sqlite_lock_path(database: str | None) -> Path | None:
    """``<database>.round-lock``; None for an in-memory or URI database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(path.name + ".round-lock")


def mysql_lock_name(database: str) -> str:
    """``fleetstat.round.<database>``, shortened with a digest when too long."""
    name = f"fleetstat.round.{database}"
    if len(name) <= _MYSQL_NAME_LIMIT:
        return name
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    return f"{name[: _MYSQL_NAME_LIMIT - 17]}.{digest}"
