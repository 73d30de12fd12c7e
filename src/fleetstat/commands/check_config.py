"""``fleetstat check-config``."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import PATH, command, load_config
from fleetstat.config import secret_issues
from fleetstat.config.dburl import mask_database_url
from fleetstat.errors import UsageError
from fleetstat.present import out, warn


@command("check-config")
@click.argument("file", required=False, type=PATH, help="The XML config file.")
@click.option("--config", "-c", type=PATH, help="Same, as an option.")
def check_config(file: Path | None, config: Path | None) -> None:
    """Validate a config file and report every problem at once.

    Example: fleetstat check-config /etc/fleetstat/fleetstat.xml
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
