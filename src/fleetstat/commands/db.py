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
    from fleetstat.config import require_secrets
    from fleetstat.store import Store

    if db is None:
        if config is None:
            raise UsageError("give --config FILE or --db URL")
        cfg = load_config(config)
        require_secrets(cfg, "database")  # no SSH or SMTP secret: it logs in to no host
        db = cfg.database_url
    with Store(db) as store:
        store.upgrade()
        revision = store.current_revision()
    out().print(f"{store.display_url}: at revision {revision}", highlight=False, markup=False)
