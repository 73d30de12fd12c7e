"""The one boundary where SQLAlchemy, driver and Alembic errors become ``StoreError``.

Every piece of code that runs SQL does it inside ``store.errors("what it does")``
(:meth:`fleetstat.store.Store.errors`, which calls :func:`sql_errors`), so a
database failure reaches the rest of fleetstat as a :class:`StoreError` that says
which database, what fleetstat was doing and the driver's reason, with the URL's
password masked. Nothing else in fleetstat catches a SQLAlchemy exception (a test
checks).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError

from fleetstat.errors import StoreError

T = TypeVar("T")
REASON_LIMIT = 500  # characters of the driver's message kept in the error


def parse_url(url: str) -> URL:
    """``url`` as SQLAlchemy's URL; a ``StoreError`` (that does not repeat it) if it is none."""
    try:
        return sa.make_url(url)
    except SQLAlchemyError:
        # SQLAlchemy's message repeats the string, password and all.
        raise StoreError(
            "invalid database URL (expected e.g. sqlite:///fleetstat.db or "
            "postgresql+psycopg://user@host/dbname)"
        ) from None


@contextmanager
def sql_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn SQLAlchemy's (and the driver's, which it wraps) and Alembic's errors raised
    inside the block into ``StoreError("database URL: cannot DOING: reason")``."""
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, SQLAlchemyError) and not _is_alembic_error(exc):
            raise
        shown = url.render_as_string(hide_password=True)
        raise StoreError(f"database {shown}: cannot {doing}: {reason(exc, url)}") from exc


def reason(exc: BaseException, url: URL) -> str:
    """The driver's own message on one line, without the password, at most REASON_LIMIT.

    Not SQLAlchemy's message, which appends the statement and its parameters: for a
    round that is every document.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    text = re.sub(r"\s+", " ", text).strip() or type(exc).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text[:REASON_LIMIT]


def each_in_savepoint(
    conn: Connection,
    url: URL,
    items: Sequence[T],
    write: Callable[[Connection, Sequence[T]], object],
) -> dict[int, str]:
    """``write(conn, items)`` in one savepoint; when the database refuses it, each item in
    a savepoint of its own. ``{index: reason}`` of the items it still refuses.

    For batches in which one host's row must not cost the others theirs
    (fleetstat.hostfail): the batch is the fast path, one statement for all.
    """
    if not items:
        return {}
    try:
        with conn.begin_nested():
            write(conn, items)
        return {}
    except Exception:  # one of them was refused: find which, below
        pass
    refused = {}
    for index, item in enumerate(items):
        try:
            with conn.begin_nested():
                write(conn, [item])
        except Exception as exc:
            refused[index] = reason(exc, url)
    return refused


def _is_alembic_error(exc: Exception) -> bool:
    """Alembic's CommandError, without importing Alembic when no migration ran."""
    util = sys.modules.get("alembic.util")
    return util is not None and isinstance(exc, util.CommandError)


def insert_once(conn: Connection, statement: sa.Executable) -> bool:
    """Run the INSERT ``statement`` in a savepoint; False when a unique key refused it
    (the row is there already: another writer won), other errors raised as they are."""
    try:
        with conn.begin_nested():
            conn.execute(statement)
    except sa.exc.IntegrityError:
        return False
    return True
