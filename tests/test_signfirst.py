"""Key logins sign first (transport/signfirst.py), against the real sshd of the fleet."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh import auth as asyncssh_auth
from fleet_fixtures import fleet_config, key_login_options

from fleetstat.app import collect_once
from fleetstat.model import Status
from fleetstat.simfleet import SimFleet
from fleetstat.transport import signfirst, ssh


def test_fleetstat_logs_in_with_the_sign_first_handler() -> None:
    assert ssh.SIGN_FIRST is True
    handler = asyncssh_auth._client_auth_handlers[b"publickey"]
    assert handler is not asyncssh_auth._ClientPublicKeyAuth
    assert issubclass(handler, asyncssh_auth._ClientPublicKeyAuth)
    assert signfirst.install() is True  # idempotent
    assert asyncssh_auth._client_auth_handlers[b"publickey"] is handler


def test_an_asyncssh_it_does_not_fit_keeps_its_own_flow() -> None:
    class Stock:
        async def _start(self) -> None: ...

    handlers: dict[bytes, Any] = {b"publickey": Stock}
    fake = types.ModuleType("fake_auth")
    fake._client_auth_handlers = handlers  # type: ignore[attr-defined]
    fake._ClientPublicKeyAuth = Stock  # type: ignore[attr-defined]
    assert signfirst.install(fake) is False  # no _send_signed_request to call
    assert handlers[b"publickey"] is Stock
    assert signfirst.install(types.ModuleType("empty")) is False


def _logins_asked(sim_fleet: SimFleet, monkeypatch: pytest.MonkeyPatch) -> int:
    """PK_OK answers received over one real key login to the fleet's sshd."""
    answers: list[int] = []
    base = asyncssh_auth._ClientPublicKeyAuth
    pk_ok = asyncssh_auth.MSG_USERAUTH_PK_OK
    original = base._packet_handlers[pk_ok]

    def counted(self: Any, *args: Any) -> Any:
        answers.append(1)
        return original(self, *args)

    monkeypatch.setitem(base._packet_handlers, pk_ok, counted)
    options = key_login_options(sim_fleet)

    async def login() -> None:
        host = sim_fleet.hosts[0].address
        async with asyncssh.connect(host, sim_fleet.port, options=options) as conn:
            assert (await conn.run("exit 0")).exit_status == 0

    asyncio.run(login())
    return len(answers)


@pytest.mark.sshd
def test_a_key_login_sends_its_signature_without_asking_first(
    sim_fleet: SimFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _logins_asked(sim_fleet, monkeypatch) == 0
    # The same login with asyncssh's own handler asks once: the count is real.
    monkeypatch.setitem(
        asyncssh_auth._client_auth_handlers, b"publickey", asyncssh_auth._ClientPublicKeyAuth
    )
    assert _logins_asked(sim_fleet, monkeypatch) == 1


def _round_with_key(tmp_path: Path, sim_fleet: SimFleet, key: Path) -> dict[str, Any]:
    """One round over sim-000 and a client "other" that logs in with ``key``."""
    key.chmod(0o600)
    extra = f"""
  <client ip="{sim_fleet.hosts[1].address}" port="{sim_fleet.port}" username="{sim_fleet.user}"
          key="{key}" mail="a@example.com" name="other"/>"""
    config = fleet_config(tmp_path, sim_fleet, [0], extra_clients=extra)
    return {r.client.label: r for r in collect_once(config).round.results}


@pytest.mark.sshd
def test_a_key_the_host_does_not_know_is_still_auth_failed(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    stranger = tmp_path / "stranger_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    by_name = _round_with_key(tmp_path, sim_fleet, stranger)
    assert {name: r.status for name, r in by_name.items()} == {
        "sim-000": Status.OK,
        "other": Status.AUTH_FAILED,
    }


@pytest.mark.sshd
def test_a_key_file_that_is_not_a_key_is_auth_failed_with_the_file_named(
    tmp_path: Path, sim_fleet: SimFleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an internal error with a traceback per host: the row names the file."""
    garbage = tmp_path / "not_a_key"
    garbage.write_text("this is not a private key\n")
    by_name = _round_with_key(tmp_path, sim_fleet, garbage)
    assert by_name["sim-000"].status is Status.OK
    bad = by_name["other"]
    assert bad.status is Status.AUTH_FAILED
    assert f"cannot use key file {garbage}" in (bad.error or "")
    # The collector logs an unexpected exception (with its traceback) at ERROR.
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
