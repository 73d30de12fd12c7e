"""``fleetstat demo``: a real round against simulated hosts on this machine."""

from __future__ import annotations

from pathlib import Path

import click
from click.exceptions import Exit

from fleetstat.commands.common import PATH, command
from fleetstat.present import out


@command()
@click.option("--dir", "workdir", type=PATH, default="demo", show_default=True,
              help="Folder for the demo's files.")  # fmt: skip
@click.option("--hosts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of simulated hosts.")  # fmt: skip
def demo(workdir: Path, hosts: int) -> None:
    """Start a local sshd with a few simulated hosts on loopback and collect from them.

    Everything stays on this machine: the hosts are 127.1.0.x addresses served by a
    private OpenSSH sshd, the database is SQLite in --dir.

    Example: fleetstat demo --hosts 5
    """
    from fleetstat.demo import run_demo

    raise Exit(run_demo(workdir.resolve(), hosts=hosts, console=out()))
