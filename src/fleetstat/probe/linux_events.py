"""Security events on Linux: SSH logins (failed and accepted), sudo, new users.

Source: the systemd journal (``journalctl -o json``, resumed with
``--after-cursor``) when journald runs, else the syslog file ``/var/log/auth.log``
(Debian, Ubuntu) or ``/var/log/secure`` (RHEL family), resumed at a byte offset
in a file identified by its inode, so a rotation (rename to ``.1``) is followed.
A bookmark of one source is kept with it: a host that has an auth.log bookmark
stays on auth.log while the file exists.

Messages are classified by pure functions (:func:`classify`) tested on recorded
lines; lines that are not one of the events above are skipped.
"""

import calendar
import os
import re
import time

from .common import utc_iso
from .events import FIRST_RUN_SECONDS, bookmark_for, events_family, make_event
from .procfs import host_path

AUTHLOG_PATHS = ("var/log/auth.log", "var/log/secure")
JOURNAL_SOCKET = "run/systemd/journal/socket"
# OpenSSH 9.8 moved the per-connection work (and its log lines) to sshd-session.
IDENTIFIERS = ("sshd", "sshd-session", "sudo", "useradd", "userdel")

_SSH_FAILED = re.compile(r"^Failed (\S+) for (invalid user )?(.*?) from (\S+) port (\d+)")
_SSH_ACCEPTED = re.compile(r"^Accepted (\S+) for (.*?) from (\S+) port (\d+)")
_NEW_USER = re.compile(r"^new user: name=([^,]+), UID=(\d+)")
_DELETE_USER = re.compile(r"^delete user '([^']+)'")
_SUDO = re.compile(r"^\s*(\S+) : (.*)$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?\s+(\S+)\s+(.*)$"
)
_BSD = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)\s+(\S+)\s+(.*)$")
_TAG = re.compile(r"^([^\s\[:]+)(?:\[(\d+)\])?:\s?(.*)$")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- classifying a message ----------------------------------------------------------


def classify(identifier, message):
    """``(kind, level, account, address, summary, extra)`` or None when not an event."""
    ident = identifier or ""
    if ident.startswith("sshd"):
        m = _SSH_FAILED.match(message)
        if m:
            how, invalid, user, address, port = m.groups()
            what = "invalid user " + user if invalid else user
            summary = "SSH login failed (%s) for %s from %s port %s" % (how, what, address, port)
            extra = {"method": how, "port": int(port), "invalid_user": bool(invalid)}
            return "ssh_failed", "warning", user, address, summary, extra
        m = _SSH_ACCEPTED.match(message)
        if m:
            how, user, address, port = m.groups()
            summary = "SSH login accepted (%s) for %s from %s port %s" % (how, user, address, port)
            return (
                "ssh_accepted",
                "info",
                user,
                address,
                summary,
                {"method": how, "port": int(port)},
            )
        return None
    if ident == "sudo":
        m = _SUDO.match(message)
        if not m or "COMMAND=" not in message:
            return None
        user, rest = m.groups()
        fields, notes = {}, []
        for part in rest.split(" ; "):
            key, eq, value = part.partition("=")
            if eq and key.isupper():
                fields[key] = value
            else:
                notes.append(part.strip())
        command = fields.get("COMMAND", "")
        target = fields.get("USER", "root")
        extra = {"command": command, "run_as": target, "tty": fields.get("TTY")}
        if notes:
            extra["note"] = "; ".join(notes)
            summary = "sudo refused for %s (%s): %s" % (user, extra["note"], command)
            return "sudo_denied", "warning", user, None, summary, extra
        return "sudo", "info", user, None, "sudo by %s as %s: %s" % (user, target, command), extra
    if ident == "useradd":
        m = _NEW_USER.match(message)
        if m:
            name, uid = m.groups()
            summary = "user account %s created (UID %s)" % (name, uid)
            return "user_added", "notice", name, None, summary, {"uid": int(uid)}
        return None
    if ident == "userdel":
        m = _DELETE_USER.match(message)
        if m:
            name = m.group(1)
            return "user_deleted", "notice", name, None, "user account %s deleted" % name, {}
    return None


def build_event(source, key, record_id, occurred_at, identifier, host, pid, message, position):
    found = classify(identifier, message)
    if found is None:
        return None
    kind, level, account, address, summary, extra = found
    data = {"kind": kind, "message": message[:2000], "pid": pid, "position": position}
    data.update(extra)
    return make_event(
        event_key=key,
        source=source,
        record_id=record_id,
        occurred_at=occurred_at,
        level=level,
        provider=identifier,
        computer=host,
        account=account,
        source_address=address,
        summary=summary,
        data=data,
    )


# --- syslog files -------------------------------------------------------------------


def parse_syslog_line(line, now):
    """``(epoch or None, host, identifier, pid, message)`` or None.

    RFC 3339 timestamps (rsyslog's default on Debian 12+) carry their offset;
    the classic ``May 14 09:12:33`` ones are local time without a year: the
    year is the one that does not put the line in the future.
    """
    m = _RFC3339.match(line)
    if m:
        y, mo, d, h, mi, s, zone, host, rest = m.groups()
        epoch = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
        if zone and zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    else:
        m = _BSD.match(line)
        if not m:
            return None
        mon, d, h, mi, s, host, rest = m.groups()
        if mon not in _MONTHS:
            return None
        year = time.localtime(now).tm_year
        fields = [year, _MONTHS.index(mon) + 1, int(d), int(h), int(mi), int(s), 0, 0, -1]
        epoch = time.mktime(tuple(fields))
        if epoch > now + 86400:
            fields[0] -= 1
            epoch = time.mktime(tuple(fields))
    tag = _TAG.match(rest)
    if not tag:
        return None
    ident, pid, message = tag.groups()
    return epoch, host, ident, int(pid) if pid else None, message


def authlog_segments(root, bookmark):
    """``(path, [(file, start offset), ...], first_run)`` to read, following a rotation."""
    path = None
    if (
        bookmark
        and bookmark.get("path")
        and os.path.exists(host_path(root, bookmark["path"].lstrip("/")))
    ):
        path = bookmark["path"].lstrip("/")
    for candidate in AUTHLOG_PATHS:
        if path is None and os.path.exists(host_path(root, candidate)):
            path = candidate
    if path is None:
        raise FileNotFoundError(
            "no systemd journal and no /var/log/auth.log or /var/log/secure to read events from"
        )
    full = host_path(root, path)
    inode = os.stat(full).st_ino
    size = os.stat(full).st_size
    if not bookmark:
        return path, [(full, 0)], True
    offset = bookmark.get("offset") or 0
    if bookmark.get("inode") == inode:
        return path, [(full, offset if offset <= size else 0)], False
    rotated = full + ".1"  # logrotate renamed the file we were reading
    if os.path.exists(rotated) and os.stat(rotated).st_ino == bookmark.get("inode"):
        return path, [(rotated, offset), (full, 0)], False
    return path, [(full, 0)], False


def read_authlog(root, bookmark, limit, now):
    """(events ascending, truncated, path) from auth.log/secure after the bookmark."""
    import collections

    path, segments, first_run = authlog_segments(root, bookmark)
    cutoff = now - FIRST_RUN_SECONDS
    # First run: the newest `limit` of the last 24 hours; later: the oldest `limit`
    # after the bookmark.
    events = collections.deque(maxlen=limit if first_run else None)
    seen = 0
    truncated = False
    for file_path, start in segments:
        try:
            handle = open(file_path, "rb")  # noqa: SIM115 (closed by the with below)
        except PermissionError:
            raise PermissionError(
                "cannot read /%s: permission denied (the login account must be in the "
                "adm group on Debian/Ubuntu; /var/log/secure is root's on RHEL)" % path
            ) from None
        with handle:
            inode = os.fstat(handle.fileno()).st_ino
            handle.seek(start)
            offset = start
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a line still being written: read it next time
                if not first_run and len(events) >= limit:
                    truncated = True
                    break
                line_start, offset = offset, offset + len(raw)
                parsed = parse_syslog_line(raw.decode("utf-8", "replace").rstrip("\r\n"), now)
                if parsed is None:
                    continue
                epoch, host, ident, pid, message = parsed
                if ident not in IDENTIFIERS or (first_run and epoch < cutoff):
                    continue
                position = {
                    "source": "authlog",
                    "path": "/" + path,
                    "inode": inode,
                    "offset": offset,
                }
                event = build_event(
                    "authlog", "authlog:%d:%d" % (inode, line_start), line_start,
                    utc_iso(epoch), ident, host, pid, message, position,
                )  # fmt: skip
                if event is not None:
                    seen += 1
                    events.append(event)
        if truncated:
            break
    if first_run and seen > len(events):
        truncated = True
    return list(events), truncated, "/" + path


# --- the journal --------------------------------------------------------------------


def journal_args(bookmark, now):
    args = ["journalctl", "--no-pager", "-q", "-o", "json"]
    cursor = bookmark.get("cursor") if bookmark else None
    if cursor:
        args += ["--after-cursor", cursor]
    else:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - FIRST_RUN_SECONDS))
        args += ["--since", since, "--reverse"]
    return args + ["SYSLOG_IDENTIFIER=" + ident for ident in IDENTIFIERS]


def journal_text(value):
    """MESSAGE is a string, or a list of byte values when it is not valid UTF-8."""
    if isinstance(value, list):
        return bytes(v for v in value if isinstance(v, int) and 0 <= v < 256).decode(
            "utf-8", "replace"
        )
    return value if isinstance(value, str) else ""


def journal_event(entry):
    """An event from one ``journalctl -o json`` entry, or None."""
    cursor = entry.get("__CURSOR")
    if not cursor:
        return None
    try:
        epoch = int(entry.get("__REALTIME_TIMESTAMP")) / 1e6
    except (TypeError, ValueError):
        epoch = None
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM")
    pid = entry.get("SYSLOG_PID") or entry.get("_PID")
    seqnum = entry.get("__SEQNUM")
    key = "journal:" + cursor
    if len(key) > 250:  # the key column holds 255
        import hashlib

        key = "journal:sha1:" + hashlib.sha1(cursor.encode("utf-8")).hexdigest()
    return build_event(
        "journal", key, int(seqnum) if seqnum and str(seqnum).isdigit() else None,
        utc_iso(epoch) if epoch is not None else None, ident, entry.get("_HOSTNAME"),
        int(pid) if pid and str(pid).isdigit() else None, journal_text(entry.get("MESSAGE")),
        {"source": "journal", "cursor": cursor},
    )  # fmt: skip


def read_journal(bookmark, limit, now, popen=None):
    """(events ascending, truncated, warning) from journalctl."""
    import json
    import subprocess

    popen = popen or subprocess.Popen
    proc = popen(journal_args(bookmark, now), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events = []
    truncated = False
    try:
        for raw in proc.stdout:
            if len(events) >= limit:
                truncated = True
                break
            try:
                entry = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            event = journal_event(entry)
            if event is not None:
                events.append(event)
    finally:
        if truncated:
            proc.kill()
        proc.stdout.close()
    stderr = proc.stderr.read().decode("utf-8", "replace").strip()
    proc.stderr.close()
    code = proc.wait()
    if code not in (0, None) and not truncated:
        raise OSError("journalctl exited with status %d: %s" % (code, stderr[-300:]))
    if not (bookmark and bookmark.get("cursor")):
        events.reverse()  # read newest first
    warning = None
    if "not seeing messages" in stderr or "insufficient permissions" in stderr:
        warning = (
            "journalctl shows only the login account's own messages: add it to the "
            "systemd-journal or adm group to see sshd and sudo"
        )
    return events, truncated, warning


def journal_available(root):
    import shutil

    return shutil.which("journalctl") is not None and os.path.exists(
        host_path(root, JOURNAL_SOCKET)
    )


def collect_linux_events(ctx, limit, popen=None):
    now = ctx.now()
    authlog_mark = bookmark_for(ctx, "authlog")
    if authlog_mark is None and journal_available(ctx.root):
        bookmark = bookmark_for(ctx, "journal")
        events, truncated, warning = read_journal(bookmark, limit, now, popen)
        newest = events[-1]["data"]["position"] if events else bookmark
        return events_family("journal", events, newest, truncated, warning)
    events, truncated, _path = read_authlog(ctx.root, authlog_mark, limit, now)
    newest = events[-1]["data"]["position"] if events else authlog_mark
    return events_family("authlog", events, newest, truncated)
