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
DOCKER = FIXTURES / "docker-overlay"
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
            # No MemAvailable: the kernel's estimate from zoneinfo's low watermarks
            # (7095 pages): 412312 - 28380 + 2335688 - 28380 + 210980 - 28380 kB.
            {
                "total_bytes": 4018892800,
                "available_bytes": 2942812160,
                "used_bytes": 1076080640,
                "used_percent": 26.78,
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


def test_memory_available_above_total_is_memfree() -> None:
    # An lxcfs view mixing the host's counters in: free and psutil take MemFree.
    info = {"MemTotal": 100, "MemFree": 80, "MemAvailable": 130}
    assert linux.memory_figures(info)["available_bytes"] == 80


@pytest.mark.parametrize(
    ("info", "low", "available"),
    [
        # Before 2.6.28 (no Active(file)) or without zoneinfo: MemFree + Cached.
        ({"MemFree": 10, "Cached": 5, "Buffers": 7}, 1, 15),
        ({"MemFree": 10, "Cached": 5, "Active(file)": 4, "Inactive(file)": 4}, 1, 15),
        (
            {"MemFree": 10, "Cached": 5, "Active(file)": 4, "Inactive(file)": 4, "SReclaimable": 2},
            None,
            15,
        ),
        # The estimate: free - low + cache - min(cache/2, low) + slab - min(slab/2, low).
        (
            {"MemFree": 100, "Active(file)": 30, "Inactive(file)": 10, "SReclaimable": 8},
            1,
            100 - 4 + 40 - 4 + 8 - 4,
        ),
        (
            {"MemFree": 100, "Active(file)": 6, "Inactive(file)": 0, "SReclaimable": 3},
            1,
            100 - 4 + (6 - 3) + (3 - 1.5) - 0.5,
        ),  # halves below the watermark; truncated
        # A MemAvailable of 0 (psutil issue 1915) is estimated too.
        ({"MemFree": 50, "Cached": 20, "MemAvailable": 0}, None, 70),
        # An estimate below zero is none at all.
        ({"MemFree": 1, "Active(file)": 0, "Inactive(file)": 0, "SReclaimable": 0}, 100, 0),
    ],
)
def test_available_estimate(info: dict, low: int | None, available: int) -> None:
    figures = linux.memory_figures({"MemTotal": 1000, **info}, low, page_size=4)
    assert figures["available_bytes"] == available


def test_parse_zoneinfo_low_sums_zones_and_skips_pagesets() -> None:
    text = (RHEL6 / "proc" / "zoneinfo").read_text()
    assert linux.parse_zoneinfo_low(text) == 25 + 3397 + 3673


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


def test_busiest_core_and_per_core_over_the_same_window() -> None:
    before = linux.parse_stat(
        "cpu  400 0 0 400 0 0 0 0\ncpu0 100 0 0 100 0\ncpu1 100 0 0 100 0\n"
        "cpu3 100 0 0 100 0\ncpu2 100 0 0 100 0\nbtime 5\n"
    )
    after = linux.parse_stat(
        "cpu  460 0 5 535 0 0 0 0\ncpu0 105 0 0 120 0\ncpu1 125 0 0 100 0\n"
        "cpu2 115 0 5 110 0\ncpu3 115 0 0 205 0\ncpu4 1 0 0 1 0\n"  # cpu4 came online
    )
    result = linux.cpu_figures(before, after, 100, 0.25)
    assert result["used_percent"] == 32.5  # the stuck core is hidden in the total
    assert result["busiest_core"] == 1
    assert result["busiest_core_percent"] == 100.0
    # In CPU order; the core without a first sample has no figure.
    assert result["per_core_percent"] == [20.0, 100.0, 66.67, 12.5, None]
    assert result["count"] == 5


def test_per_core_list_is_bounded_but_the_busiest_is_found_among_all() -> None:
    n = linux.MAX_CORES + 8
    before = linux.parse_stat("cpu  0 0 0 0\n" + "".join(f"cpu{i} 0 0 0 0\n" for i in range(n)))
    busy = {n - 1: "10 0 0 0"}
    after = linux.parse_stat(
        "cpu  10 0 0 0\n" + "".join(f"cpu{i} {busy.get(i, '0 0 0 10')}\n" for i in range(n))
    )
    result = linux.cpu_figures(before, after, 100, 0.1)
    assert len(result["per_core_percent"]) == linux.MAX_CORES
    assert (result["busiest_core"], result["busiest_core_percent"]) == (n - 1, 100.0)


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
    assert linux.collect_uptime(ctx_for(RHEL6)) == {"uptime_seconds": 983456.78}
    ctx = ctx_for(RHEL6)
    # btime of /proc/stat, not now - uptime (which lands a second late half the time).
    assert linux.collect_cpu(ctx, linux.begin_cpu(ctx))["boot_time"] == "2023-11-14T22:13:20Z"


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


UBUNTU_DISKS = ["/", "/boot/efi", "/data", "/data/postgres", "/media/alice/My Disk"]


def test_disks_never_statvfs_network_or_fuse() -> None:
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(UBUNTU_NFS, statvfs=statvfs))["disks"]
    # /dev/sdd1 is mounted at /srv/data and its www subdirectory bound at /www:
    # named by the mount of its root, not by the shorter path.
    expected = [*UBUNTU_DISKS, "/srv/data"]
    assert [d["mount"] for d in disks] == expected
    assert statvfs.calls == expected  # nothing else was even asked about
    assert [d["fstype"] for d in disks] == ["ext4", "vfat", "zfs", "zfs", "ext4", "ext4"]
    assert disks[0]["device"] == "/dev/sda2"


def test_disks_without_mountinfo_use_mounts_and_the_shortest_path(tmp_path: Path) -> None:
    """Kernels before 2.6.26 have no mountinfo: /proc/self/mounts, and a device
    mounted twice is named by its shortest mount point (the root is unknown)."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    for name in ("self/mounts", "filesystems"):
        (tmp_path / "proc" / name).write_text((UBUNTU_NFS / "proc" / name).read_text())
    disks = linux_disks.collect_disks(ctx_for(tmp_path))["disks"]
    assert [d["mount"] for d in disks] == [*UBUNTU_DISKS, "/www"]


class FakeIsdir:
    def __init__(self, files: set[str]) -> None:
        self.files = files
        self.calls: list[str] = []

    def __call__(self, path: str) -> bool:
        self.calls.append(path)
        return path not in self.files


def test_container_overlay_root_and_volume_without_bound_files() -> None:
    """A Docker container: the overlay root is its disk; /etc/hosts, hostname and
    resolv.conf are files of the host's disk bound in (left out); a volume is a
    subdirectory of another disk, named where the container sees it."""
    files = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}
    isdir = FakeIsdir(files)
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(DOCKER, statvfs=statvfs, isdir=isdir))["disks"]
    assert [(d["mount"], d["fstype"], d["device"]) for d in disks] == [
        ("/", "overlay", "overlay"),
        ("/var/lib/postgresql/data", "ext4", "/dev/sdb1"),
    ]
    assert set(isdir.calls) == files | {"/var/lib/postgresql/data"}
    assert statvfs.calls == ["/", "/var/lib/postgresql/data"]


def _mountinfo(*lines: str) -> list:
    return linux_disks.parse_mountinfo("".join(line + "\n" for line in lines))


EXT4 = ({"ext4", "btrfs"}, {"overlay", "tmpfs"})


def test_a_mount_hidden_under_a_later_one_is_not_measured() -> None:
    mounts = _mountinfo(
        "1 0 8:1 / /srv rw - ext4 /dev/sda1 rw",
        "2 0 8:2 / / rw - ext4 /dev/sda2 rw",
        "3 2 8:3 / /srv rw shared:1 master:2 - ext4 /dev/sda3 rw",
    )
    selected = linux_disks.select_local_mounts(mounts, EXT4, FakeIsdir(set()))
    assert selected == [("/dev/sda2", "/", "ext4"), ("/dev/sda3", "/srv", "ext4")]


def test_btrfs_subvolumes_are_one_filesystem_named_nearest_its_root() -> None:
    isdir = FakeIsdir(set())
    mounts = _mountinfo(
        "30 1 0:31 /@home /home rw - btrfs /dev/nvme0n1p2 rw,subvol=/@home",
        "31 1 0:31 /@ / rw - btrfs /dev/nvme0n1p2 rw,subvol=/@",
        "32 1 0:31 /@snapshots /.snapshots rw - btrfs /dev/nvme0n1p2 rw",
    )
    selected = linux_disks.select_local_mounts(mounts, EXT4, isdir)
    assert selected == [("/dev/nvme0n1p2", "/", "btrfs")]


def test_overlay_is_measured_only_as_the_root() -> None:
    mounts = _mountinfo(
        "1 0 0:40 / / rw - overlay overlay rw,lowerdir=/l",
        "2 1 0:41 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw",
        "3 1 0:42 / /tmp rw - tmpfs tmpfs rw",
    )
    assert linux_disks.select_local_mounts(mounts, EXT4, FakeIsdir(set())) == [
        ("overlay", "/", "overlay")
    ]


def test_parse_mountinfo_fields_and_escapes() -> None:
    assert _mountinfo(
        "36 35 98:0 /mnt\\040x /mnt/a\\040b rw,noatime master:1 shared:2 - ext3 /dev/root rw",
        "bad line",
        "37 35 98:0 / /x rw - ",
    ) == [("98:0", "/mnt x", "/mnt/a b", "ext3", "/dev/root")]


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
    mounts = (UBUNTU_NFS / "proc" / "self" / "mountinfo").read_text()
    (tmp_path / "proc" / "self" / "mountinfo").write_text(mounts)
    statvfs = FakeStatvfs()
    disks = linux_disks.collect_disks(ctx_for(tmp_path, statvfs=statvfs))["disks"]
    # Only block devices and allowlisted ZFS; /mnt/windows (fuseblk on /dev/sdb1) is FUSE.
    assert [d["mount"] for d in disks] == [*UBUNTU_DISKS, "/srv/data"]


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


def test_duplicate_device_keeps_its_root_mount_at_first_position() -> None:
    mounts = _mountinfo(
        "1 0 8:1 /x /var/lib/x rw - ext4 /dev/a rw",
        "2 0 8:2 / /b rw - ext4 /dev/b rw",
        "3 0 8:1 / /srv/long/a rw - ext4 /dev/a rw",
        "4 0 8:1 / /srv/a rw - ext4 /dev/a rw",
    )
    selected = linux_disks.select_local_mounts(mounts, EXT4, FakeIsdir(set()))
    assert selected == [("/dev/a", "/srv/a", "ext4"), ("/dev/b", "/b", "ext4")]


# --- disk I/O ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "devices"),
    [
        (DEBIAN12, ["loop0", "loop1", "loop2", "loop3", "loop4", "loop5", "loop6", "loop7",
                    "vda", "zram0"]),
        (RHEL6, ["ram0", "ram1", "loop0", "loop1", "sda", "sr0", "dm-0", "dm-1", "dm-2"]),
        (UBUNTU_NFS, ["loop0", "loop1", "sda", "sdb", "sdc", "sdd", "sr0", "zd0"]),
        (DOCKER, ["loop0", "sda", "sdb"]),
    ],
    ids=lambda v: getattr(v, "name", ""),
)  # fmt: skip
def test_disk_io_whole_devices_only(root: Path, devices: list[str]) -> None:
    """Partitions (sda1, not under /sys/block) are already inside their disk."""
    result = linux_disks.collect_disk_io(ctx_for(root))["disk_io"]
    assert [d["device"] for d in result["devices"]] == devices
    assert result["truncated"] is False


def test_disk_io_figures_and_units() -> None:
    sda = next(
        d
        for d in linux_disks.collect_disk_io(ctx_for(UBUNTU_NFS))["disk_io"]["devices"]
        if d["device"] == "sda"
    )
    assert sda == {
        "device": "sda",
        "reads": 1482711,
        "writes": 2398004,
        "read_bytes": 98014268 * 512,
        "write_bytes": 120311024 * 512,
        "read_seconds": 771.322,
        "write_seconds": 4179.341,
        "busy_seconds": 2187.704,
        "reads_merged": 303651,
        "writes_merged": 3160419,
    }


def test_parse_diskstats_old_layouts_and_junk() -> None:
    rows = linux_disks.parse_diskstats(
        "   3     0   8 hda 1 2 3 4 5 6 7 8 9 10 11\n"  # 2.4: 15 fields, name 4th
        "   3     1   hda1 4 8 2 16\n"  # 2.6.0-2.6.24 partition: 7 fields
        "   8     0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"  # 4.18: 18 fields
        "   8     0 odd 1 2 3\n"  # no kernel's layout: skipped
        "   8     0 bad 1 2 x 4 5 6 7 8 9 10 11\n"
    )
    assert rows == [
        ("hda", 8, 4, 2, 6, 3, 7, 1, 5, 9),
        ("hda1", 4, 2, 8, 16, 0, 0, 0, 0, 0),
        ("sda", 1, 5, 3, 7, 4, 8, 2, 6, 10),
    ]


def test_disk_io_without_sys_keeps_every_line_and_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    lines = "".join(f"8 {i} sd{i} 1 0 8 1 1 0 8 1 0 1 2\n" for i in range(300))
    (tmp_path / "proc" / "diskstats").write_text(lines)
    result = linux_disks.collect_disk_io(ctx_for(tmp_path))["disk_io"]
    assert len(result["devices"]) == linux_disks.MAX_IO_DEVICES
    assert result["truncated"] is True


# --- processes -----------------------------------------------------------------


def test_parse_pid_stat_names_with_spaces_and_parentheses() -> None:
    data = (UBUNTU_NFS / "proc" / "1500" / "stat").read_bytes()
    assert linux_processes.parse_pid_stat(data) == (b"odd) name)", 90210 + 1205, 65536, b"R")
    data = (UBUNTU_NFS / "proc" / "812" / "stat").read_bytes()
    assert linux_processes.parse_pid_stat(data)[0] == b"tmux: server"


def test_snapshot_recorded_debian12() -> None:
    snap, count = linux_processes.snapshot(str(DEBIAN12))
    assert snap == {
        2: (b"kthreadd", 0, 0, b"S"),
        1241: (b"bash", 4, 999, b"S"),
        8769: (b"sleep", 0, 412, b"S"),
    }
    assert count == 3


def test_processes_top_lists_on_fixture() -> None:
    ctx = ctx_for(UBUNTU_NFS, top=5)
    t0, after = linux_processes.begin_processes(ctx)
    # Pretend the first snapshot was taken 0.5 s earlier with fewer ticks.
    before = dict(after)
    before[1500] = (b"odd) name)", after[1500][1] - 50, *after[1500][2:])  # 1 CPU fully busy
    before[812] = (b"tmux: server", after[812][1] - 5, *after[812][2:])
    result = linux_processes.collect_processes(ctx, (t0 - 0.5, before), {})["processes"]
    assert result["reason"] == "always"
    assert result["window_seconds"] >= 0.5
    assert (result["count"], result["zombies"]) == (3, 0)
    top_cpu = result["top_cpu"]
    assert [p["pid"] for p in top_cpu] == [1500, 812]
    assert top_cpu[0]["user"] == "4242"  # no passwd entry: the number
    assert top_cpu[1]["user"] == "alice"
    assert 90 < top_cpu[0]["cpu_percent"] <= 100
    assert top_cpu[0]["cpu_seconds"] == 914.15  # since the process started
    # 30911 has no status (exited mid-read): skipped, the others still listed.
    assert [p["pid"] for p in result["top_memory"]] == [1500, 812]
    assert result["top_memory"][0]["rss_bytes"] == 65536 * 4096  # statm's
    assert set(top_cpu[0]) == {"pid", "name", "user", "cpu_percent", "cpu_seconds", "rss_bytes"}


def test_rss_is_statms_not_stats(tmp_path: Path) -> None:
    """Linux 6.2+ keeps stat's rss in per-CPU counters read without summing: below
    statm's, which psutil, ps and top show. The listed RSS is statm's, and the
    memory list is ranked by it."""
    recorded = DEBIAN12 / "proc" / "1241"
    assert linux_processes.parse_pid_stat((recorded / "stat").read_bytes())[2] == 999
    doc = linux_processes.collect_processes(ctx_for(DEBIAN12), None, {})["processes"]
    assert [(p["pid"], p["rss_bytes"]) for p in doc["top_memory"]] == [
        (1241, 1015 * 4096),
        (8769, 413 * 4096),
    ]
    # Two processes whose order by stat's rss is the other way round by statm's.
    for pid, stat_rss, statm_rss in ((10, 500, 400), (11, 450, 600)):
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "stat").write_text(
            f"{pid} (p{pid}) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 {stat_rss} 0\n"
        )
        (tmp_path / "proc" / str(pid) / "statm").write_text(f"900 {statm_rss} 1 1 0 1 0\n")
        (tmp_path / "proc" / str(pid) / "status").write_text("Uid:\t0\t0\t0\t0\n")
    doc = linux_processes.collect_processes(ctx_for(tmp_path, top=1), None, {})["processes"]
    assert [(p["pid"], p["rss_bytes"]) for p in doc["top_memory"]] == [(11, 600 * 4096)]


def test_rank_by_window_then_by_cpu_time_since_start() -> None:
    before = {1: ("a", 100, 1, b"S"), 2: ("b", 500, 1, b"S"), 4: ("d", 7000, 1, b"S")}
    after = {
        1: ("a", 150, 10, b"R"),
        2: ("b", 20, 20, b"S"),  # reused pid: ticks fell
        3: ("c", 999, 30, b"S"),  # new since the first snapshot
        4: ("d", 7000, 5, b"S"),  # idle in the window, busy in its life
        5: ("kthread", 0, 0, b"I"),  # never used CPU: not listed
    }
    top_cpu, top_memory = linux_processes.rank(before, after, 1.0, 100, 5)
    assert [(r[0], r[2]) for r in top_cpu] == [(1, 50.0), (4, 0.0), (3, None), (2, None)]
    assert [r[0] for r in top_memory] == [3, 2, 1, 4]


def test_zombies_are_counted_from_the_second_snapshot(tmp_path: Path) -> None:
    for pid, state in ((20, "Z"), (21, "S"), (22, "Z")):
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "stat").write_text(
            f"{pid} (x) {state} 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0\n"
        )
    doc = linux_processes.collect_processes(ctx_for(tmp_path), None, {})["processes"]
    assert (doc["count"], doc["zombies"], doc["top_cpu"], doc["top_memory"]) == (3, 2, [], [])


def test_processes_top_zero_reads_nothing() -> None:
    ctx = ctx_for(FIXTURES / "missing", top=0)
    started = linux_processes.begin_processes(ctx)
    assert linux_processes.collect_processes(ctx, started, {}) == {
        "processes": {
            "count": None,  # no /proc under this root
            "zombies": None,
            "top_cpu": None,
            "top_memory": None,
            "reason": "top-processes is 0",
        }
    }


MEMORY_71 = {"memory": {"used_percent": 71.5}, "cpu": {"used_percent": 12.0}}


@pytest.mark.parametrize(
    ("top_when", "reason"),
    [
        ({"cpu": 20.0, "memory": 80.0}, "below cpu 20, memory 80"),
        ({"cpu": 20.0, "load": 1.5}, "below cpu 20, load 1.5"),  # no load in the document
        ({}, "no cpu, cpu-core, load, memory or swap limit for this host"),
    ],
)
def test_processes_below_every_limit_read_nothing(top_when: dict, reason: str) -> None:
    """Under --top-when the first snapshot is not taken, and below every limit
    neither is the second: a root without /proc would raise if anything were read."""
    slept: list[float] = []
    ctx = ctx_for(FIXTURES / "missing", top_when=top_when, cpu_window=0.25, sleep=slept.append)
    assert linux_processes.begin_processes(ctx) is None
    assert linux_processes.collect_processes(ctx, None, MEMORY_71) == {
        "processes": {
            "count": None,
            "zombies": None,
            "top_cpu": None,
            "top_memory": None,
            "reason": reason,
        }
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
    # A fixture's ticks do not move: 0 % in the window, ranked by CPU time since start.
    assert [(p["pid"], p["cpu_percent"]) for p in result["top_cpu"]] == [(1500, 0.0), (812, 0.0)]


def test_top_reason_takes_the_first_condition_met_by_name() -> None:
    doc = {"cpu": {"used_percent": 93.4}, "load": {"per_core1": 2.0}, "swap": {"used_percent": 0}}
    assert common.top_reason(None, doc) == "always"
    assert common.top_reason({"load": 1.5, "cpu": 20}, doc) == "cpu 93.4 >= 20"
    assert common.top_reason({"load": 1.5, "swap": 10}, doc) == "load 2 >= 1.5"
    assert common.top_reason({"swap": 0}, doc) == "swap 0 >= 0"
    core = {"cpu": {"used_percent": 3.1, "busiest_core_percent": 100.0}}
    assert common.top_reason({"cpu": 20, "cpu-core": 95}, core) == "cpu-core 100 >= 95"
    contained = {"memory": {"used_percent": 30.0}, "cgroup": {"used_percent": 96.5}}
    assert common.top_reason({"cgroup-memory": 90, "memory": 90}, contained) == (
        "cgroup-memory 96.5 >= 90"
    )
    assert common.top_reason({"cgroup-memory": 90}, {"cgroup": None}) is None
    assert common.top_reason({"memory": 0}, {"memory": None}) is None  # no data


def test_probe_excludes_itself() -> None:
    snap, count = linux_processes.snapshot(str(DEBIAN12), skip_pid=8769)
    assert sorted(snap) == [2, 1241]
    assert count == 3  # counted as psutil.pids() would, the probe included


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
        "disk_io",
        "cgroup",
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


# --- the cgroup's memory limit -------------------------------------------------------


def test_cgroup_v2_container_limit_beside_the_hosts_memory() -> None:
    doc = registry.build_document(ctx_for(DOCKER, isdir=lambda p: True), platform="linux")
    assert doc["memory"]["total_bytes"] == 16362184 * KIB  # the host's RAM, from /proc
    assert doc["cgroup"] == {
        "version": 2,
        "path": "/",  # the container's own cgroup, seen through its namespace
        "limit_bytes": 512 * 2**20,
        "usage_bytes": 401604608,
        "used_bytes": 401604608 - 25657344,  # less the inactive page cache
        "used_percent": 70.03,
    }
    assert doc["errors"] == {}


def test_cgroup_limit_on_an_ancestor_is_found() -> None:
    """The probe runs in its ssh session's scope; the limit is on the user's slice."""
    ctx = ctx_for(UBUNTU_NFS)
    cgroup = linux.collect_cgroup(ctx, None, {"memory": {"total_bytes": 8336523264}})["cgroup"]
    assert (cgroup["path"], cgroup["limit_bytes"]) == ("/user.slice/user-1000.slice", 4 * 2**30)
    # A limit at or above the host's RAM changes nothing: no cgroup figures.
    bigger = {"memory": {"total_bytes": 4 * 2**30}}
    assert linux.collect_cgroup(ctx, None, bigger) == {"cgroup": None}


@pytest.mark.parametrize("root", [RHEL6, DEBIAN12], ids=["v1-unlimited", "no-proc-self-cgroup"])
def test_no_cgroup_limit_is_null(root: Path) -> None:
    assert linux.collect_cgroup(ctx_for(root), None, {"memory": None}) == {"cgroup": None}


def test_cgroup_v1_limit_and_hierarchical_cache(tmp_path: Path) -> None:
    """cgroup v1 (memory controller in its own hierarchy, as on this CI machine
    and RHEL 7): a container's view without a cgroup namespace, where the mount's
    root is the container's cgroup."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text(
        "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n"
    )
    (tmp_path / "proc" / "self" / "mountinfo").write_text(
        "30 20 0:27 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
        "31 20 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n"
    )
    memory = tmp_path / "sys" / "fs" / "cgroup" / "memory"
    memory.mkdir(parents=True)
    (memory / "memory.limit_in_bytes").write_text("1073741824\n")
    (memory / "memory.usage_in_bytes").write_text("734003200\n")
    (memory / "memory.stat").write_text("inactive_file 1\ntotal_inactive_file 209715200\n")
    doc = {"memory": {"total_bytes": 16 * 2**30}}
    assert linux.collect_cgroup(ctx_for(tmp_path), None, doc)["cgroup"] == {
        "version": 1,
        "path": "/docker/abc",
        "limit_bytes": 2**30,
        "usage_bytes": 734003200,
        "used_bytes": 734003200 - 209715200,
        "used_percent": 48.83,
    }


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("max\n", None),
        ("9223372036854771712\n", None),
        ("9223372036854775807", None),
        ("4096", 4096),
    ],
)
def test_parse_limit(text: str, limit: int | None) -> None:
    assert linux.parse_limit(text) == limit
