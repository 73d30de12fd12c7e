"""The document boundary and the probe's newer figures (issue 19): per-core
shares, disk I/O, the cgroup's memory, process count, zombies and CPU time.

A real probe document passes unchanged; hostile values are cut or dropped with
a note, and a family of the wrong kind is refused, as for the older fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetstat.document import Limits, check
from fleetstat.errors import DocumentError
from fleetstat.probe import registry
from fleetstat.probe.common import Context

FIXTURES = Path(__file__).parent / "fixtures" / "proc"
NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def probe_document(root: str) -> dict[str, Any]:
    ctx = Context(
        root=str(FIXTURES / root),
        cpu_window=0,
        clock_ticks=100,
        page_size=4096,
        statvfs=lambda path: __import__("os").statvfs_result(
            (4096, 4096, 1000, 400, 300, 0, 0, 0, 0, 255)
        ),
        isdir=lambda path: not path.startswith("/etc/"),
        user_name=str,
        self_pid=-1,
        now=NOW.timestamp,
    )
    return registry.build_document(ctx, platform="linux")


@pytest.mark.parametrize("root", ["docker-overlay", "ubuntu2204-nfs", "debian12"])
def test_a_probe_document_passes_unchanged(root: str) -> None:
    raw = probe_document(root)
    doc = check(raw, Limits(), now=NOW)
    assert doc.notes == ()
    stored = doc.as_json()
    assert stored["cpu"].pop("interval_percent") is None  # the server's to fill
    assert stored == raw
    assert doc.disk_io is not None and doc.disk_io.devices
    assert doc.processes is not None and doc.processes.count
    if root == "docker-overlay":
        assert doc.cgroup is not None and doc.cgroup.limit_bytes == 512 << 20
        assert doc.processes.zombies == 1


def test_hostile_values_of_the_new_fields_are_cut_or_dropped() -> None:
    raw = probe_document("docker-overlay")
    raw["cpu"]["per_core_percent"] = [50.0] * 5000
    raw["cpu"]["busiest_core_percent"] = 1e9
    raw["cpu"]["busiest_core"] = -1
    raw["disk_io"]["devices"][0]["reads"] = "many"
    raw["disk_io"]["devices"][1]["device"] = "sdb\x1b[2J"
    raw["cgroup"]["version"] = 7
    raw["cgroup"]["used_percent"] = float("inf")
    raw["processes"]["count"] = -3
    raw["processes"]["top_cpu"][0]["cpu_seconds"] = -1.0
    doc = check(raw, Limits(), now=NOW)
    assert doc.cpu is not None and doc.cpu.per_core_percent is not None
    assert len(doc.cpu.per_core_percent) == 1024
    assert doc.cpu.busiest_core_percent is None and doc.cpu.busiest_core is None
    assert doc.disk_io is not None and doc.disk_io.devices is not None
    assert doc.disk_io.devices[0].reads is None
    assert doc.disk_io.devices[1].device == "sdb\u241b[2J"
    assert doc.cgroup is not None and doc.cgroup.version is None
    assert doc.cgroup.used_percent is None
    assert doc.processes is not None and doc.processes.count is None
    assert doc.processes.top_cpu and doc.processes.top_cpu[0].cpu_seconds is None
    # Ten: the process changed is in both lists (one object in the probe's document).
    assert len(doc.notes) == 10, doc.notes


@pytest.mark.parametrize(
    ("family", "value", "field"),
    [
        ("disk_io", [1, 2], "disk_io"),
        ("disk_io", {"devices": {"sda": {}}}, "disk_io.devices"),
        ("disk_io", {"devices": ["sda"]}, "disk_io.devices[0]"),
        ("cgroup", "limited", "cgroup"),
    ],
)
def test_a_new_family_of_the_wrong_kind_is_refused(family: str, value: Any, field: str) -> None:
    raw = probe_document("debian12")
    raw[family] = value
    with pytest.raises(DocumentError) as caught:
        check(raw, Limits(), now=NOW)
    assert caught.value.field == field
