"""Plain-text alert messages: one per host per round, listing each alert.

Pure functions: a host's result and its notices in, a subject and a body out.
Subjects sort in a mailbox by state, then metric, then host::

    [fleetstat] FIRING cpu 93% > 20% on web-01 (10.0.0.5)
    [fleetstat] FIRING disk /var 91% > 85% on db-02 (10.0.0.7) (+1 more)
    [fleetstat] RESOLVED memory 38% < 40% on web-01 (10.0.0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fleetstat.config import AlertRule, Client
from fleetstat.document import Document, Process
from fleetstat.mail.headers import header_text
from fleetstat.model import HostResult, NoticeKind
from fleetstat.units import format_duration, format_size

SUBJECT_PREFIX = "[fleetstat]"
_PERCENT_TYPES = ("memory", "cpu", "cpu-core", "swap", "disk")
_METRIC_WORDS = {
    "memory": "memory used",
    "swap": "swap used",
    "cpu": "CPU busy",
    "cpu-core": "busiest CPU core busy",
    "disk": "disk space used",
    "load": "1-minute load average per CPU core",
    "unreachable": "host did not answer",
}


@dataclass(frozen=True)
class Notice:
    """Something to tell about one alert: it fires, still fires, or resolved."""

    kind: NoticeKind
    rule: AlertRule
    value: float | None  # the rule's metric now; 1.0/0.0 for unreachable
    at: datetime  # when it was evaluated
    since: datetime | None = None  # first breaching round of this episode
    rounds: int = 1  # consecutive rounds in alert
    detail: str | None = None  # which mount (disk), which failure (unreachable)
    repeat_seconds: float = 0.0  # the interval of reminders while firing


@dataclass(frozen=True)
class Message:
    """What goes into ``mail_outbox``: the sender is added when it is sent."""

    recipients: tuple[str, ...]
    subject: str
    body: str


def host_label(client: Client, document: Document | None = None) -> str:
    """``web-01 (10.0.0.5)``: the configured name, else the host's own, and the IP."""
    hostname = document.hostname if document is not None else None
    name = client.name or hostname or None
    return f"{name} ({client.ip})" if name and name != client.ip else client.ip


def fmt_value(rule: AlertRule, value: float | None) -> str:
    if value is None:
        return "-"
    if rule.type == "load":
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.1f}".removesuffix(".0") + "%"


def notice_subject(notice: Notice, label: str) -> str:
    """One notice's subject line without the prefix: ``FIRING cpu 93% > 20% on web-01 (..)``."""
    rule = notice.rule
    state = "RESOLVED" if notice.kind == "resolved" else "FIRING"
    if rule.type == "unreachable":
        why = f" ({notice.detail})" if notice.kind != "resolved" and notice.detail else ""
        return f"{state} unreachable{why} on {label}"
    metric = _metric_name(rule, notice.detail)
    if notice.kind == "resolved":
        compare = f"< {fmt_value(rule, _clear(rule))}"
    else:
        compare = f"> {fmt_value(rule, rule.limit)}"
    return f"{state} {metric} {fmt_value(rule, notice.value)} {compare} on {label}"


def render_message(
    result: HostResult, notices: Sequence[Notice], *, late: datetime | None = None
) -> Message:
    """The message for one host in one round; ``notices`` must not be empty.

    Firing (and repeated) alerts come before resolved ones so that the subject,
    taken from the first, names the most urgent. ``late``: the round was stored
    only then (from the spool, after a database outage); the body says so.
    """
    if not notices:
        raise ValueError("render_message needs at least one notice")
    ordered = sorted(notices, key=lambda n: n.kind == "resolved")
    label = host_label(result.client, result.document)
    subject = f"{SUBJECT_PREFIX} {notice_subject(ordered[0], label)}"
    if len(ordered) > 1:
        subject += f" (+{len(ordered) - 1} more)"
    return Message(
        recipients=result.client.mail,
        subject=header_text(subject),
        body=_body(result, ordered, label, late),
    )


# -- body --------------------------------------------------------------------------


def _body(result: HostResult, notices: Sequence[Notice], label: str, late: datetime | None) -> str:
    client = result.client
    document = result.document if result.ok else None
    firing = sum(1 for n in notices if n.kind != "resolved")
    resolved = len(notices) - firing
    counts = [f"{firing} firing"] if firing else []
    counts += [f"{resolved} resolved"] if resolved else []
    lines = [
        f"fleetstat: {' and '.join(counts)} alert{'s' if len(notices) > 1 else ''} on {label}",
        "",
        f"Host:     {label}, address {client.address}",
    ]
    system = _system_line(document)
    if system:
        lines.append(f"System:   {system}")
    count = _process_count(document)
    if count:
        lines.append(f"Processes: {count}")
    lines.append(f"Checked:  {_when(notices[0].at)}")
    if late is not None:
        lines.append(f"Late:     {late_reason(notices[0].at, late)}")
    if not result.ok:
        lines.append(f"Status:   {result.status.value}: {result.error or 'no answer'}")
    for notice in notices:
        lines += ["", *_notice_lines(notice)]
    lines += _process_lines(document, notices)
    lines += [
        "",
        "-- ",
        "Sent by fleetstat. An alert mails when it starts firing, again every repeat",
        "interval while it fires, and once when it resolves.",
    ]
    return "\n".join(lines) + "\n"


def late_reason(at: datetime, late: datetime) -> str:
    """Why a message about a round checked at ``at`` goes out only at ``late``."""
    delay = format_duration(max(0.0, round((late - at).total_seconds())))
    return (
        f"sent {delay} after the check, at {_when(late)}: the database was unavailable "
        "and the round waited in fleetstat's spool"
    )


def _notice_lines(notice: Notice) -> list[str]:
    rule = notice.rule
    state = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}[notice.kind]
    metric = _metric_name(rule, notice.detail)
    lines = [f"{state}  {metric}"]
    if rule.type == "unreachable":
        if notice.kind == "resolved":
            lines.append("  value:  answered again")
        else:
            lines.append(f"  value:  no answer ({notice.detail or 'failed'})")
    else:
        word = _METRIC_WORDS[rule.type]
        if rule.type == "cpu":
            word += " (average since the last round)" if notice.detail == "interval" else ""
        if rule.scope == "cgroup":
            word = _cgroup_words(notice.detail)
        lines.append(f"  value:  {fmt_value(rule, notice.value)} {word}")
        clear = _clear(rule)
        hysteresis = f", resolves below {fmt_value(rule, clear)}" if clear != rule.limit else ""
        lines.append(f"  limit:  {fmt_value(rule, rule.limit)}{hysteresis}")
    if notice.since is not None:
        lasted = format_duration(max(0.0, round((notice.at - notice.since).total_seconds())))
        if notice.kind == "resolved":
            lines.append(f"  since:  {_when(notice.since)}, resolved after {lasted}")
        else:
            rounds = f"{notice.rounds} round{'s' if notice.rounds != 1 else ''}"
            span = f"{lasted}, {rounds}" if notice.at > notice.since else "this round"
            lines.append(f"  since:  {_when(notice.since)} ({span})")
    if notice.kind != "resolved":
        if notice.repeat_seconds > 0:
            lines.append(f"  repeat: every {format_duration(notice.repeat_seconds)} while firing")
        else:
            lines.append("  repeat: every round while firing")
    return lines


# The rule types whose mail lists each top list (the probe reads the table at
# these rules' limits, collector.top_when).
_TOP_LISTS = (
    ("top_cpu", "Top CPU consumers", frozenset({"cpu", "cpu-core", "load"})),
    ("top_memory", "Top memory consumers", frozenset({"memory", "swap"})),
)


def _process_lines(document: Document | None, notices: Sequence[Notice]) -> list[str]:
    """The top consumers the probe reported, for the alerts they explain, or
    why there are none (the table was not read, could not be, or is empty)."""
    if document is None:
        return []  # the host did not answer: nothing was measured
    types = {n.rule.type for n in notices if n.kind != "resolved"}
    processes = document.processes
    lines: list[str] = []
    for key, title, wanted in _TOP_LISTS:
        if not types & wanted:
            continue
        rows: tuple[Process, ...] | None = getattr(processes, key) if processes else None
        lines += ["", f"{title}:"]
        if not rows:
            lines.append(f"  none: {_why_empty(document, key, rows)}")
            continue
        if key == "top_cpu" and processes is not None:
            window = processes.window_seconds
            over = f"{window:g} s" if window is not None else "a short"
            lines.append(f"  (CPU% over the probe's {over} window, TIME since the process started)")
        lines.append(f"  {'PID':>7}  {'USER':<12} {'CPU%':>6} {'TIME':>10} {'RSS':>10}  COMMAND")
        lines += [_process_row(row) for row in rows]
    return lines


def _why_empty(document: Document, key: str, rows: tuple[Process, ...] | None) -> str:
    """Why a top list is empty, in the reader's terms (host text is already clean)."""
    processes = document.processes
    if processes is None:
        error = document.errors.get("processes")
        if error:
            return f"the probe could not read the process table ({error})"
        return "this host's probe does not report processes"
    if rows is None:
        why = f" ({processes.reason})" if processes.reason else ""
        return (
            f"the probe did not read the process table on this run{why}; it reads it"
            " when its own short sample reaches one of the host's cpu, cpu-core, load,"
            " memory or swap limits"
        )
    if key == "top_cpu":
        return "no process the probe could read had used any CPU time"
    return "no process the probe could read had resident memory"


def _process_row(row: Process) -> str:
    pid = "-" if row.pid is None else str(row.pid)
    user = (row.user or "-")[:12]
    cpu_text = "-" if row.cpu_percent is None else f"{row.cpu_percent:.1f}"
    time_text = "-" if row.cpu_seconds is None else _cpu_time(row.cpu_seconds)
    rss_text = "-" if row.rss_bytes is None else format_size(row.rss_bytes)
    return f"  {pid:>7}  {user:<12} {cpu_text:>6} {time_text:>10} {rss_text:>10}  {row.name or '?'}"


def _cpu_time(seconds: float) -> str:
    """CPU time as top's TIME+ shows it: ``1:23.45`` (minutes), ``26:13:05`` (hours)."""
    seconds = max(0.0, float(seconds))
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}:{rest:05.2f}"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _process_count(document: Document | None) -> str:
    processes = document.processes if document is not None else None
    if processes is None or processes.count is None:
        return ""
    if processes.zombies:
        return (
            f"{processes.count} ({processes.zombies} zombie{'s' if processes.zombies != 1 else ''})"
        )
    return str(processes.count)


def _system_line(document: Document | None) -> str:
    host = document.host if document is not None else None
    if host is None:
        return ""
    parts = [
        f"hostname {host.hostname}" if host.hostname else "",
        host.os or "",
        f"kernel {host.kernel}" if host.kernel else "",
    ]
    return ", ".join(part for part in parts if part)


def _metric_name(rule: AlertRule, detail: str | None) -> str:
    if rule.type == "disk":
        return f"disk {rule.mount or detail or '*'}"
    if rule.type == "cpu-core" and detail:
        return f"cpu-core {detail}"  # which core: "cpu-core cpu3", as top's %Cpu3
    if rule.scope == "cgroup":
        return f"{rule.type} (cgroup)"
    return rule.type


def _cgroup_words(detail: str | None) -> str:
    if detail == "host":
        return "memory used of the host's (no cgroup limit below its RAM)"
    return f"memory used of the limit of cgroup {detail or '?'}"


def _clear(rule: AlertRule) -> float | None:
    return rule.clear if rule.clear is not None else rule.limit


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
