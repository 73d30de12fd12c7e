"""Schema, migrations, the round write and the reads; SQLAlchemy errors stop here.

``Store(url)`` is the whole public face; ``headline(document)`` is exported for the
parts (alerts, reports) that want the same figures from a document in hand.
"""

from __future__ import annotations

from fleetstat.store.core import RoundSummary, Store
from fleetstat.store.headline import headline

__all__ = ["RoundSummary", "Store", "headline"]
