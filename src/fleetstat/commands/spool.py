"""``fleetstat spool``: the rounds the database did not take, waiting on local disk."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import config_option, db_option, group, load_config
from fleetstat.present import error_line, mail_from, out, spool_status_line

# The same status as `collect` with the database away (sysexits.h EX_UNAVAILABLE).
EXIT_WAITING = 69


@group("spool")
def spool() -> None:
    """Rounds kept on local disk while the database was away."""


@spool.command("replay")
@config_option
@db_option
def replay(config: Path, db: str | None) -> None:
    """Write the spooled rounds into the database now, oldest first, then send their mail.

    collect and watch do this by themselves before their next round. Exits 0 when
    the spool is empty afterwards, 69 when rounds are still waiting (the database
    is still away: nothing is lost, run it again later), 75 when a round holds
    the database's round lock (it writes them itself).

    Example: fleetstat spool replay -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.app import replay_spool

    done = replay_spool(load_config(config), database_url=db)
    report = done.report
    if report.error is not None:
        error_line(f"database unavailable: {report.error}")
    out().print(
        f"spool: {report.written} round(s) written into {done.database}"
        + (f", {report.already} found stored already" if report.already else "")
        + (f", {report.unreadable} unreadable (moved aside)" if report.unreadable else "")
        + f"; {report.left} waiting",
        highlight=False,
        markup=False,
    )
    if done.mail:
        out().print(mail_from(done.mail), highlight=False, markup=False)
    raise Exit(0 if report.complete else EXIT_WAITING)


@spool.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def status(config: Path, as_json: bool) -> None:
    """How many rounds wait in the spool, and how many its size bound dropped.

    Reads only the spool directory: works with the database down.

    Example: fleetstat spool status -c /etc/fleetstat/fleetstat.xml --json
    """
    from fleetstat.spool import spool_status

    found = spool_status(load_config(config))
    if as_json:
        click.echo(json.dumps(found.as_json(), indent=2))
    else:
        out().print(spool_status_line(found), highlight=False, markup=False)
