"""Opt-in: the Security-log checks on logs recorded on real Windows machines.

The repository cannot ship such logs (see tests/fixtures/windows/README.md), so
this module is not part of the suite (its name does not start with ``test_``)
and runs only when named, on a folder of recorded logs:

    FLEETSTAT_RECORDED_SECURITY_LOGS=/path/to/logs \\
        .venv/bin/python -m pytest tests/recorded_security_logs.py

The folder holds ``*.xml`` files as ``wevtutil qe Security /f:xml`` wrote them
on a Windows host (any encoding), and/or ``*.evtx`` (or ``*.evtx.gz``) files,
converted here with the ``evtx`` package (a test dependency) to the same
``<Event>`` XML. Each log runs through the checks of security_log_checks.py:
every encoding and chunking alike, fields filled where the event carries
them, bookmarks over its real record IDs (with gaps, and a log begun again),
the events mail through the document boundary, and the largest log in flat
memory. The suite runs the same checks on the recorded events scripts/setup
fetches (test_windows_recorded_events.py); this runner is for larger logs
than those, a pilot host's own above all.
"""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import pytest
from security_log_checks import (
    as_wevtutil,
    check_bookmarks,
    check_fields,
    check_stream_variants,
    events_from_evtx,
    mail_lines,
    split_events,
)

from fleetstat.probe import windows_events

FOLDER = os.environ.get("FLEETSTAT_RECORDED_SECURITY_LOGS")
# The probe's bound for reading the log (test_windows_events.py, 10,000 events).
PEAK_BYTES = 3_000_000


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def load(path: Path) -> list[str]:
    """The log's events as ``<Event>`` XML strings, in log order."""
    name = path.name.lower()
    if name.endswith(".evtx.gz"):
        return events_from_evtx(gzip.decompress(path.read_bytes()))
    if name.endswith(".evtx"):
        return events_from_evtx(path.read_bytes())
    return split_events(_decode(path.read_bytes()))


def logs() -> list[Path]:
    if not FOLDER:
        return []
    kinds = (".xml", ".evtx", ".evtx.gz")
    return sorted(p for p in Path(FOLDER).iterdir() if p.name.lower().endswith(kinds))


@pytest.fixture(params=logs() or [None], ids=lambda p: p.name if p else "none")
def log(request: pytest.FixtureRequest) -> list[str]:
    if request.param is None:
        pytest.skip("set FLEETSTAT_RECORDED_SECURITY_LOGS to a folder of recorded logs")
    found = load(request.param)
    assert found, f"no events in {request.param}"
    return found


def test_streams_alike_and_fields_are_filled(log: list[str]) -> None:
    check_fields(check_stream_variants(log))


def test_bookmarks_over_its_record_ids(log: list[str]) -> None:
    check_bookmarks(log, limit=max(2, len(log) // 5))


def test_the_mail_passes_the_boundary_untouched(log: list[str]) -> None:
    found = windows_events.iter_events([as_wevtutil(log)])
    batch = list(found)[:500]  # the default <events max>
    lines, notes = mail_lines(batch)
    assert notes == ()
    noun = "event" if len(batch) == 1 else "events"
    assert f"{len(batch)} new {noun} (time, event, account, source address, summary):" in lines


def test_the_largest_log_parses_in_flat_memory(tmp_path: Path) -> None:
    paths = logs()
    if not paths:
        pytest.skip("set FLEETSTAT_RECORDED_SECURITY_LOGS to a folder of recorded logs")
    biggest = max(paths, key=lambda p: p.stat().st_size)
    stream = tmp_path / "wevtutil.xml"
    stream.write_bytes(as_wevtutil(load(biggest)))
    tracemalloc.start()
    try:
        count = 0
        with stream.open("rb") as f:
            for _event in windows_events.iter_events(iter(lambda: f.read(65536), b"")):
                count += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = stream.stat().st_size
    print(f"{biggest.name}: {count} events, {size} bytes as wevtutil XML, peak {peak} bytes")
    assert count > 0
    assert peak < PEAK_BYTES, f"peak {peak} bytes for {size} bytes of events"
