"""``fleetstat user ...`` and ``fleetstat token ...``: who may read ``fleetstat serve``'s API."""

from __future__ import annotations

import os
from pathlib import Path

import click

from fleetstat.commands.common import Duration, config_option, db_option, group, load_config
from fleetstat.errors import FleetstatError, UsageError
from fleetstat.present import out, when


def _store(config: Path, db: str | None):  # type: ignore[no-untyped-def]
    from fleetstat.app import open_store

    return open_store(load_config(config), db)


@group("user")
def user() -> None:
    """People who may log in to the API (POST /api/v1/login)."""


@user.command("add")
@click.argument("name", help="The user name (1-64 characters, no spaces).")
@config_option
@db_option
@click.option("--password-env", metavar="VAR",
              help="Take the password from this environment variable, not a prompt.")  # fmt: skip
@click.option("--update", is_flag=True, help="Set a new password for an existing user.")
def user_add(
    name: str, config: Path, db: str | None, password_env: str | None, update: bool
) -> None:
    """Add a user (or with --update change their password, ending their sessions).

    The password is stored as a scrypt hash; it is asked twice on the terminal,
    or read from --password-env for scripts.

    Example: fleetstat user add alice -c /etc/fleetstat/fleetstat.xml
    """
    from datetime import UTC, datetime

    from fleetstat import auth
    from fleetstat.store import accounts

    auth.check_user_name(name)
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise UsageError(f"--password-env: the environment variable {password_env} is not set")
    else:
        password = click.prompt(f"password for {name}", hide_input=True,
                                confirmation_prompt=True, err=True)  # fmt: skip
    auth.check_password(password)
    hashed = auth.hash_password(password)
    with _store(config, db) as store:
        if update:
            if not accounts.set_password(store, name, hashed):
                raise FleetstatError(f"no user {name!r} (fleetstat user list shows them)")
            out().print(f"changed the password of {name}; their sessions ended", highlight=False)
            return
        accounts.add_user(store, name, hashed, datetime.now(UTC))
    out().print(f"added user {name}", highlight=False, markup=False)


@user.command("remove")
@click.argument("name", help="The user to remove.")
@config_option
@db_option
def user_remove(name: str, config: Path, db: str | None) -> None:
    """Remove a user; their tokens stop working at once.

    Example: fleetstat user remove alice -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.store import accounts

    with _store(config, db) as store:
        if not accounts.remove_user(store, name):
            raise FleetstatError(f"no user {name!r} (fleetstat user list shows them)")
    out().print(f"removed user {name}", highlight=False, markup=False)


@user.command("list")
@config_option
@db_option
def user_list(config: Path, db: str | None) -> None:
    """The users, with when they were added and last logged in.

    Example: fleetstat user list -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.store import accounts

    with _store(config, db) as store:
        users = accounts.list_users(store)
    for row in users:
        out().print(f"{row.name}\tadded {when(row.created_at)}\tlast login "
                    f"{when(row.last_login_at)}", highlight=False, markup=False)  # fmt: skip
    if not users:
        out().print("no users: add one with fleetstat user add NAME", highlight=False)


@group("token")
def token() -> None:
    """Long-lived API tokens for programs (Grafana, scripts, Prometheus)."""


@token.command("create")
@click.option("--name", required=True, help="What the token is for, e.g. grafana.")
@click.option("--expires", type=Duration(1.0), metavar="DURATION",
              help="Lifetime, e.g. 90d [default: never expires].")  # fmt: skip
@config_option
@db_option
def token_create(name: str, expires: float | None, config: Path, db: str | None) -> None:
    """Create a token and print it once (only its hash is stored).

    Send it as 'Authorization: Bearer <token>'. Revoke it with fleetstat token revoke.

    Example: fleetstat token create --name grafana --expires 90d -c fleetstat.xml
    """
    from datetime import timedelta

    from fleetstat import auth

    lifetime = timedelta(seconds=expires) if expires is not None else None
    with _store(config, db) as store:
        issued = auth.create_api_token(store, name, expires_in=lifetime)
    click.echo(issued.token)
    ends = f"expires {when(issued.expires_at)}" if issued.expires_at else "never expires"
    click.echo(f"token {issued.token_id} for {name}: {ends}; it is not shown again", err=True)


@token.command("list")
@config_option
@db_option
def token_list(config: Path, db: str | None) -> None:
    """Programs' tokens: id, name, created, expires, revoked, last used (never the token).

    Example: fleetstat token list -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.store import accounts

    with _store(config, db) as store:
        tokens = accounts.list_tokens(store, kind="api")
    for row in tokens:
        state = f"revoked {when(row.revoked_at)}" if row.revoked_at else (
            f"expires {when(row.expires_at)}" if row.expires_at else "never expires")  # fmt: skip
        used = when(row.last_used_at)
        out().print(f"{row.id}\t{row.name}\tcreated {when(row.created_at)}\t{state}\t"
                    f"last used {used}", highlight=False, markup=False)  # fmt: skip
    if not tokens:
        out().print("no tokens: create one with fleetstat token create --name NAME",
                    highlight=False)  # fmt: skip


@token.command("revoke")
@click.option("--name", required=True, help="Revoke every live token with this name.")
@config_option
@db_option
def token_revoke(name: str, config: Path, db: str | None) -> None:
    """Revoke a program's tokens by name; they stop working at once.

    Example: fleetstat token revoke --name grafana -c /etc/fleetstat/fleetstat.xml
    """
    from datetime import UTC, datetime

    from fleetstat.store import accounts

    with _store(config, db) as store:
        count = accounts.revoke_tokens_named(store, name, datetime.now(UTC))
    if count == 0:
        raise FleetstatError(f"no live token named {name!r} (fleetstat token list shows them)")
    out().print(f"revoked {count} token(s) named {name}", highlight=False, markup=False)
