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
from .linux_disks import collect_disks
from .procfs import read_text

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


def memory_figures(info):
    total = info["MemTotal"]
    available = info.get("MemAvailable")
    if available is None:
        # MemAvailable arrived in Linux 3.14 (and RHEL 6.6's 2.6.32 backport).
        # Before it, free + buffers + page cache is the estimate `free` printed
        # as "-/+ buffers/cache"; it overstates a little (not all cache is
        # reclaimable) but is what operators of those hosts are used to.
        available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
    return memory_usage(total, available)


def swap_figures(info):
    return swap_usage(info.get("SwapTotal", 0), info.get("SwapFree", 0))


def collect_memory(ctx, started=None):
    return {"memory": memory_figures(parse_meminfo(read_meminfo(ctx.root)))}


def collect_swap(ctx, started=None):
    return {"swap": swap_figures(parse_meminfo(read_meminfo(ctx.root)))}


# --- cpu (/proc/stat) ----------------------------------------------------------

# The first eight columns of the "cpu" line of /proc/stat, in USER_HZ ticks.
# guest and guest_nice (columns 9-10) are left out: the kernel already counts
# them inside user and nice (account_guest_time()), so adding them would count
# that time twice. Kernels before 2.6.11 lack steal; it is then null.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_stat(root):
    return read_text(root, "proc/stat")


def parse_stat(text):
    """``{"cpu": [ticks, ...], "cpus": n, "btime": epoch or None}`` from /proc/stat.
    ``cpus`` counts the per-CPU lines (online CPUs)."""
    cpu = None
    cpus = 0
    btime = None
    for line in text.splitlines():
        if line.startswith("cpu"):
            parts = line.split()
            if parts[0] == "cpu":
                cpu = [int(v) for v in parts[1 : 1 + len(CPU_FIELDS)]]
            else:
                cpus += 1
        elif line.startswith("btime "):
            btime = int(line.split()[1])
    if cpu is None:
        raise ValueError("no aggregate cpu line in /proc/stat")
    return {"cpu": cpu, "cpus": cpus, "btime": btime}


def cpu_totals(ticks):
    """(total, busy) ticks: busy is everything but idle and iowait (as top counts)."""
    total = sum(ticks)
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return total, total - idle


def cpu_figures(before, after, clock_ticks, window_seconds, cpu_count=None):
    """The cpu family from two parsed /proc/stat samples ``window_seconds`` apart."""
    total0, busy0 = cpu_totals(before["cpu"])
    total1, busy1 = cpu_totals(after["cpu"])
    d_total = total1 - total0
    # iowait may go backwards on NO_HZ kernels (Documentation/filesystems/proc.rst),
    # so busy is clamped into [0, total] rather than trusted.
    d_busy = max(0, min(busy1 - busy0, d_total))
    ticks = after["cpu"]
    counters = {}
    for i, field in enumerate(CPU_FIELDS):
        counters[field + "_seconds"] = round(ticks[i] / clock_ticks, 2) if i < len(ticks) else None
    return {
        "count": after["cpus"] or cpu_count,
        "used_percent": percent(d_busy, d_total),
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
    return {"cpu": cpu_figures(before, after, ctx.clock_ticks, elapsed, ctx.cpu_count)}


# --- uptime and load -------------------------------------------------------------


def parse_uptime(text):
    """Seconds since boot: the first field of /proc/uptime."""
    return float(text.split()[0])


def collect_uptime(ctx, started=None):
    uptime = parse_uptime(read_text(ctx.root, "proc/uptime"))
    # now - uptime is how the kernel derives btime too; rounding to the second
    # keeps boot_time stable across collections.
    return {"uptime_seconds": round(uptime, 2), "boot_time": utc_iso(round(ctx.now() - uptime))}


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
        return not_read("top-processes is 0")
    if top_reason(ctx.top_when, doc) is None:
        return not_read(skipped_reason(ctx.top_when))
    from .linux_processes import collect_processes as collect

    return collect(ctx, started, doc)


COLLECTORS = (
    Collector("memory", ["linux"], ["memory"], collect_memory),
    Collector("swap", ["linux"], ["swap"], collect_swap),
    Collector("cpu", ["linux"], ["cpu"], collect_cpu, begin=begin_cpu),
    Collector("uptime", ["linux"], ["uptime_seconds", "boot_time"], collect_uptime),
    Collector("load", ["linux"], ["load"], collect_load),
    Collector("disks", ["linux"], ["disks"], collect_disks),
    Collector(
        "processes", ["linux"], ["processes"], collect_processes, begin=begin_processes, final=True
    ),
)
