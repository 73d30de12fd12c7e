"""The OpenSSH client side against the real sshd fixture: an ssh_config file
(Host, Match, Include, HostName, Port, User, IdentityFile), an ssh-agent
(Debian's ssh-agent and ssh-add) holding the only usable key, and a
passphrase-protected key decrypted once. Each carries a round."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from fleet_fixtures import write_fleet_config

from fleetstat.app import collect_once
from fleetstat.config import Config, load_config
from fleetstat.model import Status
from fleetstat.simfleet import SimFleet

pytestmark = pytest.mark.sshd

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


def _write_config(tmp_path: Path, fleet: SimFleet, clients: str, defaults: str = "") -> Path:
    return write_fleet_config(tmp_path, fleet, [], extra_clients=clients, defaults_attrs=defaults)


def _statuses(config: Config) -> dict[str, Status]:
    outcome = collect_once(config)
    return {r.client.label: r.status for r in outcome.round.results}


def _stranger_key(tmp_path: Path) -> Path:
    key = tmp_path / "stranger_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


# -- ssh_config ------------------------------------------------------------------------


def _ssh_config(tmp_path: Path, fleet: SimFleet) -> Path:
    included = tmp_path / "ssh_config.d" / "sim.conf"
    included.parent.mkdir()
    included.write_text(f"Host sim-b\n  HostName {fleet.hosts[1].address}\n")
    path = tmp_path / "ssh_config"
    path.write_text(
        f"""# as an operator keeps it
Include {included.parent}/*.conf
Host sim-a
  HostName {fleet.hosts[0].address}
Match originalhost sim-b
  ServerAliveInterval 15
Host sim-*
  Port {fleet.port}
  User {fleet.user}
  IdentityFile {fleet.client_key}
  IdentityFile ~/.ssh/no-such-key-fleetstat
"""
    )
    return path


def test_a_round_with_host_port_user_and_key_from_ssh_config(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    ssh_config = _ssh_config(tmp_path, sim_fleet)
    clients = '<client ip="sim-a"/>\n<client ip="sim-b" name="b"/>'
    config = load_config(_write_config(tmp_path, sim_fleet, clients, f'ssh-config="{ssh_config}"'))
    a, b = config.clients
    assert (a.ip, a.connect_host, a.port, a.username) == (
        "sim-a", sim_fleet.hosts[0].address, sim_fleet.port, sim_fleet.user,
    )  # fmt: skip
    assert a.keys == (sim_fleet.client_key,)  # the missing IdentityFile is skipped, as ssh does
    assert (b.connect_host, b.keepalive, a.keepalive) == (sim_fleet.hosts[1].address, 15.0, None)
    assert _statuses(config) == {"sim-a": Status.OK, "b": Status.OK}


def test_the_xml_wins_over_ssh_config_and_check_config_resolve_shows_it(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    ssh_config = _ssh_config(tmp_path, sim_fleet)
    stranger = _stranger_key(tmp_path)
    clients = f'<client ip="sim-a" port="2222" username="someone" key="{stranger}"/>'
    path = _write_config(tmp_path, sim_fleet, clients, f'ssh-config="{ssh_config}"')
    (client,) = load_config(path).clients
    assert (client.port, client.username) == (2222, "someone")
    assert client.keys == (stranger, sim_fleet.client_key)  # key= first, then IdentityFile

    done = subprocess.run(
        [FLEETSTAT, "check-config", str(path), "--resolve", "sim-a"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in done.stdout.splitlines()[1:]
    )
    assert rows["connects to"] == f"{sim_fleet.hosts[0].address}:2222"
    assert rows["username"] == "someone"
    assert rows["keys"] == f"{stranger}, {sim_fleet.client_key}"
    assert rows["ssh-config"] == str(ssh_config)

    done = subprocess.run(
        [FLEETSTAT, "check-config", str(path), "--resolve", "web-99"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "no client 'web-99'" in done.stderr


def test_a_bad_ssh_config_line_is_a_config_error_naming_the_file_once(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host *\n  Port twenty-two\n")
    clients = '<client ip="sim-a"/>\n<client ip="sim-b"/>'
    path = _write_config(tmp_path, sim_fleet, clients, f'ssh-config="{ssh_config}"')
    done = subprocess.run(
        [FLEETSTAT, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.count(f"{ssh_config} line 2") == 1, done.stderr


# -- ssh-agent -------------------------------------------------------------------------


@pytest.fixture
def agent(tmp_path: Path, sim_fleet: SimFleet) -> Iterator[str]:
    """A real ssh-agent holding the fleet's key (the only one the hosts accept)."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        for _ in range(200):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(sim_fleet.client_key)], env=env, check=True)
        yield str(sock)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_an_agent_holding_the_only_usable_key_carries_a_round(
    tmp_path: Path, sim_fleet: SimFleet, agent: str
) -> None:
    stranger = _stranger_key(tmp_path)
    hosts = sim_fleet.hosts
    clients = f"""
<client ip="{hosts[0].address}" port="{sim_fleet.port}" username="{sim_fleet.user}"
        agent="{agent}" name="agent-attr"/>
<client ip="{hosts[1].address}" port="{sim_fleet.port}" username="{sim_fleet.user}"
        name="from-env"/>
<client ip="{hosts[2].address}" port="{sim_fleet.port}" username="{sim_fleet.user}"
        key="{stranger}" agent="{agent}" name="stranger-key-and-agent"/>
<client ip="{hosts[3].address}" port="{sim_fleet.port}" username="{sim_fleet.user}"
        key="{stranger}" name="stranger-key-only"/>"""
    path = _write_config(tmp_path, sim_fleet, clients)
    config = load_config(path, env={**os.environ, "SSH_AUTH_SOCK": agent})
    assert {c.label: c.agent for c in config.clients} == {
        "agent-attr": agent,
        "from-env": agent,  # no key= and no password: SSH_AUTH_SOCK
        "stranger-key-and-agent": agent,
        "stranger-key-only": None,  # a key given: only that key, as IdentitiesOnly
    }
    assert _statuses(config) == {
        "agent-attr": Status.OK,
        "from-env": Status.OK,
        "stranger-key-and-agent": Status.OK,
        "stranger-key-only": Status.AUTH_FAILED,
    }


# -- passphrase-protected keys ---------------------------------------------------------


def _encrypted_copy(tmp_path: Path, fleet: SimFleet, passphrase: str) -> Path:
    """The fleet's key under a passphrase, in OpenSSH's own format (ssh-keygen's default)."""
    key = tmp_path / "encrypted_ed25519"
    shutil.copy(fleet.client_key, key)
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-f", str(key), "-P", "", "-N", passphrase],
                   check=True, capture_output=True)  # fmt: skip
    with pytest.raises(asyncssh.KeyImportError, match="Passphrase must be specified"):
        asyncssh.read_private_key(str(key))
    return key


def test_a_passphrase_protected_key_carries_a_round(tmp_path: Path, sim_fleet: SimFleet) -> None:
    key = _encrypted_copy(tmp_path, sim_fleet, "correct horse")
    hosts = sim_fleet.hosts
    clients = "".join(
        f'<client ip="{hosts[i].address}" port="{sim_fleet.port}" username="{sim_fleet.user}" '
        f'key="{key}" name="enc-{i}"/>\n'
        for i in (0, 1)
    )
    path = _write_config(tmp_path, sim_fleet, clients, 'passphrase-env="FLEETSTAT_TEST_PASS"')
    config = load_config(path, env={**os.environ, "FLEETSTAT_TEST_PASS": "correct horse"})
    assert _statuses(config) == {"enc-0": Status.OK, "enc-1": Status.OK}


def test_a_wrong_or_missing_passphrase_is_one_config_error_not_a_failure_per_host(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    key = _encrypted_copy(tmp_path, sim_fleet, "correct horse")
    hosts = sim_fleet.hosts
    clients = "".join(
        f'<client ip="{hosts[i].address}" port="{sim_fleet.port}" username="{sim_fleet.user}" '
        f'key="{key}" passphrase-env="FLEETSTAT_TEST_PASS" name="enc-{i}"/>\n'
        for i in (0, 1, 2)
    )
    path = _write_config(tmp_path, sim_fleet, clients)
    env = {k: v for k, v in os.environ.items() if k != "FLEETSTAT_TEST_PASS"}

    wrong = subprocess.run(
        [FLEETSTAT, "collect", "-c", str(path)],
        env={**env, "FLEETSTAT_TEST_PASS": "wrong horse"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert wrong.stderr.count(f"key file {key}") == 1, wrong.stderr
    assert "passphrase is wrong" in wrong.stderr and "FLEETSTAT_TEST_PASS" in wrong.stderr

    missing = subprocess.run(
        [FLEETSTAT, "collect", "-c", str(path)], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.count("FLEETSTAT_TEST_PASS is not set: passphrase-env of") == 1

    # A command that logs in to no host needs no passphrase (issue 13's rule).
    upgrade = subprocess.run(
        [FLEETSTAT, "db", "upgrade", "-c", str(path)], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr


# -- a jump host that is down ------------------------------------------------------------


def test_a_jump_host_that_is_down_fails_every_host_behind_it_naming_it(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    with socket.socket() as bound:  # bound, not listening: connection refused
        bound.bind(("127.0.0.1", 0))
        closed = bound.getsockname()[1]
        clients = sim_fleet.client_xml(indices=[0, 1, 2])
        path = _write_config(tmp_path, sim_fleet, clients, f'jump="gw@127.0.0.1:{closed}"')
        outcome = collect_once(load_config(path))
    results = outcome.round.results
    assert {r.status for r in results} == {Status.UNREACHABLE}
    for result in results:
        error = result.error or ""
        assert f"via jump host gw@127.0.0.1:{closed}" in error, error
        assert "connection refused" in error
