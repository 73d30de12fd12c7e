"""Nothing collected is lost when the database goes away.

- ``directory``: the local spool, one file per round the database did not take
  (atomic, fsynced, 0600, bounded in size with the oldest dropped and counted).
- ``codec``: a round as a spool file's bytes and back (gzip'd JSON).

This package's ``__init__`` imports no SQL: ``spool_status`` is what ``/health``
and ``report`` call while the database is down.
"""

from __future__ import annotations

from fleetstat.spool.directory import (
    Spool,
    Spooled,
    SpoolEntry,
    SpoolError,
    SpoolStatus,
    spool_status,
)

__all__ = ["Spool", "SpoolEntry", "SpoolError", "SpoolStatus", "Spooled", "spool_status"]
