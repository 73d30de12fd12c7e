"""Shared fixtures. Each part keeps its fixtures in its own section below."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from functools import cache

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

# =============================================================================
# Databases (store): ``db_url`` is a fresh, empty database per test on each of
# SQLite, PostgreSQL and MariaDB. A server that cannot be reached skips its tests
# locally and fails them when ``CI`` is set: CI must never skip a backend.
# Override the admin URLs with FLEETSTAT_TEST_POSTGRES_URL / FLEETSTAT_TEST_MARIADB_URL.
# =============================================================================

DB_BACKENDS = ("sqlite", "postgresql", "mariadb")

_POSTGRES_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
_MARIADB_ADMIN_URLS = ("mysql+pymysql://root@127.0.0.1:3306/",)
_OVERRIDES = {"postgresql": "FLEETSTAT_TEST_POSTGRES_URL", "mariadb": "FLEETSTAT_TEST_MARIADB_URL"}


def _candidates(backend: str) -> tuple[str, ...]:
    override = os.environ.get(_OVERRIDES[backend])
    if override:
        return (override,)
    return _POSTGRES_ADMIN_URLS if backend == "postgresql" else _MARIADB_ADMIN_URLS


def _admin_engine(url: str) -> sa.Engine:
    # AUTOCOMMIT: CREATE/DROP DATABASE cannot run inside a transaction on PostgreSQL.
    return sa.create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )


@cache
def _admin_url(backend: str) -> tuple[str | None, str]:
    """The first admin URL that answers, or None and why; tried once per session."""
    reasons = []
    for url in _candidates(backend):
        engine = _admin_engine(url)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return url, ""
        except sa.exc.SQLAlchemyError as exc:
            shown = sa.make_url(url).render_as_string(hide_password=True)
            reasons.append(f"{shown}: {str(getattr(exc, 'orig', exc)).strip()}")
        finally:
            engine.dispose()
    return None, "; ".join(reasons)


def _unavailable(backend: str, why: str) -> None:
    message = f"{backend} test server unreachable ({why})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run every database backend", pytrace=False)
    pytest.skip(message)


def _server_database(backend: str) -> Iterator[str]:
    admin_url, why = _admin_url(backend)
    if admin_url is None:
        _unavailable(backend, why)
        return
    name = f"fleetstat_test_{secrets.token_hex(6)}"
    engine = _admin_engine(admin_url)
    if backend == "postgresql":
        create = f'CREATE DATABASE "{name}"'
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        url = sa.make_url(admin_url).set(database=name)
    else:
        create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        drop = f"DROP DATABASE IF EXISTS `{name}`"
        url = sa.make_url(admin_url).set(database=name).update_query_dict({"charset": "utf8mb4"})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(create)
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(drop)
        engine.dispose()


@pytest.fixture(params=DB_BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to a new, empty database; dropped after the test."""
    if db_backend == "sqlite":
        # A folder that does not exist yet: the store must create it.
        folder = tmp_path_factory.mktemp("db") / "nested"
        yield f"sqlite:///{folder / 'fleetstat.db'}"
        return
    yield from _server_database(db_backend)


# =============================================================================
# Simulated hosts (transport, collector): one real OpenSSH sshd per session.
# =============================================================================

from fleet_fixtures import sim_fleet  # noqa: E402, F401  (re-exported fixture)

# SMTP (mail): real aiosmtpd servers on loopback, see tests/smtp_fixtures.py.
from smtp_fixtures import smtp_certificate, smtp_server, smtp_tls_server  # noqa: E402, F401

# =============================================================================
# State: a config without <spool dir> keeps its spool under the XDG state
# directory; every test (and every fleetstat it starts) gets a private one.
# =============================================================================


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in ("XDG_STATE_HOME", "STATE_DIRECTORY")}
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    os.environ.pop("STATE_DIRECTORY", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
