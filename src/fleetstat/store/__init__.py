"""Schema, migrations, the round write and the reads; SQLAlchemy errors stop here.

``Store(url)`` is the public face; ``store.errors(doing)`` is the one boundary where
SQLAlchemy, driver and Alembic errors become ``StoreError`` (store/errors.py), for
every caller that runs SQL. ``headline(document)`` is exported for the parts
(alerts, reports) that want the same figures from a document in hand. The modules
beside ``core`` hold the SQL of one concern each: ``events``, ``outbox`` (the mail
queue's rows), ``reports``, ``retention``, ``accounts``.
"""

from __future__ import annotations

from fleetstat.store.core import RoundSummary, Store, StoredRound, claim_round_alerts
from fleetstat.store.headline import headline

__all__ = ["RoundSummary", "Store", "StoredRound", "claim_round_alerts", "headline"]
