"""transport/unlink.py: a finished probe run's asyncssh objects are freed when they
are dropped, against a real sshd, with the cyclic garbage collector off: what is
still alive afterwards would have waited for a full collection."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from fleet_fixtures import fleet_config

from fleetstat.app import load_or_create_key, round_probe
from fleetstat.collector import collect_round, plan_round
from fleetstat.config import Config
from fleetstat.model import RoundResult
from fleetstat.simfleet import SimFleet
from fleetstat.transport import unlink
from fleetstat.transport.pool import ConnectionPool

HOSTS = [0, 1, 2]
# What a probe run makes: each of them used to outlive the run in a reference cycle.
SESSION_TYPES = (
    asyncssh.SSHClientConnection,
    asyncssh.SSHClientProcess,
    asyncssh.SSHClientChannel,
    asyncssh.SSHReader,
    asyncssh.SSHWriter,
)


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The collector off for the test (what is left is what reference counting left)."""
    gc.collect()  # what earlier tests left behind is not this test's
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive() -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, SESSION_TYPES):
            name = type(obj).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts


def _round(config: Config, pool: ConnectionPool | None = None) -> RoundResult:
    plan = plan_round(config, load_or_create_key(config.key_path), round_probe())

    async def main() -> RoundResult:
        options: dict[str, Any] = {} if pool is None else {"runner": pool.run_probe}
        result = await collect_round(config, plan, **options)
        assert alive().get("SSHClientProcess", 0) == 0  # gone as its run ended
        if pool is not None:
            assert alive().get("SSHClientConnection", 0) == len(HOSTS)  # kept, in use
            await pool.close()
        await asyncio.sleep(0.2)  # the closing connections' last callbacks
        return result

    return asyncio.run(main())


def test_a_collect_round_leaves_nothing_of_its_sessions(
    tmp_path: Path, sim_fleet: SimFleet, no_collector: None
) -> None:
    config = fleet_config(tmp_path, sim_fleet, HOSTS)
    assert alive() == {}
    result = _round(config)
    assert result.ok_count == len(HOSTS)
    assert alive() == {}


def test_kept_connections_leave_nothing_once_the_pool_closes(
    tmp_path: Path, sim_fleet: SimFleet, no_collector: None
) -> None:
    config = fleet_config(tmp_path, sim_fleet, HOSTS)
    result = _round(config, ConnectionPool(keep=600))
    assert result.ok_count == len(HOSTS)
    assert alive() == {}


def test_the_installed_asyncssh_has_what_unlink_cuts() -> None:
    """The attributes unlink replaces: without them it does nothing, and the test
    above would fail on the garbage left (an asyncssh that changed them)."""
    from asyncssh.connection import SSHConnection

    assert "_recv_handler" in SSHConnection.__init__.__code__.co_names
    process = asyncssh.SSHClientProcess[bytes]()
    assert {"_stdin", "_stdout", "_stderr"} <= set(vars(process))


def test_unlink_leaves_objects_without_those_attributes_alone() -> None:
    class Other:
        pass

    other = Other()
    unlink.connection_closed(other)
    unlink.process_done(other)
    assert vars(other) == {}
