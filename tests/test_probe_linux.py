"""The probe's Linux collectors on recorded and hand-built /proc trees.

Fixtures live in tests/fixtures/proc/<distro>/ (see the README there for how
each was made). Every host-specific input is a seam: the fixture root, statvfs,
clock ticks, page size, CPU count and the uid -> name lookup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleetstat.probe import common, linux, linux_disks, linux_processes, registry
from fleetstat.probe.common import Collector, Context

FIXTURES = Path(__file__).parent / "fixtures" / "proc"
DEBIAN12 = FIXTURES / "debian12"
RHEL6 = FIXTURES / "rhel6"
UBUNTU_NFS = FIXTURES / "ubuntu2204-nfs"
KIB = 1024
NOW = 1_800_000_000.0

NEVER_STATVFS = {
    "/mnt/data",  # nfs4
    "/mnt/archive",  # nfs
    "/mnt/share",  # cifs
    "/mnt/backup",  # fuse.sshfs
    "/mnt/windows",  # fuseblk
    "/mnt/ceph",  # fuse.ceph-fuse
    "/run/user/1000/gvfs",  # fuse.gvfsd-fuse
    "/proc/sys/fs/binfmt_misc",  # autofs trigger
    "/projects",  # nfs on rhel6
}


class FakeStatvfs:
    """Records every path asked about; a network mount makes it fail the test
    at once, the way a dead NFS server would hang the real probe."""

    def __init__(self, blocks: int = 1000, bfree: int = 400, bavail: int = 300) -> None:
        self.calls: list[str] = []
        self.result = os.statvfs_result((4096, 4096, blocks, bfree, bavail, 0, 0, 0, 0, 255))

    def __call__(self, path: str) -> os.statvfs_result:
        self.calls.append(path)
        assert path not in NEVER_STATVFS, f"statvfs called on network/FUSE mount {path}"
        return self.result


def ctx_for(root: Path, **kwargs: Any) -> Context:
    defaults: dict[str, Any] = {
        "root": str(root),
        "cpu_window": 0,
        "clock_ticks": 100,
        "page_size": 4096,
        "cpu_count": 2,
        "statvfs": FakeStatvfs(),
        "user_name": lambda uid: {0: "root", 1000: "alice", 496: "tomcat"}.get(uid, str(uid)),
        "self_pid": -1,
        "now": lambda: NOW,
    }
    defaults.update(kwargs)
    return Context(**defaults)


# --- memory and swap -----------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "memory", "swap"),
    [
        pytest.param(
            DEBIAN12,
            {
                "total_bytes": 25276502016,
                "available_bytes": 24698560512,
                "used_bytes": 577941504,
                "used_percent": 2.29,
            },
            {"total_bytes": 0, "used_bytes": 0, "free_bytes": 0, "used_percent": 0.0},
            id="debian12-recorded",
        ),
        pytest.param(
            RHEL6,
            # No MemAvailable: MemFree + Buffers + Cached.
            {
                "total_bytes": 4018892800,
                "available_bytes": 2815053824,
                "used_bytes": 1203838976,
                "used_percent": 29.95,
            },
            {
                "total_bytes": 4227854336,
                "used_bytes": 33423360,
                "free_bytes": 4194430976,
                "used_percent": 0.79,
            },
            id="rhel6-no-memavailable",
        ),
        pytest.param(
            UBUNTU_NFS,
            {
                "total_bytes": 8336523264,
                "available_bytes": 5871841280,
                "used_bytes": 2464681984,
                "used_percent": 29.56,
            },
            {"total_bytes": 0, "used_bytes": 0, "free_bytes": 0, "used_percent": 0.0},
            id="ubuntu-zero-swap",
        ),
    ],
)
def test_memory_and_swap(root: Path, memory: dict, swap: dict) -> None:
    ctx = ctx_for(root)
    assert linux.collect_memory(ctx) == {"memory": memory}
    assert linux.collect_swap(ctx) == {"swap": swap}


def test_parse_meminfo_units() -> None:
    info = linux.parse_meminfo(
        "MemTotal:  100 kB\nHugePages_Total:   7\nnonsense line\nBad:   x kB\n"
    )
    assert info == {"MemTotal": 102400, "HugePages_Total": 7}


def test_memory_available_never_exceeds_total() -> None:
    info = {"MemTotal": 100, "MemFree": 80, "Buffers": 30, "Cached": 40}
    assert linux.memory_figures(info)["used_bytes"] == 0


# --- cpu -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "count", "total", "busy", "steal"),
    [
        (DEBIAN12, 2, 857.08, 113.91, 2.31),
        (RHEL6, 2, 986732.99, 31317.85, 0.0),
        (UBUNTU_NFS, 4, 215945.0, 14199.0, 8.0),
    ],
    ids=["debian12", "rhel6", "ubuntu"],
)
def test_cpu_counters(root: Path, count: int, total: float, busy: float, steal: float) -> None:
    ctx = ctx_for(root)
    result = linux.collect_cpu(ctx, linux.begin_cpu(ctx))["cpu"]
    assert result["count"] == count
    assert result["total_seconds"] == total
    assert result["busy_seconds"] == busy
    assert result["counters"]["steal_seconds"] == steal
    assert set(result["counters"]) == {f + "_seconds" for f in linux.CPU_FIELDS}
    # Same file twice: no ticks passed, so no percentage can be given.
    assert result["used_percent"] is None


def test_cpu_percent_over_window() -> None:
    before = linux.parse_stat("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 1 1 1\n")
    after = linux.parse_stat("cpu  130 0 120 840 10 0 0 0 5 0\ncpu0 1 1 1 1\n")
    result = linux.cpu_figures(before, after, 100, 0.25)
    # busy +50 of total +100 ticks; guest (column 9) is inside user already.
    assert result["used_percent"] == 50.0
    assert result["window_seconds"] == 0.25
    assert result["counters"]["user_seconds"] == 1.3
    assert result["total_seconds"] == 11.0


def test_cpu_iowait_going_backwards_is_clamped() -> None:
    before = linux.parse_stat("cpu  100 0 0 100 50 0 0 0\n")
    after = linux.parse_stat("cpu  100 0 0 200 40 0 0 0\n")  # iowait fell by 10
    assert linux.cpu_figures(before, after, 100, 1.0)["used_percent"] == 0.0


def test_cpu_old_kernel_without_steal() -> None:
    sample = linux.parse_stat("cpu  10 0 10 80 0 0 0\ncpu0 10 0 10 80 0 0 0\n")  # 2.6.9
    result = linux.cpu_figures(sample, sample, 100, 0.25)
    assert result["counters"]["steal_seconds"] is None
    assert result["count"] == 1


def test_parse_stat_without_cpu_line_fails() -> None:
    with pytest.raises(ValueError):
        linux.parse_stat("intr 1 2 3\n")


# --- uptime, load, host ----------------------------------------------------------


def test_uptime_and_boot_time() -> None:
    assert linux.collect_uptime(ctx_for(RHEL6)) == {
        "uptime_seconds": 983456.78,
        "boot_time": "2027-01-03T22:49:03Z",
    }


@pytest.mark.parametrize(
    ("root", "cpus", "expected"),
    [
        (DEBIAN12, 2, {"avg1": 0.24, "avg5": 0.19, "avg15": 0.11, "per_core1": 0.12}),
        (UBUNTU_NFS, 4, {"avg1": 3.91, "avg5": 2.4, "avg15": 1.87, "per_core1": 0.98}),
    ],
)
def test_load(root: Path, cpus: int, expected: dict) -> None:
    assert linux.collect_load(ctx_for(root, cpu_count=cpus)) == {"load": expected}


@pytest.mark.parametrize(
    ("root", "name"),
    [
        (DEBIAN12, "Debian GNU/Linux 12 (bookworm)"),
        (UBUNTU_NFS, "Ubuntu 22.04.4 LTS"),
        (RHEL6, "CentOS release 6.5 (Final)"),  # no os-release: redhat-release
        (FIXTURES / "missing", None),
    ],
)
def test_os_pretty_name(root: Path, name: str | None) -> None:
    assert common.os_pretty_name(str(root)) == name


def test_parse_os_release_quoting() -> None:
    text = '# comment\nNAME=\'Single\'\nVERSION="a \\"b\\" \\$c"\nID=plain\n\nbroken\n'
    assert common.parse_os_release(text) == {
        "NAME": "Single",
        "VERSION": 'a "b" $c',
        "ID": "plain",
    }


def test_host_collector_uses_this_machine_uname() -> None:
    host = common.collect_host(ctx_for(UBUNTU_NFS))["host"]
    assert host["os"] == "Ubuntu 22.04.4 LTS"
    assert host["kernel"] == os.uname().release
    assert host["hostname"] == os.uname().nodename
    assert host["python"].count(".") == 2


# --- disks -----------------------------------------------------------------------


def test_disks_never_statvfs_network_or_fuse() -> None:
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(UBUNTU_NFS, statvfs=statvfs))["disks"]
    expected = ["/", "/boot/efi", "/data", "/data/postgres", "/media/alice/My Disk"]
    assert [d["mount"] for d in disks] == expected
    assert statvfs.calls == expected  # nothing else was even asked about
    assert [d["fstype"] for d in disks] == ["ext4", "vfat", "zfs", "zfs", "ext4"]
    assert disks[0]["device"] == "/dev/sda2"


def test_disks_rhel6_skips_rootfs_and_nfs() -> None:
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(RHEL6, statvfs=statvfs))["disks"]
    assert [(d["mount"], d["device"]) for d in disks] == [
        ("/", "/dev/mapper/vg_app01-lv_root"),
        ("/boot", "/dev/sda1"),
        ("/home", "/dev/mapper/vg_app01-lv_home"),
    ]
    assert "/projects" not in statvfs.calls


def test_disks_debian12_recorded() -> None:
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(DEBIAN12, statvfs=statvfs))["disks"]
    assert [d["mount"] for d in disks] == ["/"]


def test_disks_without_proc_filesystems_still_skip_network(tmp_path: Path) -> None:
    (tmp_path / "proc" / "self").mkdir(parents=True)
    mounts = (UBUNTU_NFS / "proc" / "self" / "mounts").read_text()
    (tmp_path / "proc" / "self" / "mounts").write_text(mounts)
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(tmp_path, statvfs=statvfs))["disks"]
    # Only block devices and allowlisted ZFS; /mnt/windows (fuseblk on /dev/sdb1) is FUSE.
    assert [d["mount"] for d in disks] == [
        "/",
        "/boot/efi",
        "/data",
        "/data/postgres",
        "/media/alice/My Disk",
    ]


@pytest.mark.parametrize(
    "fstype",
    [
        *sorted(linux_disks.NETWORK_FSTYPES),
        "fuse",
        "fuseblk",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.rclone",
        "autofs",
    ],
)
def test_network_fuse_and_trigger_types_are_never_wanted(fstype: str) -> None:
    known_all = ({fstype, "ext4"}, set())  # even if the kernel lists it as a block fs
    assert not linux_disks.wanted("/dev/sdz1", fstype, known_all)
    assert not linux_disks.wanted("/dev/sdz1", fstype, None)


def test_snap_squashfs_loops_are_skipped_but_other_squashfs_kept() -> None:
    fs = ({"squashfs"}, set())
    assert not linux_disks.wanted("/dev/loop3", "squashfs", fs)
    assert linux_disks.wanted("/dev/sr0", "squashfs", fs)


def test_disk_figures_use_df_arithmetic() -> None:
    st = os.statvfs_result((4096, 1024, 1000, 400, 300, 0, 0, 0, 0, 255))
    disk = linux_disks.disk_figures("/dev/x", "/x", "ext4", st)
    # frsize 1024; reserved blocks (bfree - bavail = 100) are neither used nor free.
    assert disk["total_bytes"] == 1024000
    assert disk["used_bytes"] == 600 * 1024
    assert disk["free_bytes"] == 300 * 1024
    assert disk["used_percent"] == round(600 * 100 / 900, 2)


def test_statvfs_errors_and_empty_filesystems_are_skipped() -> None:
    def statvfs(path: str) -> os.statvfs_result:
        if path == "/gone":
            raise FileNotFoundError(2, "No such file or directory", path)
        blocks = 0 if path == "/empty" else 10
        return os.statvfs_result((4096, 4096, blocks, 5, 5, 0, 0, 0, 0, 255))

    selected = [("/dev/a", "/gone", "ext4"), ("/dev/b", "/empty", "ext4"), ("/dev/c", "/ok", "xfs")]
    assert [d["mount"] for d in linux_disks.disks_from_mounts(selected, statvfs)] == ["/ok"]


def test_mount_escapes() -> None:
    assert linux_disks.unescape_mount_field("/a\\040b\\011c\\134d\\012") == "/a b\tc\\d\n"
    assert linux_disks.unescape_mount_field("/plain\\") == "/plain\\"
    assert linux_disks.unescape_mount_field("/x\\09z") == "/x\\09z"  # not octal


def test_duplicate_device_keeps_shortest_mount_at_first_position() -> None:
    mounts = linux_disks.parse_mounts(
        "/dev/a /var/lib/x ext4 rw 0 0\n/dev/b /b ext4 rw 0 0\n/dev/a / ext4 rw 0 0\n"
    )
    selected = linux_disks.select_local_mounts(mounts, ({"ext4"}, set()))
    assert selected == [("/dev/a", "/", "ext4"), ("/dev/b", "/b", "ext4")]


# --- processes -----------------------------------------------------------------


def test_parse_pid_stat_names_with_spaces_and_parentheses() -> None:
    data = (UBUNTU_NFS / "proc" / "1500" / "stat").read_bytes()
    assert linux_processes.parse_pid_stat(data) == (b"odd) name)", 90210 + 1205, 65536)
    data = (UBUNTU_NFS / "proc" / "812" / "stat").read_bytes()
    assert linux_processes.parse_pid_stat(data)[0] == b"tmux: server"


def test_snapshot_recorded_debian12() -> None:
    snap = linux_processes.snapshot(str(DEBIAN12))
    assert snap == {2: (b"kthreadd", 0, 0), 8769: (b"sleep", 0, 412)}


def test_processes_top_lists_on_fixture() -> None:
    ctx = ctx_for(UBUNTU_NFS, top=5)
    t0, after = linux_processes.begin_processes(ctx)
    # Pretend the first snapshot was taken 0.5 s earlier with fewer ticks.
    before = dict(after)
    before[1500] = (b"odd) name)", after[1500][1] - 50, after[1500][2])  # 1 CPU fully busy
    before[812] = (b"tmux: server", after[812][1] - 5, after[812][2])
    result = linux_processes.collect_processes(ctx, (t0 - 0.5, before), {})["processes"]
    assert result["reason"] == "always"
    assert result["window_seconds"] >= 0.5
    top_cpu = result["top_cpu"]
    assert [p["pid"] for p in top_cpu] == [1500, 812]
    assert top_cpu[0]["user"] == "4242"  # no passwd entry: the number
    assert top_cpu[1]["user"] == "alice"
    assert 90 < top_cpu[0]["cpu_percent"] <= 100
    # 30911 has no status (exited mid-read): skipped, the others still listed.
    assert [p["pid"] for p in result["top_memory"]] == [1500, 812]
    assert result["top_memory"][0]["rss_bytes"] == 65536 * 4096
    assert set(top_cpu[0]) == {"pid", "name", "user", "cpu_percent", "rss_bytes"}


def test_rank_skips_new_and_reused_pids_for_cpu() -> None:
    before = {1: ("a", 100, 1), 2: ("b", 500, 1)}
    after = {1: ("a", 150, 10), 2: ("b", 20, 20), 3: ("c", 999, 30)}
    top_cpu, top_memory = linux_processes.rank(before, after, 1.0, 100, 4096, 5)
    assert [r[0] for r in top_cpu] == [1]  # 2 reused (ticks fell), 3 is new
    assert top_cpu[0][2] == 50.0
    assert [r[0] for r in top_memory] == [3, 2, 1]


def test_processes_top_zero_reads_nothing() -> None:
    ctx = ctx_for(FIXTURES / "missing", top=0)
    started = linux_processes.begin_processes(ctx)
    assert linux_processes.collect_processes(ctx, started, {}) == {
        "processes": {"top_cpu": None, "top_memory": None, "reason": "top-processes is 0"}
    }


MEMORY_71 = {"memory": {"used_percent": 71.5}, "cpu": {"used_percent": 12.0}}


@pytest.mark.parametrize(
    ("top_when", "reason"),
    [
        ({"cpu": 20.0, "memory": 80.0}, "below cpu 20, memory 80"),
        ({"cpu": 20.0, "load": 1.5}, "below cpu 20, load 1.5"),  # no load in the document
        ({}, "no cpu, load, memory or swap limit for this host"),
    ],
)
def test_processes_below_every_limit_read_nothing(top_when: dict, reason: str) -> None:
    """Under --top-when the first snapshot is not taken, and below every limit
    neither is the second: a root without /proc would raise if anything were read."""
    slept: list[float] = []
    ctx = ctx_for(FIXTURES / "missing", top_when=top_when, cpu_window=0.25, sleep=slept.append)
    assert linux_processes.begin_processes(ctx) is None
    assert linux_processes.collect_processes(ctx, None, MEMORY_71) == {
        "processes": {"top_cpu": None, "top_memory": None, "reason": reason}
    }
    assert slept == []


def test_processes_at_a_limit_are_read_in_a_window_of_their_own() -> None:
    slept: list[float] = []
    ctx = ctx_for(UBUNTU_NFS, top_when={"memory": 50.0}, cpu_window=0.25, sleep=slept.append)
    assert linux_processes.begin_processes(ctx) is None
    result = linux_processes.collect_processes(ctx, None, MEMORY_71)["processes"]
    assert result["reason"] == "memory 71.5 >= 50"
    assert slept == [0.25]
    assert [p["pid"] for p in result["top_memory"]] == [1500, 812]
    assert result["top_cpu"] == []  # a fixture's ticks do not move


def test_top_reason_takes_the_first_condition_met_by_name() -> None:
    doc = {"cpu": {"used_percent": 93.4}, "load": {"per_core1": 2.0}, "swap": {"used_percent": 0}}
    assert common.top_reason(None, doc) == "always"
    assert common.top_reason({"load": 1.5, "cpu": 20}, doc) == "cpu 93.4 >= 20"
    assert common.top_reason({"load": 1.5, "swap": 10}, doc) == "load 2 >= 1.5"
    assert common.top_reason({"swap": 0}, doc) == "swap 0 >= 0"
    assert common.top_reason({"memory": 0}, {"memory": None}) is None  # no data


def test_probe_excludes_itself() -> None:
    snap = linux_processes.snapshot(str(DEBIAN12), skip_pid=8769)
    assert list(snap) == [2]


# --- the registry: whole documents -------------------------------------------------


@pytest.mark.parametrize("root", [DEBIAN12, RHEL6, UBUNTU_NFS], ids=lambda p: p.name)
def test_build_document_on_fixture(root: Path) -> None:
    doc = registry.build_document(ctx_for(root), platform="linux")
    assert doc["errors"] == {}
    assert doc["schema"] == 1
    assert doc["platform"] == "linux"
    assert doc["collected_at"] == "2027-01-15T08:00:00Z"
    for key in ("host", "memory", "swap", "cpu", "uptime_seconds", "boot_time", "load"):
        assert doc[key] is not None, key
    assert doc["disks"]
    assert doc["security_events"] is None
    assert set(doc["collectors"]) == {
        "host",
        "memory",
        "swap",
        "cpu",
        "uptime",
        "load",
        "disks",
        "processes",
    }
    assert all(c["ok"] for c in doc["collectors"].values())


def test_missing_files_fail_their_family_only(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "loadavg").write_text("1.00 0.50 0.25 1/100 42\n")
    doc = registry.build_document(ctx_for(tmp_path), platform="linux")
    assert doc["load"] == {"avg1": 1.0, "avg5": 0.5, "avg15": 0.25, "per_core1": 0.5}
    assert doc["host"] is not None
    assert doc["memory"] is None and doc["cpu"] is None and doc["disks"] is None
    assert doc["uptime_seconds"] is None and doc["boot_time"] is None
    assert doc["errors"]["memory"].startswith("FileNotFoundError: ")
    assert doc["errors"]["uptime"].startswith("FileNotFoundError: ")
    assert doc["collectors"]["memory"]["ok"] is False
    assert doc["collectors"]["load"]["ok"] is True
    assert "load" not in doc["errors"]


def test_a_raising_collector_is_recorded_and_the_rest_run() -> None:
    def boom(ctx: Context, started: object) -> dict:
        raise ValueError("bad line 3")

    def fine(ctx: Context, started: object) -> dict:
        return {"load": {"avg1": 1.0}}

    collectors = [
        Collector("memory", ["linux"], ["memory"], boom),
        Collector("load", ["linux"], ["load"], fine),
    ]
    doc = registry.build_document(ctx_for(DEBIAN12), "linux", collectors)
    assert doc["errors"] == {"memory": "ValueError: bad line 3"}
    assert doc["memory"] is None
    assert doc["load"] == {"avg1": 1.0}
    assert doc["collectors"]["memory"]["ok"] is False


def test_cpu_window_overlaps_other_collectors() -> None:
    events: list[str] = []
    slept: list[float] = []

    def begin(ctx: Context) -> str:
        events.append("begin")
        return "state"

    def finish(ctx: Context, started: object) -> dict:
        events.append(f"finish:{started}")
        return {"cpu": {}}

    def slow(ctx: Context, started: object) -> dict:
        events.append("other")
        import time

        time.sleep(0.05)
        return {"load": {}}

    collectors = [
        Collector("load", ["linux"], ["load"], slow),
        Collector("cpu", ["linux"], ["cpu"], finish, begin=begin),
    ]
    doc = registry.build_document(
        ctx_for(DEBIAN12, cpu_window=0.2), "linux", collectors, sleep=slept.append
    )
    assert events == ["begin", "other", "finish:state"]
    assert len(slept) == 1 and 0 < slept[0] <= 0.15  # only what the work left over
    assert doc["errors"] == {}


def test_no_sleep_without_two_phase_collectors() -> None:
    slept: list[float] = []
    collectors = [Collector("load", ["linux"], ["load"], lambda ctx, s: {"load": {}})]
    registry.build_document(ctx_for(DEBIAN12, cpu_window=1), "linux", collectors, slept.append)
    assert slept == []


def test_final_collectors_run_last_with_the_document() -> None:
    seen: list[object] = []

    def final(ctx: Context, started: object, doc: dict) -> dict:
        seen.append((started, doc["load"], doc["cpu"]))
        return {"processes": {}}

    collectors = [
        Collector("processes", ["linux"], ["processes"], final, begin=lambda ctx: "s", final=True),
        Collector("load", ["linux"], ["load"], lambda ctx, s: {"load": {"avg1": 1.0}}),
        Collector("cpu", ["linux"], ["cpu"], lambda ctx, s: {"cpu": s}, begin=lambda ctx: "c"),
    ]
    doc = registry.build_document(ctx_for(DEBIAN12), "linux", collectors)
    assert seen == [("s", {"avg1": 1.0}, "c")]
    assert doc["processes"] == {} and doc["errors"] == {}


def test_failed_begin_skips_finish_and_reports() -> None:
    def begin(ctx: Context) -> None:
        raise PermissionError("denied")

    def finish(ctx: Context, started: object) -> dict:
        raise AssertionError("must not run")

    collectors = [Collector("cpu", ["linux"], ["cpu"], finish, begin=begin)]
    doc = registry.build_document(ctx_for(DEBIAN12, cpu_window=5), "linux", collectors)
    assert doc["errors"] == {"cpu": "PermissionError: denied"}
    assert doc["cpu"] is None


def test_unsupported_platform_gives_host_and_an_error() -> None:
    doc = registry.build_document(ctx_for(DEBIAN12), platform="sunos")
    assert doc["host"] is not None
    assert doc["memory"] is None
    assert doc["errors"] == {"platform": "no collectors for platform 'sunos' yet"}
    assert list(doc["collectors"]) == ["host"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("linux", "linux"), ("win32", "windows"), ("freebsd13", "freebsd"), ("darwin", "darwin")],
)
def test_platform_name(given: str, expected: str) -> None:
    assert common.platform_name(given) == expected


def test_error_text() -> None:
    assert common.error_text(ValueError("x")) == "ValueError: x"
    assert common.error_text(KeyError()) == "KeyError"
