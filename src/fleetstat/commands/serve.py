"""``fleetstat serve``: the HTTP API (and the rounds) in one process."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import (
    PATH,
    Duration,
    command,
    config_option,
    db_option,
    load_config,
)


def _listen(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    from fleetstat.config.validate import Invalid, parse_listen

    try:
        return parse_listen(value)
    except Invalid as exc:
        raise click.BadParameter(f"{exc.message} ({exc.fix})", param_hint="'--listen'") from None


@command()
@config_option
@click.option("--listen", metavar="HOST:PORT",
              help="Address to serve on [default: <http listen>, else 127.0.0.1:8760]; "
                   "port 0 picks a free one.")  # fmt: skip
@click.option("--no-watch", is_flag=True, help="Serve only; run no rounds in this process.")
@click.option("--every", type=Duration(0.01), default="5m", show_default=True,
              help="Interval between round starts, as for watch.")  # fmt: skip
@click.option("--certfile", type=PATH, help="TLS certificate chain (PEM); with --keyfile.")
@click.option("--keyfile", type=PATH, help="TLS private key (PEM).")
@db_option
def serve(
    config: Path,
    listen: str | None,
    no_watch: bool,
    every: float,
    certfile: Path | None,
    keyfile: Path | None,
    db: str | None,
) -> None:
    """Serve the HTTP API (/api/v1, /metrics, /openapi.json) and run the rounds, in one process.

    Rounds run as with watch unless --no-watch, and can be paused and resumed
    with POST /api/v1/monitoring. People log in with a user from `fleetstat user
    add`; programs use a token from `fleetstat token create`. SIGTERM or Ctrl-C
    finishes the round in flight and stops the server (exit 0); a second aborts.
    Settings also in the config: <http listen="..." certfile="..." keyfile="..."
    metrics-public="true" watch="false"/>.

    Example: fleetstat serve -c /etc/fleetstat/fleetstat.xml --listen 127.0.0.1:8760
    """
    address = _listen(listen)
    if (certfile is None) != (keyfile is None):
        raise click.UsageError("TLS needs both --certfile and --keyfile")
    from fleetstat.heap import freeze_start
    from fleetstat.serve import ServeOptions, run_serve
    from fleetstat.watch import catch_stop_signals_early, configure_logging

    catch_stop_signals_early()  # a stop during start-up is a clean stop, exit 0
    cfg = load_config(config)
    configure_logging()
    options = ServeOptions(
        host=address[0] if address else None,
        port=address[1] if address else None,
        certfile=certfile,
        keyfile=keyfile,
        watch=False if no_watch else None,
        every=every,
        database_url=db,
    )
    freeze_start()
    raise Exit(run_serve(cfg, options))
