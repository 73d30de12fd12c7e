"""Local filesystems' usage (/proc/self/mountinfo and statvfs) and block
devices' I/O counters (/proc/diskstats): the ``disks`` and ``disk_io`` families.

The one rule that matters: statvfs is never called on a network or FUSE mount.
statvfs on a hard-mounted NFS export whose server is gone blocks in the kernel
(uninterruptible, unkillable) forever; a stuck FUSE daemon does the same. The
probe would hang past the run deadline on every such host. So mounts are
filtered on their fstype *before* any call, and the statvfs function is a
parameter so tests can prove which paths it was asked about.
"""

from . import _os as os  # the os functions without import os: see _os.py
from .procfs import host_path, read_text

# Filesystems whose statvfs goes over the network, or waits on cluster locks
# (gfs2, ocfs2: a node that lost quorum blocks there too).
NETWORK_FSTYPES = frozenset(
    (
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "ceph",
        "glusterfs",
        "gfs2",
        "ocfs2",
        "lustre",
        "gpfs",
        "beegfs",
        "orangefs",
        "pvfs2",
        "9p",
        "afs",
        "openafs",
        "coda",
        "davfs",
        "sshfs",
        "vboxsf",
        "vmhgfs",
    )
)

# FUSE in every form: plain, block-device backed (ntfs-3g shows as fuseblk) and
# every "fuse.<subtype>" (fuse.sshfs, fuse.s3fs, fuse.rclone, fuse.glusterfs ...).
FUSE_FSTYPES = frozenset(("fuse", "fuseblk", "fusectl"))

# statvfs on an autofs trigger point mounts whatever is behind it, often NFS.
TRIGGER_FSTYPES = frozenset(("autofs",))

# Marked "nodev" in /proc/filesystems (no block device of their own) but real
# local storage that operators expect to see.
LOCAL_NODEV_FSTYPES = frozenset(("zfs", "btrfs", "bcachefs"))


def is_network_or_fuse(fstype):
    return fstype in NETWORK_FSTYPES or fstype in FUSE_FSTYPES or fstype.startswith("fuse.")


def unescape_mount_field(field):
    """Undo the kernel's octal escapes in /proc/self/mounts (space, tab, newline
    and backslash are written as \\040, \\011, \\012, \\134 by mangle() in
    fs/proc_namespace.c)."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mounts(text):
    """[(device, mount point, fstype, options)] from /proc/self/mounts, in order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mounts.append(
            (
                unescape_mount_field(fields[0]),
                unescape_mount_field(fields[1]),
                fields[2],
                fields[3],
            )
        )
    return mounts


def parse_filesystems(text):
    """(known, nodev): the fstypes the kernel knows, and those flagged ``nodev``."""
    known = set()
    nodev = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        known.add(fields[-1])
        if len(fields) > 1 and fields[0] == "nodev":
            nodev.add(fields[-1])
    return known, nodev


def wanted(device, fstype, filesystems):
    """Whether a mount is local storage worth a statvfs. ``filesystems`` is
    :func:`parse_filesystems`' result, or None when /proc/filesystems was unreadable."""
    if is_network_or_fuse(fstype) or fstype in TRIGGER_FSTYPES:
        return False
    if fstype == "squashfs" and device.startswith("/dev/loop"):
        return False  # snaps and other loop-mounted images: read-only, always 100% full
    if fstype in LOCAL_NODEV_FSTYPES:
        return True
    if filesystems is None:
        return device.startswith("/dev/")
    known, nodev = filesystems
    if fstype in nodev:
        return False  # proc, sysfs, tmpfs, cgroup, overlay, ...
    # A type the kernel does not list (it should not happen for a mounted one):
    # keep it only when it sits on a block device.
    return fstype in known or device.startswith("/dev/")


def parse_mountinfo(text):
    """[(device id, root, mount point, fstype, source)] from /proc/self/mountinfo.

    proc(5): ``36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw``;
    the optional fields (``master:1``) end at a lone ``-``. ``root`` is the
    directory of the filesystem that is mounted there: ``/`` for the whole
    filesystem, ``/sub`` for a bind mount of a subdirectory (or a btrfs
    subvolume), a file's path for a bind-mounted file.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < dash + 3:
            continue
        mounts.append(
            (
                fields[2],
                unescape_mount_field(fields[3]),
                unescape_mount_field(fields[4]),
                fields[dash + 1],
                unescape_mount_field(fields[dash + 2]),
            )
        )
    return mounts


def mounts_from_mtab(mounts):
    """/proc/self/mounts entries in :func:`parse_mountinfo`'s shape, for kernels
    before 2.6.26 (no mountinfo): the device name stands in for its id and the
    root is unknown (None)."""
    return [(device, None, mount, fstype, device) for device, mount, fstype, _o in mounts]


def wanted_mount(source, mount, fstype, filesystems):
    # A container's root is an overlay (nodev) whose space is the real
    # filesystem under its upper layer: the one overlay an operator asks about.
    if mount == "/" and fstype == "overlay":
        return True
    return wanted(source, fstype, filesystems)


def select_local_mounts(mounts, filesystems, isdir):
    """(source, mount point, fstype) to statvfs: local filesystems, each once,
    named by the mount of its own root.

    ``mounts`` is :func:`parse_mountinfo`'s list. A mount hidden under a later
    one at the same point is dropped (statvfs would measure the one on top).
    A filesystem mounted more than once (bind mounts of subdirectories,
    container runtimes' views of the root disk, btrfs subvolumes) is reported
    once, at its first position, under the mount whose root is the
    filesystem's own ``/`` (the shortest such mount point), so a bind mount of
    ``/srv/data/www`` at ``/www`` never names ``/srv/data``. A filesystem
    seen only through partial mounts (a container's volumes) is named by the
    one closest to its root; bind-mounted files (a container's /etc/hosts,
    whose root is a file on the host's disk) are not filesystems of their own
    and are left out (``isdir`` is asked only about those partial mounts).
    """
    on_top = {}
    for index, entry in enumerate(mounts):
        on_top[entry[2]] = index
    groups = {}
    order = []
    for index, (device_id, root, mount, fstype, source) in enumerate(mounts):
        if on_top[mount] != index or not wanted_mount(source, mount, fstype, filesystems):
            continue
        if device_id not in groups:
            groups[device_id] = []
            order.append(device_id)
        groups[device_id].append((root, mount, fstype, source))
    selected = []
    for device_id in order:
        group = groups[device_id]
        whole = [m for m in group if m[0] in ("/", None)]
        if whole:
            root, mount, fstype, source = min(whole, key=lambda m: len(m[1]))
        else:
            parts = [m for m in group if isdir(m[1])]
            if not parts:
                continue
            root, mount, fstype, source = min(parts, key=lambda m: (len(m[0]), len(m[1])))
        selected.append((source, mount, fstype))
    return selected


def disk_figures(device, mount, fstype, st):
    """One disk entry from a statvfs result, with df's arithmetic: blocks reserved
    for root count as neither used nor free, so used + free < total on ext4."""
    frsize = st.f_frsize or st.f_bsize
    total = st.f_blocks * frsize
    free = st.f_bavail * frsize
    used = (st.f_blocks - st.f_bfree) * frsize
    return {
        "mount": mount,
        "device": device,
        "fstype": fstype,
        "total_bytes": total,
        "used_bytes": used,
        "free_bytes": free,
        "used_percent": round(used * 100.0 / (used + free), 2) if used + free else None,
    }


def disks_from_mounts(selected, statvfs):
    disks = []
    for device, mount, fstype in selected:
        try:
            st = statvfs(mount)
        except OSError:
            # The mount point was removed, or is hidden from us (EACCES inside
            # another user's private mount): not a failure of the family.
            continue
        if st.f_blocks == 0:
            continue  # reports no size at all (some pseudo filesystems)
        disks.append(disk_figures(device, mount, fstype, st))
    return disks


def read_mounts(root):
    """:func:`parse_mountinfo`'s list; from /proc/self/mounts before 2.6.26."""
    try:
        return parse_mountinfo(read_text(root, "proc/self/mountinfo"))
    except OSError:
        return mounts_from_mtab(parse_mounts(read_text(root, "proc/self/mounts")))


def collect_disks(ctx, started=None):
    mounts = read_mounts(ctx.root)
    try:
        filesystems = parse_filesystems(read_text(ctx.root, "proc/filesystems"))
    except OSError:
        filesystems = None
    # Mount points are paths in the probe's own mount namespace, so they are
    # given to statvfs (and isdir) as they are (not under ctx.root).
    selected = select_local_mounts(mounts, filesystems, ctx.isdir)
    return {"disks": disks_from_mounts(selected, ctx.statvfs)}


# --- I/O counters per block device (/proc/diskstats) ---------------------------

# The kernel counts diskstats' sectors in 512-byte units whatever the device's
# own sector size (Documentation/admin-guide/iostats.rst).
SECTOR_BYTES = 512
# A host with thousands of devices (multipath, many LUNs) still sends a bounded
# document; the list is cut there and ``truncated`` says so.
MAX_IO_DEVICES = 256


def parse_diskstats(text):
    """[(name, reads, writes, read sectors, written sectors, read ms, write ms,
    reads merged, writes merged, busy ms)] from /proc/diskstats, as psutil reads
    it: 14 fields (2.6+) or 18 and 20 (4.18 and 5.5 added discard and flush
    counters after them), 15 on 2.4 (an extra field before the name), 7 for a
    partition on 2.6 (four counters, no times). Busy is field 10 after the
    name, io_ticks: the milliseconds the device had I/O in flight."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        n = len(fields)
        try:
            if n == 15:
                name, reads = fields[3], int(fields[2])
                rmerged, rsect, rms, writes, wmerged, wsect, wms, _q, busy = (
                    int(v) for v in fields[4:13]
                )
            elif n == 14 or n >= 18:
                name = fields[2]
                reads, rmerged, rsect, rms, writes, wmerged, wsect, wms, _q, busy = (
                    int(v) for v in fields[3:13]
                )
            elif n == 7:
                name = fields[2]
                reads, rsect, writes, wsect = (int(v) for v in fields[3:7])
                rmerged = wmerged = rms = wms = busy = 0
            else:
                continue  # a layout no kernel has printed
        except ValueError:
            continue
        rows.append((name, reads, writes, rsect, wsect, rms, wms, rmerged, wmerged, busy))
    return rows


def io_figures(rows, devices):
    """The ``disk_io`` list: one entry per whole device.

    ``devices`` is the set of names under /sys/block (partitions are not
    there; ``/`` in a name such as ``cciss/c0d0`` is ``!`` in sysfs), or None
    when /sys is not readable, which keeps every line. That is psutil's own
    test for a disk (``is_storage_device``, after iostat): a partition's I/O is
    already inside its disk's, so the devices add up to the host's total as
    psutil's ``disk_io_counters()`` sums it.
    """
    out = []
    for name, reads, writes, rsect, wsect, rms, wms, rmerged, wmerged, busy in rows:
        if devices is not None and name.replace("/", "!") not in devices:
            continue
        out.append(
            {
                "device": name,
                "reads": reads,
                "writes": writes,
                "read_bytes": rsect * SECTOR_BYTES,
                "write_bytes": wsect * SECTOR_BYTES,
                "read_seconds": rms / 1000.0,
                "write_seconds": wms / 1000.0,
                "busy_seconds": busy / 1000.0,
                "reads_merged": rmerged,
                "writes_merged": wmerged,
            }
        )
    return out


def read_block_devices(root):
    try:
        return set(os.listdir(host_path(root, "sys/block")))
    except OSError:
        return None


def collect_disk_io(ctx, started=None):
    """Cumulative counters since boot, read once: the server derives rates from
    two collections (no second sampling window on the host)."""
    rows = io_figures(
        parse_diskstats(read_text(ctx.root, "proc/diskstats")), read_block_devices(ctx.root)
    )
    return {"disk_io": {"devices": rows[:MAX_IO_DEVICES], "truncated": len(rows) > MAX_IO_DEVICES}}
