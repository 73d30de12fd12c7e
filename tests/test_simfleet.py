"""The simulated fleet itself holds up when another copy of the suite runs beside it.

Its state lives in its own private folder (nothing in a shared /tmp folder that
another run's clean-up could remove), a port taken by someone else between
``free_port()`` and sshd's bind is not mistaken for our sshd, and two fleets alive
at once never share a login uid (stopping one kills its user's processes).
"""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from fleet_fixtures import _unavailable, fleet_config, key_login_options

from fleetstat import simfleet
from fleetstat.app import collect_once
from fleetstat.simfleet import SimFleet, SimFleetError

pytestmark = pytest.mark.sshd


def started(fleet: SimFleet) -> SimFleet:
    try:
        return fleet.start()
    except (SimFleetError, OSError) as exc:
        _unavailable(f"cannot start sshd: {exc}")
        raise


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@pytest.fixture
def neighbour_fleet(tmp_path: Path, sim_fleet: SimFleet) -> Iterator[SimFleet]:
    """A second fleet on the session fleet's port +- 20000: a uid derived from the
    port modulo 20000 (as it once was) would be the same for both."""
    candidates = [sim_fleet.port + k for k in (20000, -20000, 40000, -40000)]
    port = next((p for p in candidates if 1024 < p < 65536 and bindable(p)), None)
    if port is None:
        pytest.skip(f"none of {candidates} is free")
    fleet = started(SimFleet(tmp_path / "neighbour", count=1, port=port))
    yield fleet
    fleet.stop()


def test_every_file_of_the_fleet_is_in_its_private_folder(
    sim_fleet: SimFleet, tmp_path: Path
) -> None:
    workdir = sim_fleet.workdir
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    for path in (sim_fleet.hostroot, sim_fleet.home, *(h.tmpdir for h in sim_fleet.hosts)):
        assert path.is_relative_to(workdir), path
    assert (sim_fleet.home / ".ssh" / "authorized_keys").is_file()
    config = (workdir / "sshd_config").read_text()
    # sshd and its login user see the same files through the namespace's mount.
    remote = str(sim_fleet.remote_root)
    assert f"AuthorizedKeysFile {remote}/home/.ssh/authorized_keys" in config
    assert f"TMPDIR={remote}/hosttmp/ok" in config
    assert "/tmp/" not in config.replace(str(workdir), "<workdir>")
    # ... and the login user reaches them: a key login and a probe run work.
    outcome = collect_once(fleet_config(tmp_path, sim_fleet, [0]))
    assert outcome.round.ok_count == 1, outcome.round.results[0].error


def test_a_port_taken_before_sshd_binds_it_is_not_taken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        # Another suite's listener on the port free_port() handed out first.
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real_free_port = simfleet.free_port
        monkeypatch.setattr(simfleet, "free_port", lambda: next(ports, None) or real_free_port())
        fleet = started(SimFleet(tmp_path / "fleet", count=1))
        try:
            assert fleet.port != busy
            assert fleet.uid == simfleet.SIM_UID_BASE + fleet.port
            outcome = collect_once(fleet_config(tmp_path, fleet, [0]))
            assert outcome.round.ok_count == 1, outcome.round.results[0].error
        finally:
            fleet.stop()
    assert "Address already in use" in (fleet.log_path.read_text())


def test_stopping_one_fleet_leaves_another_fleets_sessions(
    sim_fleet: SimFleet, neighbour_fleet: SimFleet
) -> None:
    if not sim_fleet.as_root:
        pytest.skip("one login user for every fleet without root")
    assert sim_fleet.uid != neighbour_fleet.uid
    assert 65534 not in (sim_fleet.uid, neighbour_fleet.uid)  # nobody

    async def stop_the_other_during_a_session() -> str:
        options = key_login_options(sim_fleet)
        host = sim_fleet.hosts[0].address
        async with asyncssh.connect(host, sim_fleet.port, options=options) as conn:
            process = await conn.create_process("read line; echo got $line")
            await asyncio.to_thread(neighbour_fleet.stop)  # pkill -U its own uid
            process.stdin.write("it\n")
            result = await process.wait(timeout=30)
            return str(result.stdout)

    assert asyncio.run(stop_the_other_during_a_session()) == "got it\n"


def test_the_fleets_user_survives_a_rewrite_of_the_real_passwd(sim_fleet: SimFleet) -> None:
    """useradd (or an apt package adding a system user) renames a new /etc/passwd
    over the old one, which detaches a mount on that file in every namespace: a
    fleet whose user came from such a mount lost every login mid-run. The fleet's
    namespace mounts its own /etc directory instead, and no system file."""
    if not sim_fleet.as_root:
        pytest.skip("no namespace without root")
    namespace = Path(f"/proc/{sim_fleet.pid}")
    mount_points = [line.split()[4] for line in (namespace / "mountinfo").read_text().splitlines()]
    assert "/etc" in mount_points
    assert not [m for m in mount_points if m.startswith("/etc/") and m != "/etc/.real"]
    passwd = (namespace / "root" / "etc" / "passwd").read_text()
    assert f"{simfleet.SIM_USER}:x:{sim_fleet.uid}:" in passwd
    assert (namespace / "root" / "etc" / "hosts").read_text() == Path("/etc/hosts").read_text()
