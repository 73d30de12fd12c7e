"""Alembic driven from code: the scripts ship inside the package, no alembic.ini."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Alembic is imported only when a migration has to run: on an up-to-date database
# (every round but the first) its import cost ~11 MB of RSS and ~0.3 s of CPU per
# `fleetstat collect` (measured by bench/round_bench.py). The two cheap readers
# below do what Alembic's would; tests/test_store.py checks they agree.
_REVISION_RE = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(None|['\"]([^'\"]+)['\"])", re.M)


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


def _revision_graph() -> dict[str, str | None]:
    """``{revision: down_revision}`` read from the scripts' module-level assignments."""
    graph: dict[str, str | None] = {}
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = {key: value for key, _, value in _REVISION_RE.findall(script.read_text())}
        if "revision" in found:
            graph[found["revision"]] = found.get("down_revision") or None
    return graph


def head_revision() -> str | None:
    """The newest revision: the one no other script names as its down_revision."""
    graph = _revision_graph()
    heads = set(graph) - {down for down in graph.values() if down}
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory  # branches: let Alembic decide

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    return set(_revision_graph())


def current_revision(connection: Connection) -> str | None:
    """What Alembic's MigrationContext reports: alembic_version's row, None when empty."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return rows[0][0] if len(rows) == 1 else None
