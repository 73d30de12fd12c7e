"""Users, tokens and server state (``fleetstat serve``'s login) on the three databases,
and the ``<http>`` config element."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleetstat import auth
from fleetstat.config import Http, load_config
from fleetstat.config.validate import Invalid, parse_listen
from fleetstat.errors import ConfigError, FleetstatError, StoreError
from fleetstat.store import Store, accounts
from fleetstat.store.schema import api_tokens, users

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as store:
        store.ensure_schema()
        yield store


def test_password_hash_is_salted_scrypt_and_checks() -> None:
    first, second = auth.hash_password(PASSWORD), auth.hash_password(PASSWORD)
    assert first != second  # salted
    assert first.startswith("scrypt$32768$8$1$") and PASSWORD not in first
    assert auth.verify_password(PASSWORD, first)
    assert not auth.verify_password(PASSWORD + "x", first)
    assert not auth.verify_password(PASSWORD, "scrypt$broken")
    assert not auth.verify_password(PASSWORD, "bcrypt$1$2$3$4$5")


def test_tokens_are_random_and_only_their_hash_is_kept(store: Store) -> None:
    issued = auth.create_api_token(store, "grafana", expires_in=timedelta(days=90), now=T0)
    other = auth.create_api_token(store, "grafana", expires_in=None, now=T0)
    assert issued.token != other.token
    assert issued.token.startswith("fst_") and len(issued.token) == 4 + 43  # 32 bytes
    assert issued.expires_at == T0 + timedelta(days=90) and other.expires_at is None
    with store.engine.connect() as conn:
        stored = [row.token_hash for row in conn.execute(sa.select(api_tokens))]
    assert issued.token not in stored and auth.token_hash(issued.token) in stored
    who = auth.authenticate(store, issued.token, now=T0 + timedelta(days=89))
    assert (who.name, who.kind, who.token_id) == ("grafana", "api", issued.token_id)


def test_login_logout_expiry_and_revocation(store: Store) -> None:
    accounts.add_user(store, "alice", auth.hash_password(PASSWORD), T0)
    session = auth.login(store, "alice", PASSWORD, now=T0, lifetime=timedelta(hours=1))
    assert auth.authenticate(store, session.token, now=T0).name == "alice"
    assert accounts.find_user(store, "alice").last_login_at == T0  # type: ignore[union-attr]

    with pytest.raises(auth.AuthError) as expired:
        auth.authenticate(store, session.token, now=T0 + timedelta(hours=1))
    assert "expired" in expired.value.reason and str(expired.value) == "not authenticated"

    other = auth.login(store, "alice", PASSWORD, now=T0)
    auth.logout(store, auth.authenticate(store, other.token, now=T0), now=T0)
    with pytest.raises(auth.AuthError, match="not authenticated") as revoked:
        auth.authenticate(store, other.token, now=T0)
    assert "revoked" in revoked.value.reason

    for name, password, reason in [
        ("alice", "wrong password!", "wrong password"),
        ("bob", PASSWORD, "no such user"),
        ("", PASSWORD, "no such user"),
    ]:
        with pytest.raises(auth.AuthError) as refused:
            auth.login(store, name, password, now=T0)
        assert refused.value.reason == reason
    for token in ["", "fst_" + "A" * 43, "Bearer x", session.token + "x"]:
        with pytest.raises(auth.AuthError):
            auth.authenticate(store, token, now=T0)


def test_users_add_list_remove_and_password_change(store: Store) -> None:
    alice = accounts.add_user(store, "alice", auth.hash_password(PASSWORD), T0)
    accounts.add_user(store, "bob", auth.hash_password(PASSWORD), T0)
    with pytest.raises(StoreError, match="exists already"):
        accounts.add_user(store, "alice", "x", T0)
    assert [u.name for u in accounts.list_users(store)] == ["alice", "bob"]
    session = auth.login(store, "alice", PASSWORD, now=T0)

    assert accounts.set_password(store, "alice", auth.hash_password("a new password"))
    with pytest.raises(auth.AuthError):  # a new password ends the old sessions
        auth.authenticate(store, session.token, now=T0)
    assert auth.login(store, "alice", "a new password", now=T0).token

    assert accounts.remove_user(store, "alice") is True
    assert accounts.remove_user(store, "alice") is False
    assert accounts.set_password(store, "alice", "x") is False
    assert [u.name for u in accounts.list_users(store)] == ["bob"]
    with store.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(api_tokens.c.user_id == alice)
            ).scalar_one()
            == 0
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one() == 1


def test_token_revocation_by_name_and_pruning(store: Store) -> None:
    a = auth.create_api_token(store, "ci", expires_in=timedelta(days=1), now=T0)
    b = auth.create_api_token(store, "ci", expires_in=None, now=T0)
    keep = auth.create_api_token(store, "grafana", expires_in=None, now=T0)
    assert accounts.revoke_tokens_named(store, "ci", T0) == 2
    assert accounts.revoke_tokens_named(store, "ci", T0) == 0
    for token in (a, b):
        with pytest.raises(auth.AuthError):
            auth.authenticate(store, token.token, now=T0)
    assert accounts.delete_dead_tokens(store, T0 + timedelta(days=2)) == 2
    assert [t.name for t in accounts.list_tokens(store)] == ["grafana"]
    assert auth.authenticate(store, keep.token, now=T0).name == "grafana"


def test_server_state_is_kept(store: Store) -> None:
    assert accounts.read_state(store, "monitoring.running") is None
    accounts.write_state(store, "monitoring.running", "false", T0, "alice")
    accounts.write_state(store, "monitoring.running", "false", T0, "alice")  # unchanged
    assert accounts.read_state(store, "monitoring.running") == "false"
    accounts.write_state(store, "monitoring.running", "true", T0, None)
    assert accounts.read_state(store, "monitoring.running") == "true"


def test_names_and_passwords_are_checked() -> None:
    assert auth.check_user_name("alice") == "alice"
    for bad in ["", "a b", "x" * 65, "tab\there", "esc\x1b[31m"]:
        with pytest.raises(FleetstatError, match="bad user name"):
            auth.check_user_name(bad)
    with pytest.raises(FleetstatError, match="too short"):
        auth.check_password("short")


# -- <http> ---------------------------------------------------------------------------


def write(tmp_path: Path, http: str) -> Path:
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        textwrap.dedent(f"""\
        <fleetstat>
          {http}
          <client ip="10.0.0.9" username="u" password="p"/>
        </fleetstat>
        """),
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def test_http_defaults_and_every_setting(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).http == Http("127.0.0.1", 8760)
    (tmp_path / "tls.crt").write_text("cert")
    (tmp_path / "tls.key").write_text("key")
    config = load_config(write(tmp_path, (
        '<http listen="[::1]:9000" certfile="tls.crt" keyfile="tls.key" '
        'metrics-public="true" watch="false" session-lifetime="1h"/>'
    )))  # fmt: skip
    assert config.http == Http(
        "::1", 9000, tmp_path / "tls.crt", tmp_path / "tls.key", True, False, 3600.0
    )
    assert config.http.tls


def test_http_errors_name_line_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '<http listen="localhost:99999" certfile="nope.crt"\n'
                                    ' metrics_public="yes"/>'))  # fmt: skip
    text = [str(issue) for issue in caught.value.issues]
    assert any(":2:" in t and "out of range" in t and "127.0.0.1:8760" in t for t in text), text
    assert any("certfile" in t and "does not exist" in t for t in text), text
    assert any("but no keyfile=" in t and "TLS needs both" in t for t in text), text
    assert any(":3:" in t and "did you mean metrics-public=" in t for t in text), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8760", ("127.0.0.1", 8760)),
        (":80", ("0.0.0.0", 80)),
        ("0.0.0.0", ("0.0.0.0", 8760)),
        ("[::]:443", ("::", 443)),
        ("::1", ("::1", 8760)),
        ("localhost:1234", ("localhost", 1234)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "[::1", "[::1]x", "a b:80", "host:65536", "host:http"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(Invalid):
        parse_listen(text)
