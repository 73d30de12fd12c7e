"""Checks of the Security-log reader that hold for any log, constructed or recorded.

test_windows_events.py runs them on the constructed fixtures of the repository;
recorded_security_logs.py (opt-in, see tests/fixtures/windows/README.md) on
logs recorded on real Windows machines, which the repository cannot ship.

``FakeSecurityLog`` stands in for ``wevtutil qe Security`` over a list of
events: it answers the three queries the probe makes (after a record ID, the
last day newest first, the newest event alone) from the events' own XML, so
the bookmark logic runs on the record IDs of the log it is given.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from fleetstat.config import Client
from fleetstat.document import Limits, check
from fleetstat.mail.events import render_events_message
from fleetstat.model import HostResult, Status
from fleetstat.probe import common, events, windows_events
from fleetstat.probe.windows_event_text import RESULT_CODES, TITLES

_RECORD = re.compile(r"<EventRecordID>(\d+)</EventRecordID>")
_AFTER = re.compile(r"^/q:\*\[System\[EventRecordID>(\d+)\]\]$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def split_events(text: str) -> list[str]:
    """Each ``<Event ...>...</Event>`` of a wevtutil (or converted) XML stream."""
    return re.findall(r"<Event[ >].*?</Event>", text, flags=re.S)


def events_from_evtx(data: bytes) -> list[str]:
    """The ``<Event>`` XML of each record of an ``.evtx`` file, in the file's order.

    The ``evtx`` package (a test dependency) renders the same XML as ``wevtutil
    qe /f:xml``, indented and with double quotes, which parse alike.
    """
    import evtx

    records = evtx.PyEvtxParser(io.BytesIO(data)).records()
    return [split_events(record["data"])[0] for record in records]


def as_wevtutil(raw_events: Sequence[str], encoding: str = "utf-8") -> bytes:
    """Events back to back as ``wevtutil qe /f:xml`` prints them: no root, CRLF after each.

    ``utf-16`` is what PowerShell's ``>`` makes of it (little endian, with a BOM).
    """
    return "".join(event + "\r\n" for event in raw_events).encode(encoding)


def chunks(data: bytes, size: int = 97) -> Iterator[bytes]:
    """Small, odd-sized chunks: elements and multibyte sequences split across reads."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def parse(data: bytes, size: int = 65536) -> list[dict[str, Any]]:
    return list(windows_events.iter_events(chunks(data, size)))


def record_id(raw_event: str) -> int:
    found = _RECORD.search(raw_event)
    assert found, raw_event[:300]
    return int(found.group(1))


def check_stream_variants(raw_events: Sequence[str]) -> list[dict[str, Any]]:
    """The same events whatever the encoding and however the pipe splits them."""
    whole = parse(as_wevtutil(raw_events))
    assert len(whole) == len(raw_events)
    assert parse(as_wevtutil(raw_events), size=97) == whole
    assert parse(as_wevtutil(raw_events, "utf-16"), size=97) == whole
    assert parse(as_wevtutil(raw_events, "utf-16-le"), size=4093) == whole
    return whole


def _present(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    return isinstance(value, str) and value.strip() not in ("", "-")


def check_fields(found: Sequence[dict[str, Any]]) -> None:
    """Account, address, logon type and result filled wherever the event carries them."""
    for event in found:
        data = event["data"]
        where = (event["record_id"], event["event_id"])
        assert tuple(event) == events.FIELDS
        assert isinstance(event["record_id"], int), where
        assert isinstance(event["event_id"], int), where
        assert event["occurred_at"] and event["occurred_at"].endswith("Z"), where
        assert event["level"] in ("audit_success", "audit_failure", "information"), where
        names = ("TargetUserName", "SubjectUserName", "MemberName", "MemberSid")
        names += ("NewTargetUserName",)
        if any(_present(data, name) for name in names):
            assert event["account"], where
        if _present(data, "IpAddress"):
            assert event["source_address"], where
        if _present(data, "LogonType"):
            assert isinstance(event["logon_type"], int), where
        summary = event["summary"]
        assert summary and not _CONTROL.search(summary), where
        title = TITLES.get(event["event_id"])
        if title:
            assert summary.startswith(title), where
        # The result: why the logon failed; Kerberos and NTLM say so in Status.
        status = (data.get("Status") or "").strip().lower()
        failed = event["event_id"] in RESULT_CODES and status not in ("", "-", "0x0")
        if event["event_id"] == 4625 or failed:
            assert " - " in summary, where


class _Process:
    def __init__(self, stdout: bytes) -> None:
        self.stdout = io.BytesIO(stdout)
        self.stderr = io.BytesIO(b"")

    def wait(self) -> int:
        return 0


class FakeSecurityLog:
    """``wevtutil qe Security`` over ``raw_events`` (in log order), as ``popen``."""

    def __init__(self, raw_events: Sequence[str], encoding: str = "utf-8") -> None:
        self.raw_events = list(raw_events)
        self.encoding = encoding
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], **kw: Any) -> _Process:
        self.calls.append(args)
        count = int(next(a for a in args if a.startswith("/c:"))[3:])
        newest_first = "/rd:true" in args
        query = next((a for a in args if a.startswith("/q:")), None)
        found = list(self.raw_events)
        if query is not None:
            after = _AFTER.match(query)
            if after:
                found = [e for e in found if record_id(e) > int(after.group(1))]
            # else: the first run's "last day": every event here is recent enough
        if newest_first:
            found.reverse()
        return _Process(as_wevtutil(found[:count], self.encoding))

    def replace(self, new_events: Sequence[str]) -> None:
        """A new log (host reinstalled, log file replaced): only ``new_events``, from 1."""
        self.raw_events = list(new_events)


def renumbered(raw_events: Sequence[str], first: int = 1) -> list[str]:
    """The events with record IDs first, first + 1, ...: a log begun again."""
    return [
        _RECORD.sub(f"<EventRecordID>{first + i}</EventRecordID>", event, count=1)
        for i, event in enumerate(raw_events)
    ]


def _ctx(since: Any) -> common.Context:
    return common.Context(root="/nonexistent", since=since, now=lambda: 1715677953.0)


def walk(log: FakeSecurityLog, bookmark: Any, limit: int) -> tuple[list[int], Any, list[str]]:
    """Runs until nothing is truncated: (record IDs read, last bookmark, warnings)."""
    read: list[int] = []
    warnings: list[str] = []
    for _ in range(10_000):
        family = windows_events.collect_windows_events(_ctx(bookmark), limit, log)
        found = family["security_events"]
        read += [e["record_id"] for e in found["events"]]
        if found["warning"]:
            warnings.append(found["warning"])
        bookmark = found["bookmark"]
        if not found["truncated"]:
            return read, bookmark, warnings
    raise AssertionError("never caught up")


def check_bookmarks(raw_events: Sequence[str], limit: int) -> None:
    """Every event read once, in order, across runs: with gaps, and in a log begun again."""
    ids = [record_id(e) for e in raw_events]
    assert ids == sorted(ids), "give the events in log order"
    # Start after the first: a bookmark from a previous run, forward in batches.
    log = FakeSecurityLog(raw_events)
    read, mark, warnings = walk(log, {"source": "windows", "record_id": ids[0]}, limit)
    assert read == ids[1:] and warnings == []
    assert mark == {"source": "windows", "record_id": ids[-1]}
    # A quiet host: nothing new, the bookmark stays, one look at the newest event.
    log.calls.clear()
    again, same, _ = walk(log, mark, limit)
    assert again == [] and same == mark
    assert log.calls[-1] == windows_events.NEWEST_ARGS
    # Gaps in the numbering (records the log did not keep) are simply skipped.
    gappy = [e for i, e in enumerate(raw_events) if i % 3 != 1]
    read, _, _ = walk(
        FakeSecurityLog(gappy, "utf-16"), {"source": "windows", "record_id": 0}, limit
    )
    assert read == [record_id(e) for e in gappy]
    # A new log numbers from 1, below the bookmark, and is read whole. (Not a
    # clear: a cleared log goes on numbering, see test_windows_recorded_events.py.)
    fresh = renumbered(raw_events[: max(2, len(raw_events) // 2)])
    log.replace(fresh)
    read, after, warnings = walk(log, mark, limit)
    assert read == [record_id(e) for e in fresh]
    assert warnings and "from 1 again" in warnings[0]
    assert after == {"source": "windows", "record_id": len(fresh)}


def windows_result(found: Sequence[dict[str, Any]] = ()) -> HostResult:
    """An ok Windows host whose document carried ``found``, through the boundary."""
    client = Client(
        ip="192.0.2.10", username="u", password="p", mail=("a@example.com",), name="dc01"
    )
    family = events.events_family("windows", list(found), None, False)
    raw = {"schema": 1, "platform": "windows", "errors": {}, **family}
    document = check(raw, Limits(events=max(1, len(found))), now=datetime.now(UTC))
    return HostResult(client, Status.OK, datetime.now(UTC), 1.0, document=document)


def mail_lines(found: Sequence[dict[str, Any]]) -> tuple[list[str], tuple[str, ...]]:
    """The events mail body for ``found`` as the server stores them (after the
    document boundary), line by line, and what the boundary had to change."""
    result = windows_result(found)
    assert result.document is not None and result.document.security_events is not None
    rows = result.document.security_events.events
    message = render_events_message(result, rows, datetime(2026, 12, 1, tzinfo=UTC))
    return message.body.splitlines(), result.document.notes
