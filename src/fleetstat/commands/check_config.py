"""``fleetstat check-config``."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import PATH, command, load_config
from fleetstat.config import secret_issues
from fleetstat.config.dburl import mask_database_url
from fleetstat.config.sshconfig import describe
from fleetstat.errors import UsageError
from fleetstat.present import out, warn


@command("check-config")
@click.argument("file", required=False, type=PATH, help="The XML config file.")
@click.option("--config", "-c", type=PATH, help="Same, as an option.")
@click.option(
    "--resolve",
    "resolve",
    metavar="HOST",
    multiple=True,
    help="Show what this client (its ip, name or ip:port) logs in with: ssh_config "
    "applied, jump hosts, keys, agent. Repeatable.",
)
def check_config(file: Path | None, config: Path | None, resolve: tuple[str, ...]) -> None:
    """Validate a config file and report every problem at once.

    Example: fleetstat check-config /etc/fleetstat/fleetstat.xml --resolve web-01
    """
    path = file or config
    if path is None:
        raise UsageError("give the config file: fleetstat check-config FILE")
    cfg = load_config(path)
    # Not errors here: the commands that log in with them say so when they run.
    for issue in secret_issues(cfg, ("database", "smtp", "client")):
        warn(f"{issue} - collect and watch need it")
    alerts = sum(len(c.alerts) for c in cfg.clients)
    out().print(
        f"{path}: ok, {len(cfg.clients)} client(s), {alerts} alert rule(s), "
        f"database {mask_database_url(cfg.database_url)}",
        highlight=False,
        markup=False,
    )
    for host in resolve:
        matches = [c for c in cfg.clients if host in (c.ip, c.name, c.address)]
        if not matches:
            raise UsageError(f"no client {host!r} in {path}: give a client's ip, name or ip:port")
        for client in matches:
            width = max(len(what) for what, _ in describe(client))
            for what, value in describe(client):
                out().print(f"  {what:<{width}}  {value}", highlight=False, markup=False)
