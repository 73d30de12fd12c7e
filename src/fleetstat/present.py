"""Output for people: the consoles, the tables and the short lines the commands print.

One module so that every place fleetstat shows a host's data to a person (the
``fleetstat`` commands and ``fleetstat demo``) renders it the same way. Library
code never prints; it returns values that these functions render.

rich is imported where a table or a console is made: ``--help``, ``--version``
and ``collect -q`` under cron load none of it (importing rich.console alone
costs ~0.06 s of CPU and ~6 MB).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click

from fleetstat.errors import ConfigError, FleetstatError
from fleetstat.text import ELLIPSIS, visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table
    from rich.text import Text

    from fleetstat.alerts import AlertView
    from fleetstat.app import CollectOutcome
    from fleetstat.model import HostResult, RoundResult
    from fleetstat.spool import SpoolStatus
    from fleetstat.store.outbox import OutboxEntry
    from fleetstat.store.reports import History, HostState


PIPE_WIDTH = 160  # the width of tables written to a pipe or file, unless COLUMNS says


def pipe_width() -> int | None:
    """The width of what goes to stdout: None on a terminal (its own width), else
    ``COLUMNS`` when set (``COLUMNS=80 fleetstat report | less``), else PIPE_WIDTH."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


@functools.cache
def out() -> Console:
    """The stdout console, made on first use, :func:`pipe_width` wide."""
    from rich.console import Console

    # soft_wrap: a line (check-config, a heading) is never broken; tables keep the width.
    return Console(soft_wrap=True, width=pipe_width())


@functools.cache
def err() -> Console:
    """The stderr console, made on first use."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def show_error(exc: FleetstatError) -> int:
    """Print ``exc`` for a person on stderr; return the exit code it calls for."""
    if isinstance(exc, ConfigError):
        from rich.text import Text

        err().print(Text.assemble(("config error", "bold red"), f" ({len(exc.issues)} issue(s)):"))
        for issue in exc.issues:
            say(f"  {issue}", to_err=True)
    else:
        error_line(str(exc))
    return exc.exit_code


def error_line(text: str) -> None:
    _labelled("error:", "bold red", text)


def warn(text: str) -> None:
    _labelled("warning:", "yellow", text)


def _labelled(label: str, style: str, text: str) -> None:
    from rich.text import Text

    # The text is never markup: it may quote a config value or what a host sent.
    err().print(Text.assemble((label, style), " ", visible(text)), highlight=False)


# -- text a host wrote, made inert ------------------------------------------------------


def inert(value: object) -> Text:
    """Text that came from a host (or from a row it filled), for a table or a line.

    A rich ``Text``, so it is never read as markup (``[link=...]``, a stray ``[/]``),
    with every control character shown as a visible picture (``fleetstat.text``), so
    no escape sequence a host sent reaches the terminal.
    """
    from rich.text import Text

    return Text(visible("" if value is None else str(value)))


def inert_lines(text: str) -> Text:
    """Like :func:`inert`, for text of several lines (a mail body)."""
    from rich.text import Text

    return Text(visible(text, newlines=True))


def say(text: str, *, to_err: bool = False, style: str | None = None) -> None:
    """One line for people on stdout (or stderr): never markup, controls visible."""
    from rich.text import Text

    console = err() if to_err else out()
    console.print(Text(visible(text, newlines=True), style=style or ""), highlight=False)


# OWASP "CSV Injection": a cell that starts with one of these is a formula to a
# spreadsheet; a leading single quote makes it text, and it is quoted as a whole.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value for a CSV cell opened by a spreadsheet: text can never start a formula.

    Numbers stay numbers (they are never negative here); text gets its control
    characters shown visibly and a leading ``'`` when it starts like a formula.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return visible(value)


def strict_json(value: object) -> str:
    """Indented, strict JSON (RFC 8259): a NaN or an infinity is written as null."""
    from fleetstat import units

    return units.strict_json(value, indent=2)


# -- figures as text -------------------------------------------------------------------


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "-"


def pct(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def alert_number(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if metric == "load" else f"{value:.1f}%"


def mail_line(outcome: CollectOutcome) -> str:
    return mail_from(
        {
            "mail_sent": outcome.mail_sent,
            "mail_queued": outcome.mail_queued,
            "mail_failed": outcome.mail_failed,
            "mail_error": outcome.mail_error,
        }
    )


def mail_from(fields: Mapping[str, Any]) -> str:
    """The mail line from ``app.deliver_mail``'s ``mail_*`` fields."""
    line = f"mail: {fields.get('mail_sent', 0)} sent, {fields.get('mail_queued', 0)} queued"
    if fields.get("mail_failed"):
        line += f", {fields['mail_failed']} failed"
    if fields.get("mail_error"):
        line += f" ({fields['mail_error']})"
    return line


def round_line(outcome: CollectOutcome) -> str:
    r = outcome.round
    retries = f", {r.retries} retried connection(s)" if r.retries else ""
    seconds = (r.finished_at - r.started_at).total_seconds()
    counts = f"{r.ok_count}/{len(r.results)} ok, {r.failed_count} failed{retries} in {seconds:.1f}s"
    if outcome.spooled is not None:
        where = outcome.spooled.path.name if outcome.spooled.path else "dropped (over the bound)"
        return f"round spooled: {counts}; not stored in {outcome.database}, kept as {where}"
    return f"round {outcome.round_id}: {counts}; stored in {outcome.database}"


def spool_lines(outcome: CollectOutcome) -> list[str]:
    """What the spool did in a round: rounds written first, this one kept, rounds dropped."""
    lines = []
    replayed = outcome.replayed
    if replayed is not None and (replayed.written or replayed.already):
        lines.append(
            f"spool: {replayed.written + replayed.already} earlier round(s) written "
            f"from the spool, {replayed.left} left"
        )
    spooled = outcome.spooled
    if spooled is not None:
        lines.append(f"database unavailable: {outcome.database_error}")
        lines.append(
            f"spool: {spooled.depth} round(s) waiting; the next collect or watch that "
            "reaches the database writes them (or: fleetstat spool replay)"
        )
        if spooled.dropped:
            lines.append(
                f"spool: its bound (<spool max-size>) dropped {len(spooled.dropped)} "
                f"round(s), oldest first: {', '.join(spooled.dropped)}"
            )
    return lines


def spool_status_line(status: SpoolStatus) -> str:
    """``spool: 3 round(s) waiting (oldest ...), 1.2 MiB of 1.0 GiB; 2 dropped``."""
    from fleetstat.units import format_size

    text = f"spool: {status.rounds} round(s) waiting"
    if status.oldest is not None:
        text += f" (oldest {when(status.oldest)})"
    text += f", {format_size(status.bytes)} of {format_size(status.max_bytes)}"
    if status.dropped:
        text += f"; {status.dropped} dropped by the bound (last {when(status.last_dropped_at)})"
    if status.unreadable:
        text += f"; {status.unreadable} unreadable in {status.directory / 'unreadable'}"
    return f"{text}; in {status.directory}"


# -- tables ----------------------------------------------------------------------------


def _table(columns: list[tuple[str, str]], *, flexible: Sequence[str] = ()) -> Table:
    """A table whose columns never wrap, but those named in ``flexible``: when the
    table is wider than the console, only those give up width (the widest first)."""
    from rich import box
    from rich.table import Table

    # No vertical rules: on 80 columns the 16 characters they take are the error's.
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold",  # type: ignore[arg-type]
                         no_wrap=name not in flexible)  # fmt: skip
    return table


def _row(table: Table, *cells: str | Text) -> None:
    """A row whose text cells are never read as markup (``inert``)."""
    table.add_row(*(cell if not isinstance(cell, str) else inert(cell) for cell in cells))


def _styled(text: str, style: str) -> Text:
    from rich.text import Text

    return Text(visible(text), style=style)


def _cut(text: str, wide: bool) -> Text:
    """A cell that stays on one line, cut with an ellipsis at its column's width
    (``wide``: folded onto more lines instead, all of it shown). Inert like
    :func:`inert`: an error may quote what a host printed."""
    from rich.text import Text

    if wide:
        return Text(visible(text), overflow="fold")
    return Text(visible(text), no_wrap=True, overflow="ellipsis")


SUMMARY_COLUMNS = (
    ("host", "left"), ("address", "left"), ("status", "left"), ("CPU %", "right"),
    ("memory %", "right"), ("uptime", "right"), ("error", "left"),
)  # fmt: skip


def summary_rows(result: RoundResult) -> list[tuple[str, ...]]:
    """The cells of :func:`summary_table`, one tuple per host, every one visible text."""
    rows: list[tuple[str, ...]] = []
    for r in result.results:
        doc = r.document
        rows.append((
            visible(r.client.label),
            visible(r.client.address),
            r.status.value,
            pct(doc.cpu.used_percent if doc and doc.cpu else None),
            pct(doc.memory.used_percent if doc and doc.memory else None),
            human_duration(doc.uptime_seconds if doc else None),
            visible(r.error or ""),
        ))  # fmt: skip
    return rows


def summary_table(result: RoundResult, *, wide: bool = False) -> Table:
    """One row per host of a round: status, CPU, memory, uptime, error.

    Status and address never wrap; the error takes the width that is left and is
    cut with an ellipsis (``wide``: shown whole, on more lines).
    """
    table = _table(list(SUMMARY_COLUMNS), flexible=("error",))
    for r, cells in zip(result.results, summary_rows(result), strict=True):
        _row(
            table,
            *cells[:2],
            _styled(cells[2], "green" if r.ok else "red"),
            *cells[3:6],
            _cut(cells[6], wide),
        )
    return table


def print_summary(result: RoundResult, *, wide: bool = False) -> None:
    """:func:`summary_table` on stdout: to a pipe or a file (cron, a log), as plain
    lines laid out here (:func:`plain_table`), the same text rich writes there.

    rich measures and renders every cell of a table through its own layers: for a
    500-host round 205-303 ms of CPU, 0.4-0.6 ms per host, about a tenth of what
    the round itself costs the central machine (``bench/table_cost.py``). On a
    terminal (colours) and with ``wide`` (errors folded onto more lines) rich lays
    it out.
    """
    width = pipe_width()
    if width is not None and not wide:
        text = plain_table(SUMMARY_COLUMNS, summary_rows(result), width)
        if text is not None:
            click.echo(text, nl=False)
            return
    out().print(summary_table(result, wide=wide))


def plain_table(
    columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], width: int
) -> str | None:
    """The text of a :func:`_table` without styles, its last column the flexible one
    (cut with an ellipsis to what is left of ``width``), as rich writes it to a
    file: each cell padded to its column and followed by its padding space and the
    rule's (two between columns, one after the last), a rule of ``─`` under the
    header. Cells must be visible text (:func:`visible`). None when the other
    columns do not leave the last one room for its header (rich then folds the
    header onto more lines, or squeezes every column) or a cell holds a tab (rich
    expands it): this does not repeat those.
    """
    widths = [_cells(name) for name, _ in columns]
    for row in rows:
        for i, cell in enumerate(row):
            if "\t" in cell:  # rich expands tabs by where the cell starts
                return None
            size = _cells(cell)
            if size > widths[i]:
                widths[i] = size
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)  # each fixed column and its spaces
    room = width - fixed - 1  # the last column's, before its own space
    if room < _cells(columns[-1][0]):
        return None
    widths[-1] = min(widths[-1], room)
    lines = []
    for row in (tuple(name for name, _ in columns), *rows):
        parts = []
        for cell, size, (_, justify) in zip(row, widths, columns, strict=True):
            parts.append(_fit(cell, size, justify))
        lines.append("  ".join(parts) + " ")
    lines.insert(1, "─" * (sum(widths) + 2 * len(widths) - 1))
    return "\n".join(lines) + "\n"


def _cells(text: str) -> int:
    """Terminal cells ``text`` takes (rich's measure: East Asian wide characters two)."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def _fit(text: str, size: int, justify: str) -> str:
    """``text`` padded to ``size`` cells, or cut to them with an ellipsis."""
    used = _cells(text)
    if used > size:
        if text.isascii():
            text = text[: size - 1] + ELLIPSIS
        else:
            from rich.cells import set_cell_size

            text = set_cell_size(text, size - 1) + ELLIPSIS
        used = _cells(text)
    pad = " " * (size - used)
    return pad + text if justify == "right" else text + pad


# `report` on a console too narrow for every column and a failing host's error
# (at least ERROR_ROOM characters of it) leaves out what is least needed at a
# glance: swap, load, uptime and the fullest disk's mount (its percentage stays),
# and puts the alerts behind the error in one column. At 80 columns the error had
# 11 characters or none, with every other column squeezed.
ERROR_ROOM = 40


def report_table(states: list[HostState], *, wide: bool = False, width: int | None = None) -> Table:
    """``fleetstat report``: the latest state of each host (disk: the fullest one), and
    the last error of those failing (cut to the width that is left, as in
    :func:`summary_table`; alerts and the error give way, nothing else wraps).

    On a ``width`` too narrow for all of it (see :data:`ERROR_ROOM`; never with
    ``wide``), the narrow layout: host, status, age, CPU%, mem%, disk%, and the
    error then the alerts in the rest of the line.
    """
    rows = [_report_row(s) for s in states]
    if wide or width is None or width >= _full_width(rows, any(s.failing for s in states)):
        table = _table([
            ("host", "left"), ("status", "left"), ("age", "right"), ("CPU%", "right"),
            ("mem%", "right"), ("swap%", "right"), ("disk", "left"), ("load", "right"),
            ("uptime", "right"), ("alerts", "left"), ("last error", "left"),
        ], flexible=("alerts", "last error"))  # fmt: skip
        for s, row in zip(states, rows, strict=True):
            alerts = _styled(row["alerts"], "red")
            _row(table, *_report_lead(s, row), row["swap"], row["disk"], row["load"],
                 row["uptime"], alerts, _cut(row["error"], wide))  # fmt: skip
        return table
    table = _table([
        ("host", "left"), ("status", "left"), ("age", "right"), ("CPU%", "right"),
        ("mem%", "right"), ("disk%", "right"), ("last error · alerts", "left"),
    ], flexible=("last error · alerts",))  # fmt: skip
    for s, row in zip(states, rows, strict=True):
        last = _cut(" · ".join(part for part in (row["error"], row["alerts"]) if part), False)
        if row["alerts"]:
            last.stylize("red", len(last) - len(visible(row["alerts"])))
        _row(table, *_report_lead(s, row), pct(s.disk_max_percent), last)
    return table


def _report_row(s: HostState) -> dict[str, str]:
    """A report row's cells as plain text (their widths choose the layout)."""
    cpu = s.cpu_interval_percent if s.cpu_interval_percent is not None else s.cpu_percent
    return {
        "host": s.name,
        "status": s.status,
        "age": human_duration(s.sample_age_seconds) if s.sample_age_seconds is not None
        else "never",
        "cpu": pct(cpu),
        "mem": pct(s.memory_percent),
        "swap": pct(s.swap_percent),
        "disk": f"{pct(s.disk_max_percent)}% {s.disk_max_mount}" if s.disk_max_mount else "-",
        "load": f"{s.load1:.2f}" if s.load1 is not None else "-",
        "uptime": human_duration(s.uptime_seconds),
        "alerts": " ".join(s.alerts),
        "error": s.error or "" if s.failing else "",
    }  # fmt: skip


def _report_lead(s: HostState, row: dict[str, str]) -> list[str | Text]:
    status = _styled(row["status"], "green" if s.status == "ok" else "red")
    return [row["host"], status, row["age"], row["cpu"], row["mem"]]


def _full_width(rows: list[dict[str, str]], failing: bool) -> int:
    """The console width the full layout needs: every column but the error at its
    widest (with its padding and the space between columns), then room for the error."""
    headers = {"host": "host", "status": "status", "age": "age", "cpu": "CPU%", "mem": "mem%",
               "swap": "swap%", "disk": "disk", "load": "load", "uptime": "uptime",
               "alerts": "alerts"}  # fmt: skip
    fixed = sum(
        2 + max([len(title), *(len(visible(row[key])) for row in rows)])
        for key, title in headers.items()
    )
    return fixed + (ERROR_ROOM if failing else len("last error"))


def alerts_table(views: list[AlertView]) -> Table:
    """``fleetstat alerts``: one row per firing (or pending) alert."""
    names = ("host", "address", "rule", "state", "value", "limit", "since", "last mailed")
    table = _table([(name, "left") for name in names])
    for view in views:
        _row(
            table,
            view.host,
            f"{view.client_ip}:{view.client_port}",
            view.rule,
            view.state,
            alert_number(view.metric, view.value),
            alert_number(view.metric, view.limit),
            when(view.since),
            when(view.last_notified_at),
        )
    return table


def mail_table(entries: Sequence[OutboxEntry]) -> Table:
    """``fleetstat mail list``: one row per message, newest first."""
    names = ("id", "created", "state", "kind", "to", "subject", "tries", "next try", "last error")
    table = _table([(name, "right" if name in ("id", "tries") else "left") for name in names])
    for entry in entries:
        retry = when(entry.next_attempt_at) if entry.state == "queued" else "-"
        _row(
            table,
            str(entry.id),
            when(entry.created_at),
            entry.state,
            entry.kind,
            inert(", ".join(entry.recipients)),
            inert(entry.subject),
            str(entry.attempts),
            retry,
            inert(entry.last_error or ""),
        )
    return table


def entry_json(entry: OutboxEntry) -> dict[str, object]:
    """An outbox row for ``mail list --json`` (without its body)."""
    return {
        "id": entry.id,
        "created_at": iso(entry.created_at),
        "state": entry.state,
        "kind": entry.kind,
        "client": f"{entry.client_ip}:{entry.client_port}" if entry.client_ip else None,
        "recipients": list(entry.recipients),
        "subject": entry.subject,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "next_attempt_at": iso(entry.next_attempt_at),
        "sent_at": iso(entry.sent_at),
        "failed_at": iso(entry.failed_at),
    }


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], low: float = 0.0, high: float = 100.0) -> str:
    """One character per value on a fixed scale (percentages: 0-100); a space for None."""
    span = high - low
    chars = []
    for value in values:
        if value is None:
            chars.append(" ")
            continue
        ratio = 0.0 if span <= 0 else (min(max(value, low), high) - low) / span
        chars.append(SPARK[min(len(SPARK) - 1, int(ratio * len(SPARK)))])
    return "".join(chars)


def print_history(found: History) -> None:
    """``fleetstat history``: the heading, the min/avg/max table and two sparklines."""
    console = out()
    say(f"{found.name} ({found.client_ip}:{found.client_port}) since {when(found.since)}: "
        f"{found.samples} sample(s), {found.failed_attempts} failed of {found.attempts} "
        "attempt(s)")  # fmt: skip
    say(f"first {when(found.first_sample_at)}, last {when(found.last_sample_at)}")
    table = _table([("figure", "left"), ("min", "right"), ("avg", "right"), ("max", "right")])
    for name, stat in found.stats.items():
        if name == "load":  # a load average, not a percentage
            _row(table, "load1", *(f"{v:.2f}" if v is not None else "-"
                                   for v in (stat.min, stat.avg, stat.max)))  # fmt: skip
            continue
        _row(table, f"{name} %", pct(stat.min), pct(stat.avg), pct(stat.max))
    console.print(table)
    step = human_duration(found.bucket_seconds) if found.bucket_seconds >= 60 else (
        f"{found.bucket_seconds}s")  # fmt: skip
    say(f"CPU    |{sparkline(found.cpu_series)}|  (0-100 %, one mark per {step})")
    say(f"memory |{sparkline(found.memory_series)}|")


class RoundProgress:
    """A progress bar on a terminal; one plain line per failed host otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RoundProgress:
        if sys.stderr.isatty() and err().is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "collecting", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=err(), transient=True,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task("hosts", total=self.total)
        return self

    def __call__(self, result: HostResult) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)
        elif not result.ok:
            click.echo(
                visible(
                    f"{result.status.value} {result.client.address} "
                    f"{result.duration_seconds:.2f}s {result.error or ''}"
                ),
                err=True,
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
