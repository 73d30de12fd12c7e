"""Tables for people on an 80-column terminal, and ``collect --host`` (issue 13).

A real round against the simulated fleet (failing hosts with long errors), shown
by the real ``fleetstat collect`` and ``report`` with their output piped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fleet_fixtures import FAIL, GARBAGE, NO_PYTHON, fleet_config

from fleetstat.simfleet import SimFleet

pytestmark = pytest.mark.sshd

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
STATUSES = ("ok", "no_python", "bad_payload", "probe_error")


def run(*args: str, columns: str | None = "80") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run([FLEETSTAT, *args], capture_output=True, text=True, timeout=120, env=env)


def rows(output: str) -> list[str]:
    """The body lines of the table: after the rule under the header, before the
    first blank line or the summary lines."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() and set(line.strip()) <= {"─"})
    body = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith(("round ", "mail: ")):
            break
        body.append(line)
    return body


def test_tables_fit_80_columns_and_wide_shows_everything(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    config = fleet_config(tmp_path, sim_fleet, [0, NO_PYTHON, GARBAGE, FAIL])
    c = str(config.path)
    done = run("collect", "-c", c)
    assert done.returncode == 1, done.stderr
    assert all(len(line) <= 80 for line in done.stdout.splitlines() if "round " not in line)
    body = rows(done.stdout)
    assert len(body) == 4, "one line per host: nothing wraps\n" + done.stdout
    for status in STATUSES:
        assert sum(f" {status} " in line for line in body) == 1, (status, done.stdout)
    assert any("…" in line for line in body), "a long error is cut with an ellipsis"
    for host in sim_fleet.hosts[:1]:
        assert f"{host.address}:{sim_fleet.port}" in done.stdout  # the address never wraps

    wide = run("collect", "-c", c, "--wide")
    text = " ".join(wide.stdout.split())
    assert "crashed on purpose" in text and "…" not in wide.stdout

    report = run("report", "-c", c)
    assert report.returncode == 0, report.stderr
    assert all(len(line) <= 80 for line in report.stdout.splitlines())
    assert len(rows(report.stdout)) == 4, report.stdout  # one line per host
    for status in STATUSES:
        assert sum(f" {status} " in line for line in rows(report.stdout)) == 1, report.stdout
    # A failing host's error has the width the fixed columns leave: the narrow layout
    # drops swap, load, uptime and the disk's mount for it (at 80 columns the full
    # one left the error 11 characters here).
    (failed,) = [line for line in rows(report.stdout) if " probe_error " in line]
    assert 80 - failed.index("probe on ") >= 30 and failed.rstrip().endswith("…"), report.stdout
    assert "swap%" not in report.stdout and "disk%" in report.stdout
    piped = run("report", "-c", c, columns=None)  # a pipe without COLUMNS: 160 wide
    assert "last error" in piped.stdout and "Traceback: probe crashed" in piped.stdout


def test_collect_host_checks_only_the_hosts_named(tmp_path: Path, sim_fleet: SimFleet) -> None:
    config = fleet_config(tmp_path, sim_fleet, [0, 1, NO_PYTHON])
    c = str(config.path)
    one = sim_fleet.hosts[1].address
    done = run("collect", "-c", c, "--host", "sim-000", "--host", one)
    assert done.returncode == 0, done.stdout + done.stderr  # the no_python host was not tried
    assert "2/2 ok" in done.stdout and "sim-000" in done.stdout and "sim-001" in done.stdout
    assert f"sim-{NO_PYTHON:03d}" not in done.stdout

    typo = run("collect", "-c", c, "--host", "sim-000", "--host", "web-99")
    assert typo.returncode == 2 and "no client" in typo.stderr and "web-99" in typo.stderr
