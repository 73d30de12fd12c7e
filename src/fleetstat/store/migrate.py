"""Alembic driven from code: the scripts ship inside the package, no alembic.ini.

Migrations are found, ordered and applied by Alembic's own API
(:func:`upgrade`: ``ScriptDirectory`` for the revision graph, ``MigrationContext``
for the database's revision, ``command.upgrade``). Asking Alembic costs a start
about 0.15 s of CPU and 11 MB of resident memory (``bench/migrate_cost.py``,
medians of 7 interleaved runs: 427 against 281 ms, 52.6 against 41.1 MB), so it
is asked only when the database is not at the newest revision. :func:`is_current`
answers that without Alembic, from the ``alembic_version`` row and the file names
in ``migrations/versions/``.

That relies on one convention, which ``tests/test_migrate.py`` checks with
Alembic's own graph: each script is ``NNNN_<what>.py`` with ``revision = "NNNN"``,
each chained onto the one before, so the newest revision is the highest number.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleetstat.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCRIPT_GLOB = "[0-9][0-9][0-9][0-9]_*.py"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for fleetstat's scripts; ``env.py`` uses ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Without it Alembic >= 1.16 warns about legacy splitting of version_locations.
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped: the highest ``NNNN`` of the scripts' file names."""
    return max(path.name[:4] for path in (MIGRATIONS / "versions").glob(SCRIPT_GLOB))


def current_revision(connection: Connection) -> str | None:
    """The ``alembic_version`` row (what Alembic's MigrationContext reads); None when empty."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return rows[0][0] if len(rows) == 1 else None


def is_current(connection: Connection) -> bool:
    """True when the database is at the newest revision: nothing to do, no Alembic."""
    return current_revision(connection) == head_revision()


def upgrade(connection: Connection, display_url: str) -> None:
    """Bring the database to the newest revision with Alembic, inside ``connection``'s
    transaction. A revision this fleetstat does not ship (a newer fleetstat upgraded
    the database) is a ``StoreError``, before anything is changed."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise StoreError(
            f"database {display_url} has schema revision {current!r}, which this "
            "fleetstat does not know: it was upgraded by a newer fleetstat"
        )
    command.upgrade(config, "head")
