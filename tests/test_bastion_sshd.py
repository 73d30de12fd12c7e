"""200 simulated hosts reachable only through a bastion (a second, stock sshd).

The fleet's sshd runs in a network namespace of its own; the bastion
(``SimBastion``: sshd's defaults, MaxStartups 10:30:100, MaxSessions 10,
forwarding allowed) sits in that namespace behind a relay, so a client reaches
the hosts through it or not at all. The bastion's log counts its logins.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_fixtures import fleet_config, write_fleet_config

from fleetstat.app import CollectOutcome, collect_once, run_round
from fleetstat.config import Config, load_config
from fleetstat.model import HostResult, Status
from fleetstat.simbastion import SimBastion
from fleetstat.simfleet import SimFleet, SimFleetError
from fleetstat.transport.pool import ConnectionPool

pytestmark = pytest.mark.sshd

HOSTS = 200


@pytest.fixture(scope="module")
def hidden_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimFleet]:
    if os.geteuid() != 0:
        pytest.fail("a fleet in a network namespace of its own needs root")
    fleet = SimFleet(
        tmp_path_factory.mktemp("hidden-fleet"), count=HOSTS, netns=True, log_level="INFO"
    )
    try:
        fleet.start()
    except (SimFleetError, OSError) as exc:
        pytest.fail(f"cannot start the hidden fleet: {exc}")
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def bastion(
    hidden_fleet: SimFleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimBastion]:
    with SimBastion(hidden_fleet, tmp_path_factory.mktemp("bastion")) as started:
        yield started


def _config(
    tmp_path: Path, fleet: SimFleet, bastion: SimBastion, count: int, concurrency: int
) -> Config:
    known = tmp_path / "known_hosts"
    known.write_text(fleet.known_hosts.read_text() + bastion.known_hosts_line())
    return fleet_config(
        tmp_path, fleet, list(range(count)), concurrency=concurrency, known_hosts=known,
        defaults_attrs=f'jump="{bastion.jump}"',
    )  # fmt: skip


def test_the_hosts_are_reachable_only_through_the_bastion(
    hidden_fleet: SimFleet, bastion: SimBastion
) -> None:
    host = hidden_fleet.hosts[0].address
    with socket.socket() as sock:
        sock.settimeout(5)
        assert sock.connect_ex((host, hidden_fleet.port)) != 0  # nothing listens out here
    with socket.create_connection(("127.0.0.1", bastion.port), timeout=30) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")


def test_a_round_over_200_hosts_behind_one_bastion_logs_in_to_it_once(
    tmp_path: Path, hidden_fleet: SimFleet, bastion: SimBastion
) -> None:
    config = _config(tmp_path, hidden_fleet, bastion, HOSTS, concurrency=100)
    before = bastion.logins()
    outcome = collect_once(config)
    failed = {r.client.label: r.error for r in outcome.round.results if not r.ok}
    assert outcome.round.ok_count == HOSTS, failed
    assert outcome.round_id is not None  # stored
    assert bastion.logins() - before == 1


def test_a_bastion_lost_mid_round_fails_the_rest_naming_it_and_the_next_round_recovers(
    tmp_path: Path, hidden_fleet: SimFleet, bastion: SimBastion
) -> None:
    count = 40
    config = _config(tmp_path, hidden_fleet, bastion, count, concurrency=5)
    done: list[HostResult] = []

    def kill_after_five(result: HostResult) -> None:
        done.append(result)
        if len(done) == 5:
            bastion.kill()

    try:
        outcome = collect_once(config, progress=kill_after_five)
    finally:
        bastion.start()
    results = outcome.round.results
    assert len(results) == count
    ok = [r for r in results if r.ok]
    lost = [r for r in results if not r.ok]
    assert 5 <= len(ok) < count
    assert {r.status for r in lost} == {Status.UNREACHABLE}, {r.error for r in lost}
    for result in lost:
        assert f"jump host {bastion.jump}" in (result.error or ""), result.error

    before = bastion.logins()
    again = collect_once(config)
    assert again.round.ok_count == count, {r.error for r in again.round.results if not r.ok}
    assert bastion.logins() - before == 1


def test_proxyjump_from_ssh_config_and_two_hops(
    tmp_path: Path, hidden_fleet: SimFleet, bastion: SimBastion
) -> None:
    """ssh_config's ProxyJump names the bastion by alias; a second hop (the bastion
    again, from inside the namespace) is a connection through the first."""
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"""Host bastion
  HostName 127.0.0.1
  Port {bastion.port}
  User {hidden_fleet.user}
  IdentityFile {hidden_fleet.client_key}
Host 127.1.*
  ProxyJump bastion
"""
    )
    inner = f"{hidden_fleet.user}@127.0.0.1:{bastion.inner_port}"
    kind_blob = bastion.known_hosts_line().split(" ", 1)[1]
    known = tmp_path / "known_hosts"
    known.write_text(
        hidden_fleet.known_hosts.read_text()
        + bastion.known_hosts_line()
        + f"[127.0.0.1]:{bastion.inner_port} {kind_blob}"
    )
    two_hops = (
        f'<client ip="{hidden_fleet.hosts[2].address}" port="{hidden_fleet.port}" '
        f'username="{hidden_fleet.user}" key="{hidden_fleet.client_key}" name="two-hops" '
        f'jump="bastion,{inner}"/>'
    )
    path = write_fleet_config(
        tmp_path, hidden_fleet, [0, 1], extra_clients=two_hops, known_hosts=known,
        defaults_attrs=f'ssh-config="{ssh_config}"',
    )  # fmt: skip
    config = load_config(path)
    by_label = {c.label: c for c in config.clients}
    assert [hop.address for hop in by_label["sim-000"].jump] == [f"127.0.0.1:{bastion.port}"]
    assert [hop.label for hop in by_label["two-hops"].jump] == ["bastion", inner]

    before = bastion.logins()
    outcome = collect_once(config)
    assert outcome.round.ok_count == 3, {r.error for r in outcome.round.results if not r.ok}
    # One login for the first hop (shared by all three), one for the second.
    assert bastion.logins() - before == 2


def test_kept_connections_behind_a_bastion_keep_the_bastion_connection_too(
    tmp_path: Path, hidden_fleet: SimFleet, bastion: SimBastion
) -> None:
    """watch's connection pool: the hosts' kept connections are channels on the
    bastion's one connection, so neither is logged in to again in round 2; a
    bastion lost between rounds is connected again, once, in the next."""
    count = 20
    config = _config(tmp_path, hidden_fleet, bastion, count, concurrency=10)

    async def rounds() -> list[CollectOutcome]:
        pool = ConnectionPool(keep=600)
        outcomes = []
        try:
            for number in range(3):
                if number == 2:  # lost between rounds (watch waits out its interval)
                    bastion.kill()
                    bastion.start()
                    await asyncio.sleep(2)
                pool.retain(config.clients)
                outcomes.append(await run_round(config, runner=pool.run_probe))
        finally:
            await pool.close()
        return outcomes

    bastion_before, hosts_before = bastion.logins(), hidden_fleet.accepted_logins()
    first, second, third = asyncio.run(rounds())
    assert first.round.ok_count == count, {r.error for r in first.round.results if not r.ok}
    assert second.round.ok_count == count
    assert third.round.ok_count == count, {r.error for r in third.round.results if not r.ok}
    # Round 1 logs in to the bastion and every host; round 2 to neither; round 3
    # to the restarted bastion and, its tunnels gone with it, every host again.
    assert bastion.logins() - bastion_before == 2
    assert hidden_fleet.accepted_logins() - hosts_before == 2 * count
