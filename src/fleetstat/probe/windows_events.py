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
import re  # loaded by xml.etree.ElementTree anyway
import xml.etree.ElementTree as ET

from .events import FIRST_RUN_SECONDS, bookmark_for, events_family
from .windows_event_text import shape_event

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
_CHUNK = 65536

LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}
_AUDIT_FAILURE = 0x10000000000000
_AUDIT_SUCCESS = 0x20000000000000

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


# The newest event alone: what tells a log begun again from a quiet one.
NEWEST_ARGS = ["wevtutil", "qe", "Security", "/f:xml", "/c:1", "/rd:true"]


def _decoder(first):
    """wevtutil writes UTF-8 into a pipe; UTF-16 is recognized too (BOM, or NULs)."""
    if first.startswith(codecs.BOM_UTF16_LE):
        return codecs.getincrementaldecoder("utf-16")("replace")  # drops the BOM
    if first[1:2] == b"\x00":
        return codecs.getincrementaldecoder("utf-16-le")("replace")
    return codecs.getincrementaldecoder("utf-8-sig")("replace")


# XML 1.0 forbids the C0 controls but tab, LF and CR, raw or as character
# references, and expat stops at the first one. A recorded Security log has
# U+0003 in a 4739's MinPasswordAge: such characters become U+FFFD, or that one
# event would fail the batch, and every later run at the same event.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
    r"|&#(?:[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F])|0*(?:[0-8]|1[1-24-9]|2[0-9]|3[01]));"
)
_LONGEST_REFERENCE = 12


def _clean(text, carry=""):
    """(text fit for the parser, the start of a reference to finish with the next chunk)."""
    text = carry + text
    cut = text.rfind("&", max(0, len(text) - _LONGEST_REFERENCE))
    carry = ""
    if cut != -1 and ";" not in text[cut:]:
        text, carry = text[:cut], text[cut:]
    return _CONTROL.sub("\ufffd", text), carry


def iter_events(chunks):
    """Events (dicts) from wevtutil's XML output given as an iterable of byte chunks.

    Each ``<Event>`` element is converted when it ends and then removed from
    the tree, so only one event is ever held.
    """
    parser = ET.XMLPullParser(events=("start", "end"))
    parser.feed("<Events>")
    decoder = None
    root = None
    carry = ""
    for chunk in chunks:
        if decoder is None:
            decoder = _decoder(chunk)
        text, carry = _clean(decoder.decode(chunk), carry)
        parser.feed(text)
        for kind, elem in parser.read_events():
            if kind == "start":
                if root is None:
                    root = elem
            elif elem.tag == NS + "Event":
                yield event_from_element(elem)
                root.clear()
    if decoder is not None:
        parser.feed(_CONTROL.sub("\ufffd", carry + decoder.decode(b"", True)))
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


def iso_time(system_time):
    """``2024-05-14T09:12:33.4567890Z`` -> ``2024-05-14T09:12:33.456789Z`` (microseconds)."""
    if not system_time:
        return None
    value = system_time.strip().rstrip("Z")
    head, dot, fraction = value.partition(".")
    if dot:
        head += "." + (fraction + "000000")[:6]
    return head + "Z"


def _flat(text):
    """Line breaks and tabs inside a value as single spaces.

    Recorded: 4672's PrivilegeList separates its privileges with CR LF and
    three tabs; the server turns such characters in host text into notes, one
    per event, so they are folded here, where they are known to be layout.
    """
    if text is not None and ("\n" in text or "\t" in text or "\r" in text):
        return " ".join(text.split())
    return text


def event_data(elem):
    """EventData's named <Data> (or UserData's fields) as {name: text}."""
    data = {}
    body = elem.find(NS + "EventData")
    if body is not None:
        for i, item in enumerate(body.findall(NS + "Data")):
            data[item.get("Name") or "Data%d" % i] = _flat(item.text)
    user_data = elem.find(NS + "UserData")
    if user_data is not None:
        for wrapper in user_data:
            for item in wrapper:
                data[item.tag.rpartition("}")[2]] = _flat(item.text)
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


def run_wevtutil(args, popen=None):
    """Run wevtutil with ``args`` and parse its output as it streams; the events."""
    import subprocess

    popen = popen or subprocess.Popen
    proc = popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
    return events


def read_events(bookmark, limit, popen=None):
    """(events ascending by record ID, truncated) for ``bookmark``, at most ``limit``."""
    events = run_wevtutil(wevtutil_args(bookmark, limit), popen)
    events.sort(key=lambda e: (e["record_id"] is None, e["record_id"]))
    return events, len(events) >= limit


def _restarted(bookmark, popen):
    """The newest record's ID when it is below the bookmark's: the log began again.

    Not what a clear does: recorded logs show the cleared log's first event
    (1102) numbered after the old ones (14224 after 4657 on one server), so a
    clear is read like any new event. A new log file (the host reinstalled, or
    its log replaced) numbers from 1, and "EventRecordID > bookmark" would find
    nothing until it grew past the old position. Checked only when a run finds
    nothing new, by asking for the newest event alone.
    """
    mark = bookmark.get("record_id") if bookmark else None
    if not isinstance(mark, int) or mark <= 0:
        return None
    newest = run_wevtutil(NEWEST_ARGS, popen)
    record_id = newest[0]["record_id"] if newest else None
    if isinstance(record_id, int) and record_id < mark:
        return record_id
    return None


def collect_windows_events(ctx, limit, popen=None):
    bookmark = bookmark_for(ctx, "windows")
    events, truncated = read_events(bookmark, limit, popen)
    warning = None
    if not events:
        newest = _restarted(bookmark, popen)
        if newest is not None:
            events, truncated = read_events({"source": "windows", "record_id": 0}, limit, popen)
            warning = (
                "the Security log numbers its records from 1 again (newest %d, last read %d): "
                "it is a new log (host reinstalled or log file replaced); read from its start"
                % (newest, bookmark["record_id"])
            )
    ids = [e["record_id"] for e in events if e["record_id"] is not None]
    new_bookmark = {"source": "windows", "record_id": max(ids)} if ids else bookmark
    return events_family("windows", events, new_bookmark, truncated, warning)
