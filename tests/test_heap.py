"""The start of a round's process is frozen for the garbage collector (heap.py)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from fleet_fixtures import fleet_config

from fleetstat import app, heap
from fleetstat.simfleet import SimFleet


def test_a_one_shot_start_runs_without_collection_and_is_frozen_when_the_round_starts() -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    with heap.one_shot_heap():
        assert not gc.isenabled()
        kept = [[] for _ in range(10)]  # made during the start
        heap.round_starts()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (heap.ROUND_YOUNG_OBJECTS, *thresholds[1:])
        frozen = gc.get_freeze_count()
        heap.round_starts()  # once per start only
        assert gc.get_freeze_count() == frozen
    # Left as it was found: a process running several commands keeps its collector.
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def test_without_a_one_shot_start_a_round_freezes_nothing() -> None:
    thresholds = gc.get_threshold()
    heap.round_starts()  # watch, serve, the tests: no one_shot_heap around the round
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def test_a_collector_left_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        with heap.one_shot_heap():
            heap.round_starts()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_round_in_the_block_leaves_the_collector_as_it_was(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    config = fleet_config(tmp_path, sim_fleet, [0, 1])
    with heap.one_shot_heap():
        outcome = app.collect_once(config)
        assert gc.isenabled()  # the round started: collection resumed
    assert outcome.round.ok_count == 2
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_long_running_start_imports_the_rounds_modules_then_freezes() -> None:
    code = (
        "import gc, json, sys\n"
        "from fleetstat.heap import ROUND_MODULES, freeze_start\n"
        "before = [m for m in ROUND_MODULES if m in sys.modules]\n"
        "freeze_start()\n"
        "print(json.dumps({'before': before, 'missing': [m for m in ROUND_MODULES"
        " if m not in sys.modules], 'frozen': gc.get_freeze_count(),"
        " 'enabled': gc.isenabled(), 'young': gc.get_threshold()[0]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    assert "fleetstat.store" not in found["before"]  # app itself does not import the store
    assert found["missing"] == []
    assert found["frozen"] > 50_000  # SQLAlchemy's and asyncssh's objects among them
    assert found["enabled"] is True
    assert found["young"] == heap.ROUND_YOUNG_OBJECTS
