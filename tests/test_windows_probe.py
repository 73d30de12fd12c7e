"""The Windows collectors on Linux, through the WinApi seam replaying recorded structures."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import pytest

from fleetstat.probe import common, registry, windows

FIXTURES = Path(__file__).parent / "fixtures" / "windows"
STRUCTURES = json.loads((FIXTURES / "structures.json").read_text())


def _filetimes(sample: dict[str, str]) -> tuple[int, int, int]:
    values = []
    for name in ("idle", "kernel", "user"):
        ft = windows.FILETIME.from_buffer_copy(bytes.fromhex(sample[name]))
        values.append(windows.filetime_value(ft))
    return values[0], values[1], values[2]


class ReplayApi:
    """Answers like WinApi, from structures.json; the bytes go through the same
    ctypes structures and converters the real WinApi uses."""

    def __init__(self, data: dict[str, Any] = STRUCTURES) -> None:
        self.data = data
        self.times = [_filetimes(s) for s in data["GetSystemTimes"]]
        self.asked_free: list[str] = []

    def memory_status(self) -> dict[str, int]:
        raw = bytes.fromhex(self.data["GlobalMemoryStatusEx"])
        return windows.memory_status_values(windows.MEMORYSTATUSEX.from_buffer_copy(raw))

    def system_times(self) -> tuple[int, int, int]:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]

    def tick_count_ms(self) -> int:
        return int(self.data["GetTickCount64"])

    def logical_drives(self) -> int:
        return int(self.data["GetLogicalDrives"])

    def drive_type(self, root: str) -> int:
        return int(self.data["GetDriveTypeW"].get(root, 1))

    def disk_free(self, root: str) -> tuple[int, int, int]:
        self.asked_free.append(root)
        a, b, c = self.data["GetDiskFreeSpaceExW"][root]
        return a, b, c

    def filesystem(self, root: str) -> str | None:
        return self.data["GetVolumeInformationW"].get(root)

    def computer_name(self) -> str:
        return str(self.data["GetComputerNameExW"])

    def version(self) -> dict[str, Any]:
        info = windows.OSVERSIONINFOEXW()
        for name, value in self.data["RtlGetVersion"].items():
            if name == "szCSDVersion":
                value = (ctypes.c_uint16 * 128)(*map(ord, value))
            setattr(info, name, value)
        return windows.version_values(info)

    def product_name(self) -> tuple[str | None, str | None]:
        name, display = self.data["ProductName"]
        return name, display


def ctx_with(api: Any, **kw: Any) -> common.Context:
    ctx = common.Context(
        root="/nonexistent", cpu_window=0, cpu_count=8, now=lambda: 1715677953.0, **kw
    )
    ctx.winapi = api  # type: ignore[attr-defined]
    return ctx


def test_structure_layouts_match_win32_x64() -> None:
    # sizeof values from the Win32 headers; dwLength/dwOSVersionInfoSize must be exact.
    assert ctypes.sizeof(windows.MEMORYSTATUSEX) == 64
    assert ctypes.sizeof(windows.FILETIME) == 8
    assert ctypes.sizeof(windows.OSVERSIONINFOEXW) == 284


def test_memory_and_page_file() -> None:
    doc = windows.collect_memory(ctx_with(ReplayApi()))["memory"]
    assert doc == {
        "total_bytes": 17179398144,
        "available_bytes": 9105080320,
        "used_bytes": 17179398144 - 9105080320,
        "used_percent": 47.0,
    }
    swap = windows.collect_swap(ctx_with(ReplayApi()))["swap"]
    assert swap["total_bytes"] == 2415919104  # commit limit minus RAM: the page file
    assert swap["free_bytes"] == 10012655616 - 9105080320
    assert swap["used_bytes"] + swap["free_bytes"] == swap["total_bytes"]
    assert swap["used_percent"] == 62.43


def test_swap_is_clamped_without_a_page_file() -> None:
    status = {"total_phys": 100, "avail_phys": 40, "total_page_file": 100, "avail_page_file": 30}
    assert windows.swap_figures(status) == {
        "total_bytes": 0,
        "used_bytes": 0,
        "free_bytes": 0,
        "used_percent": 0.0,
    }


def test_a_page_file_under_one_mib_is_no_swap() -> None:
    # Wine 8 with no page file: the commit limit exceeds RAM by 8 KiB, all of it
    # "in use" (recorded under Wine, see tests/test_windows_wine.py).
    ram = 25275985920
    status = {
        "total_phys": ram,
        "avail_phys": 23350001664,
        "total_page_file": ram + 8192,
        "avail_page_file": 23350001664,
    }
    assert windows.swap_figures(status) == {
        "total_bytes": 0,
        "used_bytes": 0,
        "free_bytes": 0,
        "used_percent": 0.0,
    }
    status["total_page_file"] = ram + windows.MIN_PAGE_FILE
    assert windows.swap_figures(status)["total_bytes"] == windows.MIN_PAGE_FILE


def test_cpu_over_the_window_and_cumulative_counters() -> None:
    ctx = ctx_with(ReplayApi())
    cpu = windows.collect_cpu(ctx, windows.begin_cpu(ctx))["cpu"]
    assert cpu["count"] == 8
    assert cpu["used_percent"] == 25.0  # 15 of 20 million 100-ns units idle
    assert set(cpu["counters"]) == {
        "user_seconds", "nice_seconds", "system_seconds", "idle_seconds",
        "iowait_seconds", "irq_seconds", "softirq_seconds", "steal_seconds",
    }  # fmt: skip
    assert cpu["counters"]["idle_seconds"] == round((17625600000000 + 15000000) / 1e7, 2)
    assert cpu["counters"]["system_seconds"] == round((1244160000000 + 2000000) / 1e7, 2)
    assert cpu["counters"]["iowait_seconds"] is None
    assert cpu["total_seconds"] == pytest.approx(
        cpu["busy_seconds"] + cpu["counters"]["idle_seconds"]
    )


def test_uptime_and_boot_time() -> None:
    doc = windows.collect_uptime(ctx_with(ReplayApi()))
    assert doc["uptime_seconds"] == 259200.12
    assert doc["boot_time"] == common.utc_iso(round(1715677953.0 - 259200.123))


def test_only_fixed_drives_are_asked_for_free_space() -> None:
    api = ReplayApi()
    disks = windows.collect_disks(ctx_with(api))["disks"]
    assert api.asked_free == ["C:\\", "E:\\"]  # not the DVD (D:) nor the network drive (G:)
    assert [d["mount"] for d in disks] == ["C:\\", "E:\\"]
    c = disks[0]
    assert c["device"] == "C:" and c["fstype"] == "NTFS"
    assert c["total_bytes"] == 136912564224
    assert c["used_bytes"] == 136912564224 - 52613349376
    assert c["used_percent"] == 61.57


def test_host_names_the_windows_version() -> None:
    host = windows.collect_host(ctx_with(ReplayApi()))["host"]
    assert host["hostname"] == "SRV-DC01"
    assert host["os"] == "Windows Server 2022 Standard 21H2 (build 20348)"
    assert host["kernel"] == "10.0.20348"


def test_wide_strings_decode_utf16_units() -> None:
    units = (ctypes.c_uint16 * 128)(*map(ord, "Service Pack 1"))
    assert windows.wide_string(units) == "Service Pack 1"
    assert windows.wide_string((ctypes.c_uint16 * 4)()) == ""


def test_windows_11_is_named_as_such() -> None:
    version = {"major": 10, "minor": 0, "build": 22631, "product_type": 1}
    assert (
        windows.os_name(version, ("Windows 10 Pro", "23H2")) == "Windows 11 Pro 23H2 (build 22631)"
    )
    assert windows.os_name(version, (None, None)) == "Windows 10.0 (build 22631)"


def test_drive_roots_from_the_bitmask() -> None:
    assert windows.drive_roots(0b1011100) == ["C:\\", "D:\\", "E:\\", "G:\\"]
    assert windows.drive_roots(0) == []


def test_whole_document_has_the_linux_shape() -> None:
    linux_doc = json.loads((Path(__file__).parent / "fixtures/documents/linux.json").read_text())
    ctx = ctx_with(ReplayApi(), events_max=0)
    doc = registry.build_document(ctx, platform="windows")
    assert doc["errors"] == {}
    assert doc["platform"] == "windows"
    assert set(doc) == set(linux_doc)
    for family in ("memory", "swap", "cpu", "host"):
        assert set(doc[family]) == set(linux_doc[family]), family
    assert set(doc["disks"][0]) == set(linux_doc["disks"][0])
    assert set(doc["cpu"]["counters"]) == set(linux_doc["cpu"]["counters"])
    assert doc["load"] is None and doc["processes"] is None  # Windows has no load average
    assert doc["security_events"] is None  # --events 0
    assert "host" in doc["collectors"] and "security_events" not in doc["collectors"]


def test_a_failing_call_costs_only_its_family() -> None:
    class Broken(ReplayApi):
        def memory_status(self) -> dict[str, int]:
            raise OSError(5, "Access is denied")

    doc = registry.build_document(ctx_with(Broken(), events_max=0), platform="windows")
    assert doc["memory"] is None and doc["swap"] is None
    assert "Access is denied" in doc["errors"]["memory"]
    assert doc["cpu"]["used_percent"] == 25.0 and doc["disks"]


def test_events_are_collected_by_default_on_windows() -> None:
    from fleetstat.probe import events

    ctx = ctx_with(ReplayApi())
    assert events.max_events(ctx, "windows") == 500
    assert events.max_events(ctx, "linux") == 0
    assert events.events_collector("linux", ctx) is None
    assert events.events_collector("windows", ctx) is not None
