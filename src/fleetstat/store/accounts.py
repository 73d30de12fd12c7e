"""Users, API tokens and the server's persisted state (``fleetstat serve``): the SQL.

The secrets themselves never reach this module: a user's password arrives as its
scrypt hash and a token as its SHA-256 (``fleetstat.auth`` makes both). Token
checks look the hash up by its unique index; the caller compares in constant time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from fleetstat.errors import StoreError
from fleetstat.store.core import Store
from fleetstat.store.schema import api_tokens, server_state, users

if TYPE_CHECKING:
    from sqlalchemy.engine import Row


@dataclass(frozen=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class TokenRow:
    id: int
    token_hash: str
    kind: str  # "session" (a login) or "api" (fleetstat token create)
    name: str  # the user's name for a session, the program's for an api token
    user_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


# -- users ---------------------------------------------------------------------------


def add_user(store: Store, name: str, password_hash: str, now: datetime) -> int:
    """A new user; :class:`StoreError` when the name is taken."""
    with store.errors("add the user"), store.engine.begin() as conn:
        taken = conn.execute(sa.select(users.c.id).where(users.c.name == name)).first()
        if taken is not None:
            raise StoreError(f"user {name!r} exists already (fleetstat user remove {name} first)")
        inserted = conn.execute(
            sa.insert(users).values(name=name, password_hash=password_hash, created_at=now)
        ).inserted_primary_key
        assert inserted is not None
        return int(inserted[0])


def set_password(store: Store, name: str, password_hash: str) -> bool:
    """Replace a user's password hash and revoke their sessions; False when no such user."""
    with store.errors("change the password"), store.engine.begin() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar()
        if user_id is None:
            return False
        conn.execute(
            sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )
        conn.execute(sa.delete(api_tokens).where(api_tokens.c.user_id == user_id))
        return True


def remove_user(store: Store, name: str) -> bool:
    """Delete a user and their session tokens; False when there was no such user."""
    with store.errors("remove the user"), store.engine.begin() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar()
        if user_id is None:
            return False
        # Explicitly, not only by ON DELETE CASCADE: SQLite enforces it only with
        # its foreign_keys pragma, which a database opened by other tools may lack.
        conn.execute(sa.delete(api_tokens).where(api_tokens.c.user_id == user_id))
        conn.execute(sa.delete(users).where(users.c.id == user_id))
        return True


def list_users(store: Store) -> list[UserRow]:
    with store.errors("list the users"), store.engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.name)).all()
    return [UserRow(**row._mapping) for row in rows]


def find_user(store: Store, name: str) -> UserRow | None:
    with store.errors("read the user"), store.engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    return None if row is None else UserRow(**row._mapping)


# -- tokens --------------------------------------------------------------------------


def add_token(
    store: Store,
    token_hash: str,
    *,
    kind: str,
    name: str,
    now: datetime,
    expires_at: datetime | None,
    user_id: int | None = None,
) -> int:
    """Store a new token's hash; for a session, also the user's last login time."""
    with store.errors("store the token"), store.engine.begin() as conn:
        inserted = conn.execute(
            sa.insert(api_tokens).values(
                token_hash=token_hash,
                kind=kind,
                name=name,
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
            )
        ).inserted_primary_key
        if user_id is not None:
            conn.execute(sa.update(users).where(users.c.id == user_id).values(last_login_at=now))
        assert inserted is not None
        return int(inserted[0])


def find_token(store: Store, token_hash: str) -> TokenRow | None:
    """The token with this hash, revoked and expired ones included (the caller decides)."""
    with store.errors("check the token"), store.engine.connect() as conn:
        row = conn.execute(
            sa.select(api_tokens).where(api_tokens.c.token_hash == token_hash)
        ).first()
    return None if row is None else TokenRow(**row._mapping)


def touch_token(store: Store, token_id: int, now: datetime) -> None:
    """Record a use (``last_used_at``), for ``fleetstat token list``."""
    with store.errors("record the token's use"), store.engine.begin() as conn:
        conn.execute(
            sa.update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
        )


def revoke_token(store: Store, token_id: int, now: datetime) -> None:
    with store.errors("revoke the token"), store.engine.begin() as conn:
        conn.execute(
            sa.update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def revoke_tokens_named(store: Store, name: str, now: datetime) -> int:
    """Revoke every live program token called ``name``; how many there were."""
    with store.errors("revoke the token"), store.engine.begin() as conn:
        done = conn.execute(
            sa.update(api_tokens)
            .where(
                api_tokens.c.kind == "api",
                api_tokens.c.name == name,
                api_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(done.rowcount)


def list_tokens(store: Store, *, kind: str | None = None) -> list[TokenRow]:
    query = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if kind is not None:
        query = query.where(api_tokens.c.kind == kind)
    with store.errors("list the tokens"), store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [TokenRow(**row._mapping) for row in rows]


def delete_dead_tokens(store: Store, before: datetime) -> int:
    """Drop tokens that expired or were revoked before ``before``: sessions pile up."""
    with store.errors("prune the tokens"), store.engine.begin() as conn:
        done = conn.execute(
            sa.delete(api_tokens).where(
                sa.or_(api_tokens.c.expires_at < before, api_tokens.c.revoked_at < before)
            )
        )
        return int(done.rowcount)


# -- server state --------------------------------------------------------------------


def read_state(store: Store, name: str) -> str | None:
    with store.errors("read the server state"), store.engine.connect() as conn:
        return conn.execute(
            sa.select(server_state.c.value).where(server_state.c.name == name)
        ).scalar()


def read_state_row(store: Store, name: str) -> Row | None:
    """The named value with ``updated_at`` and ``updated_by``; None when unset."""
    with store.errors("read the server state"), store.engine.connect() as conn:
        return conn.execute(sa.select(server_state).where(server_state.c.name == name)).first()


def write_state(store: Store, name: str, value: str, now: datetime, by: str | None) -> None:
    """Set a named value (insert or update in one transaction)."""
    with store.errors("write the server state"), store.engine.begin() as conn:
        done = conn.execute(
            sa.update(server_state)
            .where(server_state.c.name == name)
            .values(value=value, updated_at=now, updated_by=by)
        )
        if done.rowcount == 0:
            conn.execute(
                sa.insert(server_state).values(
                    name=name, value=value, updated_at=now, updated_by=by
                )
            )
