"""``fleetstat mail``: the alert mail outbox."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import config_option, db_option, group, load_config
from fleetstat.present import entry_json, error_line, mail_table, out, say, strict_json, when


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
        say(f"sent {entry.id}: {entry.subject} -> {', '.join(entry.recipients)}")
    for entry in report.failed:
        state = "failed for good" if entry.failed_at is not None else "failed"
        say(f"{state} {entry.id} (attempt {entry.attempts}): {entry.subject}: "
            f"{entry.last_error}", to_err=True)  # fmt: skip
    for entry in report.failing_for_long:
        line = f"unsent since {when(entry.created_at)}: {entry.id} {entry.subject} "
        say(line + f"({entry.attempts} attempts; last error: {entry.last_error})", to_err=True)
    if report.error is not None:
        error_line(str(report.error))
    say(f"mail: {len(report.sent)} sent, {len(report.failed)} failed, {report.pending} queued")
    if report.given_up:
        say(f"{report.given_up} message(s) failed for good: fleetstat mail list --failed")
    raise Exit(0 if report.ok else 1)


@mail.command("list")
@config_option
@db_option
@click.option("--failed", "which", flag_value="failed", help="Only the messages given up on.")
@click.option("--queued", "which", flag_value="queued", help="Only those still to be sent.")
@click.option("--all", "which", flag_value="all", help="Sent ones too.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="At most this many, newest first.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
def list_mail(config: Path, db: str | None, which: str | None, limit: int, as_json: bool) -> None:
    """The outbox: queued and failed messages, newest first, with attempts and the last error.

    A message is failed when the mail library could not build it or the SMTP
    server refused it permanently (5xx) three times; it is no longer tried.

    Example: fleetstat mail list -c /etc/fleetstat/fleetstat.xml --failed
    """
    from fleetstat.app import list_mail as listing

    entries = listing(load_config(config), database_url=db, which=which or "unsent", limit=limit)
    if as_json:
        click.echo(strict_json([entry_json(entry) for entry in entries]))
        return
    if not entries:
        out().print("no messages", highlight=False)
        return
    out().print(mail_table(entries))
