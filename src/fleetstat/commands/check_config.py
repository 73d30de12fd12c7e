"""``fleetstat check-config``."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import PATH, command, load_config
from fleetstat.errors import UsageError
from fleetstat.present import out


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
    alerts = sum(len(c.alerts) for c in cfg.clients)
    out().print(
        f"{path}: ok, {len(cfg.clients)} client(s), {alerts} alert rule(s), "
        f"database {cfg.database_url}",
        highlight=False,
    )
