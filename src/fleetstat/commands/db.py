"""``fleetstat db``: schema commands."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import PATH, db_option, group, load_config
from fleetstat.errors import UsageError
from fleetstat.present import out


@group("db")
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--config", "-c", type=PATH, help="The XML config.")
@db_option
def upgrade(config: Path | None, db: str | None) -> None:
    """Create or upgrade the database schema to the latest revision.

    Example: fleetstat db upgrade -c fleetstat.xml   (or --db postgresql://host/fleetstat)
    """
    from fleetstat.store import Store

    url = db or (load_config(config).database_url if config else None)
    if url is None:
        raise UsageError("give --config FILE or --db URL")
    store = Store(url)
    store.upgrade()
    out().print(f"{store.display_url}: at revision {store.current_revision()}", highlight=False)
