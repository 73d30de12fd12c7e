"""``fleetstat worker`` and ``fleetstat cluster status``: rounds shared by workers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import (
    Duration,
    command,
    config_option,
    db_option,
    group,
    load_config,
)


def _zone(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from fleetstat.config.validate import Invalid, check_zone

    if value is None:
        return None
    try:
        return check_zone(value)
    except Invalid as exc:
        raise click.BadParameter(f"{exc.message}: {exc.fix}") from None


@command()
@config_option
@click.option(
    "--zone",
    callback=_zone,
    metavar="NAME",
    help="Take the hosts of this zone (their zone=); default: the hosts without one.",
)
@click.option(
    "--name",
    metavar="NAME",
    help="This worker's name (its queue): default HOST-ZONE-PID; "
    "systemd's fleetstat-worker@N gives HOST-N.",
)
@click.option(
    "--shards", type=click.IntRange(1, 64), default=2, show_default=True, help="Shards run at once."
)
@db_option
def worker(config: Path, zone: str | None, name: str | None, shards: int, db: str | None) -> None:
    """Run a worker of the <cluster>: collect the shards the coordinator sends.

    The coordinator is watch or serve (or collect) with the same config: it
    places each host on a live worker of its zone and sends the shards over the
    broker; the worker runs them and commits each in one transaction. SIGTERM or
    Ctrl-C finishes the shards in flight and exits 0. See contrib/fleetstat-worker@.service.

    Example: fleetstat worker -c /etc/fleetstat/fleetstat.xml --zone dc2
    """
    from fleetstat.cluster.worker import run_worker
    from fleetstat.watch import configure_logging

    cfg = load_config(config)
    configure_logging()
    raise Exit(run_worker(cfg, zone=zone, name=name, threads=shards, database_url=db))


@group("cluster")
def cluster() -> None:
    """The workers of a <cluster> and how their shards went."""


@cluster.command("status")
@config_option
@db_option
@click.option("--since", type=Duration(minimum=1), default="1h", show_default=True,
              help="Shard times over this window.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def status(config: Path, db: str | None, since: float, as_json: bool) -> None:
    """Workers by zone with their last heartbeat, and their shard times.

    A worker is "live" while its heartbeat is younger than 3 heartbeats; the
    coordinator places hosts only on live workers. Exits 0, or 1 when a zone
    with hosts has no live worker.

    Example: fleetstat cluster status -c /etc/fleetstat/fleetstat.xml --since 1h
    """
    from fleetstat.cluster.status import cluster_status

    cfg = load_config(config)
    found = cluster_status(cfg, database_url=db, since=timedelta(seconds=since))
    if as_json:
        click.echo(json.dumps(found.as_json(), indent=2))
    else:
        for line in found.lines(datetime.now(UTC)):
            click.echo(line)
    raise Exit(1 if found.zones_without_workers else 0)
