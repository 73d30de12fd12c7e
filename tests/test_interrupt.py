"""Ctrl-C on ``fleetstat collect`` (issue 13): the first stops starting hosts and
stores what arrived (exit 130), the second aborts at once with a log line.

The real command against the simulated fleet: one host at a time, the first of
them hangs until its probe's alarm, and the interrupt is sent while it is in flight
(seen as a process of the fleet's user), so which hosts ran is known.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleet_fixtures import CONNECT_TIMEOUT, HANG_LONG, assert_nothing_left, fleet_config

from fleetstat.simfleet import SimFleet
from fleetstat.store import Store

pytestmark = pytest.mark.sshd

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


def start_round(tmp_path: Path, fleet: SimFleet) -> tuple[subprocess.Popen[str], Path, str]:
    hang = fleet.hosts[HANG_LONG]
    clients = (
        f'<client ip="{hang.address}" port="{fleet.port}" username="{fleet.user}" '
        f'key="{fleet.client_key}" name="hangs"/>'
    )
    defaults = (
        f'<defaults concurrency="1" connect-timeout="{CONNECT_TIMEOUT}s" run-timeout="4s" '
        f'host-keys="strict" known-hosts="{fleet.known_hosts}"/>'
    )
    # In config order, one at a time: the hanging host, then sim-000, 001 and 002.
    config = fleet_config(tmp_path, fleet, [0, 1, 2], defaults=defaults)
    text = config.path.read_text()
    first = text.index("  <client ")
    config.path.write_text(text[:first] + clients + "\n" + text[first:])
    assert_nothing_left(fleet)  # so the first process of the fleet's user is the hanging probe
    proc = subprocess.Popen(
        [FLEETSTAT, "collect", "-c", str(config.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not fleet.user_processes():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc, config.path, config.database_url


def test_first_ctrl_c_stores_what_arrived_and_exits_130(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    proc, _, url = start_round(tmp_path, sim_fleet)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "no more hosts are started" in err
    assert "interrupted: 1 host(s) collected and stored, 3 not started" in err
    assert "timeout" in out, out  # the host in flight finished at its deadline and is shown
    with Store(url) as store:
        assert (store.count("rounds"), store.count("attempts"), store.count("samples")) == (1, 1, 0)


def test_second_ctrl_c_aborts_at_once(tmp_path: Path, sim_fleet: SimFleet) -> None:
    proc, _, url = start_round(tmp_path, sim_fleet)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "second Ctrl-C: aborting at once" in err
    with Store(url) as store:
        store.ensure_schema()
        assert store.count("rounds") == 0
