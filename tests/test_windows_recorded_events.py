"""The Security-log checks on events recorded on real Windows servers, in the suite.

scripts/setup (scripts/setup-windows-test) downloads PyPI's evtxtoelk 2.2.0
sdist, checks its sha256 and keeps the 16 Security logs of its test data in the
test cache: Elastic's Winlogbeat test logs, recorded on Windows Server 2012,
2016 and 2019, under the Elastic License 2.0 / SSPL, so nothing of them is
committed. Here the ``evtx`` package converts them, at test time, to the XML
``wevtutil qe Security /f:xml`` prints, and their 18 events go through the
checks of security_log_checks.py (the same as the constructed fixtures'), plus
what each event must read as. Without the cache or ``evtx`` the tests skip
locally and fail under CI, like the Wine tests.
"""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from typing import Any

import pytest
from security_log_checks import (
    FakeSecurityLog,
    as_wevtutil,
    check_bookmarks,
    check_fields,
    check_stream_variants,
    events_from_evtx,
    mail_lines,
    parse,
    record_id,
    walk,
)
from wine_fixtures import cache_dir

LOGS = cache_dir() / "security-logs" / "evtxtoelk-2.2.0"
FILES = 16
EVENT_IDS = Counter({1102: 1, 4670: 1, 4672: 1, 4688: 1, 4697: 1, 4698: 1, 4719: 1})
EVENT_IDS.update({4720: 2, 4726: 2, 4728: 1, 4732: 1, 4741: 1, 4742: 1})
EVENT_IDS.update({4768: 1, 4769: 1, 4776: 1})
# record ID: (account, source address, summary), as the events mail shows them.
EXPECTED = {
    14224: ("WLBEAT\\Administrator", None, "The audit log was cleared: WLBEAT\\Administrator"),
    31932: (
        "TEST\\WIN-BVM4LI1L1Q6$",
        None,
        "Permissions on an object were changed: TEST\\WIN-BVM4LI1L1Q6$",
    ),
    123879: ("TEST\\Administrator", None, "System audit policy was changed: TEST\\Administrator"),
    3699929: (
        "TEST\\TESTCOMPUTEROBJ$",
        None,
        "A computer account was created: TEST\\TESTCOMPUTEROBJ$ by TEST\\at_adm",
    ),
    3699934: (
        "TEST\\TESTCOMPUTEROBJ$",
        None,
        "A computer account was changed: TEST\\TESTCOMPUTEROBJ$ by TEST\\at_adm",
    ),
    90108: (
        "WLBEAT\\Administrator",
        None,
        "A service was installed in the system: WLBEAT\\Administrator (service winlogbeat)",
    ),
    5043782: ("TEST\\at_adm", None, "A scheduled task was created: TEST\\at_adm (task \\test1)"),
    5040235: (
        "TEST.SAAS\\at_adm",
        "::1",
        "A Kerberos authentication ticket (TGT) was requested: TEST.SAAS\\at_adm from ::1",
    ),
    # "user@REALM" in TargetUserName: not prefixed with the domain again.
    5040236: (
        "at_adm@TEST.SAAS",
        "::1",
        "A Kerberos service ticket was requested: at_adm@TEST.SAAS from ::1",
    ),
    5040222: (
        "at_adm",
        None,
        "The computer attempted to validate the credentials for an account: at_adm"
        " (workstation EQP01777)",
    ),
    143340: (
        "VAGRANT-2016\\vagrant",
        None,
        "Special privileges assigned to new logon: VAGRANT-2016\\vagrant",
    ),
    2751: (
        "WIN-41OB2LO92CR\\elastictest1",
        None,
        "A user account was created: WIN-41OB2LO92CR\\elastictest1"
        " by WIN-41OB2LO92CR\\Administrator",
    ),
    2775: (
        "WIN-41OB2LO92CR\\audittest0609",
        None,
        "A user account was created: WIN-41OB2LO92CR\\audittest0609"
        " by WIN-41OB2LO92CR\\Administrator",
    ),
    2851: (
        "WIN-41OB2LO92CR\\audittest23",
        None,
        "A user account was deleted: WIN-41OB2LO92CR\\audittest23"
        " by WIN-41OB2LO92CR\\Administrator",
    ),
    2857: (
        "WIN-41OB2LO92CR\\audittest",
        None,
        "A user account was deleted: WIN-41OB2LO92CR\\audittest by WIN-41OB2LO92CR\\Administrator",
    ),
    # A domain account added on a domain controller: MemberName is its LDAP DN.
    4657: (
        "CN=Administrator,CN=Users,DC=wlbeat,DC=local",
        None,
        "A member was added to a security-enabled global group:"
        " CN=Administrator,CN=Users,DC=wlbeat,DC=local to group WLBEAT\\test_group2"
        " by WLBEAT\\Administrator",
    ),
    4625: (
        "CN=Administrator,CN=Users,DC=wlbeat,DC=local",
        None,
        "A member was added to a security-enabled local group:"
        " CN=Administrator,CN=Users,DC=wlbeat,DC=local to group WLBEAT\\test_group1"
        " by WLBEAT\\Administrator",
    ),
    5010: (
        "VAGRANT\\vagrant",
        None,
        "A new process has been created: VAGRANT\\vagrant"
        " (process C:\\Windows\\System32\\wevtutil.exe)",
    ),
}


def _missing(reason: str) -> None:
    message = f"{reason}; run scripts/setup"
    if os.environ.get("CI"):
        pytest.fail(f"recorded Security logs required in CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def recorded() -> list[str]:
    """The 18 events as ``<Event>`` XML, file by file in name order."""
    try:
        import evtx  # noqa: F401
    except ImportError:
        _missing("the evtx package is not installed")
    files = sorted(LOGS.glob("*.evtx.gz")) if (LOGS / ".complete").is_file() else []
    if len(files) != FILES:
        _missing(f"no recorded Security logs in {LOGS}")
    raw: list[str] = []
    for path in files:
        raw += events_from_evtx(gzip.decompress(path.read_bytes()))
    return raw


def _machine(event: dict[str, Any]) -> str:
    """The server an event was recorded on: its computer name without the domain."""
    return event["computer"].split(".")[0].upper()


def logs_by_machine(raw: list[str]) -> dict[str, list[str]]:
    """Each server's events in log order (by record ID)."""
    logs: dict[str, list[str]] = {}
    for event, found in zip(raw, parse(as_wevtutil(raw)), strict=True):
        logs.setdefault(_machine(found), []).append(event)
    return {name: sorted(events, key=record_id) for name, events in logs.items()}


def test_the_recorded_events_are_the_expected_ones(recorded: list[str]) -> None:
    found = parse(as_wevtutil(recorded))
    assert Counter(e["event_id"] for e in found) == EVENT_IDS
    assert {e["record_id"] for e in found} == set(EXPECTED)
    assert all(e["level"] == "audit_success" for e in found)
    logs = logs_by_machine(recorded)
    servers = ["DC_TEST2K12", "VAGRANT", "VAGRANT-2016", "WIN-41OB2LO92CR", "WIN-BVM4LI1L1Q6"]
    assert sorted(logs) == servers
    # Each server's record IDs grow with time: they are one log's numbering.
    for events in logs.values():
        times = [e["occurred_at"] for e in parse(as_wevtutil(events))]
        assert times == sorted(times)


def test_streams_alike_and_fields_are_filled(recorded: list[str]) -> None:
    found = check_stream_variants(recorded)
    check_fields(found)
    # evtx indents its XML; wevtutil prints each event on one line: parsed alike.
    compact = [re.sub(r">\s+<", "><", event) for event in recorded]
    assert compact != recorded
    assert parse(as_wevtutil(compact), size=97) == found


def test_each_event_reads_as_recorded(recorded: list[str]) -> None:
    for event in parse(as_wevtutil(recorded)):
        shown = (event["account"], event["source_address"], event["summary"])
        assert shown == EXPECTED[event["record_id"]], event["record_id"]
        assert event["logon_type"] is None  # no logon among them
    privileges = next(e for e in parse(as_wevtutil(recorded)) if e["event_id"] == 4672)
    assert privileges["data"]["PrivilegeList"].startswith("SeSecurityPrivilege SeTakeOwnership")


def test_bookmarks_over_each_servers_record_ids(recorded: list[str]) -> None:
    checked = 0
    for events in logs_by_machine(recorded).values():
        if len(events) >= 2:
            check_bookmarks(events, limit=2)
            checked += len(events)
    assert checked == 16  # 8 + 6 + 2 events of three servers


def test_a_cleared_log_goes_on_numbering(recorded: list[str]) -> None:
    # The clear on WIN-41OB2LO92CR: its 1102, the first event of the cleared
    # log, is numbered after the events before the clear, not from 1 again.
    log = logs_by_machine(recorded)["WIN-41OB2LO92CR"]
    ids = [record_id(e) for e in log]
    assert ids == [2751, 2775, 2851, 2857, 4625, 4657, 14224, 90108]
    assert "<EventID>1102</EventID>" in log[6]
    # A run after the clear reads on from its bookmark: no "begun again" warning.
    read, mark, warnings = walk(FakeSecurityLog(log), {"source": "windows", "record_id": 4657}, 5)
    assert read == [14224, 90108] and warnings == []
    assert mark == {"source": "windows", "record_id": 90108}


def test_the_mail_reads_well(recorded: list[str]) -> None:
    lines, notes = mail_lines(parse(as_wevtutil(recorded)))
    assert notes == ()  # nothing for the document boundary to change
    assert "18 new events (time, event, account, source address, summary):" in lines
    start = lines.index("By kind:") + 1
    kinds = lines[start : lines.index("", start)]
    assert len(kinds) == len(EVENT_IDS)  # one line per event ID, each with its title
    assert all(re.fullmatch(r"  [12]  event \d{4}  [A-Z].+", kind) for kind in kinds), kinds
    assert "2020-04-01 08:45:44 UTC  event 4769  account at_adm@TEST.SAAS  from ::1" in lines
    assert "    The audit log was cleared: WLBEAT\\Administrator" in lines
    for _account, _address, summary in EXPECTED.values():
        assert f"    {summary}" in lines
