"""Whole rounds against a real OpenSSH sshd serving simulated hosts on loopback."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleet_fixtures import (
    FAIL,
    GARBAGE,
    HANG,
    NO_PYTHON,
    OK_HOSTS,
    RUN_TIMEOUT,
    STUCK,
    assert_nothing_left,
    fleet_config,
)

from fleetstat import envelope
from fleetstat.app import collect_once, load_or_create_key
from fleetstat.collector import plan_round, probe_argv
from fleetstat.document import Processes
from fleetstat.model import Status
from fleetstat.probe_bundle import build_probe
from fleetstat.simfleet import SimFleet, free_port
from fleetstat.store import Store
from fleetstat.transport import run_probe

pytestmark = pytest.mark.sshd

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


def test_round_over_many_hosts_stores_every_row(
    tmp_path: Path, sim_fleet: SimFleet, db_url: str
) -> None:
    indices = list(range(OK_HOSTS))
    config = fleet_config(tmp_path, sim_fleet, indices, auth="password", database_url=db_url)
    outcome = collect_once(config)

    assert [r.status for r in outcome.round.results] == [Status.OK] * OK_HOSTS, [
        r.error for r in outcome.round.results if not r.ok
    ]
    with Store(db_url) as store:
        assert store.count("samples") == OK_HOSTS
        assert store.count("attempts") == OK_HOSTS
        assert store.count("rounds") == 1
        latest = {(row.client_ip, row.client_port): row for row in store.latest_samples()}
    assert set(latest) == {(sim_fleet.hosts[i].address, sim_fleet.port) for i in indices}
    for row in latest.values():
        assert 0 < row.memory_percent < 100
        assert row.memory_total_bytes > 0
        assert 0 <= row.cpu_percent <= 100
        assert row.uptime_seconds > 0
        assert row.document["schema"] == 1
        assert row.document["errors"] == {}
    assert_nothing_left(sim_fleet)


def test_each_failure_is_one_classified_row_and_the_rest_are_stored(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    port = sim_fleet.port
    wrong_password = sim_fleet.hosts[4].address
    closed_port = free_port()
    extra = f"""
  <client ip="{wrong_password}" port="{port}" username="{sim_fleet.user}" password="wrong"
          mail="a@example.com" name="wrong-password"/>
  <client ip="127.9.9.9" port="{port}" username="{sim_fleet.user}" key="{sim_fleet.client_key}"
          mail="a@example.com" name="unknown-host-key"/>
  <client ip="127.0.0.1" port="{closed_port}" username="x" password="x"
          mail="a@example.com" name="nothing-listening"/>"""
    indices = [0, 1, 2, HANG, NO_PYTHON, GARBAGE, FAIL]
    config = fleet_config(tmp_path, sim_fleet, indices, extra_clients=extra)

    t0 = time.monotonic()
    outcome = collect_once(config)
    elapsed = time.monotonic() - t0

    by_name = {r.client.label: r for r in outcome.round.results}
    expected = {
        "sim-000": Status.OK,
        "sim-001": Status.OK,
        "sim-002": Status.OK,
        f"sim-{HANG:03d}": Status.TIMEOUT,
        f"sim-{NO_PYTHON:03d}": Status.NO_PYTHON,
        f"sim-{GARBAGE:03d}": Status.BAD_PAYLOAD,
        f"sim-{FAIL:03d}": Status.PROBE_ERROR,
        "wrong-password": Status.AUTH_FAILED,
        "unknown-host-key": Status.HOST_KEY_MISMATCH,
        "nothing-listening": Status.UNREACHABLE,
    }
    assert {name: r.status for name, r in by_name.items()} == expected, {
        n: r.error for n, r in by_name.items()
    }
    for name, r in by_name.items():
        if r.ok:
            assert r.error is None
        else:
            assert r.error and len(r.error) > 20, name  # a sentence, not a code
    assert "known_hosts" in (by_name["unknown-host-key"].error or "")
    assert "crashed on purpose" in (by_name[f"sim-{FAIL:03d}"].error or "")
    # The hung host was ended by its own alarm (HANG_ALARM), not waited for until
    # the server's deadline.
    assert elapsed < RUN_TIMEOUT

    with Store(config.database_url) as store:
        assert store.count("attempts") == len(expected)
        assert store.count("samples") == 3
    assert_nothing_left(sim_fleet)  # the hung host included


def test_a_host_stuck_before_the_bootstrap_is_killed_by_the_servers_signal(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    """No alarm is armed when Python never starts the bootstrap; at the host's
    deadline the transport asks sshd to KILL the session, so nothing lingers.

    Alone in its round: a short run timeout that a healthy host beside it could
    miss on a loaded machine (test_each_failure... has healthy hosts beside hung ones).
    """
    config = fleet_config(tmp_path, sim_fleet, [STUCK], run_timeout=2)
    outcome = collect_once(config)
    statuses = {r.client.label: r.status for r in outcome.round.results}
    assert statuses == {f"sim-{STUCK:03d}": Status.TIMEOUT}
    assert_nothing_left(sim_fleet)


def test_the_process_table_is_read_only_at_an_alert_limit(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    """The default top-processes-when="alerts": a host at its memory limit gets its
    top lists (for that alert's mail), one below every limit does not."""
    hosts = sim_fleet.hosts
    clients = "".join(
        f'<client ip="{hosts[i].address}" port="{sim_fleet.port}" username="{sim_fleet.user}" '
        f'key="{sim_fleet.client_key}" name="{name}"><alert type="memory" limit="{limit}%"/>'
        "</client>"
        for i, name, limit in ((0, "at-limit", 0), (1, "below", 100))
    )
    config = fleet_config(tmp_path, sim_fleet, [], extra_clients=clients)
    outcome = collect_once(config)
    docs = {r.client.label: r.document for r in outcome.round.results}
    at_limit = docs["at-limit"].processes  # type: ignore[union-attr]
    below = docs["below"].processes  # type: ignore[union-attr]
    assert at_limit is not None and at_limit.reason is not None and at_limit.top_memory
    assert at_limit.reason.startswith("memory ") and at_limit.reason.endswith(" >= 0")
    assert at_limit.top_memory[0].rss_bytes and at_limit.top_memory[0].rss_bytes > 0
    assert below is not None and below.count  # one listdir, even when the table is not read
    assert below == Processes(
        count=below.count, top_cpu=None, top_memory=None, reason="below memory 100"
    )


def test_plaintext_never_crosses_the_channel(tmp_path: Path, sim_fleet: SimFleet) -> None:
    config = fleet_config(tmp_path, sim_fleet, [0])
    key = load_or_create_key(config.key_path)
    plan = plan_round(config, key, build_probe())
    challenge = os.urandom(16)
    argv = probe_argv(envelope.public_key_b64(key.public_key()), challenge, 5)
    run = asyncio.run(run_probe(config.clients[0], plan.probe, argv, plan.settings))

    raw = run.stdout
    assert raw.count(b"\n") == 1 and raw.startswith(b"FLEETSTAT/1 ")
    document = envelope.decode_document(envelope.open_line(raw.decode(), key, challenge))
    # Markers long enough (6+ characters) not to turn up in random base64 by chance
    # (about 30,000 characters carry 1 in 2 million odds for a 6-character string).
    markers = [b"used_percent", b"total_bytes", b"uptime_seconds", b"collected_at"]
    hostname = document["host"]["hostname"].encode()
    if len(hostname) >= 6:
        markers.append(hostname)
    for marker in markers:
        assert marker not in raw
    assert base64.b64encode(b'"schema"') not in raw


def test_accept_new_records_the_host_key_once(tmp_path: Path, sim_fleet: SimFleet) -> None:
    known = tmp_path / "known_hosts"
    defaults = (
        f'<defaults connect-timeout="5s" run-timeout="{RUN_TIMEOUT}s" '
        f'host-keys="accept-new" known-hosts="{known}"/>'
    )
    config = fleet_config(tmp_path, sim_fleet, [0, 1], defaults=defaults)
    assert collect_once(config).round.ok_count == 2
    assert len(known.read_text().splitlines()) == 2
    assert stat.S_IMODE(known.stat().st_mode) == 0o600  # started by accept-new: private
    assert collect_once(config).round.ok_count == 2
    assert len(known.read_text().splitlines()) == 2


def test_cli_collect_exit_codes_and_table(tmp_path: Path, sim_fleet: SimFleet) -> None:
    (tmp_path / "good").mkdir()
    good = fleet_config(tmp_path / "good", sim_fleet, [0, 1])
    done = subprocess.run(
        [FLEETSTAT, "collect", "-c", str(good.path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "sim-000" in done.stdout and "ok" in done.stdout
    assert "2/2 ok" in done.stdout

    (tmp_path / "bad").mkdir()
    some_fail = fleet_config(tmp_path / "bad", sim_fleet, [0, NO_PYTHON])
    done = subprocess.run(
        [FLEETSTAT, "collect", "-c", str(some_fail.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "no_python" in done.stdout

    broken = tmp_path / "broken.xml"
    broken.write_text(
        '<fleetstat><client ip="300.1.1.1" username="u" password="p" mail="x"/></fleetstat>'
    )
    done = subprocess.run([FLEETSTAT, "collect", "-c", str(broken)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "broken.xml:1" in done.stderr


def test_unreachable_port_answer_is_quick(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        xml = tmp_path / "c.xml"
        xml.write_text(
            f'<fleetstat><database url="sqlite:///{tmp_path}/x.db"/>'
            f'<key path="{tmp_path}/k"/>'
            f'<client ip="127.0.0.1" port="{port}" username="u" password="p" mail="a@b.co"/>'
            "</fleetstat>"
        )
        xml.chmod(0o600)
        from fleetstat.config import load_config

        outcome = collect_once(load_config(xml))
    (result,) = outcome.round.results
    assert result.status is Status.UNREACHABLE
    assert "refused" in (result.error or "")
