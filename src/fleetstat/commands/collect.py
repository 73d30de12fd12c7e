"""``fleetstat collect``: one round."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import command, config_option, db_option, load_config
from fleetstat.present import (
    RoundProgress,
    mail_line,
    print_summary,
    round_line,
    spool_lines,
)

# sysexits.h EX_UNAVAILABLE, "a service is unavailable": the database did not take
# the round, which is kept in the spool and written when it is back. (75,
# EX_TEMPFAIL, is another round holding the database's round lock.)
EXIT_SPOOLED = 69


@command()
@config_option
@db_option
@click.option("--quiet", "-q", is_flag=True, help="No table, only errors.")
@click.option("--wide", is_flag=True, help="Show every error whole, on more lines if need be.")
@click.option("--host", "hosts", multiple=True, metavar="NAME|IP",
              help="Only this client (name, ip or ip:port); repeat for more.")  # fmt: skip
def collect(config: Path, db: str | None, quiet: bool, wide: bool, hosts: tuple[str, ...]) -> None:
    """Run one round over every client in the config and store the results.

    Exits 0 when every host succeeded, 1 when some failed, 2 on a config error,
    69 when the database did not take the round: it is kept in the local spool and
    the next collect (or watch, or fleetstat spool replay) writes it first, 75 when
    another round holds the database, 130 after Ctrl-C: the first stops starting
    hosts and stores what arrived, the second aborts at once.

    Example: fleetstat collect -c /etc/fleetstat/fleetstat.xml --host web-01
    """
    from fleetstat.heap import one_shot_heap

    with one_shot_heap():  # the round's modules imported without collections too
        from fleetstat.app import collect_once, only_hosts

        cfg = load_config(config)
        if hosts:
            cfg = only_hosts(cfg, list(hosts))
        if cfg.cluster is None:
            with RoundProgress(len(cfg.clients)) as progress:
                outcome = collect_once(cfg, progress=progress, database_url=db)
    if cfg.cluster is not None:  # the workers collect; this process coordinates
        import asyncio

        from fleetstat.cluster.coordinator import run_cluster_round

        outcome = asyncio.run(run_cluster_round(cfg, database_url=db))
    if not quiet:
        print_summary(outcome.round, wide=wide)
    # Plain lines, not rich: under cron or watch (-q, no terminal) the round then
    # never loads rich at all (importing rich.console alone: ~0.06 s of CPU, ~6 MB).
    click.echo(round_line(outcome))
    for line in spool_lines(outcome):
        click.echo(line, err=True)
    if outcome.spooled is None:
        click.echo(mail_line(outcome))
    if outcome.round.not_started:
        click.echo(f"interrupted: {len(outcome.round.results)} host(s) collected and stored, "
                   f"{outcome.round.not_started} not started", err=True)  # fmt: skip
        raise Exit(130)
    if outcome.spooled is not None:
        raise Exit(EXIT_SPOOLED)
    raise Exit(0 if outcome.round.failed_count == 0 else 1)
