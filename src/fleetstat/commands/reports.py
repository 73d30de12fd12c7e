"""``fleetstat report``, ``history`` and ``prune``: reading and trimming what is stored."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fleetstat.commands.common import Duration, command, config_option, db_option, load_config
from fleetstat.errors import FleetstatError
from fleetstat.present import (
    csv_cell,
    out,
    print_history,
    report_table,
    spool_status_line,
    strict_json,
)

if TYPE_CHECKING:
    from fleetstat.config import Config


@command()
@config_option
@db_option
@click.option("--host", multiple=True, help="Only this client (name, ip or ip:port).")
@click.option("--failing", is_flag=True, help="Only hosts whose last attempt failed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row on stdout.")
@click.option("--wide", is_flag=True, help="Show every error whole, on more lines if need be.")
def report(
    config: Path,
    db: str | None,
    host: tuple[str, ...],
    failing: bool,
    as_json: bool,
    as_csv: bool,
    wide: bool,
) -> None:
    """The latest state of every configured host: status, last sample, figures, alerts.

    Example: fleetstat report -c /etc/fleetstat/fleetstat.xml --failing
    """
    from fleetstat.app import report as latest_report

    cfg = load_config(config)
    # The spool's depth says what the database does not hold yet; shown even (and
    # first) when the database cannot be read.
    spool_line = _spool_line(cfg)
    try:
        states = latest_report(cfg, database_url=db, hosts=list(host) or None, failing=failing)
    except FleetstatError:
        if spool_line:
            click.echo(spool_line, err=True)
        raise
    if spool_line:
        click.echo(spool_line, err=as_json or as_csv)
    if as_json:
        click.echo(strict_json([state.as_json() for state in states]))
    elif as_csv:
        import csv

        rows = [state.as_json() for state in states]
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["host"])
        writer.writeheader()
        for row in rows:
            cells = row | {"alerts": " ".join(row["alerts"])}
            writer.writerow({name: csv_cell(value) for name, value in cells.items()})
    else:
        console = out()
        console.print(report_table(states, wide=wide, width=console.width))


def _spool_line(config: Config) -> str | None:
    """The spool's status line when rounds wait there or were dropped; else None."""
    from fleetstat.spool import SpoolError, spool_status

    try:
        status = spool_status(config)
    except SpoolError as exc:
        return f"spool: {exc}"
    if not (status.rounds or status.dropped or status.unreadable):
        return None
    return spool_status_line(status)


@command()
@click.argument("host", help="The client: its name, ip or ip:port.")
@config_option
@db_option
@click.option("--since", type=Duration(0, inclusive=False), default="7d", show_default=True,
              help="How far back: 1h, 7d, 30d.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--width", type=click.IntRange(min=1), default=48, show_default=True,
              help="Plot width in characters.")  # fmt: skip
def history(
    host: str, config: Path, db: str | None, since: float, as_json: bool, width: int
) -> None:
    """Min/avg/max of CPU, memory, swap and disk over a window, with a small plot.

    Example: fleetstat history web-01 -c /etc/fleetstat/fleetstat.xml --since 7d
    """
    from datetime import UTC, datetime, timedelta

    from fleetstat.app import history as host_history

    until = datetime.now(UTC)
    found = host_history(load_config(config), host, until - timedelta(seconds=since),
                         until=until, database_url=db, buckets=width)  # fmt: skip
    if as_json:
        click.echo(strict_json(found.as_json()))
    else:
        print_history(found)


@command()
@config_option
@db_option
def prune(config: Path, db: str | None) -> None:
    """Delete rows older than <retention> allows, in small batches; keeps what is needed.

    Never deleted: each host's latest sample and attempt, the rows of hosts with an
    unresolved alert, unsent mail. watch does this once a day by itself.

    Example: fleetstat prune -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.app import prune_now

    cfg = load_config(config)
    if cfg.retention == type(cfg.retention)():
        out().print(f"{config}: no <retention>: everything is kept", highlight=False)
        return
    done = prune_now(cfg, database_url=db)
    out().print(f"pruned {done.samples} sample(s), {done.attempts} attempt(s), {done.events} "
                f"event(s), {done.mail} sent mail, {done.rounds} round(s), {done.hourly} "
                f"hourly row(s) in {done.batches} "
                f"batch(es), {done.seconds:.1f}s", highlight=False)  # fmt: skip
