"""Column types that behave the same on SQLite, PostgreSQL and MySQL/MariaDB.

The PostgreSQL and MySQL types are looked up in ``load_dialect_impl``, when a
connection of that dialect first needs them, not at import: importing
``sqlalchemy.dialects.postgresql`` loads every one of its drivers' modules
(psycopg, asyncpg, pg8000, ...), about 70 ms of CPU that every ``fleetstat
collect`` into SQLite paid otherwise (``-X importtime``); the MySQL dialect, ~10 ms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

_MYSQL = ("mysql", "mariadb")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` in, the same out, on every backend.

    PostgreSQL keeps the instant (``timestamptz``) but hands it back in the
    session's time zone; SQLite and MySQL have no zone at all and drop tzinfo.
    So we store naive UTC where there is no zone, and always return aware UTC.
    MySQL's ``DATETIME`` also drops microseconds unless declared ``DATETIME(6)``.
    A naive value is refused: it is a bug upstream (see ``model.HostResult``).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            from sqlalchemy.dialects import mysql

            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: fleetstat stores aware UTC")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def big_id() -> TypeEngine[int]:
    """Primary keys: 64-bit on servers (a year of 500 hosts/minute is ~260M rows), but
    plain ``INTEGER`` on SQLite, where only that spelling aliases the rowid and
    autoincrements."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class LongText(sa.TypeDecorator[str]):
    """Free text (errors, stderr, mail bodies). MySQL ``TEXT`` stops at 64 KiB and
    strict mode rejects the whole statement, i.e. the whole round, when one value is
    longer; ``MEDIUMTEXT`` holds 16 MiB."""

    impl = sa.Text()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            from sqlalchemy.dialects import mysql

            return dialect.type_descriptor(mysql.MEDIUMTEXT())
        # Not type_descriptor(Text()): on PostgreSQL that adapts to the driver's
        # string type, which compiles (and autogenerate compares) as VARCHAR.
        return self.impl_instance


def long_text() -> TypeEngine[str]:
    return LongText()


class Document(sa.TypeDecorator[Any]):
    """A JSON document. ``JSONB`` on PostgreSQL so the consuming application can
    index and query it; on MariaDB ``JSON`` is ``LONGTEXT`` (4 GiB) with a validity
    check; on SQLite it is text."""

    impl = sa.JSON()
    cache_ok = True

    def __init__(self, none_as_null: bool = False) -> None:
        super().__init__(none_as_null=none_as_null)
        self.none_as_null = none_as_null

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return dialect.type_descriptor(postgresql.JSONB(none_as_null=self.none_as_null))
        return self.impl_instance


def document(*, none_as_null: bool = False) -> TypeEngine[Any]:
    return Document(none_as_null=none_as_null)
