"""The probe on a real Windows CPython (the official embeddable build) under Wine.

The zipapp a round uploads to a Windows host runs as the Windows transport
runs it (``python.exe -I -S probe.pyz --recipient ... --challenge ...``), with
each Windows CPython of tests/wine_fixtures.py, twice; the server's code opens
each document, and its figures are checked against the Linux machine under
Wine: the real ctypes calls (GlobalMemoryStatusEx, GetSystemTimes,
GetTickCount64, GetDiskFreeSpaceExW, ...) answered by Wine from /proc and
statfs. What Wine cannot stand in for (a Security log with events, a real
Windows version string) is covered by the recorded fixtures elsewhere.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from wine_fixtures import VERSIONS, WindowsPython, cache_dir, windows_pythons  # noqa: F401

from fleetstat import envelope
from fleetstat.app import round_probe
from fleetstat.collector import open_document
from fleetstat.document import Limits

# What the server allows an os="auto" client that turns out to run Windows.
LIMITS = Limits(events=500, events_if_windows=True)


@dataclass(frozen=True)
class Run:
    doc: dict[str, Any]  # as the boundary checked it (Document.as_json())
    notes: tuple[str, ...]  # what the boundary had to change
    stderr: str
    uptime_after: float  # /proc/uptime read just after the run


def read_uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def mem_total_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


@pytest.fixture(scope="module")
def probe_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive a round uploads to a Windows host: its variant, no Linux module."""
    path = tmp_path_factory.mktemp("wine-probe") / "probe.pyz"
    path.write_bytes(round_probe().windows())
    return path


def run_probe(python: WindowsPython, probe: Path, *extra: str) -> Run:
    key = X25519PrivateKey.generate()
    challenge = secrets.token_bytes(16)
    done = python.run(
        "-I",
        "-S",
        str(probe),  # Wine maps the Unix path through its Z: drive
        "--recipient",
        envelope.public_key_b64(key),
        "--challenge",
        envelope.b64url_encode(challenge),
        *extra,
    )
    uptime_after = read_uptime()
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, stderr
    lines = done.stdout.decode("ascii").splitlines()
    assert len(lines) == 1, done.stdout[:500]
    # The collector's own boundary: envelope opened, inflated, document checked.
    document = open_document(lines[0], key, challenge, LIMITS)
    return Run(document.as_json(), document.notes, stderr, uptime_after)


@pytest.fixture(scope="module")
def runs(
    windows_pythons: dict[str, WindowsPython],  # noqa: F811
    probe_pyz: Path,
) -> dict[str, list[Run]]:
    """Two runs per Windows CPython: every test reads these, so Wine starts few times."""
    return {v: [run_probe(p, probe_pyz) for _ in range(2)] for v, p in windows_pythons.items()}


@pytest.fixture(params=VERSIONS, ids=[f"cpython{v}" for v in VERSIONS])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_document_is_the_windows_one_from_that_python(
    runs: dict[str, list[Run]], version: str
) -> None:
    # A real Windows document passes the boundary untouched.
    assert [run.notes for run in runs[version]] == [(), ()]
    doc = runs[version][0].doc
    assert doc["platform"] == "windows"
    assert doc["host"]["python"].startswith(version + ".")
    assert doc["host"]["arch"] == "AMD64"
    assert "Windows" in doc["host"]["os"]
    assert doc["host"]["hostname"].lower() == socket.gethostname().split(".")[0].lower()


def test_every_collector_worked_or_said_why(runs: dict[str, list[Run]], version: str) -> None:
    for run in runs[version]:
        doc = run.doc
        assert set(doc["collectors"]) >= {"host", "memory", "swap", "cpu", "uptime", "disks"}
        for name, outcome in doc["collectors"].items():
            assert outcome["ok"] or doc["errors"].get(name), (name, doc["errors"])
        # Under Wine every Win32 call the collectors make is implemented.
        assert doc["errors"] == {}, doc["errors"]


def test_memory_is_the_machine_underneath(runs: dict[str, list[Run]], version: str) -> None:
    memory = runs[version][0].doc["memory"]
    assert memory["total_bytes"] == pytest.approx(mem_total_bytes(), rel=0.001)
    assert 0 < memory["available_bytes"] <= memory["total_bytes"]
    assert memory["used_bytes"] + memory["available_bytes"] == memory["total_bytes"]


def test_wines_tiny_page_file_is_no_swap(runs: dict[str, list[Run]], version: str) -> None:
    # Wine reports a commit limit 8 KiB over RAM; read as swap that was 100% used.
    assert runs[version][0].doc["swap"] == {
        "total_bytes": 0,
        "used_bytes": 0,
        "free_bytes": 0,
        "used_percent": 0.0,
    }


def test_cpu_count_and_counters_that_grow(runs: dict[str, list[Run]], version: str) -> None:
    first, second = (run.doc["cpu"] for run in runs[version])
    assert first["count"] == os.cpu_count()
    assert 0 <= first["used_percent"] <= 100
    assert second["total_seconds"] > first["total_seconds"]
    for name, value in first["counters"].items():
        if value is None:  # nice, iowait, ...: Windows has none of these
            assert second["counters"][name] is None
        else:
            assert second["counters"][name] >= value, name
    # GetSystemTimes sums every CPU since boot: at most count x uptime.
    uptime = runs[version][1].doc["uptime_seconds"]
    assert second["total_seconds"] <= second["count"] * uptime * 1.01 + 1


def test_uptime_is_the_machines(runs: dict[str, list[Run]], version: str) -> None:
    for run in runs[version]:
        assert abs(run.doc["uptime_seconds"] - run.uptime_after) < 5


def test_c_drive_has_the_size_of_the_file_system_under_it(
    runs: dict[str, list[Run]], version: str
) -> None:
    disks = {d["mount"]: d for d in runs[version][0].doc["disks"]}
    c = disks["C:\\"]
    assert c["device"] == "C:"
    assert isinstance(c["fstype"], str) and c["fstype"]
    # Wine's C: is the prefix's drive_c folder: the file system it lives on.
    fs = os.statvfs(cache_dir() / "wine-prefix" / "drive_c")
    assert c["total_bytes"] == fs.f_blocks * fs.f_frsize
    assert c["used_bytes"] + c["free_bytes"] == c["total_bytes"]
    # Wine gives the space free to unprivileged users (statfs f_bavail) as
    # both free figures; others write to this disk meanwhile: within 2%.
    assert c["free_bytes"] == pytest.approx(fs.f_bavail * fs.f_frsize, rel=0.02)
    assert 0 < c["used_percent"] < 100


def test_the_security_log_is_read_through_wevtutil(
    runs: dict[str, list[Run]], version: str
) -> None:
    # Wine's wevtutil.exe succeeds with no events: the pipe from a Windows
    # subprocess and the empty stream are real, the events are not (see
    # test_windows_events.py for those).
    events = runs[version][0].doc["security_events"]
    assert events["source"] == "windows"
    assert events["events"] == [] and events["truncated"] is False
    assert runs[version][0].doc["collectors"]["security_events"]["ok"]
