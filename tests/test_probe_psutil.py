"""The probe's figures against psutil's, computed from the same files.

psutil reads its /proc through one moveable root (``psutil.PROCFS_PATH``), like
the probe's ``root``, so both are pointed at the same recorded trees
(tests/fixtures/proc/<distro>/) and must agree exactly: that is "measured the
way psutil measures it", on kernels this machine is not running. The live
comparison on this machine, with tolerances, is in test_probe_live.py.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from fleetstat.probe import linux, linux_disks, linux_processes
from fleetstat.probe.common import Context

FIXTURES = Path(__file__).parent / "fixtures" / "proc"
ROOTS = sorted(p for p in FIXTURES.iterdir() if (p / "proc").is_dir())
PAGE_SIZE = 4096  # psutil's PAGESIZE is this machine's; the fixtures were x86-64 too


@pytest.fixture(params=ROOTS, ids=lambda p: p.name)
def root(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    assert psutil._pslinux.PAGESIZE == PAGE_SIZE
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(request.param / "proc"))
    with warnings.catch_warnings():
        # swap_memory() warns that the fixtures have no /proc/vmstat (sin/sout,
        # which the probe does not report).
        warnings.simplefilter("ignore", RuntimeWarning)
        yield request.param


def ctx(root: Path) -> Context:
    return Context(root=str(root), cpu_window=0, clock_ticks=100, page_size=PAGE_SIZE, self_pid=-1)


def test_memory_as_psutil(root: Path) -> None:
    memory = linux.collect_memory(ctx(root))["memory"]
    vm = psutil.virtual_memory()
    assert memory["total_bytes"] == vm.total
    assert memory["available_bytes"] == vm.available  # rhel6: the kernel's estimate
    assert memory["used_bytes"] == vm.total - vm.available
    assert round(memory["used_percent"], 1) == vm.percent


def test_swap_as_psutil(root: Path) -> None:
    swap = linux.collect_swap(ctx(root))["swap"]
    sm = psutil.swap_memory()
    assert (swap["total_bytes"], swap["used_bytes"], swap["free_bytes"]) == (
        sm.total,
        sm.used,
        sm.free,
    )
    assert round(swap["used_percent"], 1) == sm.percent


def _cpu_columns(proc: Path) -> int:
    return len((proc / "stat").read_text().split("\n", 1)[0].split()) - 1


def test_cpu_counters_and_boot_time_as_psutil(root: Path) -> None:
    if _cpu_columns(root / "proc") < _cpu_columns(Path("/proc")):
        # psutil sizes its tuple from the running kernel's /proc/stat and cannot
        # read a 2.6.32 line (9 columns): rhel6 is checked by hand in
        # test_probe_linux.py instead.
        assert root.name == "rhel6"
        return
    c = ctx(root)
    doc = linux.collect_cpu(c, linux.begin_cpu(c))
    times = psutil.cpu_times()
    counters = doc["cpu"]["counters"]
    for field in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"):
        assert counters[field + "_seconds"] == pytest.approx(getattr(times, field), abs=0.005)
    boot = datetime.fromtimestamp(psutil.boot_time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["boot_time"] == boot


# The documented differences from psutil's disk_partitions(all=False) (README,
# "Disks"), per fixture: what psutil lists and the probe leaves out, and why.
DISK_EXCLUSIONS = {
    "ubuntu2204-nfs": {
        "/snap/core20/1974": "squashfs image on a loop device (always full)",
        "/snap/lxd/24322": "squashfs image on a loop device (always full)",
        "/mnt/windows": "FUSE (fuseblk): statvfs can hang on a stuck daemon",
        "/var/lib/docker/volumes/web/_data": "bind mount of a directory of / (same filesystem)",
        "/srv/www": "bind mount of a directory of / (same filesystem)",
        "/www": "bind mount of a directory of /srv/data (same filesystem)",
    },
    "docker-overlay": {
        "/etc/resolv.conf": "a file of the host's disk bound into the container",
        "/etc/hostname": "a file of the host's disk bound into the container",
        "/etc/hosts": "a file of the host's disk bound into the container",
    },
}
# And what the probe adds: a container's overlay root (psutil skips every nodev type).
DISK_ADDITIONS = {"docker-overlay": {"/"}}
FILES = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}


def test_disk_mounts_are_psutils_less_the_documented_exclusions(root: Path) -> None:
    c = ctx(root)
    c.statvfs = lambda path: os.statvfs_result((4096, 4096, 100, 50, 40, 0, 0, 0, 0, 255))
    c.isdir = lambda path: path not in FILES
    probe = [d["mount"] for d in linux_disks.collect_disks(c)["disks"]]
    excluded = DISK_EXCLUSIONS.get(root.name, {})
    theirs = [p.mountpoint for p in psutil.disk_partitions(all=False)]
    assert set(excluded) <= set(theirs)
    expected = {m for m in theirs if m not in excluded} | DISK_ADDITIONS.get(root.name, set())
    assert sorted(probe) == sorted(expected)
    assert len(probe) == len(set(probe))


def test_disk_io_as_psutil_per_disk(root: Path) -> None:
    """Each device's counters equal psutil's ``disk_io_counters(perdisk=True)``;
    the devices are those psutil's totals count (whole devices: listed under
    the host's /sys/block, which psutil reads from this machine, so the
    fixture's own listing stands in for it here)."""
    probe = linux_disks.collect_disk_io(ctx(root))["disk_io"]["devices"]
    theirs = psutil.disk_io_counters(perdisk=True, nowrap=False)  # no memory of other roots
    whole = {p.name for p in (root / "sys" / "block").iterdir()}
    assert [d["device"] for d in probe] == [name for name in theirs if name in whole]
    for d in probe:
        t = theirs[d["device"]]
        assert (d["reads"], d["writes"], d["read_bytes"], d["write_bytes"]) == (
            t.read_count,
            t.write_count,
            t.read_bytes,
            t.write_bytes,
        )
        assert (d["reads_merged"], d["writes_merged"]) == (
            t.read_merged_count,
            t.write_merged_count,
        )
        for ours, ms in (("read_seconds", t.read_time), ("write_seconds", t.write_time)):
            assert round(d[ours] * 1000) == ms
        assert round(d["busy_seconds"] * 1000) == t.busy_time


def test_processes_as_psutil(root: Path) -> None:
    c = ctx(root)
    c.user_name = str
    doc = linux_processes.collect_processes(c, None, {})["processes"]
    assert doc["count"] == len(psutil.pids())
    zombies = 0
    for pid in psutil.pids():
        with contextlib.suppress(psutil.Error, OSError):
            zombies += psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert doc["zombies"] == zombies
    listed = {p["pid"]: p for p in doc["top_cpu"] + doc["top_memory"]}
    assert listed
    for pid, row in listed.items():
        process = psutil.Process(pid)
        assert row["rss_bytes"] == process.memory_info().rss  # statm, to the byte
        times = process.cpu_times()
        assert row["cpu_seconds"] == pytest.approx(times.user + times.system, abs=0.005)
        assert row["name"] == process.name()
        assert row["user"] == str(process.uids().real)
