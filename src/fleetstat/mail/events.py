"""The security events mail: every run, one plain-text message per host that reports events.

Windows hosts always get one (the assignment mails their Security log on every
run, whatever the alert state); Linux hosts when the client has
``<events enabled="true"/>``. The message lists the events the round *stored*
(new ones: an event sent again by a retried round was stored, and mailed, the
first time), or says there were none, and names a reading problem (no right to
read the Security log, no auth.log) when there was one. Messages go through the
outbox (``kind="events"``) like alert mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from fleetstat.hostfail import describe
from fleetstat.mail.headers import header_text
from fleetstat.mail.outbox import enqueue
from fleetstat.mail.render import SUBJECT_PREFIX, Message, host_label, late_reason
from fleetstat.model import HostResult, RoundResult
from fleetstat.store.errors import each_in_savepoint
from fleetstat.store.events import round_events_in

# A message stays readable (and under mail servers' size limits) whatever the backlog.
MAX_LISTED = 1000
SOURCES = {
    "windows": "Windows Security event log",
    "journal": "systemd journal",
    "authlog": "syslog auth file",
}


def wants_event_mail(result: HostResult) -> bool:
    """A successful host that is Windows, or whose client enabled events."""
    if not result.ok or result.document is None:
        return False
    return result.document.platform == "windows" or result.client.events


def _when(value: datetime | None) -> str:
    if value is None:
        return "time unknown"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Above this many events the message opens with a count per kind of event: a real
# Security log is mostly start-ups, service logons and audit-setting changes.
TALLY_FROM = 10


def _what(row: Any) -> str:
    data = row.data if isinstance(row.data, dict) else {}
    return f"event {row.event_id}" if row.event_id is not None else str(data.get("kind") or "event")


def _tally(rows: Sequence[Any]) -> list[str]:
    """``  583  event 4624  An account was successfully logged on``, most frequent first."""
    counts: dict[str, int] = {}
    titles: dict[str, str] = {}
    for row in rows:
        what = _what(row)
        counts[what] = counts.get(what, 0) + 1
        # Summaries start with the event's title, then ": " and the particulars.
        title = (row.summary or "").split(": ", 1)[0]
        titles.setdefault(what, "" if title.lower() == what.lower() else title)
    width = len(str(max(counts.values())))
    ranked = sorted(counts, key=lambda what: (-counts[what], what))
    return [f"  {counts[w]:>{width}}  {w}  {titles[w]}".rstrip() for w in ranked]


def _event_lines(row: Any) -> list[str]:
    what = _what(row)
    head = [_when(row.occurred_at), what]
    head.append(f"account {row.account}" if row.account else "account -")
    head.append(f"from {row.source_address}" if row.source_address else "from -")
    return ["  ".join(head), f"    {row.summary or '-'}"]


def render_events_message(
    result: HostResult, rows: Sequence[Any], now: datetime, late: datetime | None = None
) -> Message:
    """Subject and body for one host's events of this round (``rows``: stored events);
    ``late``: the round is stored only then (from the spool), and the body says so."""
    document = result.document
    label = host_label(result.client, document)
    family = document.security_events if document is not None else None
    count = len(rows)
    if count:
        noun = "event" if count == 1 else "events"
        subject = f"{SUBJECT_PREFIX} {count} new security {noun} on {label}"
    else:
        subject = f"{SUBJECT_PREFIX} no new security events on {label}"
    lines = [f"Security events on {label}, collected {_when(now)}."]
    if late is not None:
        lines.append(f"Late: {late_reason(now, late)}.")
    if family is not None and family.source:
        lines.append(f"Source: {SOURCES.get(family.source, family.source)}.")
    problem = document.errors.get("security_events") if document is not None else None
    if problem:
        lines += ["", f"The events could not be read: {problem}"]
    if family is not None and family.warning:
        lines += ["", f"Note: {family.warning}"]
    lines.append("")
    if count:
        noun = "event" if count == 1 else "events"
        if count > TALLY_FROM:
            lines += ["By kind:", *_tally(rows), ""]
        lines.append(f"{count} new {noun} (time, event, account, source address, summary):")
        lines.append("")
        for row in rows[:MAX_LISTED]:
            lines += _event_lines(row)
        if count > MAX_LISTED:
            lines.append(f"... and {count - MAX_LISTED} more in the security_events table.")
    elif not problem:
        lines.append("There were no new security events since the last run.")
    if family is not None and family.truncated:
        lines += [
            "",
            "More events are waiting on the host than one run reads (<events max>); "
            "the next runs continue where this one stopped.",
        ]
    lines += ["", "-- ", "fleetstat"]
    return Message(
        recipients=tuple(result.client.mail),
        subject=header_text(subject),
        body="\n".join(lines) + "\n",
    )


def queue_event_mail(
    conn: sa.Connection,
    round: RoundResult,
    round_id: int,
    *,
    url: URL,
    now: datetime | None = None,
    late: datetime | None = None,
) -> dict[tuple[str, int], str]:
    """Enqueue this round's events mail for every host that wants one; the hosts it failed for.

    Runs inside the transaction that stores the round (``Store.write_round(then=...)``):
    the events, the bookmark derived from them and their mail commit together, so a
    crash can neither lose the mail of stored events nor mail events twice. A host
    whose message cannot be rendered or queued is returned with the reason (the
    store marks it failed); the others' mail is queued all the same.
    """
    now = now or datetime.now(UTC)
    hosts = [r for r in round.results if wants_event_mail(r) and r.client.mail]
    if not hosts:
        return {}
    stored = round_events_in(conn, round_id, hosts)
    failures: dict[tuple[str, int], str] = {}
    messages: list[tuple[Message, str, int]] = []
    for r in hosts:
        key = (r.client.ip, r.client.port)
        try:
            messages.append((render_events_message(r, stored.get(key, []), now, late), *key))
        except Exception as exc:  # this host's mail only
            failures[key] = describe(exc)

    def queue(conn: sa.Connection, batch: Sequence[tuple[Message, str, int]]) -> None:
        enqueue(conn, batch, now=late or now, kind="events")

    for index, why in each_in_savepoint(conn, url, messages, queue).items():
        failures[messages[index][1], messages[index][2]] = why
    return failures
