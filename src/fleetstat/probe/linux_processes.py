"""Top processes by CPU (over a short window) and by resident memory.

Two snapshots of every /proc/[pid]/stat, taken at the start and the end of a
window, give each process's CPU ticks in that window; RSS comes from the second
snapshot. Only the few processes that make a top list have their
/proc/[pid]/status read (for the owning user).

The table is the probe's dearest read: opening and reading a /proc/[pid]/stat
costs the kernel about 10 us (measured on Linux 6.x, the same from C as from
Python), twice per process, so 5-6 ms of the host's CPU at 300 processes, a
fifth of a whole probe run. Its lists explain a cpu, cpu-core, load, memory or swap alert
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
from .procfs import count_pids, host_path, read_text

_GONE = (OSError, ValueError, IndexError)  # vanished, or torn mid-exit


def parse_pid_stat(data):
    """(name, cpu ticks, rss pages, state) from /proc/[pid]/stat, as bytes.

    The name (comm, at most 15 characters) is in parentheses and may itself
    hold spaces and parentheses, so the fields are split after the *last* ")"
    (proc(5)). Then field 3 is the state (``Z`` for a zombie), 14/15
    utime/stime in USER_HZ ticks, and 24 the resident set in pages. That rss
    is only good for ranking: since Linux 6.2 it is a per-CPU counter read
    without summing, below statm's by 0.05-14 % (which psutil, ps and top
    show), so the listed processes get statm's (:func:`read_statm_rss`). The
    name stays bytes: only the listed processes have it decoded.
    """
    left = data.index(b"(")
    right = data.rindex(b")")
    # Split no further than the rss field: the 30-odd fields after it are unused.
    fields = data[right + 2 :].split(None, 22)
    return data[left + 1 : right], int(fields[11]) + int(fields[12]), int(fields[21]), fields[0]


def parse_statm_resident(text):
    """Resident pages: the second field of /proc/[pid]/statm (psutil's rss)."""
    return int(text.split()[1])


def parse_status_uid(text):
    """The real uid from /proc/[pid]/status (``Uid: real effective saved fs``)."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def snapshot(root, skip_pid=None):
    """({pid: (name, ticks, rss pages, state)} for every process readable right
    now, the number of processes listed).

    The hot loop of the probe on a busy host (every process, twice per run), so
    it reads each /proc/[pid]/stat with one os.open/os.read and parses bytes:
    about 7 us per process on Linux 6.x, most of it the kernel's. The count is
    of every pid directory, the probe's own included (psutil's ``pids()``).
    """
    result = {}
    proc = host_path(root, "proc") + "/"
    skip = str(skip_pid)
    count = 0
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        count += 1
        if name == skip:
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
    return result, count


def rank(before, after, elapsed, clock_ticks, top):
    """(top_cpu, top_memory candidates): rows (pid, name, cpu_percent, ticks,
    rss pages).

    top_cpu is ranked as top's first screen ranks: by CPU over the window, then
    by CPU time since the process started, so a host whose busy processes were
    between bursts in a 0.25 s window still lists its consumers (an empty list
    only when no readable process ever used CPU). cpu_percent is of one CPU, as
    top and psutil report it (a process busy on two cores shows 200), with a
    resolution of one tick over the window (4 % for 0.25 s at USER_HZ 100);
    None for a process that did not exist at the start of the window or whose
    tick count fell (a reused pid). top_memory is ranked by stat's rss and
    holds twice ``top`` candidates, to be ranked again by statm's.
    """
    rows = []
    for pid, (name, ticks, rss, _state) in after.items():
        cpu_percent = None
        prev = before.get(pid)
        if prev is not None and ticks >= prev[1] and elapsed > 0:
            cpu_percent = round((ticks - prev[1]) * 100.0 / clock_ticks / elapsed, 1)
        rows.append((pid, name, cpu_percent, ticks, rss))
    by_cpu = sorted((r for r in rows if r[2] or r[3]), key=lambda r: (-(r[2] or 0.0), -r[3], r[0]))
    by_rss = sorted((r for r in rows if r[4]), key=lambda r: (-r[4], r[0]))
    return by_cpu[:top], by_rss[: 2 * top]


def read_statm_rss(root, pid, page_size):
    return parse_statm_resident(read_text(root, "proc/%d/statm" % pid)) * page_size


class _Describer(object):
    """Each listed process read once (``status`` for the owner, ``statm`` for
    the RSS), however many lists it is in, and each owner's name looked up once
    (a passwd lookup reads /etc/passwd through NSS every time)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.rss = {}
        self.rows = {}
        self.users = {}

    def rss_bytes(self, pid):
        if pid not in self.rss:
            self.rss[pid] = read_statm_rss(self.ctx.root, pid, self.ctx.page_size)
        return self.rss[pid]

    def describe(self, row):
        pid, name, cpu_percent, ticks, _rss = row
        if pid not in self.rows:
            uid = parse_status_uid(read_text(self.ctx.root, "proc/%d/status" % pid))
            if uid is not None and uid not in self.users:
                self.users[uid] = self.ctx.user_name(uid)
            self.rows[pid] = {
                "pid": pid,
                "name": name.decode("utf-8", "replace"),
                "user": self.users.get(uid),
                "cpu_percent": cpu_percent,
                "cpu_seconds": round(ticks / self.ctx.clock_ticks, 2),
                "rss_bytes": self.rss_bytes(pid),
            }
        return self.rows[pid]

    def listed(self, rows, top):
        out = []
        for row in rows:
            if len(out) == top:
                break
            try:
                out.append(self.describe(row))
            except _GONE:
                continue  # exited since the snapshot
        return out

    def by_statm(self, candidates):
        """The memory candidates ranked again by statm's RSS."""
        ranked = []
        for row in candidates:
            try:
                ranked.append((-self.rss_bytes(row[0]), row[0], row))
            except _GONE:
                continue
        ranked.sort(key=lambda r: r[:2])
        return [r[2] for r in ranked]


def begin_processes(ctx):
    if ctx.top <= 0 or ctx.top_when is not None:
        return None  # nothing to read, or decided after the other collectors
    # The probe itself is left out: it is busy exactly while it measures.
    return time.monotonic(), snapshot(ctx.root, ctx.self_pid)[0]


def collect_processes(ctx, started, doc):
    """The ``processes`` family: a final collector (see ``common.Collector``)."""
    if ctx.top <= 0:
        return not_read("top-processes is 0", count_pids(ctx.root))
    reason = top_reason(ctx.top_when, doc)
    if reason is None:
        return not_read(skipped_reason(ctx.top_when), count_pids(ctx.root))
    if started is None:
        started = time.monotonic(), snapshot(ctx.root, ctx.self_pid)[0]
        ctx.sleep(ctx.cpu_window)
    t0, before = started
    after, count = snapshot(ctx.root, ctx.self_pid)
    elapsed = time.monotonic() - t0
    # One spare per list, so a process exiting before its status is read does
    # not leave the list short.
    top_cpu, candidates = rank(before, after, elapsed, ctx.clock_ticks, ctx.top + 1)
    describer = _Describer(ctx)
    return {
        "processes": {
            "count": count,
            "zombies": sum(1 for row in after.values() if row[3] == b"Z"),
            "top_cpu": describer.listed(top_cpu, ctx.top),
            "top_memory": describer.listed(describer.by_statm(candidates), ctx.top),
            "window_seconds": round(elapsed, 3),
            "reason": reason,
        }
    }
