"""``fleetstat demo``: a real round against simulated hosts on this machine."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import PATH, Duration, command
from fleetstat.present import out


@command()
@click.option("--dir", "workdir", type=PATH, default="demo", show_default=True,
              help="Folder for the demo's files.")  # fmt: skip
@click.option("--hosts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of simulated hosts.")  # fmt: skip
@click.option("--keep", is_flag=True,
              help="Leave the simulated hosts, the mail sink and fleetstat serve (the "
                   "dashboard and the API on 127.0.0.1:8760) running until Ctrl-C.")  # fmt: skip
@click.option("--every", type=Duration(1), default="1m", show_default=True,
              help="With --keep: the interval between rounds.")  # fmt: skip
def demo(workdir: Path, hosts: int, keep: bool, every: float) -> None:
    """Start a local sshd with a few simulated hosts on loopback and collect from them.

    Everything stays on this machine: the hosts are 127.1.0.x addresses served by a
    private OpenSSH sshd, the database is SQLite in --dir.

    With --keep everything stays up afterwards, with the config written, so
    collect, watch, report and a browser (the dashboard at /, the API described at /openapi.json;
    user demo, the password printed) work against it.

    Example: fleetstat demo --hosts 5 --keep --every 30s
    """
    from fleetstat.demo import run_demo

    raise Exit(run_demo(workdir.resolve(), hosts=hosts, console=out(), keep=keep, every=every))
