"""Linux security events: classifying messages, auth.log with its bookmark, the journal."""

from __future__ import annotations

import calendar
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from fleetstat.probe import common, events, linux_events, registry

FIXTURES = Path(__file__).parent / "fixtures" / "events"
# 2024-05-14 12:00 UTC: the fixtures' lines are a few hours old.
NOW = calendar.timegm((2024, 5, 14, 12, 0, 0, 0, 0, 0))


def host_root(tmp_path: Path, fixture: str, name: str = "auth.log") -> Path:
    log = tmp_path / "var" / "log"
    log.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, log / name)
    return tmp_path


def ctx(root: Path, since: Any = None, events_max: int | None = 500) -> common.Context:
    return common.Context(root=str(root), since=since, now=lambda: NOW, events_max=events_max)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    # Classic syslog stamps are local time: pin the zone so the tests mean the same anywhere.
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()


def test_classify_recorded_messages() -> None:
    c = linux_events.classify
    kind, level, account, address, summary, extra = c(
        "sshd", "Failed password for invalid user admin from 203.0.113.9 port 52144 ssh2"
    )
    assert (kind, level, account, address) == ("ssh_failed", "warning", "admin", "203.0.113.9")
    assert (
        summary == "SSH login failed (password) for invalid user admin from 203.0.113.9 port 52144"
    )
    assert extra["invalid_user"] is True
    assert c("sshd-session", "Accepted publickey for deploy from 2001:db8::1 port 22 ssh2")[:4] == (
        "ssh_accepted", "info", "deploy", "2001:db8::1",
    )  # fmt: skip
    assert c("sshd", "Connection closed by 203.0.113.9 port 52144 [preauth]") is None
    sudo = c("sudo", "  deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/id")
    assert sudo[0] == "sudo" and sudo[2] == "deploy" and sudo[5]["command"] == "/usr/bin/id"
    denied = c(
        "sudo", "oracle : user NOT in sudoers ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh"
    )
    assert denied[0] == "sudo_denied" and "NOT in sudoers" in denied[4]
    assert c("sudo", "pam_unix(sudo:session): session opened for user root") is None
    assert c("useradd", "new user: name=bob, UID=1001, GID=1001, home=/home/bob")[:3] == (
        "user_added", "notice", "bob",
    )  # fmt: skip
    assert c("useradd", "new group: name=bob, GID=1001") is None
    assert c("userdel", "delete user 'bob'")[0] == "user_deleted"
    assert c("CRON", "Failed password for root from 1.2.3.4 port 1 ssh2") is None


def test_auth_log_first_run_reads_the_last_day(tmp_path: Path) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    family = linux_events.collect_linux_events(ctx(root), 500)["security_events"]
    assert family["source"] == "authlog"
    kinds = [e["data"]["kind"] for e in family["events"]]
    assert kinds == ["ssh_failed", "ssh_failed", "ssh_accepted", "sudo", "sudo_denied",
                     "user_added", "user_deleted"]  # fmt: skip
    first = family["events"][0]
    assert tuple(first) == events.FIELDS
    assert first["occurred_at"] == "2024-05-14T09:12:33Z"
    assert first["computer"] == "web-01" and first["provider"] == "sshd"
    assert first["data"]["pid"] == 2301
    assert family["events"][5]["account"] == "jürgen"  # non-ASCII intact
    inode = os.stat(root / "var/log/auth.log").st_ino
    assert first["event_key"].startswith(f"authlog:{inode}:")
    size = (root / "var/log/auth.log").stat().st_size
    assert family["bookmark"] == {
        "source": "authlog", "path": "/var/log/auth.log", "inode": inode, "offset": size,
    }  # fmt: skip
    assert family["truncated"] is False


def test_auth_log_first_run_skips_older_lines_and_keeps_the_newest(tmp_path: Path) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    late = ctx(root)
    late.now = lambda: NOW + 86400 + 3 * 3600  # a day later: only nothing is within 24 h
    assert linux_events.collect_linux_events(late, 500)["security_events"]["events"] == []
    family = linux_events.collect_linux_events(ctx(root), 2)["security_events"]
    assert [e["data"]["kind"] for e in family["events"]] == ["user_added", "user_deleted"]
    assert family["truncated"] is True


def test_auth_log_resumes_after_the_bookmark_and_follows_rotation(tmp_path: Path) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    log = root / "var/log/auth.log"
    first = linux_events.collect_linux_events(ctx(root), 500)["security_events"]
    bookmark = first["events"][2]["data"]["position"]  # as if only three were stored

    again = linux_events.collect_linux_events(ctx(root, bookmark), 500)["security_events"]
    assert [e["event_key"] for e in again["events"]] == [
        e["event_key"] for e in first["events"][3:]
    ]

    # logrotate: auth.log -> auth.log.1, a new auth.log with one more line
    os.rename(log, root / "var/log/auth.log.1")
    log.write_text(
        "May 14 11:00:00 web-01 sshd[3000]: Failed password for root from 192.0.2.99 port 1 ssh2\n"
        "May 14 11:00:01 web-01 sshd[3000]: partial line without its newl"
    )
    rotated = linux_events.collect_linux_events(ctx(root, bookmark), 500)["security_events"]
    keys = [e["event_key"] for e in rotated["events"]]
    assert keys[:-1] == [e["event_key"] for e in first["events"][3:]]  # same keys: no duplicates
    assert rotated["events"][-1]["source_address"] == "192.0.2.99"
    assert rotated["bookmark"]["inode"] == os.stat(log).st_ino
    assert rotated["bookmark"]["offset"] == len(log.read_bytes().split(b"\n")[0]) + 1


def test_auth_log_forward_batches_are_capped(tmp_path: Path) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    inode = os.stat(root / "var/log/auth.log").st_ino
    start = {"source": "authlog", "path": "/var/log/auth.log", "inode": inode, "offset": 0}
    family = linux_events.collect_linux_events(ctx(root, start), 3)["security_events"]
    assert len(family["events"]) == 3 and family["truncated"] is True
    assert [e["data"]["kind"] for e in family["events"]] == [
        "ssh_failed",
        "ssh_failed",
        "ssh_accepted",
    ]


def test_rfc3339_and_rhel_formats(tmp_path: Path) -> None:
    root = host_root(tmp_path / "a", "auth.log.rfc3339")
    found = linux_events.collect_linux_events(ctx(root), 500)["security_events"]["events"]
    assert [e["occurred_at"] for e in found] == [
        "2024-05-14T07:12:33Z", "2024-05-14T07:12:40Z", "2024-05-14T09:13:00Z",
    ]  # fmt: skip
    assert found[2]["provider"] == "sshd-session" and found[2]["source_address"] == "2001:db8::7"
    root = host_root(tmp_path / "b", "secure.rhel", name="secure")
    rhel = ctx(root)
    rhel.now = lambda: calendar.timegm((2024, 5, 5, 1, 0, 0, 0, 0, 0))
    found = linux_events.collect_linux_events(rhel, 500)["security_events"]["events"]
    assert [e["data"]["kind"] for e in found] == ["ssh_failed", "sudo_denied"]
    assert found[0]["occurred_at"] == "2024-05-04T23:59:58Z"


def test_new_year_lines_belong_to_last_year() -> None:
    jan1 = calendar.timegm((2025, 1, 1, 0, 5, 0, 0, 0, 0))
    parsed = linux_events.parse_syslog_line("Dec 31 23:59:00 h sshd[1]: x", jan1)
    assert parsed is not None
    assert common.utc_iso(parsed[0]) == "2024-12-31T23:59:00Z"


def test_unreadable_auth_log_is_a_clear_error(tmp_path: Path) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    if os.geteuid() == 0:  # root reads anything: simulate the refusal instead
        real_open = open

        def refuse(path: Any, *a: Any, **kw: Any) -> Any:
            if str(path).endswith("auth.log"):
                raise PermissionError(13, "Permission denied")
            return real_open(path, *a, **kw)

        linux_events.open = refuse  # type: ignore[attr-defined]
    else:
        (root / "var/log/auth.log").chmod(0)
    try:
        doc = registry.build_document(ctx(root), platform="linux")
    finally:
        if hasattr(linux_events, "open"):
            del linux_events.open  # type: ignore[attr-defined]
    assert "adm group" in doc["errors"]["security_events"]
    assert doc["security_events"] is None
    assert doc["host"] is not None  # the rest still arrive


def test_no_source_at_all_is_reported(tmp_path: Path) -> None:
    doc = registry.build_document(ctx(tmp_path), platform="linux")
    assert "no /var/log/auth.log" in doc["errors"]["security_events"]


def test_linux_collects_events_only_when_asked(tmp_path: Path) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    doc = registry.build_document(ctx(root, events_max=None), platform="linux")
    assert doc["security_events"] is None and "security_events" not in doc["collectors"]
    doc = registry.build_document(ctx(root, events_max=0), platform="linux")
    assert "security_events" not in doc["collectors"]


# --- the journal ----------------------------------------------------------------------


class FakeJournal:
    def __init__(self, lines: list[bytes], stderr: bytes = b"") -> None:
        self.stdout = io.BytesIO(b"".join(lines))
        self.stderr = io.BytesIO(stderr)
        self.killed = False

    def kill(self) -> None:
        self.killed = True

    def wait(self) -> int:
        return 0


def journal_popen(lines: list[bytes], seen: list[list[str]], stderr: bytes = b"") -> Any:
    def popen(args: list[str], **kw: Any) -> FakeJournal:
        seen.append(args)
        return FakeJournal(lines, stderr)

    return popen


JOURNAL = (FIXTURES / "journal.json").read_bytes().splitlines(keepends=True)


def test_journal_entries_become_events() -> None:
    seen: list[list[str]] = []
    mark = {"source": "journal", "cursor": "s=abc;i=1"}
    found, truncated, warning = linux_events.read_journal(
        mark, 500, NOW, journal_popen(JOURNAL, seen)
    )
    assert seen[0][:5] == ["journalctl", "--no-pager", "-q", "-o", "json"]
    assert seen[0][5:7] == ["--after-cursor", "s=abc;i=1"]
    assert "SYSLOG_IDENTIFIER=sshd-session" in seen[0]
    assert [e["data"]["kind"] for e in found] == [
        "ssh_failed", "ssh_accepted", "sudo", "ssh_failed", "user_added",
    ]  # fmt: skip
    first = found[0]
    assert first["source"] == "journal"
    assert first["event_key"].startswith("journal:s=6b3f1c2d")
    assert first["occurred_at"] == "2024-05-14T09:12:33Z"
    assert first["computer"] == "web-03"
    assert first["data"]["position"]["cursor"] in first["event_key"]
    assert found[3]["account"] == "j\ufffdrgen"  # MESSAGE as bytes: decoded, not dropped
    assert found[4]["account"] == "\u00e9lodie"
    assert truncated is False and warning is None


def test_journal_first_run_reads_the_last_day_newest_first() -> None:
    seen: list[list[str]] = []
    newest_first = list(reversed(JOURNAL))
    found, truncated, _ = linux_events.read_journal(None, 2, NOW, journal_popen(newest_first, seen))
    assert "--reverse" in seen[0] and "--since" in seen[0]
    assert [e["data"]["kind"] for e in found] == ["ssh_failed", "user_added"]  # ascending again
    assert truncated is True


def test_journal_without_rights_warns() -> None:
    hint = b"Hint: You are currently not seeing messages from other users and the system.\n"
    _, _, warning = linux_events.read_journal(None, 5, NOW, journal_popen([], [], hint))
    assert warning is not None and "systemd-journal" in warning


def test_journal_is_preferred_when_journald_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = host_root(tmp_path, "auth.log.debian")
    (root / "run/systemd/journal").mkdir(parents=True)
    (root / "run/systemd/journal/socket").touch()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/journalctl")
    seen: list[list[str]] = []
    newest_first = list(reversed(JOURNAL))  # a first run reads with --reverse
    family = linux_events.collect_linux_events(ctx(root), 500, journal_popen(newest_first, seen))
    assert family["security_events"]["source"] == "journal"
    assert family["security_events"]["bookmark"]["cursor"] in JOURNAL[-1].decode()
    # a host that has an auth.log bookmark stays on auth.log
    inode = os.stat(root / "var/log/auth.log").st_ino
    mark = {"source": "authlog", "path": "/var/log/auth.log", "inode": inode, "offset": 0}
    family = linux_events.collect_linux_events(ctx(root, mark), 500, journal_popen(JOURNAL, seen))
    assert family["security_events"]["source"] == "authlog"
