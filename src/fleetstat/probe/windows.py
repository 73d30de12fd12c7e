"""Windows collectors, through the Win32 API with ctypes (standard library only).

Every API call goes through one :class:`WinApi` object whose methods return
plain tuples and dicts; the collectors only turn those into the schema 1
families. Tests on Linux give ``ctx.winapi`` a replay of structures recorded on
Windows (tests/fixtures/windows/), so the figures are computed by the same code
on any OS. The ctypes structures are declared with fixed-size integer types
rather than ``ctypes.wintypes``, which fails to import on some non-Windows
Pythons (bpo-16396, fixed in 3.8), so this module can be imported anywhere.
"""

import ctypes
import os
import sys
import time

from .common import Collector, memory_usage, percent, swap_usage, utc_iso

DRIVE_FIXED = 3  # GetDriveTypeW: a hard disk or SSD (not removable, network, CD)
_HUNDRED_NS = 1e-7  # FILETIME unit
# Below this the commit limit's excess over RAM is no page file: Wine, with none,
# reports 8 KiB (measured under Wine 8), which read as swap would be 100% used
# and fire swap alerts. Windows itself sizes a page file in whole megabytes.
MIN_PAGE_FILE = 1 << 20


class MEMORYSTATUSEX(ctypes.Structure):
    _fields_ = [
        ("dwLength", ctypes.c_uint32),
        ("dwMemoryLoad", ctypes.c_uint32),
        ("ullTotalPhys", ctypes.c_uint64),
        ("ullAvailPhys", ctypes.c_uint64),
        ("ullTotalPageFile", ctypes.c_uint64),
        ("ullAvailPageFile", ctypes.c_uint64),
        ("ullTotalVirtual", ctypes.c_uint64),
        ("ullAvailVirtual", ctypes.c_uint64),
        ("ullAvailExtendedVirtual", ctypes.c_uint64),
    ]


class FILETIME(ctypes.Structure):
    _fields_ = [("dwLowDateTime", ctypes.c_uint32), ("dwHighDateTime", ctypes.c_uint32)]


class OSVERSIONINFOEXW(ctypes.Structure):
    _fields_ = [
        ("dwOSVersionInfoSize", ctypes.c_uint32),
        ("dwMajorVersion", ctypes.c_uint32),
        ("dwMinorVersion", ctypes.c_uint32),
        ("dwBuildNumber", ctypes.c_uint32),
        ("dwPlatformId", ctypes.c_uint32),
        # WCHAR[128] declared as UTF-16 code units: c_wchar is 4 bytes off Windows,
        # and the layout must be the same everywhere for the tests to mean anything.
        ("szCSDVersion", ctypes.c_uint16 * 128),
        ("wServicePackMajor", ctypes.c_uint16),
        ("wServicePackMinor", ctypes.c_uint16),
        ("wSuiteMask", ctypes.c_uint16),
        ("wProductType", ctypes.c_uint8),
        ("wReserved", ctypes.c_uint8),
    ]


def filetime_value(ft):
    """A FILETIME as one integer of 100 ns units."""
    return (ft.dwHighDateTime << 32) | ft.dwLowDateTime


def memory_status_values(st):
    """The fields of a filled MEMORYSTATUSEX as a dict (what WinApi returns)."""
    return {
        "memory_load": st.dwMemoryLoad,
        "total_phys": st.ullTotalPhys,
        "avail_phys": st.ullAvailPhys,
        "total_page_file": st.ullTotalPageFile,
        "avail_page_file": st.ullAvailPageFile,
    }


def wide_string(units):
    """A NUL-terminated UTF-16 WCHAR array as text."""
    raw = bytearray()
    for unit in units:
        if not unit:
            break
        raw += bytes((unit & 0xFF, unit >> 8))
    return raw.decode("utf-16-le", "replace")


def version_values(info):
    return {
        "major": info.dwMajorVersion,
        "minor": info.dwMinorVersion,
        "build": info.dwBuildNumber,
        "product_type": info.wProductType,  # 1 workstation, 2 domain controller, 3 server
        "csd": wide_string(info.szCSDVersion) or None,
    }


class WinApi(object):
    """The Win32 calls the collectors need; only constructed on Windows."""

    def __init__(self):
        self.kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

    def _check(self, ok, what):
        if not ok:
            raise ctypes.WinError(ctypes.get_last_error(), what)

    def memory_status(self):
        st = MEMORYSTATUSEX()
        st.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
        self._check(self.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)), "GlobalMemoryStatusEx")
        return memory_status_values(st)

    def system_times(self):
        """(idle, kernel, user) in 100 ns units, summed over all CPUs; kernel includes idle."""
        idle, kernel, user = FILETIME(), FILETIME(), FILETIME()
        ok = self.kernel32.GetSystemTimes(
            ctypes.byref(idle), ctypes.byref(kernel), ctypes.byref(user)
        )
        self._check(ok, "GetSystemTimes")
        return filetime_value(idle), filetime_value(kernel), filetime_value(user)

    def tick_count_ms(self):
        self.kernel32.GetTickCount64.restype = ctypes.c_uint64
        return int(self.kernel32.GetTickCount64())

    def logical_drives(self):
        return int(self.kernel32.GetLogicalDrives())

    def drive_type(self, root):
        return int(self.kernel32.GetDriveTypeW(ctypes.c_wchar_p(root)))

    def disk_free(self, root):
        """(free to the caller, total, total free) in bytes."""
        caller, total, free = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        ok = self.kernel32.GetDiskFreeSpaceExW(
            ctypes.c_wchar_p(root), ctypes.byref(caller), ctypes.byref(total), ctypes.byref(free)
        )
        self._check(ok, "GetDiskFreeSpaceExW " + root)
        return caller.value, total.value, free.value

    def filesystem(self, root):
        """The volume's file system name ("NTFS", "ReFS") or None."""
        name = ctypes.create_unicode_buffer(64)
        ok = self.kernel32.GetVolumeInformationW(
            ctypes.c_wchar_p(root), None, 0, None, None, None, name, 64
        )
        return name.value if ok else None

    def computer_name(self):
        size = ctypes.c_uint32(256)
        buf = ctypes.create_unicode_buffer(256)
        # 1 = ComputerNameDnsHostname: the name without the domain, as `hostname` prints.
        if self.kernel32.GetComputerNameExW(1, buf, ctypes.byref(size)):
            return buf.value
        return os.environ.get("COMPUTERNAME")

    def version(self):
        # RtlGetVersion, not GetVersionEx: the latter lies (reports 6.2) to any
        # program without a manifest declaring Windows 8.1+ support, as python.exe's.
        info = OSVERSIONINFOEXW()
        info.dwOSVersionInfoSize = ctypes.sizeof(OSVERSIONINFOEXW)
        if ctypes.WinDLL("ntdll").RtlGetVersion(ctypes.byref(info)) != 0:
            v = sys.getwindowsversion()
            product_type = getattr(v, "product_type", None)
            return {
                "major": v.major,
                "minor": v.minor,
                "build": v.build,
                "product_type": product_type,
                "csd": None,
            }
        return version_values(info)

    def product_name(self):
        """(ProductName, DisplayVersion) from the registry, each None when absent."""
        import winreg

        found = []
        path = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path) as key:
            for name in ("ProductName", "DisplayVersion"):
                try:
                    found.append(winreg.QueryValueEx(key, name)[0])
                except OSError:
                    found.append(None)
        return tuple(found)


def api(ctx):
    """The context's WinApi (tests put a replay there), created on first use."""
    winapi = getattr(ctx, "winapi", None)
    if winapi is None:
        winapi = ctx.winapi = WinApi()
    return winapi


# --- memory and the page file ---------------------------------------------------


def memory_figures(status):
    return memory_usage(status["total_phys"], status["avail_phys"])


def swap_figures(status):
    # ullTotalPageFile is the commit limit (RAM + every page file), not the page
    # file's size; subtracting physical memory leaves the page files, as psutil
    # does. The commit charge beyond RAM approximates page file use; both are
    # clamped because the two numbers are not sampled atomically.
    total = max(0, status["total_page_file"] - status["total_phys"])
    if total < MIN_PAGE_FILE:
        total = 0
    return swap_usage(total, status["avail_page_file"] - status["avail_phys"])


def collect_memory(ctx, started=None):
    return {"memory": memory_figures(api(ctx).memory_status())}


def collect_swap(ctx, started=None):
    return {"swap": swap_figures(api(ctx).memory_status())}


# --- cpu -----------------------------------------------------------------------


def cpu_figures(before, after, window_seconds, cpu_count):
    """The cpu family from two GetSystemTimes samples (idle, kernel, user).

    Same keys as Linux. Windows has no nice, iowait, softirq nor steal time:
    those are null. Kernel time includes idle time, so system = kernel - idle.
    """
    idle0, kernel0, user0 = before
    idle1, kernel1, user1 = after
    total0, total1 = kernel0 + user0, kernel1 + user1
    d_total = total1 - total0
    d_busy = max(0, min(d_total - (idle1 - idle0), d_total))
    return {
        "count": cpu_count,
        "used_percent": percent(d_busy, d_total),
        # Per-core shares need NtQuerySystemInformation's per-processor times:
        # not read yet on Windows (a cpu-core rule has no data there).
        "busiest_core": None,
        "busiest_core_percent": None,
        "per_core_percent": None,
        "window_seconds": round(window_seconds, 3),
        "counters": {
            "user_seconds": round(user1 * _HUNDRED_NS, 2),
            "nice_seconds": None,
            "system_seconds": round((kernel1 - idle1) * _HUNDRED_NS, 2),
            "idle_seconds": round(idle1 * _HUNDRED_NS, 2),
            "iowait_seconds": None,
            "irq_seconds": None,
            "softirq_seconds": None,
            "steal_seconds": None,
        },
        "total_seconds": round(total1 * _HUNDRED_NS, 2),
        "busy_seconds": round((total1 - idle1) * _HUNDRED_NS, 2),
    }


def begin_cpu(ctx):
    return time.monotonic(), api(ctx).system_times()


def collect_cpu(ctx, started):
    t0, before = started
    after = api(ctx).system_times()
    return {"cpu": cpu_figures(before, after, time.monotonic() - t0, ctx.cpu_count)}


# --- uptime --------------------------------------------------------------------


def collect_uptime(ctx, started=None):
    uptime = api(ctx).tick_count_ms() / 1000.0
    return {"uptime_seconds": round(uptime, 2), "boot_time": utc_iso(round(ctx.now() - uptime))}


# --- fixed drives ----------------------------------------------------------------


def drive_roots(mask):
    """``["C:\\", ...]`` for the bits of GetLogicalDrives (bit 0 = A:)."""
    return ["%s:\\" % chr(65 + i) for i in range(26) if mask & (1 << i)]


def disk_figures(root, free_space, fstype):
    _caller, total, free = free_space
    used = max(0, total - free)
    return {
        "mount": root,
        "device": root[:2],
        "fstype": fstype,
        "total_bytes": total,
        "used_bytes": used,
        "free_bytes": free,
        "used_percent": percent(used, total),
    }


def collect_disks(ctx, started=None):
    winapi = api(ctx)
    disks = []
    # Only DRIVE_FIXED: asking a disconnected network drive or an empty card
    # reader for its free space waits for a timeout or pops a dialog.
    for root in drive_roots(winapi.logical_drives()):
        if winapi.drive_type(root) != DRIVE_FIXED:
            continue
        try:
            free_space = winapi.disk_free(root)
        except OSError:  # a locked BitLocker volume answers "access denied"
            continue
        disks.append(disk_figures(root, free_space, winapi.filesystem(root)))
    return {"disks": disks}


# --- host ------------------------------------------------------------------------


def os_name(version, product):
    """ "Windows Server 2022 Standard 21H2 (build 20348)" and the like."""
    name, display = product
    build = version["build"]
    if not name:
        name = "Windows %d.%d" % (version["major"], version["minor"])
    # Windows 11 kept "Windows 10" as its ProductName; build 22000 is its first.
    if name.startswith("Windows 10 ") and build >= 22000 and version.get("product_type") == 1:
        name = "Windows 11" + name[len("Windows 10") :]
    if display:
        name = "%s %s" % (name, display)
    return "%s (build %d)" % (name, build)


def collect_host(ctx, started=None):
    winapi = api(ctx)
    version = winapi.version()
    try:
        product = winapi.product_name()
    except OSError:
        product = (None, None)
    return {
        "host": {
            "hostname": winapi.computer_name(),
            "os": os_name(version, product),
            "kernel": "%d.%d.%d" % (version["major"], version["minor"], version["build"]),
            "arch": os.environ.get("PROCESSOR_ARCHITECTURE"),
            "python": "%d.%d.%d" % sys.version_info[:3],
        }
    }


COLLECTORS = (
    Collector("host", ["windows"], ["host"], collect_host),
    Collector("memory", ["windows"], ["memory"], collect_memory),
    Collector("swap", ["windows"], ["swap"], collect_swap),
    Collector("cpu", ["windows"], ["cpu"], collect_cpu, begin=begin_cpu),
    Collector("uptime", ["windows"], ["uptime_seconds", "boot_time"], collect_uptime),
    Collector("disks", ["windows"], ["disks"], collect_disks),
)
