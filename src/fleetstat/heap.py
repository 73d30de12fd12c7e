"""The heap of a fleetstat process: what its start built lives as long as the process.

The start of a round's process builds objects that live until it exits: the
config and the modules (some 77,000 objects before a collect's round, 126,000
with the round's own modules, SQLAlchemy's among them). The cyclic garbage
collector scanned them again at each full collection, 50-150 ms each on the
2-core bench machine, two per 500-host collect and one or two per warm round of
watch. Frozen (``gc.freeze``), they are never scanned again; collection goes on
as before for what the rounds make, so nothing a round leaves behind is kept.
Measured with ``gc.callbacks`` around rounds of the simulated fleet
(docs/performance.md, "Fifth pass").

A round then runs with a young generation of ROUND_YOUNG_OBJECTS, not Python's
default of 700. A round's objects are nearly all freed by reference counting:
at 700 the collector ran 180-220 times in the round of a 500-host collect, for
74-82 ms of CPU (1,600-2,300 objects found in cycles in the whole collect); at
20,000 it runs 4-6 times, 16-28 ms. Peak RSS did not move (82 MB into SQLite,
91 into PostgreSQL), and a cycle waits at most 20,000 allocations to be freed
(docs/performance.md, "Eighth pass").

Here and not in :mod:`fleetstat.app`, which imports asyncssh: ``collect`` enters
:func:`one_shot_heap` before it imports the round's code, so that importing it
runs without collections too.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Iterator

ROUND_YOUNG_OBJECTS = 20_000

# The modules a round imports where it uses them (SQLAlchemy's among them): a
# long-running process imports them before it freezes its start.
ROUND_MODULES = (
    "fleetstat.alerts",
    "fleetstat.mail",
    "fleetstat.spool",
    "fleetstat.spool.health",
    "fleetstat.spool.replay",
    "fleetstat.store",
    "fleetstat.store.events",
    "fleetstat.store.outbox",
    "fleetstat.store.retention",
    "fleetstat.store.roundlock",
    "fleetstat.transport.pool",
)

# While one_shot_heap's start runs: whether the collector was on before it.
_collector_was_on: bool | None = None


def freeze_start() -> None:
    """``watch`` and ``serve`` after their start: the round's modules imported, then
    everything made so far frozen, and the young generation of rounds
    (:data:`ROUND_YOUNG_OBJECTS`) from then on. Only the process's own start is
    frozen (no connection or round exists yet), so nothing frozen would ever be
    garbage."""
    for name in ROUND_MODULES:
        importlib.import_module(name)
    gc.freeze()
    _round_young_generation()


def _round_young_generation() -> None:
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, ROUND_YOUNG_OBJECTS), *older)


@contextlib.contextmanager
def one_shot_heap() -> Iterator[None]:
    """``collect``: its start without cyclic garbage collection, frozen when the round
    starts, which then runs with :data:`ROUND_YOUNG_OBJECTS`.

    The store's modules are imported in their thread while the round runs
    (:func:`fleetstat.app.run_round`), so they are not frozen; the start before
    them (the config, asyncssh, fleetstat) is, and the collections the imports
    triggered are saved too. Leaving the block restores the collector as it was
    (frozen objects unfrozen, its thresholds), for a caller that runs commands
    in one process (the tests).
    """
    global _collector_was_on
    enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    gc.disable()
    _collector_was_on = enabled
    try:
        yield
    finally:
        _collector_was_on = None
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()


def round_starts() -> None:
    """The first connection is about to be made: end :func:`one_shot_heap`'s start."""
    global _collector_was_on
    if _collector_was_on is not None:
        if _collector_was_on:
            gc.freeze()
            _round_young_generation()
            gc.enable()
        _collector_was_on = None
