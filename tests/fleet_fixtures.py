"""Fixtures for a real OpenSSH sshd serving simulated hosts on loopback.

One sshd per test session (``sim_fleet``): hosts 0..OK_HOSTS-1 behave, the named
ones below misbehave on purpose. When sshd cannot start the tests skip locally
and fail under CI (``CI`` set), where nothing may be skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetstat import simhostile
from fleetstat.config import Config, load_config
from fleetstat.simfleet import SimFleet, SimFleetError

OK_HOSTS = 22
HANG, NO_PYTHON, GARBAGE, FAIL, STUCK, HANG_LONG = range(OK_HOSTS, OK_HOSTS + 6)
BEHAVIOURS = {
    HANG: "hang",  # its probe's alarm ends it after HANG_ALARM seconds
    NO_PYTHON: "no_python",
    GARBAGE: "garbage",
    FAIL: "fail",
    STUCK: "stuck",
    HANG_LONG: "hang",  # its probe's alarm ends it at the run timeout it was sent
}
# One host per class of hostile document (fleetstat.simhostile), after the others.
HOSTILE = {
    OK_HOSTS + len(BEHAVIOURS) + index: f"hostile:{name}"
    for index, name in enumerate(simhostile.CLASSES)
}
# Deadlines a loaded 2-core machine (two copies of the suite side by side) never
# reaches on a healthy host; the HANG host's probe ends by its own alarm after
# HANG_ALARM seconds (SimFleet.hang_alarms), so it still times out quickly.
CONNECT_TIMEOUT = 30
RUN_TIMEOUT = 30
HANG_ALARM = 2


def assert_nothing_left(fleet: SimFleet, seconds: float = 60) -> None:
    """No fleetstat temp dir on any host and no process of the fleet's user.

    The hosts finish just after each channel closes, so give the last ones a
    moment before asserting.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not fleet.leftover_temp_dirs() and not fleet.user_processes():
            break
        time.sleep(0.2)
    assert fleet.leftover_temp_dirs() == [], "a temp dir survived"
    assert fleet.user_processes() == [], "a process survived"


def key_login_options(fleet: SimFleet) -> asyncssh.SSHClientConnectionOptions:
    """asyncssh options for a key login to the fleet's hosts, nothing from ~/.ssh."""
    return fleet.login_options()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"real sshd required in CI: {reason}")
    pytest.skip(reason)


def start_fleet(workdir: Path, **kwargs: object) -> SimFleet:
    """A fleet of a test's own, started; skipped locally (failed in CI) when it cannot be."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the simulated fleet needs root in CI")
        pytest.skip("the simulated fleet's login user needs root")
    fleet = SimFleet(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        fleet.start()
    except (SimFleetError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"cannot start sshd: {exc}")
        pytest.skip(f"cannot start sshd: {exc}")
    return fleet


@pytest.fixture(scope="session")
def sim_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimFleet]:
    if os.geteuid() != 0:
        _unavailable("the simulated fleet's password logins need root (run scripts/test as root)")
    fleet = SimFleet(
        tmp_path_factory.mktemp("fleet"),
        count=OK_HOSTS + len(BEHAVIOURS) + len(HOSTILE),
        behaviours=BEHAVIOURS | HOSTILE,
        hang_alarms={HANG: HANG_ALARM},
        log_level="VERBOSE",  # every login and why one failed, in fleet0/sshd.log
    )
    try:
        fleet.start()
    except (SimFleetError, OSError) as exc:
        _unavailable(f"cannot start sshd: {exc}")
    yield fleet
    fleet.stop()


def write_fleet_config(
    tmp_path: Path,
    fleet: SimFleet,
    indices: list[int],
    *,
    auth: str = "key",
    extra_clients: str = "",
    defaults: str = "",
    extra: str = "",
    database_url: str | None = None,
    run_timeout: float = RUN_TIMEOUT,
    concurrency: int = 50,
    host_keys: str = "strict",
    known_hosts: Path | None = None,
    defaults_attrs: str = "",
) -> Path:
    """Write a config for the chosen simulated hosts (and ``extra_clients``); its path.

    ``defaults`` replaces the whole ``<defaults>`` element; ``defaults_attrs``
    adds attributes to the usual one.
    """
    db = database_url or f"sqlite:///{tmp_path / 'fleetstat.db'}"
    defaults = defaults or (
        f'<defaults concurrency="{concurrency}" connect-timeout="{CONNECT_TIMEOUT}s" '
        f'run-timeout="{run_timeout:g}s" host-keys="{host_keys}" '
        f'known-hosts="{known_hosts or fleet.known_hosts}" {defaults_attrs}/>'
    )
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{db}"/>
  <key path="{tmp_path / "server.key"}"/>
  {defaults}
  {extra}
{fleet.client_xml(auth=auth, indices=indices)}
{extra_clients}
</fleetstat>
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def fleet_config(tmp_path: Path, fleet: SimFleet, indices: list[int], **options: Any) -> Config:
    """Write (:func:`write_fleet_config`, same options) and load a config."""
    return load_config(write_fleet_config(tmp_path, fleet, indices, **options))
