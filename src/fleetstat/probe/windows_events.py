"""The Windows Security log, read with ``wevtutil qe Security /f:xml``.

``wevtutil`` is on every Windows since Vista and needs no ctypes plumbing of
EvtQuery/EvtRender. Its XML is parsed as it arrives (``XMLPullParser`` fed from
the pipe, each ``<Event>`` dropped once converted), so memory stays flat
whatever the number of events; wevtutil prints the events back to back without
a root element, so one is fed around them.

Query: after the bookmark (``EventRecordID > N``), oldest first, at most MAX, so
a backlog is caught up over several runs and nothing is skipped; without a
bookmark, the last 24 hours, newest first (``/rd:true``), at most MAX.
"""

import codecs
import xml.etree.ElementTree as ET

from .events import FIRST_RUN_SECONDS, bookmark_for, events_family, make_event

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
_CHUNK = 65536

TITLES = {
    1102: "The audit log was cleared",
    4624: "An account was successfully logged on",
    4625: "An account failed to log on",
    4634: "An account was logged off",
    4647: "User initiated logoff",
    4648: "A logon was attempted using explicit credentials",
    4672: "Special privileges assigned to new logon",
    4719: "System audit policy was changed",
    4720: "A user account was created",
    4722: "A user account was enabled",
    4723: "An attempt was made to change an account's password",
    4724: "An attempt was made to reset an account's password",
    4725: "A user account was disabled",
    4726: "A user account was deleted",
    4728: "A member was added to a security-enabled global group",
    4732: "A member was added to a security-enabled local group",
    4740: "A user account was locked out",
    4756: "A member was added to a security-enabled universal group",
}
LOGON_TYPES = {
    2: "interactive",
    3: "network",
    4: "batch",
    5: "service",
    7: "unlock",
    8: "network cleartext",
    9: "new credentials",
    10: "remote interactive",
    11: "cached interactive",
}
# 4625's SubStatus (or Status), from the event's documentation.
FAILURE_REASONS = {
    "0xc0000064": "no such user",
    "0xc000006a": "wrong password",
    "0xc000006d": "bad user name or password",
    "0xc000006f": "outside allowed hours",
    "0xc0000070": "workstation not allowed",
    "0xc0000071": "password expired",
    "0xc0000072": "account disabled",
    "0xc0000133": "clock skew with the domain controller",
    "0xc000015b": "logon type not granted",
    "0xc0000193": "account expired",
    "0xc0000224": "password must change",
    "0xc0000234": "account locked out",
}
LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}
_AUDIT_FAILURE = 0x10000000000000
_AUDIT_SUCCESS = 0x20000000000000
_MEMBER_ADDED = (4728, 4732, 4756)
_SUBJECT_IS_ACCOUNT = (1102, 4648, 4672, 4719)

ACCESS_DENIED = (
    "cannot read the Security event log: access denied (the login account must be "
    "a member of the Event Log Readers group or an administrator)"
)


def wevtutil_args(bookmark, limit):
    """The wevtutil command line (a list: no shell, so ``>`` needs no quoting)."""
    record_id = bookmark.get("record_id") if bookmark else None
    if isinstance(record_id, int) and record_id >= 0:
        query, reverse = "*[System[EventRecordID>%d]]" % record_id, "false"
    else:
        ms = FIRST_RUN_SECONDS * 1000
        query, reverse = "*[System[TimeCreated[timediff(@SystemTime) <= %d]]]" % ms, "true"
    return [
        "wevtutil",
        "qe",
        "Security",
        "/q:" + query,
        "/f:xml",
        "/c:%d" % limit,
        "/rd:" + reverse,
    ]


def _decoder(first):
    """wevtutil writes UTF-8 into a pipe; UTF-16 is recognized too (BOM, or NULs)."""
    if first.startswith(codecs.BOM_UTF16_LE):
        return codecs.getincrementaldecoder("utf-16")("replace")  # drops the BOM
    if first[1:2] == b"\x00":
        return codecs.getincrementaldecoder("utf-16-le")("replace")
    return codecs.getincrementaldecoder("utf-8-sig")("replace")


def iter_events(chunks):
    """Events (dicts) from wevtutil's XML output given as an iterable of byte chunks.

    Each ``<Event>`` element is converted when it ends and then removed from
    the tree, so only one event is ever held.
    """
    parser = ET.XMLPullParser(events=("start", "end"))
    parser.feed("<Events>")
    decoder = None
    root = None
    for chunk in chunks:
        if decoder is None:
            decoder = _decoder(chunk)
        parser.feed(decoder.decode(chunk))
        for kind, elem in parser.read_events():
            if kind == "start":
                if root is None:
                    root = elem
            elif elem.tag == NS + "Event":
                yield event_from_element(elem)
                root.clear()
    if decoder is not None:
        parser.feed(decoder.decode(b"", True))
    parser.feed("</Events>")
    parser.close()
    for kind, elem in parser.read_events():
        if kind == "end" and elem.tag == NS + "Event":
            yield event_from_element(elem)


def _text(parent, name):
    if parent is None:
        return None
    found = parent.find(NS + name)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _int(value, base=10):
    try:
        return int(value, base)
    except (TypeError, ValueError):
        return None


def _value(data, name):
    """A data field, with the log's placeholders for "none" ("-", empty) as None."""
    value = data.get(name)
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "-") else value


def _account(data, prefix):
    user = _value(data, prefix + "UserName")
    domain = _value(data, prefix + "DomainName")
    if user is None:
        return None
    return "%s\\%s" % (domain, user) if domain else user


def iso_time(system_time):
    """``2024-05-14T09:12:33.4567890Z`` -> ``2024-05-14T09:12:33.456789Z`` (microseconds)."""
    if not system_time:
        return None
    value = system_time.strip().rstrip("Z")
    head, dot, fraction = value.partition(".")
    if dot:
        head += "." + (fraction + "000000")[:6]
    return head + "Z"


def event_data(elem):
    """EventData's named <Data> (or UserData's fields) as {name: text}."""
    data = {}
    body = elem.find(NS + "EventData")
    if body is not None:
        for i, item in enumerate(body.findall(NS + "Data")):
            data[item.get("Name") or "Data%d" % i] = item.text
    user_data = elem.find(NS + "UserData")
    if user_data is not None:
        for wrapper in user_data:
            for item in wrapper:
                data[item.tag.rpartition("}")[2]] = item.text
    return data


def level_name(level, keywords):
    mask = _int(keywords, 16) if keywords else None
    if mask is not None and mask & _AUDIT_FAILURE:
        return "audit_failure"
    if mask is not None and mask & _AUDIT_SUCCESS:
        return "audit_success"
    return LEVELS.get(_int(level), level)


def event_from_element(elem):
    system = elem.find(NS + "System")
    provider = system.find(NS + "Provider") if system is not None else None
    created = system.find(NS + "TimeCreated") if system is not None else None
    record_id = _int(_text(system, "EventRecordID"))
    event_id = _int(_text(system, "EventID"))
    occurred_at = iso_time(created.get("SystemTime") if created is not None else None)
    data = event_data(elem)
    return shape_event(
        record_id=record_id,
        event_id=event_id,
        occurred_at=occurred_at,
        level=level_name(_text(system, "Level"), _text(system, "Keywords")),
        provider=provider.get("Name") if provider is not None else None,
        computer=_text(system, "Computer"),
        data=data,
    )


def shape_event(record_id, event_id, occurred_at, level, provider, computer, data):
    """The shared event shape, with account, address and summary per event ID."""
    if event_id in _MEMBER_ADDED:
        account = _value(data, "MemberName") or _value(data, "MemberSid")
    elif event_id in _SUBJECT_IS_ACCOUNT:
        account = _account(data, "Subject")
    elif event_id == 4740:  # TargetDomainName is the caller's computer here
        account = _value(data, "TargetUserName")
    else:
        account = _account(data, "Target") or _account(data, "Subject")
    address = _value(data, "IpAddress")
    if address and address.lower().startswith("::ffff:"):
        address = address[7:]
    logon_type = _int(_value(data, "LogonType"))
    key = "windows:%s:%s" % (record_id, occurred_at)
    return make_event(
        event_key=key,
        source="windows",
        record_id=record_id,
        occurred_at=occurred_at,
        event_id=event_id,
        level=level,
        provider=provider,
        computer=computer,
        account=account,
        source_address=address,
        logon_type=logon_type,
        summary=summarize(event_id, account, address, logon_type, data),
        data=data,
    )


def summarize(event_id, account, address, logon_type, data):
    title = TITLES.get(event_id, "Event %s" % event_id)
    who = account or "-"
    parts = [title + ":", who]
    if logon_type is not None:
        parts.append("(%s logon)" % LOGON_TYPES.get(logon_type, "type %d" % logon_type))
    if address:
        parts.append("from " + address)
    if event_id == 4625:
        status = (_value(data, "SubStatus") or "").lower()
        if status in ("", "0x0"):
            status = (_value(data, "Status") or "").lower()
        reason = FAILURE_REASONS.get(status) or _value(data, "FailureReason") or status
        if reason:
            parts.append("- " + reason)
    elif event_id in _MEMBER_ADDED:
        parts.append("to group " + (_account(data, "Target") or "-"))
    elif event_id == 4648:
        parts.append("as " + (_account(data, "Target") or "-"))
        server = _value(data, "TargetServerName")
        if server:
            parts.append("on " + server)
    if event_id in (4720, 4726, 4740, 4722, 4725) + _MEMBER_ADDED:
        by = _account(data, "Subject")
        if by:
            parts.append("by " + by)
    return " ".join(parts)


def read_events(bookmark, limit, popen=None):
    """Run wevtutil and parse its output; (events ascending by record ID, truncated)."""
    import subprocess

    popen = popen or subprocess.Popen
    proc = popen(wevtutil_args(bookmark, limit), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events = []
    try:
        for event in iter_events(iter(lambda: proc.stdout.read(_CHUNK), b"")):
            events.append(event)
    except ET.ParseError as exc:
        problem = exc
    else:
        problem = None
    finally:
        proc.stdout.close()
    stderr = proc.stderr.read().decode("utf-8", "replace").strip()
    proc.stderr.close()
    code = proc.wait()
    if code != 0:
        # wevtutil exits with the Win32 error: 5 is ERROR_ACCESS_DENIED.
        if code == 5 or "denied" in stderr.lower():
            raise PermissionError(ACCESS_DENIED)
        raise OSError("wevtutil exited with status %d: %s" % (code, stderr[-300:]))
    if problem is not None:
        raise problem
    events.sort(key=lambda e: (e["record_id"] is None, e["record_id"]))
    return events, len(events) >= limit


def collect_windows_events(ctx, limit, popen=None):
    bookmark = bookmark_for(ctx, "windows")
    events, truncated = read_events(bookmark, limit, popen)
    ids = [e["record_id"] for e in events if e["record_id"] is not None]
    new_bookmark = {"source": "windows", "record_id": max(ids)} if ids else bookmark
    return events_family("windows", events, new_bookmark, truncated)
