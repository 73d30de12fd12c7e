"""Usage of local filesystems, from /proc/self/mounts and statvfs.

The one rule that matters: statvfs is never called on a network or FUSE mount.
statvfs on a hard-mounted NFS export whose server is gone blocks in the kernel
(uninterruptible, unkillable) forever; a stuck FUSE daemon does the same. The
probe would hang past the run deadline on every such host. So mounts are
filtered on their fstype *before* any call, and the statvfs function is a
parameter so tests can prove which paths it was asked about.
"""

from .procfs import read_text

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


def select_local_mounts(mounts, filesystems):
    """The mounts to statvfs: local ones only, one per device.

    A device mounted more than once (bind mounts, container runtimes' views of
    the root disk, btrfs subvolumes) is reported once, under its shortest mount
    point (``/`` rather than ``/var/lib/docker/...``), at its first position.
    """
    chosen = {}
    order = []
    for device, mount, fstype, _options in mounts:
        if not wanted(device, fstype, filesystems):
            continue
        previous = chosen.get(device)
        if previous is None:
            order.append(device)
            chosen[device] = (device, mount, fstype)
        elif len(mount) < len(previous[1]):
            chosen[device] = (device, mount, fstype)
    return [chosen[d] for d in order]


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


def collect_disks(ctx, started=None):
    mounts = parse_mounts(read_text(ctx.root, "proc/self/mounts"))
    try:
        filesystems = parse_filesystems(read_text(ctx.root, "proc/filesystems"))
    except OSError:
        filesystems = None
    # Mount points are paths in the probe's own mount namespace, so they are
    # given to statvfs as they are (not under ctx.root).
    return {"disks": disks_from_mounts(select_local_mounts(mounts, filesystems), ctx.statvfs)}
