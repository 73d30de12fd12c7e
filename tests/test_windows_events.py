"""The Security log parser on wevtutil XML, and the wevtutil run behind its seam."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from security_log_checks import (
    as_wevtutil,
    check_bookmarks,
    check_fields,
    check_stream_variants,
    mail_lines,
    parse,
    split_events,
)

from fleetstat.mail.events import TALLY_FROM
from fleetstat.probe import common, events, windows_events
from fleetstat.probe.windows_event_text import shape_event

FIXTURES = Path(__file__).parent / "fixtures" / "windows"
SAMPLE = (FIXTURES / "security_sample.xml").read_bytes()
NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def chunks(data: bytes, size: int = 97) -> Iterator[bytes]:
    """Small, odd-sized chunks: elements and UTF-8 sequences split across reads."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def parsed(data: bytes = SAMPLE) -> list[dict[str, Any]]:
    return list(windows_events.iter_events(chunks(data)))


def by_id(found: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {e["record_id"]: e for e in found}


def test_every_event_has_the_shared_shape() -> None:
    found = parsed()
    assert len(found) == 13
    for event in found:
        assert tuple(event) == events.FIELDS
        assert event["source"] == "windows"
        assert event["event_key"].startswith("windows:")
        assert isinstance(event["data"], dict)


def test_4624_logon_success_with_a_non_ascii_account() -> None:
    e = by_id(parsed())[1048571]
    assert e["event_id"] == 4624
    assert e["occurred_at"] == "2024-05-14T09:12:31.123456Z"
    assert e["level"] == "audit_success"
    assert e["provider"] == "Microsoft-Windows-Security-Auditing"
    assert e["computer"] == "SRV-DC01.corp.example.com"
    assert e["account"] == "CORP\\jürgen.müller"
    assert e["source_address"] == "192.0.2.44"
    assert e["logon_type"] == 3
    assert e["data"]["AuthenticationPackageName"] == "NTLM"
    assert e["summary"] == (
        "An account was successfully logged on: CORP\\jürgen.müller (network logon) from 192.0.2.44"
    )


def test_4625_failures_name_the_reason() -> None:
    found = by_id(parsed())
    rdp = found[1048572]
    assert rdp["account"] == "CORP\\Дмитрий"
    assert rdp["source_address"] == "203.0.113.7"  # ::ffff: mapped address unwrapped
    assert rdp["level"] == "audit_failure"
    assert rdp["logon_type"] == 10
    assert rdp["summary"].endswith("(remote interactive logon) from 203.0.113.7 - wrong password")
    scan = found[1048573]
    assert scan["account"] == "admin"  # empty domain: no "\\"
    assert scan["summary"].endswith("- no such user")


def test_account_comes_from_the_right_fields_per_event() -> None:
    found = by_id(parsed())
    assert found[1048574]["event_id"] == 4634 and found[1048574]["account"] == "CORP\\jürgen.müller"
    explicit = found[1048575]
    assert explicit["account"] == "CORP\\Administrator"
    assert explicit["source_address"] is None  # "-" in the log
    assert "as CORP\\svc_backup on fs01.corp.example.com" in explicit["summary"]
    assert found[1048576]["event_id"] == 4672
    assert "SeDebugPrivilege" in found[1048576]["data"]["PrivilegeList"]
    created = found[1048577]
    assert created["account"] == "CORP\\José.García"
    assert (
        created["summary"] == "A user account was created: CORP\\José.García by CORP\\Administrator"
    )
    member = found[1048578]
    # A domain account on a domain controller: MemberName is its DN, as recorded
    # (a local account's is "-": test_what_recorded_logs_taught).
    assert member["account"] == "CN=José García,CN=Users,DC=corp,DC=example,DC=com"
    assert "to group Builtin\\Administrators" in member["summary"]
    assert found[1048579]["event_id"] == 4726
    locked = found[1048580]
    assert locked["account"] == "Дмитрий"  # TargetDomainName is the caller computer in 4740
    assert locked["data"]["TargetDomainName"] == "WS-0099"


def test_1102_log_cleared_reads_user_data() -> None:
    e = by_id(parsed())[1048581]
    assert e["event_id"] == 1102
    assert e["provider"] == "Microsoft-Windows-Eventlog"
    assert e["account"] == "CORP\\Administrator"
    assert e["level"] == "audit_success"
    assert e["summary"] == "The audit log was cleared: CORP\\Administrator"


def test_unknown_event_ids_are_kept_generically() -> None:
    e = by_id(parsed())[1048582]
    assert e["event_id"] == 4799
    assert e["summary"].startswith("Event 4799: Builtin\\Administrators")
    assert e["data"]["CallerProcessName"].endswith("svchost.exe")


def test_missing_fields_are_null() -> None:
    e = by_id(parsed())[1048583]
    assert e["occurred_at"] is None
    assert e["computer"] is None
    assert e["source_address"] is None
    assert e["account"] == "ghost"
    assert e["logon_type"] == 2
    assert e["summary"].endswith("- account locked out")  # Status used when SubStatus is absent
    bare = parsed(b"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'></Event>")
    assert bare[0]["event_id"] is None and bare[0]["record_id"] is None and bare[0]["data"] == {}


def test_utf16_output_is_recognized() -> None:
    text = SAMPLE.decode("utf-8")
    assert parsed(text.encode("utf-16")) == parsed()
    assert parsed(text.encode("utf-16-le")) == parsed()


def _big_file(path: Path, count: int) -> int:
    """``count`` events built from the sample's templates, written without holding them."""
    templates = SAMPLE.decode("utf-8").strip().split("\r\n")[:-1]
    with path.open("w", encoding="utf-8", newline="") as out:
        for i in range(count):
            template = templates[i % len(templates)]
            record = 2_000_000 + i
            out.write(
                template.replace("<EventRecordID>", f"<EventRecordID>{record}<!--").replace(
                    "</EventRecordID>", "--></EventRecordID>"
                )
                + "\r\n"
            )
    return path.stat().st_size


def test_ten_thousand_events_parse_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    size = _big_file(path, 10_000)
    assert size > 10_000_000

    tracemalloc.start()
    try:
        count = 0
        last = None
        with path.open("rb") as f:
            for event in windows_events.iter_events(iter(lambda: f.read(65536), b"")):
                count += 1
                last = event["record_id"]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert last == 2_009_999
    # The whole file as text would be ~size; the tree of every event several times it.
    assert peak < 3_000_000, f"peak {peak} bytes for a {size}-byte file"


# --- the wevtutil run -------------------------------------------------------------------


def test_query_after_a_bookmark_reads_forward() -> None:
    args = windows_events.wevtutil_args({"source": "windows", "record_id": 1048580}, 500)
    assert args == [
        "wevtutil", "qe", "Security", "/q:*[System[EventRecordID>1048580]]",
        "/f:xml", "/c:500", "/rd:false",
    ]  # fmt: skip


def test_first_query_is_the_last_day_newest_first() -> None:
    args = windows_events.wevtutil_args(None, 50)
    assert args[3] == "/q:*[System[TimeCreated[timediff(@SystemTime) <= 86400000]]]"
    assert args[-2:] == ["/c:50", "/rd:true"]


class FakeProcess:
    def __init__(self, stdout: bytes, stderr: bytes = b"", code: int = 0) -> None:
        self.stdout = io.BytesIO(stdout)
        self.stderr = io.BytesIO(stderr)
        self.code = code

    def wait(self) -> int:
        return self.code


def fake_popen(stdout: bytes, stderr: bytes = b"", code: int = 0, seen: list | None = None):
    def popen(args: list[str], **kw: Any) -> FakeProcess:
        if seen is not None:
            seen.append(args)
        return FakeProcess(stdout, stderr, code)

    return popen


def ctx(since: Any = None) -> common.Context:
    return common.Context(root="/nonexistent", since=since, now=lambda: 1715677953.0)


def test_first_run_sorts_newest_first_output_and_bookmarks_the_newest() -> None:
    newest_first = (FIXTURES / "security_newest_first.xml").read_bytes()
    seen: list[list[str]] = []
    family = windows_events.collect_windows_events(ctx(), 500, fake_popen(newest_first, seen=seen))
    found = family["security_events"]
    assert seen[0][-1] == "/rd:true"
    assert found["source"] == "windows"
    assert [e["record_id"] for e in found["events"]] == [1048571, 1048572, 1048573, 1048574]
    assert found["bookmark"] == {"source": "windows", "record_id": 1048574}
    assert found["truncated"] is False


def test_a_full_batch_is_marked_truncated() -> None:
    family = windows_events.collect_windows_events(
        ctx({"source": "windows", "record_id": 1}), 13, fake_popen(SAMPLE)
    )
    assert family["security_events"]["truncated"] is True


def test_no_new_events_keeps_the_bookmark() -> None:
    since = {"source": "windows", "record_id": 1048583}
    family = windows_events.collect_windows_events(ctx(since), 500, fake_popen(b""))
    assert family["security_events"]["events"] == []
    assert family["security_events"]["bookmark"] == since


def test_access_denied_is_a_clear_error_and_the_rest_still_arrive() -> None:
    from test_windows_probe import ReplayApi

    from fleetstat.probe import registry

    denied = fake_popen(b"", b"Failed to read events. Access is denied.\r\n", code=5)
    with pytest.raises(PermissionError, match="Event Log Readers"):
        windows_events.collect_windows_events(ctx(), 500, denied)

    context = ctx()
    context.winapi = ReplayApi()  # type: ignore[attr-defined]
    context.cpu_window = 0
    original = windows_events.read_events
    try:
        windows_events.read_events = lambda bookmark, limit, popen=None: original(  # type: ignore[assignment]
            bookmark, limit, denied
        )
        doc = registry.build_document(context, platform="windows")
    finally:
        windows_events.read_events = original  # type: ignore[assignment]
    assert doc["security_events"] is None
    assert "Event Log Readers" in doc["errors"]["security_events"]
    assert doc["memory"]["total_bytes"] > 0 and doc["disks"]
    assert set(doc["errors"]) == {"security_events"}


def test_other_wevtutil_failures_say_what_happened() -> None:
    broken = fake_popen(b"", b"The specified channel could not be found.", code=15007)
    with pytest.raises(OSError, match="status 15007: The specified channel"):
        windows_events.collect_windows_events(ctx(), 500, broken)


# --- the checks that also run on recorded logs (security_log_checks.py) ------------------

RAW_SAMPLE = split_events(SAMPLE.decode("utf-8"))


def test_sample_streams_alike_in_every_encoding_and_fills_its_fields() -> None:
    found = check_stream_variants(RAW_SAMPLE)
    check_fields([e for e in found if e["occurred_at"]])  # the last one has no time


def test_bookmarks_hold_over_gaps_and_a_cleared_log() -> None:
    check_bookmarks(RAW_SAMPLE, limit=4)


def test_the_mail_lists_each_event_in_two_lines() -> None:
    found = parse(as_wevtutil(RAW_SAMPLE))
    lines, notes = mail_lines(found)
    assert notes == ()
    assert lines[0] == "Security events on dc01 (192.0.2.10), collected 2026-12-01 00:00:00 UTC."
    assert "13 new events (time, event, account, source address, summary):" in lines
    assert "2024-05-14 09:12:35 UTC  event 4625  account CORP\\Дмитрий  from 203.0.113.7" in lines
    assert "    The audit log was cleared: CORP\\Administrator" in lines


def test_control_characters_cannot_stop_the_batch() -> None:
    # Recorded: a real log's 4739 carries U+0003 in MinPasswordAge; expat refuses
    # it raw and as a reference, which failed every run at that event.
    odd = RAW_SAMPLE[0].replace("<Data Name='KeyLength'>128</Data>",
                                "<Data Name='KeyLength'>\x03&#x3;&#1;&#65;</Data>")  # fmt: skip
    assert odd != RAW_SAMPLE[0]
    stream = as_wevtutil([odd, *RAW_SAMPLE[1:]])
    for size in (1, 3, 7, 65536):  # a reference split across reads too
        found = parse(stream, size=size)
        assert len(found) == len(RAW_SAMPLE)
        assert found[0]["data"]["KeyLength"] == "\ufffd\ufffd\ufffdA"  # &#65; is fine


def test_what_recorded_logs_taught() -> None:
    def one(event_id: int, data: dict[str, str]) -> dict[str, Any]:
        return shape_event(7, event_id, "2016-07-08T18:12:51.681640Z", "audit_success",
                           "Microsoft-Windows-Security-Auditing", "PC", data)  # fmt: skip

    subject = {"SubjectUserName": "WIN-03DLIIOFRRA$", "SubjectDomainName": "WORKGROUP"}
    # SYSTEM's own logon at start-up has logon type 0.
    boot = one(4624, {"TargetUserName": "SYSTEM", "TargetDomainName": "NT AUTHORITY",
                      "LogonType": "0", "IpAddress": "-"})  # fmt: skip
    assert boot["summary"].endswith("NT AUTHORITY\\SYSTEM (system logon)")
    # Renaming: Old/NewTargetUserName and TargetDomainName, no TargetUserName.
    renamed = one(4781, {"OldTargetUserName": "Guests", "NewTargetUserName": "Gäste",
                         "TargetDomainName": "Builtin", **subject})  # fmt: skip
    assert renamed["account"] == "Builtin\\Gäste"
    assert renamed["summary"] == (
        "The name of an account was changed: Builtin\\Gäste (was Guests)"
        " by WORKGROUP\\WIN-03DLIIOFRRA$"
    )
    removed = one(4733, {"MemberName": "-", "MemberSid": "S-1-5-21-1-2-3-1000",
                         "TargetUserName": "Administrators", "TargetDomainName": "Builtin",
                         **subject})  # fmt: skip
    assert removed["account"] == "S-1-5-21-1-2-3-1000"
    assert "from group Builtin\\Administrators by WORKGROUP\\" in removed["summary"]
    # Users changing their own password are not "by" themselves; a reset is.
    own = {"TargetUserName": "fsir", "TargetDomainName": "PC", "SubjectUserName": "fsir",
           "SubjectDomainName": "PC"}  # fmt: skip
    assert one(4723, own)["summary"].endswith(": PC\\fsir")
    assert one(4724, {**own, **subject})["summary"].endswith("by WORKGROUP\\WIN-03DLIIOFRRA$")
    # "user@REALM" (recorded in 4769) carries its domain: not prefixed again.
    ticket = one(4769, {"TargetUserName": "at_adm@TEST.SAAS", "TargetDomainName": "TEST.SAAS",
                        "IpAddress": "::ffff:192.0.2.9", "Status": "0x0"})  # fmt: skip
    assert ticket["summary"].endswith("requested: at_adm@TEST.SAAS from 192.0.2.9")
    # Events about nobody read as their title alone, not "Event 5024: -".
    assert one(5024, {})["summary"] == "The Windows Firewall Service has started successfully"
    assert one(4799, {})["summary"] == "Event 4799"


def test_a_long_mail_opens_with_a_count_per_kind() -> None:
    found = parse(as_wevtutil(RAW_SAMPLE))
    assert len(found) > TALLY_FROM
    lines, _ = mail_lines(found)
    listing = next(i for i, line in enumerate(lines) if line.startswith("13 new events"))
    tally = lines[lines.index("By kind:") + 1 : listing - 1]
    assert tally[0] == "  3  event 4625  An account failed to log on"
    assert "  1  event 4799" in tally  # no title of its own: not "Event 4799" again
    assert len(tally) == 11
    few, _ = mail_lines(found[:TALLY_FROM])
    assert "By kind:" not in few


def test_kerberos_and_ntlm_failures_name_the_result() -> None:
    # Constructed: the recorded 4768, 4769 and 4776 all succeeded (Status 0x0).
    def one(event_id: int, status: str) -> str:
        data = {"TargetUserName": "at_adm", "TargetDomainName": "TEST", "Status": status}
        event = shape_event(9, event_id, "2020-04-01T08:45:44.171741Z", "audit_failure",
                            "Microsoft-Windows-Security-Auditing", "DC", data)  # fmt: skip
        return event["summary"]

    assert one(4771, "0x18").endswith("TEST\\at_adm - wrong password")
    assert one(4768, "0x6").endswith("- no such user")
    assert one(4769, "0x1f").endswith("- status 0x1f")  # not in the table: the code itself
    assert one(4776, "0xC000006A").endswith("- wrong password")  # NTLM: NTSTATUS, any case
    assert " - " not in one(4776, "0x0")
