"""Database URLs: the one normalisation for ``<database url=...>`` and ``--db``, a
password from ``password-env``, and the form that is safe to show.

Standard library only, on purpose: SQLAlchemy's ``make_url`` would import
SQLAlchemy (0.18-0.25 s of CPU here, ``-X importtime``) while the config loads,
in front of every round's first connection, where ``collect`` now imports it in
a thread during the round (docs/performance.md). So this module maps the scheme
to the driver fleetstat ships and anchors a relative SQLite path, and keeps the
rest of the URL byte for byte; ``make_url`` parses it for real in the store
(``Store(url)``). A message never repeats a URL that may hold a password: it
shows :func:`mask_database_url`'s form, or nothing of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

from fleetstat.config.validate import Invalid

# The drivers fleetstat ships (pyproject dependencies); a bare scheme gets ours.
DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg",  # Heroku-style spelling that SQLAlchemy 2 refuses
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "mariadb+pymysql": "mariadb+pymysql",
}
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)", re.DOTALL)
# Query parameters a driver reads as a password (libpq's, PyMySQL's).
_SECRET_PARAMS = re.compile(r"(?i)(^|[?&])(password|passwd|pwd)=[^&]*")
DATABASE_FIX = (
    'write url="sqlite:///fleetstat.db", "postgresql://user@host/db" or "mysql://user@host/db"'
)


def normalize_database_url(url: str, base_dir: Path) -> str:
    """The URL with fleetstat's driver for its scheme; a relative SQLite path is
    anchored at ``base_dir`` (the config's folder, or the current one for ``--db``).

    Raises :class:`Invalid` with a message that does not repeat the URL.
    """
    match = _URL.fullmatch(url.strip())
    if not match:
        raise Invalid("the database URL is not of the form scheme://...", DATABASE_FIX)
    scheme, rest = match.group("scheme").lower(), match.group("rest")
    if scheme not in DRIVERS:
        dialect = scheme.split("+", 1)[0]
        fix = (
            f'fleetstat ships one driver per database: use "{DRIVERS[dialect]}://"'
            if dialect in DRIVERS
            else DATABASE_FIX
        )
        raise Invalid(f"unsupported database scheme {scheme!r}", fix)
    if scheme != "sqlite":
        _, _, host_and_path = _split(url) or ("", "", "")
        if not host_and_path.split("?", 1)[0].strip("/"):
            raise Invalid("the database URL names no host or database", DATABASE_FIX)
        try:
            urlsplit(f"{scheme}://{rest}").port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise Invalid(
                "the database URL's host or port is malformed (a port is a number in "
                "1..65535, an IPv6 address goes in brackets)",
                DATABASE_FIX,
            ) from None
        return f"{DRIVERS[scheme]}://{rest}"
    # sqlite://  (memory), sqlite:///relative.db, sqlite:////absolute.db
    if not rest:
        return "sqlite://"
    if not rest.startswith("/"):
        raise Invalid("a SQLite URL has three slashes", 'write "sqlite:///fleetstat.db"')
    path_text, sep, query = rest[1:].partition("?")
    if path_text in ("", ":memory:") or path_text.startswith("file:"):
        return f"sqlite:///{rest[1:]}"
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return f"sqlite:///{path}{sep}{query}"


def _split(url: str) -> tuple[str, str, str] | None:
    """``(scheme, userinfo or "", the rest after "@")``, or None when not a URL."""
    match = _URL.fullmatch(url.strip())
    if not match:
        return None
    scheme, rest = match.group("scheme"), match.group("rest")
    netloc, slash, tail = rest.partition("/")
    # The last "@" ends the user part: a password may hold an unencoded "@".
    userinfo, at, host = netloc.rpartition("@")
    return scheme, userinfo if at else "", f"{host if at else netloc}{slash}{tail}"


def url_password(url: str) -> bool:
    """Whether the URL carries a password (in its user part or its query)."""
    parts = _split(url)
    if parts is None:
        return False
    _, userinfo, rest = parts
    return ":" in userinfo or bool(_SECRET_PARAMS.search(rest.partition("?")[2]))


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (percent-encoded, as SQLAlchemy decodes it) after its user."""
    parts = _split(url)
    if parts is None:  # pragma: no cover - the URL was normalised first
        raise Invalid("the database URL is not of the form scheme://...", DATABASE_FIX)
    scheme, userinfo, rest = parts
    if not userinfo:
        raise Invalid(
            "password-env= needs a user name in the database URL",
            'write url="postgresql://fleetstat@db.example.com/fleetstat"',
        )
    if ":" in userinfo:
        raise Invalid(
            "the database URL has a password and <database> also has password-env=",
            "remove the password from the URL and keep password-env=",
        )
    return f"{scheme}://{userinfo}:{quote(password, safe='')}@{rest}"


def mask_database_url(url: str) -> str:
    """The URL to show people: its password (user part or query) as ``***``."""
    parts = _split(url)
    if parts is None:
        return "(not a database URL; not shown)"
    scheme, userinfo, rest = parts
    user, colon, _ = userinfo.partition(":")
    path, question, query = rest.partition("?")
    query = _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", query)
    shown_user = f"{user}:***@" if colon else f"{user}@" if userinfo else ""
    return f"{scheme}://{shown_user}{path}{question}{query}"
