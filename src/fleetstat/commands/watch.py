"""``fleetstat watch``: rounds on a schedule."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import Duration, command, config_option, db_option, load_config


@command()
@config_option
@click.option("--every", type=Duration(), default="5m", show_default=True,
              help="Interval between round starts: 30s, 5m, 1h.")  # fmt: skip
@db_option
def watch(config: Path, every: float, db: str | None) -> None:
    """Collect every --every until SIGTERM or Ctrl-C; retention once a day.

    Rounds never overlap (a slow round delays the next, and says so). SIGTERM or
    Ctrl-C finishes the round in flight, flushes the outbox and exits 0; a second
    one aborts. One key=value log line per round and per failed host on stderr
    (journald-ready). See contrib/fleetstat.service for systemd.

    Example: fleetstat watch -c /etc/fleetstat/fleetstat.xml --every 5m
    """
    # Imported here: the scheduler loads asyncio, which --help does not need.
    from fleetstat.heap import freeze_start
    from fleetstat.watch import (
        MIN_EVERY_SECONDS,
        catch_stop_signals_early,
        configure_logging,
        run_watch,
    )

    catch_stop_signals_early()  # a stop during start-up is a clean stop, exit 0

    if every < MIN_EVERY_SECONDS:
        raise click.BadParameter(f"give at least {MIN_EVERY_SECONDS:g}s", param_hint="'--every'")
    cfg = load_config(config)
    configure_logging()
    freeze_start()
    raise Exit(run_watch(cfg, every, database_url=db))
