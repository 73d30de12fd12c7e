"""``fleetstat mail``: the alert mail outbox."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import config_option, db_option, group, load_config
from fleetstat.present import err, error_line, out, when


@group("mail")
def mail() -> None:
    """The alert mail outbox."""


@mail.command("flush")
@config_option
@db_option
@click.option("--due-only", is_flag=True, help="Respect the retry backoff (as collect does).")
def flush(config: Path, db: str | None, due_only: bool) -> None:
    """Send the queued alert mail now; exit 1 when anything could not be sent.

    Example: fleetstat mail flush -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.app import flush_mail

    report = flush_mail(load_config(config), database_url=db, everything=not due_only)
    for entry in report.sent:
        out().print(f"sent {entry.id}: {entry.subject} -> {', '.join(entry.recipients)}",
                    highlight=False, markup=False)  # fmt: skip
    for entry in report.failed:
        err().print(f"failed {entry.id} (attempt {entry.attempts}): {entry.subject}: "
                    f"{entry.last_error}", highlight=False, markup=False)  # fmt: skip
    for entry in report.failing_for_long:
        err().print(f"unsent since {when(entry.created_at)}: {entry.id} {entry.subject} "
                    f"({entry.attempts} attempts; last error: {entry.last_error})",
                    highlight=False, markup=False)  # fmt: skip
    if report.error is not None:
        error_line(str(report.error))
    out().print(f"mail: {len(report.sent)} sent, {len(report.failed)} failed, "
                f"{report.pending} queued", highlight=False)  # fmt: skip
    raise Exit(0 if report.ok else 1)
