"""Alembic environment for fleetstat's own schema.

Run only through ``fleetstat.store.Store`` (or ``fleetstat db upgrade``), which
builds the Alembic config in code and hands over an open connection in
``config.attributes["connection"]``: there is no ``alembic.ini`` and no URL here.
"""

from __future__ import annotations

from alembic import context

from fleetstat.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "fleetstat migrations need a connection in config.attributes['connection']; "
        "run them with fleetstat.store.Store(url).upgrade()"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead. Also
    # what autogenerate should render for later revisions.
    render_as_batch=True,
    compare_type=True,
)

with context.begin_transaction():
    context.run_migrations()
