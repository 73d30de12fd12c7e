"""``fleetstat alerts``: the alerts firing now."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import command, config_option, db_option, load_config
from fleetstat.present import alerts_table, out, strict_json


@command()
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout.")
@click.option("--pending", is_flag=True, help="Also alerts waiting for their for= count.")
def alerts(config: Path, db: str | None, as_json: bool, pending: bool) -> None:
    """List the alerts firing now: host, rule, value, limit, since, last mailed.

    Example: fleetstat alerts -c /etc/fleetstat/fleetstat.xml --json
    """
    from fleetstat.app import list_alerts

    views = list_alerts(load_config(config), database_url=db, pending=pending)
    if as_json:
        click.echo(strict_json([view.as_json() for view in views]))
    elif not views:
        out().print("no alerts firing", highlight=False)
    else:
        out().print(alerts_table(views))
