"""Who may read the API: passwords, bearer tokens, and the checks on both.

- Passwords are hashed with scrypt (``hashlib``, RFC 7914) and a random 16-byte
  salt, stored as ``scrypt$N$r$p$salt$hash`` so the cost can be raised later
  without breaking existing users. Checking costs about 0.1 s of one core; a
  login for an unknown user costs the same (a dummy hash is checked), so timing
  does not tell which names exist.
- Tokens are 32 random bytes (``secrets``), shown once as base64url with a
  ``fst_`` prefix (secret scanners and people can tell what it is); only their
  SHA-256 is stored. A hash of 256 random bits needs no salt or slow hash.
- Every comparison of a secret is :func:`hmac.compare_digest`.

The HTTP side (``fleetstat.api``) adds throttling and turns :class:`AuthError`
into 401; the CLI (``fleetstat user``, ``fleetstat token``) calls the same
functions.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fleetstat.errors import FleetstatError, UsageError
from fleetstat.store import Store, accounts

TOKEN_PREFIX = "fst_"
TOKEN_BYTES = 32
SESSION_LIFETIME = timedelta(hours=12)
# scrypt cost: N=2**15, r=8 uses 32 MiB and ~0.1 s per check (OWASP's
# minimum is N=2**17 with r=8 and p=1 at 128 MiB; we trade some of it for a
# server that also serves /metrics and may see bursts of logins).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
NAME_MAX = 64
PASSWORD_MIN = 8


class AuthError(FleetstatError):
    """A login or token that does not let anyone in; ``reason`` is for the log only.

    The message a client sees never says which part was wrong (no such user,
    wrong password, expired, revoked): only the server's log does.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("not authenticated")
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to."""

    name: str  # the user, or the program's token name
    kind: str  # "session" or "api"
    token_id: int
    expires_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    token_id: int
    expires_at: datetime | None


# -- passwords -------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so an unknown name costs a real check."""
    return hash_password(secrets.token_urlsafe(16))


def check_user_name(name: str) -> str:
    """A user name as stored: 1-64 printable characters without spaces."""
    if not name or len(name) > NAME_MAX or not name.isprintable() or any(c.isspace() for c in name):
        raise UsageError(
            f"bad user name {name[:NAME_MAX]!r}: use 1-{NAME_MAX} characters without spaces"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise UsageError(f"the password is too short: at least {PASSWORD_MIN} characters")
    return password


# -- tokens ----------------------------------------------------------------------------


def new_token() -> str:
    return TOKEN_PREFIX + _b64(secrets.token_bytes(TOKEN_BYTES))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def login(
    store: Store,
    name: str,
    password: str,
    *,
    now: datetime | None = None,
    lifetime: timedelta = SESSION_LIFETIME,
) -> IssuedToken:
    """Check a user's password and issue a session token; :class:`AuthError` otherwise."""
    now = _now(now)
    user = accounts.find_user(store, name) if 0 < len(name) <= NAME_MAX else None
    stored = user.password_hash if user is not None else _dummy_hash()
    if not verify_password(password, stored) or user is None:
        raise AuthError("wrong password" if user is not None else "no such user")
    token = new_token()
    expires = now + lifetime
    token_id = accounts.add_token(
        store, token_hash(token), kind="session", name=user.name, now=now,
        expires_at=expires, user_id=user.id,
    )  # fmt: skip
    return IssuedToken(token, token_id, expires)


def create_api_token(
    store: Store, name: str, *, expires_in: timedelta | None, now: datetime | None = None
) -> IssuedToken:
    """A program's token (``fleetstat token create``); ``expires_in`` None never expires."""
    now = _now(now)
    if not name or len(name) > 255 or not name.isprintable():
        raise FleetstatError("a token needs a --name of 1-255 printable characters")
    token = new_token()
    expires = now + expires_in if expires_in is not None else None
    token_id = accounts.add_token(
        store, token_hash(token), kind="api", name=name, now=now, expires_at=expires
    )
    return IssuedToken(token, token_id, expires)


def authenticate(store: Store, token: str, *, now: datetime | None = None) -> Principal:
    """Who ``token`` belongs to; :class:`AuthError` for unknown, expired or revoked."""
    now = _now(now)
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        raise AuthError("malformed token")
    digest = token_hash(token)
    row = accounts.find_token(store, digest)
    # The row was found by its hash; compare anyway so that no code path
    # depends on the database's string comparison of a secret-derived value.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise AuthError("unknown token")
    if row.revoked_at is not None:
        raise AuthError(f"revoked token {row.id} ({row.name})")
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthError(f"expired token {row.id} ({row.name})")
    return Principal(row.name, row.kind, row.id, row.expires_at)


def logout(store: Store, principal: Principal, *, now: datetime | None = None) -> None:
    accounts.revoke_token(store, principal.token_id, _now(now))
