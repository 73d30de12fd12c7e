"""Platform-neutral parts of the probe: the collector record, the run context,
timestamps, and the ``host`` family (which works wherever Python does).

Runs on Python 3.6+, standard library only. Imports are kept to modules that
the interpreter has loaded anyway or that are built in: the interpreter start is
most of the probe's CPU cost on the monitored machine.
"""

import sys
import time

from . import _os as os  # the os functions without import os: see _os.py
from .procfs import read_text

SCHEMA = 1
# Kept equal to fleetstat.__version__ by a test; the probe cannot import fleetstat.
PROBE_VERSION = "0.1.0"

# Every top-level key of a schema 1 document that a collector may fill. A family
# that is not collected (or failed) is present as null, never absent.
FAMILY_KEYS = (
    "host",
    "memory",
    "swap",
    "cpu",
    "uptime_seconds",
    "boot_time",
    "load",
    "disks",
    "disk_io",
    "cgroup",
    "processes",
    "security_events",
)


class Collector(object):
    """One family of figures.

    ``collect(ctx, started)`` returns a dict of top-level document keys (a subset
    of ``keys``). ``begin(ctx)``, when given, runs before every other collector
    and its result is passed to ``collect`` as ``started`` once the CPU window has
    elapsed (two snapshots, like CPU usage); otherwise ``started`` is None. A
    ``final`` collector runs after all the others as ``collect(ctx, started,
    doc)``, with the document so far (the process lists decide from it whether
    they are wanted). ``platforms`` holds normalized platform names (see
    :func:`platform_name`) or ``"*"`` for all.
    """

    __slots__ = ("name", "platforms", "keys", "collect", "begin", "final")

    def __init__(self, name, platforms, keys, collect, begin=None, final=False):
        self.name = name
        self.platforms = tuple(platforms)
        self.keys = tuple(keys)
        self.collect = collect
        self.begin = begin
        self.final = final

    def applies_to(self, platform):
        return "*" in self.platforms or platform in self.platforms

    def __repr__(self):
        return "Collector(%r)" % (self.name,)


class Context(object):
    """What collectors may depend on besides the files under ``root``.

    Each attribute is a seam: tests give a fixture root, fixed clock ticks and
    page size, and fake ``statvfs``/``isdir`` that record what they were asked.
    """

    def __init__(
        self,
        root="/",
        top=5,
        since=None,
        cpu_window=0.25,
        clock_ticks=None,
        page_size=None,
        cpu_count=None,
        statvfs=None,
        isdir=None,
        user_name=None,
        self_pid=None,
        now=None,
        events_max=None,
        top_when=None,
        sleep=None,
    ):
        self.root = root
        self.top = top
        self.since = since
        self.cpu_window = cpu_window
        self.clock_ticks = clock_ticks or _sysconf("SC_CLK_TCK", 100)
        self.page_size = page_size or _sysconf("SC_PAGE_SIZE", 4096)
        self.cpu_count = cpu_count or os.cpu_count() or 1
        self.statvfs = statvfs or getattr(os, "statvfs", None)
        self.isdir = isdir or os.isdir
        self.user_name = user_name or _user_name
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.now = now or time.time
        # Security events per run: None = the platform's default (see events.py).
        self.events_max = events_max
        # When to read the process table (:func:`top_reason`): None =
        # always; else {"cpu": 20.0, "memory": 50.0, ...}, limits of the host's
        # alert rules, of which the document must reach one ({} = never).
        self.top_when = top_when
        self.sleep = sleep or time.sleep


def _sysconf(name, default):
    try:
        return os.sysconf(name)
    except (TypeError, ValueError, OSError):  # TypeError: no sysconf (Windows)
        return default


def _user_name(uid):
    """Login name for ``uid``; the number as text when there is no passwd entry
    (containers, deleted users, LDAP unreachable)."""
    try:
        import pwd  # built in on Unix, absent on Windows

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def platform_name(sys_platform=None):
    """``sys.platform`` without version digits: "linux", "windows", "freebsd", ..."""
    p = sys.platform if sys_platform is None else sys_platform
    if p.startswith("win"):
        return "windows"
    return p.rstrip("0123456789")


def utc_iso(epoch_seconds):
    """``2026-11-22T10:00:00Z``; time.strftime rather than datetime, which the
    probe does not otherwise need to import."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def error_text(exc):
    """``Type: message`` as stored in ``errors[name]``."""
    message = str(exc)
    name = type(exc).__name__
    return "%s: %s" % (name, message) if message else name


# --- host ------------------------------------------------------------------


def parse_os_release(text):
    """os-release(5) ``KEY=value`` lines into a dict (shell quoting undone)."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        quote = value[:1]
        if len(value) >= 2 and quote in ("'", '"') and value.endswith(quote):
            value = value[1:-1]
            if quote == '"':  # only double quotes take backslash escapes
                for escaped in ("\\\\", '\\"', "\\$", "\\`"):
                    value = value.replace(escaped, escaped[1])
        result[key.strip()] = value
    return result


def os_pretty_name(root):
    """The distribution's own name for itself, or None.

    /etc/os-release, then /usr/lib/os-release (its documented fallback), then the
    one-line release files of distributions older than os-release (RHEL/CentOS 6).
    """
    for relpath in ("etc/os-release", "usr/lib/os-release"):
        try:
            info = parse_os_release(read_text(root, relpath))
        except OSError:
            continue
        name = info.get("PRETTY_NAME") or " ".join(
            v for v in (info.get("NAME"), info.get("VERSION")) if v
        )
        if name:
            return name
    for relpath in ("etc/redhat-release", "etc/system-release"):
        try:
            line = read_text(root, relpath).strip().splitlines()
        except OSError:
            continue
        if line:
            return line[0].strip()
    return None


def collect_host(ctx, started=None):
    if os.uname is not None:
        uname = os.uname()
        hostname, kernel, arch = uname.nodename, uname.release, uname.machine
        os_name = os_pretty_name(ctx.root) or uname.sysname
    else:  # Windows: no uname; the windows collectors will refine this.
        import os as real_os  # the environment; _os has only what Linux needs

        version = sys.getwindowsversion()
        hostname = real_os.environ.get("COMPUTERNAME")
        kernel = "%d.%d.%d" % (version.major, version.minor, version.build)
        arch = real_os.environ.get("PROCESSOR_ARCHITECTURE")
        os_name = "Windows"
    return {
        "host": {
            "hostname": hostname,
            "os": os_name,
            "kernel": kernel,
            "arch": arch,
            "python": "%d.%d.%d" % sys.version_info[:3],
        }
    }


COLLECTORS = (Collector("host", ["*"], ["host"], collect_host),)


def percent(part, whole):
    """``part / whole`` as a percentage with two decimals; None when whole is 0."""
    if not whole:
        return None
    return round(part * 100.0 / whole, 2)


def memory_usage(total, available):
    """The ``memory`` family from total and available bytes, on every platform."""
    available = min(available, total)
    used = total - available
    return {
        "total_bytes": total,
        "available_bytes": available,
        "used_bytes": used,
        "used_percent": percent(used, total),
    }


def swap_usage(total, free):
    """The ``swap`` family from total and free bytes, on every platform."""
    free = max(0, min(free, total))
    used = total - free
    return {
        "total_bytes": total,
        "used_bytes": used,
        "free_bytes": free,
        # No swap configured: nothing of it is used; 0.0 rather than null so
        # swap alerts simply never fire on such hosts.
        "used_percent": percent(used, total) or 0.0,
    }


# Where each ``--top-when`` condition finds its figure in the document: the same
# figures the server's alert rules compare (fleetstat/alerts/metrics.py), with
# the short window standing in for a cpu rule's interval average.
TOP_WHEN_FIGURES = {
    "cgroup-memory": ("cgroup", "used_percent"),  # a final collector, run before processes
    "cpu": ("cpu", "used_percent"),
    "cpu-core": ("cpu", "busiest_core_percent"),
    "load": ("load", "per_core1"),
    "memory": ("memory", "used_percent"),
    "swap": ("swap", "used_percent"),
}


def top_reason(top_when, doc):
    """Why the lists are read ("always", "memory 71.5 >= 50"), or None when no
    condition of ``top_when`` holds in ``doc``. A family without data holds none."""
    if top_when is None:
        return "always"
    for name in sorted(top_when):
        family, key = TOP_WHEN_FIGURES[name]
        value = (doc.get(family) or {}).get(key)
        if isinstance(value, (int, float)) and value >= top_when[name]:
            return "%s %g >= %g" % (name, value, top_when[name])
    return None


def skipped_reason(top_when):
    if not top_when:
        return "no cpu, cpu-core, load, memory or swap limit for this host"
    return "below " + ", ".join("%s %g" % (name, top_when[name]) for name in sorted(top_when))


def not_read(reason, count=None):
    """The ``processes`` family when the table was not read, and why: the
    number of processes (a listdir) but no zombies (that needs every stat)."""
    return {
        "processes": {
            "count": count,
            "zombies": None,
            "top_cpu": None,
            "top_memory": None,
            "reason": reason,
        }
    }
