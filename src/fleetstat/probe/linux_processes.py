"""Top processes by CPU (over a short window) and by resident memory.

Two snapshots of every /proc/[pid]/stat, taken at the start and the end of a
window, give each process's CPU ticks in that window; RSS comes from the second
snapshot. Only the few processes that make a top list have their
/proc/[pid]/status read (for the owning user).

The table is the probe's dearest read: opening and reading a /proc/[pid]/stat
costs the kernel about 10 us (measured on Linux 6.x, the same from C as from
Python), twice per process, so 5-6 ms of the host's CPU at 300 processes, a
fifth of a whole probe run. Its lists explain a cpu, load, memory or swap alert
in that alert's mail, so the server asks for them (``--top-when``, in
``ctx.top_when``) only at those rules' limits: the probe then reads the table
after the other collectors, only when the document reached one limit, in a
window of its own (one more ``cpu_window`` of wall time on that host). Without
``--top-when`` (an operator running the probe by hand, or
``top-processes-when="always"``) both snapshots bracket the cpu family's window.

Processes come and go while we read: a pid that vanishes between listdir and
read (ENOENT, or ESRCH from a dying task) is simply skipped.
"""

import time

from . import _os as os  # the os functions without import os: see _os.py
from .common import not_read, skipped_reason, top_reason
from .procfs import host_path, read_text

_GONE = (OSError, ValueError, IndexError)  # vanished, or torn mid-exit


def parse_pid_stat(data):
    """(name, cpu ticks, rss pages) from /proc/[pid]/stat, as bytes.

    The name (comm, at most 15 characters) is in parentheses and may itself
    hold spaces and parentheses, so the fields are split after the *last* ")"
    (proc(5)). Then field 3 is the state, 14/15 utime/stime in USER_HZ ticks,
    and 24 the resident set in pages. The name stays bytes: only the few
    processes that make a top list have it decoded (:func:`describe`).
    """
    left = data.index(b"(")
    right = data.rindex(b")")
    # Split no further than the rss field: the 30-odd fields after it are unused.
    fields = data[right + 2 :].split(None, 22)
    return data[left + 1 : right], int(fields[11]) + int(fields[12]), int(fields[21])


def parse_status_uid(text):
    """The real uid from /proc/[pid]/status (``Uid: real effective saved fs``)."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def snapshot(root, skip_pid=None):
    """{pid: (name, ticks, rss pages)} for every process readable right now.

    The hot loop of the probe on a busy host (every process, twice per run), so
    it reads each /proc/[pid]/stat with one os.open/os.read and parses bytes:
    about 7 us per process on Linux 6.x, most of it the kernel's.
    """
    result = {}
    proc = host_path(root, "proc") + "/"
    skip = str(skip_pid)
    for name in os.listdir(proc):
        if not name.isdigit() or name == skip:
            continue
        try:
            fd = os.open(proc + name + "/stat", os.O_RDONLY)
            try:
                data = os.read(fd, 4096)  # a stat line is < 1 KB
            finally:
                os.close(fd)
            result[int(name)] = parse_pid_stat(data)
        except _GONE:
            continue
    return result


def rank(before, after, elapsed, clock_ticks, page_size, top):
    """(top_cpu, top_memory): lists of (pid, name, cpu_percent, rss_bytes).

    cpu_percent is of one CPU, as top and psutil report it (a process busy on
    two cores shows 200). Its resolution is one tick over the window: 4% for
    a 0.25 s window at USER_HZ 100. Processes that did not exist at the start of
    the window, or whose tick count fell (the pid was reused), have no CPU
    figure and are left out of top_cpu, as are processes that used no CPU in
    the window (an idle host has an empty top_cpu, not five zeros).
    """
    rows = []
    for pid, (name, ticks, rss) in after.items():
        cpu_percent = None
        prev = before.get(pid)
        if prev is not None and ticks >= prev[1] and elapsed > 0:
            cpu_percent = round((ticks - prev[1]) * 100.0 / clock_ticks / elapsed, 1)
        rows.append((pid, name, cpu_percent, rss * page_size))
    by_cpu = sorted((r for r in rows if r[2]), key=lambda r: (-r[2], -r[3], r[0]))
    by_rss = sorted((r for r in rows if r[3]), key=lambda r: (-r[3], r[0]))
    return by_cpu[:top], by_rss[:top]


def describe(root, row, user_name):
    pid, name, cpu_percent, rss_bytes = row
    uid = parse_status_uid(read_text(root, "proc/%d/status" % pid))
    return {
        "pid": pid,
        "name": name.decode("utf-8", "replace"),
        "user": user_name(uid) if uid is not None else None,
        "cpu_percent": cpu_percent,
        "rss_bytes": rss_bytes,
    }


def _described(root, rows, user_name):
    out = []
    for row in rows:
        try:
            out.append(describe(root, row, user_name))
        except _GONE:
            continue  # exited since the snapshot
    return out


def begin_processes(ctx):
    if ctx.top <= 0 or ctx.top_when is not None:
        return None  # nothing to read, or decided after the other collectors
    # The probe itself is left out: it is busy exactly while it measures.
    return time.monotonic(), snapshot(ctx.root, ctx.self_pid)


def collect_processes(ctx, started, doc):
    """The ``processes`` family: a final collector (see ``common.Collector``)."""
    if ctx.top <= 0:
        return not_read("top-processes is 0")
    reason = top_reason(ctx.top_when, doc)
    if reason is None:
        return not_read(skipped_reason(ctx.top_when))
    if started is None:
        started = time.monotonic(), snapshot(ctx.root, ctx.self_pid)
        ctx.sleep(ctx.cpu_window)
    t0, before = started
    after = snapshot(ctx.root, ctx.self_pid)
    elapsed = time.monotonic() - t0
    # One spare per list, so a process exiting before its status is read does
    # not leave the list short.
    top_cpu, top_memory = rank(before, after, elapsed, ctx.clock_ticks, ctx.page_size, ctx.top + 1)
    return {
        "processes": {
            "top_cpu": _described(ctx.root, top_cpu, ctx.user_name)[: ctx.top],
            "top_memory": _described(ctx.root, top_memory, ctx.user_name)[: ctx.top],
            "window_seconds": round(elapsed, 3),
            "reason": reason,
        }
    }
