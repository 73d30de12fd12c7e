"""Linux collectors, all from /proc under ``ctx.root``.

Each family is read, then parsed: ``read_*`` touches the host, ``parse_*`` and
the figure builders are pure functions over text, tested on files recorded on
several distributions and kernels (tests/fixtures/proc/<distro>/).
"""

import time

from .common import (
    Collector,
    memory_usage,
    not_read,
    percent,
    skipped_reason,
    swap_usage,
    top_reason,
    utc_iso,
)
from .linux_disks import collect_disk_io, collect_disks, unescape_mount_field
from .procfs import count_pids, read_text

# --- memory and swap (/proc/meminfo) -----------------------------------------


def read_meminfo(root):
    return read_text(root, "proc/meminfo")


def parse_meminfo(text):
    """``{"MemTotal": bytes, ...}``. Values with a ``kB`` unit (which the kernel
    means as KiB) become bytes; unitless counts (HugePages_Total) stay counts."""
    result = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        if len(parts) > 1 and parts[1] == "kB":
            value *= 1024
        result[key.strip()] = value
    return result


def parse_zoneinfo_low(text):
    """The sum of every zone's ``low`` watermark (pages) in /proc/zoneinfo."""
    low = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "low":
            low += int(fields[1])
    return low


def available_estimate(info, low_pages, page_size):
    """MemAvailable as the kernel computes it, for kernels that do not print it.

    MemAvailable arrived in Linux 3.14 (commit 34e431b0ae39, backported to
    RHEL 6.6's 2.6.32); si_mem_available() there is free memory above the low
    watermarks, plus the page cache and reclaimable slab less what must stay
    (half of each, at most the watermark). psutil and procps' ``free`` do the
    same from /proc/zoneinfo (``low_pages``, None when unreadable) with the
    same arithmetic, so the figures agree to the byte; MemFree + Cached is their
    fallback on kernels before 2.6.28 (no Active(file)/Inactive(file)).
    """
    free = info.get("MemFree", 0)
    fallback = free + info.get("Cached", 0)
    try:
        pagecache = info["Active(file)"] + info["Inactive(file)"]
        slab_reclaimable = info["SReclaimable"]
    except KeyError:
        return fallback
    if low_pages is None:
        return fallback
    low = low_pages * page_size
    available = free - low
    pagecache -= min(pagecache / 2, low)
    available += pagecache
    available += slab_reclaimable - min(slab_reclaimable / 2.0, low)
    return int(available)


def needs_estimate(info):
    # MemAvailable of 0 is a kernel bug seen in the wild (psutil issue 1915);
    # free and psutil estimate then too.
    return not info.get("MemAvailable")


def memory_figures(info, low_pages=None, page_size=4096):
    """The memory family from parsed meminfo; ``low_pages`` (zoneinfo's
    watermarks) only matters when :func:`needs_estimate`."""
    total = info["MemTotal"]
    available = info.get("MemAvailable")
    if needs_estimate(info):
        available = available_estimate(info, low_pages, page_size)
    if available < 0:
        available = 0
    elif available > total:
        # Only seen in LXC containers whose /proc/meminfo is a lxcfs view
        # with the host's counters mixed in: free (procps) and psutil then
        # take MemFree, and so do we.
        available = info.get("MemFree", 0)
    return memory_usage(total, available)


def swap_figures(info):
    return swap_usage(info.get("SwapTotal", 0), info.get("SwapFree", 0))


def read_zoneinfo_low(root):
    try:
        return parse_zoneinfo_low(read_text(root, "proc/zoneinfo"))
    except (OSError, ValueError):
        return None  # before 2.6.13, or hidden: the estimate falls back


def collect_memory(ctx, started=None):
    info = parse_meminfo(read_meminfo(ctx.root))
    low = read_zoneinfo_low(ctx.root) if needs_estimate(info) else None
    return {"memory": memory_figures(info, low, ctx.page_size)}


def collect_swap(ctx, started=None):
    return {"swap": swap_figures(parse_meminfo(read_meminfo(ctx.root)))}


# --- the cgroup's memory limit (/proc/self/cgroup, /sys/fs/cgroup) --------------

# cgroup v1 prints "no limit" as the largest page-aligned long (PAGE_COUNTER_MAX).
_V1_UNLIMITED = 2**62


def parse_proc_cgroup(text):
    """(v1 memory path or None, v2 path or None) from /proc/self/cgroup:
    ``4:memory:/docker/abc`` (v1, one line per hierarchy) or ``0::/user.slice``
    (v2, the unified hierarchy)."""
    v1 = v2 = None
    for line in text.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v1, v2


def parse_cgroup_mounts(text):
    """(v1 memory mount, v2 mount): each (mount point, root) or None, from
    /proc/self/mountinfo's cgroup lines (v1's memory one by its ``memory``
    super option)."""
    v1 = v2 = None
    for line in text.splitlines():
        fields = line.split()
        if " - cgroup" not in line or len(fields) < 10:
            continue
        dash = fields.index("-", 6)
        where = (unescape_mount_field(fields[4]), unescape_mount_field(fields[3]))
        if fields[dash + 1] == "cgroup2":
            v2 = v2 or where
        elif fields[dash + 1] == "cgroup" and "memory" in fields[dash + 3].split(","):
            v1 = where
    return v1, v2


def parse_limit(text):
    """A v2 ``memory.max`` or v1 ``memory.limit_in_bytes`` value; None for none."""
    text = text.strip()
    if text == "max":
        return None
    value = int(text)
    return None if value >= _V1_UNLIMITED else value


def parse_inactive_file(text, key):
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


# (limit, usage, memory.stat key of the reclaimable page cache) per version:
# usage counts page cache, which the kernel reclaims before it kills, so
# "used" is usage - inactive file pages, the working set that kubelet and
# docker stats show (v1: its hierarchical total_inactive_file).
_CGROUP_FILES = {
    1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    2: ("memory.max", "memory.current", "inactive_file"),
}


def cgroup_memory(root, cgroup_text, mountinfo_text, host_total):
    """The ``cgroup`` family: the tightest memory limit on the probe's cgroup
    or any ancestor visible to it, with that cgroup's usage; None when no limit
    is below the host's RAM (then the host's figures are the ones that count).

    Walks from the probe's own cgroup (its systemd session or container) up to
    the hierarchy's root: a container's limit sits on the container's cgroup,
    which is an ancestor of the shell sshd started the probe in.
    """
    v1_path, v2_path = parse_proc_cgroup(cgroup_text)
    v1_mount, v2_mount = parse_cgroup_mounts(mountinfo_text)
    if v1_path is not None and v1_mount is not None:
        version, path, (mount, mount_root) = 1, v1_path, v1_mount
    elif v2_path is not None and v2_mount is not None:
        version, path, (mount, mount_root) = 2, v2_path, v2_mount
    else:
        return None
    limit_file, usage_file, inactive_key = _CGROUP_FILES[version]
    # A path outside the mount's root (another namespace's view) is read from
    # the mount's own root.
    rel = path[len(mount_root) :] if path.startswith(mount_root) else ""
    rel = "/" + rel.strip("/") if rel.strip("/") else ""
    best = None
    while True:
        try:
            limit = parse_limit(read_text(root, mount.lstrip("/") + rel + "/" + limit_file))
        except (OSError, ValueError):
            limit = None  # the hierarchy's root has no limit file
        if limit is not None and (best is None or limit < best[0]):
            best = (limit, rel)
        if not rel:
            break
        rel = rel.rsplit("/", 1)[0]
    if best is None or (host_total and best[0] >= host_total):
        return None
    limit, rel = best
    where = mount.lstrip("/") + rel + "/"
    usage = int(read_text(root, where + usage_file))
    stat = read_text(root, where + "memory.stat")
    used = max(0, usage - parse_inactive_file(stat, inactive_key))
    return {
        "version": version,
        "path": (mount_root.rstrip("/") + rel) or "/",
        "limit_bytes": limit,
        "usage_bytes": usage,
        "used_bytes": used,
        "used_percent": percent(used, limit),
    }


def collect_cgroup(ctx, started, doc):
    """A final collector: it compares the limit with the memory family's total."""
    try:
        cgroups = read_text(ctx.root, "proc/self/cgroup")
    except OSError:
        return {"cgroup": None}  # a kernel without cgroups
    total = (doc.get("memory") or {}).get("total_bytes")
    mountinfo = read_text(ctx.root, "proc/self/mountinfo")
    return {"cgroup": cgroup_memory(ctx.root, cgroups, mountinfo, total)}


# --- cpu (/proc/stat) ----------------------------------------------------------

# The first eight columns of the "cpu" line of /proc/stat, in USER_HZ ticks.
# guest and guest_nice (columns 9-10) are left out: the kernel already counts
# them inside user and nice (account_guest_time()), so adding them would count
# that time twice. Kernels before 2.6.11 lack steal; it is then null.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_stat(root):
    return read_text(root, "proc/stat")


def parse_stat(text):
    """``{"cpu": [ticks, ...], "cores": {n: [ticks, ...]}, "cpus": n, "btime":
    epoch or None}`` from /proc/stat. ``cores`` holds the per-CPU lines (online
    CPUs, by number: an offline one has no line), ``cpus`` counts them."""
    cpu = None
    cores = {}
    btime = None
    width = 1 + len(CPU_FIELDS)
    for line in text.splitlines():
        if line.startswith("cpu"):
            parts = line.split()
            if parts[0] == "cpu":
                cpu = [int(v) for v in parts[1:width]]
            else:
                cores[int(parts[0][3:])] = [int(v) for v in parts[1:width]]
        elif line.startswith("btime "):
            btime = int(line.split()[1])
    if cpu is None:
        raise ValueError("no aggregate cpu line in /proc/stat")
    return {"cpu": cpu, "cores": cores, "cpus": len(cores), "btime": btime}


def cpu_totals(ticks):
    """(total, busy) ticks: busy is everything but idle and iowait (as top and
    psutil count it)."""
    total = sum(ticks)
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return total, total - idle


def busy_percent(before, after):
    """Busy share of the ticks between two samples of one cpu line, or None."""
    total0, busy0 = cpu_totals(before)
    total1, busy1 = cpu_totals(after)
    d_total = total1 - total0
    # iowait may go backwards on NO_HZ kernels (Documentation/filesystems/proc.rst),
    # so busy is clamped into [0, total] rather than trusted.
    return percent(max(0, min(busy1 - busy0, d_total)), d_total)


# Per-core figures in a document: the first this many online CPUs (the busiest
# core is found among all of them).
MAX_CORES = 128


def core_figures(before, after):
    """(busiest core number, its percent, per-core percents in CPU order) over
    the same two samples as the total: a core stuck at 100 % on a 64-core host
    is 1.6 % of the total, and a ``cpu-core`` rule sees it here."""
    busiest = None
    top = None
    shares = []
    first = before["cores"]
    for n in sorted(after["cores"]):
        share = busy_percent(first[n], after["cores"][n]) if n in first else None
        if len(shares) < MAX_CORES:
            shares.append(share)
        if share is not None and (top is None or share > top):
            busiest, top = n, share
    return busiest, top, shares


def cpu_figures(before, after, clock_ticks, window_seconds, cpu_count=None):
    """The cpu family from two parsed /proc/stat samples ``window_seconds`` apart."""
    total1, busy1 = cpu_totals(after["cpu"])
    ticks = after["cpu"]
    counters = {}
    for i, field in enumerate(CPU_FIELDS):
        counters[field + "_seconds"] = round(ticks[i] / clock_ticks, 2) if i < len(ticks) else None
    busiest, top, shares = core_figures(before, after)
    return {
        "count": after["cpus"] or cpu_count,
        "used_percent": busy_percent(before["cpu"], after["cpu"]),
        "busiest_core": busiest,
        "busiest_core_percent": top,
        "per_core_percent": shares,
        "window_seconds": round(window_seconds, 3),
        "counters": counters,
        "total_seconds": round(total1 / clock_ticks, 2),
        "busy_seconds": round(busy1 / clock_ticks, 2),
    }


def begin_cpu(ctx):
    return time.monotonic(), parse_stat(read_stat(ctx.root))


def collect_cpu(ctx, started):
    t0, before = started
    after = parse_stat(read_stat(ctx.root))
    elapsed = time.monotonic() - t0
    return {
        "cpu": cpu_figures(before, after, ctx.clock_ticks, elapsed, ctx.cpu_count),
        "boot_time": boot_time(after),
    }


def boot_time(stat):
    """The kernel's own boot time, ``btime`` of /proc/stat (what psutil and
    ``uptime -s`` report). now - uptime would land a second late half the time:
    the kernel truncates btime, and the uptime is read an instant after now."""
    return utc_iso(stat["btime"]) if stat["btime"] is not None else None


# --- uptime and load -------------------------------------------------------------


def parse_uptime(text):
    """Seconds since boot: the first field of /proc/uptime."""
    return float(text.split()[0])


def collect_uptime(ctx, started=None):
    return {"uptime_seconds": round(parse_uptime(read_text(ctx.root, "proc/uptime")), 2)}


def parse_loadavg(text):
    """(avg1, avg5, avg15) from /proc/loadavg."""
    fields = text.split()
    return float(fields[0]), float(fields[1]), float(fields[2])


def load_figures(averages, cpu_count):
    avg1, avg5, avg15 = averages
    return {
        "avg1": avg1,
        "avg5": avg5,
        "avg15": avg15,
        # Linux load counts runnable and uninterruptible tasks over all CPUs;
        # per core is what a "load" alert limit means across differently sized hosts.
        "per_core1": round(avg1 / cpu_count, 2) if cpu_count else None,
    }


def collect_load(ctx, started=None):
    return {"load": load_figures(parse_loadavg(read_text(ctx.root, "proc/loadavg")), ctx.cpu_count)}


def begin_processes(ctx):
    """The process table's first snapshot, when it brackets the cpu window."""
    if ctx.top <= 0 or ctx.top_when is not None:
        return None  # nothing to read, or decided after the other collectors
    from .linux_processes import begin_processes as begin

    return begin(ctx)


def collect_processes(ctx, started, doc):
    """The ``processes`` family. Its module is imported only when the table is
    read: on a host below every ``--top-when`` limit that is ~0.3 ms of the
    probe's start spared."""
    if ctx.top <= 0:
        return not_read("top-processes is 0", count_pids(ctx.root))
    if top_reason(ctx.top_when, doc) is None:
        return not_read(skipped_reason(ctx.top_when), count_pids(ctx.root))
    from .linux_processes import collect_processes as collect

    return collect(ctx, started, doc)


COLLECTORS = (
    Collector("memory", ["linux"], ["memory"], collect_memory),
    Collector("swap", ["linux"], ["swap"], collect_swap),
    Collector("cpu", ["linux"], ["cpu", "boot_time"], collect_cpu, begin=begin_cpu),
    Collector("uptime", ["linux"], ["uptime_seconds"], collect_uptime),
    Collector("load", ["linux"], ["load"], collect_load),
    Collector("disks", ["linux"], ["disks"], collect_disks),
    Collector("disk_io", ["linux"], ["disk_io"], collect_disk_io),
    Collector("cgroup", ["linux"], ["cgroup"], collect_cgroup, final=True),
    Collector(
        "processes", ["linux"], ["processes"], collect_processes, begin=begin_processes, final=True
    ),
)
