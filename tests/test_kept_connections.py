"""Connections kept between rounds (``keep-connections``), against a real OpenSSH sshd.

The logins are counted where they happen: sshd's own ``Accepted ...`` lines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from fleet_fixtures import (
    CONNECT_TIMEOUT,
    RUN_TIMEOUT,
    assert_nothing_left,
    fleet_config,
    start_fleet,
)

from fleetstat.app import CollectOutcome, connection_pool, load_or_create_key, run_round
from fleetstat.collector import collect_round, plan_round
from fleetstat.config import Config
from fleetstat.model import Status
from fleetstat.probe_bundle import build_probe
from fleetstat.simfleet import SimFleet
from fleetstat.store import Store
from fleetstat.transport.pool import ConnectionPool
from fleetstat.watch import watcher_for

pytestmark = pytest.mark.sshd


@pytest.fixture
def fleet100(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimFleet]:
    """A fleet of its own (it is restarted), logging every login at INFO."""
    fleet = start_fleet(tmp_path_factory.mktemp("kept"), count=100, log_level="INFO")
    yield fleet
    fleet.stop()


def _watch(
    config: Config, rounds: int, before: dict[int, Callable[[], Awaitable[Any]]] | None = None
) -> list[CollectOutcome]:
    """``rounds`` rounds of the real watch loop (its own pool); ``before[n]`` runs
    just before round n starts."""
    outcomes: list[CollectOutcome] = []

    async def main() -> None:
        watcher = watcher_for(config, 0.01, max_rounds=rounds)
        inner = watcher.round_fn

        async def round_fn() -> CollectOutcome:
            hook = (before or {}).get(len(outcomes) + 1)
            if hook is not None:
                await hook()
            outcome = await inner()
            outcomes.append(outcome)
            return outcome

        watcher.round_fn = round_fn
        assert await watcher.run() == 0

    asyncio.run(main())
    return outcomes


def _statuses(outcome: CollectOutcome) -> list[Status]:
    return [result.status for result in outcome.round.results]


def _errors(outcome: CollectOutcome) -> list[str | None]:
    return [result.error for result in outcome.round.results if not result.ok]


def test_five_watch_rounds_over_100_hosts_log_in_100_times(
    tmp_path: Path, fleet100: SimFleet
) -> None:
    config = fleet_config(tmp_path, fleet100, list(range(100)))
    before = fleet100.accepted_logins()

    outcomes = _watch(config, 5)

    assert len(outcomes) == 5
    for outcome in outcomes:
        assert _statuses(outcome) == [Status.OK] * 100, _errors(outcome)
    assert fleet100.accepted_logins() - before == 100
    with Store(config.database_url) as store:
        assert store.count("samples") == 500
        assert store.count("rounds") == 5
    # watch closed its connections when it stopped: no session is left on any host.
    assert_nothing_left(fleet100)


def test_restarting_sshd_between_rounds_costs_no_host(tmp_path: Path, fleet100: SimFleet) -> None:
    config = fleet_config(tmp_path, fleet100, list(range(100)))
    before = fleet100.accepted_logins()
    logins: list[int] = []

    async def count() -> None:
        logins.append(fleet100.accepted_logins() - before)

    async def restart() -> None:
        await count()
        await asyncio.to_thread(fleet100.restart)

    outcomes = _watch(config, 5, {2: count, 3: count, 4: restart, 5: count})

    for outcome in outcomes:
        assert _statuses(outcome) == [Status.OK] * 100, _errors(outcome)
    # Rounds 2 and 3 on the kept connections; round 4 logs in again, once per host,
    # and round 5 uses those.
    assert logins == [100, 100, 100, 200]
    assert fleet100.accepted_logins() - before == 200


def _pool_round(config: Config, pool: ConnectionPool) -> Callable[[], Awaitable[Any]]:
    key = load_or_create_key(config.key_path)
    plan = plan_round(config, key, build_probe())

    async def one() -> Any:
        return await collect_round(config, plan, runner=pool.run_probe)

    return one


def test_later_runs_on_a_kept_connection_start_python3_without_the_script(
    tmp_path: Path,
) -> None:
    """Once the script has run on a kept connection, the next rounds exec python3
    directly (one /bin/sh less on the host). A host with only ``python`` finds no
    python3 that way: the script runs again in the same round, and from then on."""
    fleet = start_fleet(
        tmp_path / "fleet", count=2, behaviours={1: "python_only"}, log_level="INFO"
    )
    try:
        config = fleet_config(tmp_path, fleet, [0, 1])
        pool = ConnectionPool(keep=600)

        async def main() -> list[list[Status]]:
            one = _pool_round(config, pool)
            try:
                return [[r.status for r in (await one()).results] for _ in range(3)]
            finally:
                await pool.close()

        assert asyncio.run(main()) == [[Status.OK, Status.OK]] * 3
        # Host 0 direct in rounds 2 and 3; host 1 tried it once (round 2).
        assert (pool.stats.direct, pool.stats.script_again) == (3, 1)
        assert (pool.stats.logins, pool.stats.reused, pool.stats.failed) == (2, 4, 0)
        assert fleet.accepted_logins() == 2
        assert_nothing_left(fleet)
    finally:
        fleet.stop()


def test_a_changed_host_key_at_reconnection_is_host_key_mismatch(
    tmp_path: Path, fleet100: SimFleet
) -> None:
    config = fleet_config(tmp_path, fleet100, [0, 1, 2])

    async def rekey() -> None:
        await asyncio.to_thread(fleet100.restart, new_host_key=True)

    outcomes = _watch(config, 2, {2: rekey})

    assert _statuses(outcomes[0]) == [Status.OK] * 3
    assert _statuses(outcomes[1]) == [Status.HOST_KEY_MISMATCH] * 3, _errors(outcomes[1])
    assert all("does not match" in (error or "") for error in _errors(outcomes[1]))


def test_a_silent_kept_connection_is_replaced_within_the_round(
    tmp_path: Path, fleet100: SimFleet
) -> None:
    """Sessions frozen (SIGSTOP: a peer that answers nothing, not even a reset): the
    channel cannot open within the connect timeout, and the same round logs in again."""
    defaults = (
        f'<defaults concurrency="10" connect-timeout="3s" run-timeout="{RUN_TIMEOUT}s" '
        f'host-keys="strict" known-hosts="{fleet100.known_hosts}"/>'
    )
    config = fleet_config(tmp_path, fleet100, [0, 1, 2], defaults=defaults)
    pool = connection_pool(config)
    assert pool is not None
    before = fleet100.accepted_logins()

    async def main() -> list[list[Status]]:
        one = _pool_round(config, pool)
        first = await one()
        frozen = _session_pids(fleet100)
        assert frozen, "no session process to freeze"
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            second = await one()
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGKILL)
            await pool.close()
        return [[r.status for r in first.results], [r.status for r in second.results]]

    first, second = asyncio.run(main())
    assert first == [Status.OK] * 3
    assert second == [Status.OK] * 3
    assert pool.stats.stale == 3
    assert pool.stats.logins == 6
    assert fleet100.accepted_logins() - before == 6


def test_a_refused_channel_on_a_kept_connection_is_a_fresh_login(tmp_path: Path) -> None:
    """sshd refuses a channel beyond MaxSessions: on a kept connection that is not the
    host's failure, the same round logs in again (here: a session the test holds open
    on the kept connection fills MaxSessions 1)."""
    fleet = start_fleet(tmp_path / "fleet", count=1, log_level="INFO", max_sessions=1)
    try:
        config = fleet_config(tmp_path, fleet, [0])
        pool = ConnectionPool(keep=600)

        async def main() -> list[Status]:
            one = _pool_round(config, pool)
            await one()
            [kept] = pool._kept.values()
            holder = await _hold_a_session(kept.conn)
            try:
                result = await one()
            finally:
                holder.close()
                await pool.close()
            return [r.status for r in result.results]

        assert asyncio.run(main()) == [Status.OK]
        assert (pool.stats.stale, pool.stats.logins, pool.stats.reused) == (1, 2, 0)
        assert fleet.accepted_logins() == 2
    finally:
        fleet.stop()


async def _hold_a_session(conn: Any) -> Any:
    """A session on ``conn``; sshd frees the last round's slot a moment after its close."""
    for _ in range(100):
        try:
            return await conn.create_process("sleep 60")
        except asyncssh.ChannelOpenError:
            await asyncio.sleep(0.1)
    raise AssertionError("sshd never freed the session slot")


def _session_pids(fleet: SimFleet) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-U", str(fleet.uid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in out.split()]


def test_connections_idle_longer_than_keep_are_closed(tmp_path: Path, fleet100: SimFleet) -> None:
    config = fleet_config(tmp_path, fleet100, [0, 1])
    # Long enough that both hosts of the round are still kept when it ends, even on a
    # loaded machine (0.5 s was not: the first host's connection idled out while
    # the second still ran); the close is awaited with a bound, not a fixed sleep.
    pool = ConnectionPool(keep=5)

    async def main() -> tuple[int, int]:
        one = _pool_round(config, pool)
        await one()
        kept = len(pool)
        deadline = time.monotonic() + 60
        while len(pool) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return kept, len(pool)

    kept, after = asyncio.run(main())
    assert (kept, after) == (2, 0)
    assert pool.stats.idle_closed == 2


def test_an_old_connection_is_replaced_by_a_fresh_login(tmp_path: Path, fleet100: SimFleet) -> None:
    config = fleet_config(tmp_path, fleet100, [0])
    now = [0.0]
    pool = ConnectionPool(keep=600, max_age=3600, clock=lambda: now[0])
    before = fleet100.accepted_logins()

    async def main() -> None:
        one = _pool_round(config, pool)
        for _ in range(3):
            result = await one()
            assert [r.status for r in result.results] == [Status.OK]
        now[0] = 3600.0
        result = await one()
        assert [r.status for r in result.results] == [Status.OK]
        await pool.close()

    asyncio.run(main())
    assert (pool.stats.logins, pool.stats.reused, pool.stats.aged) == (2, 2, 1)
    assert fleet100.accepted_logins() - before == 2


def test_hosts_gone_from_the_config_lose_their_connection(
    tmp_path: Path, fleet100: SimFleet
) -> None:
    config = fleet_config(tmp_path, fleet100, [0, 1, 2])
    pool = ConnectionPool(keep=600)

    async def main() -> tuple[int, int, bool]:
        await _pool_round(config, pool)()
        kept = len(pool)
        gone = pool._kept[(fleet100.hosts[2].address, fleet100.port)].conn
        closed = pool.retain(config.clients[:2])
        await asyncio.wait_for(gone.wait_closed(), 10)
        await pool.close()
        return kept, closed, gone.is_closed()

    assert asyncio.run(main()) == (3, 1, True)


def test_keep_connections_off_logs_in_every_round(tmp_path: Path, fleet100: SimFleet) -> None:
    defaults = (
        f'<defaults concurrency="10" connect-timeout="{CONNECT_TIMEOUT}s" keep-connections="off" '
        f'run-timeout="{RUN_TIMEOUT}s" host-keys="strict" known-hosts="{fleet100.known_hosts}"/>'
    )
    config = fleet_config(tmp_path, fleet100, [0, 1], defaults=defaults)
    assert connection_pool(config) is None
    before = fleet100.accepted_logins()
    outcomes = _watch(config, 2)
    assert [_statuses(o) for o in outcomes] == [[Status.OK] * 2] * 2
    assert fleet100.accepted_logins() - before == 4


def test_run_round_with_the_pool_stores_the_round(tmp_path: Path, fleet100: SimFleet) -> None:
    config = fleet_config(tmp_path, fleet100, [0, 1])
    pool = connection_pool(config)
    assert pool is not None

    async def main() -> list[CollectOutcome]:
        try:
            return [await run_round(config, runner=pool.run_probe) for _ in range(2)]
        finally:
            await pool.close()

    outcomes = asyncio.run(main())
    assert [_statuses(o) for o in outcomes] == [[Status.OK] * 2] * 2
    assert pool.stats.reused == 2


def test_keepalives_close_a_kept_connection_whose_host_stopped_answering(
    tmp_path: Path, fleet100: SimFleet
) -> None:
    """Between rounds, with ssh_config's ServerAliveInterval (here 1 s) as the
    keepalive: a host that answers nothing (its sessions frozen) loses its kept
    connection after three unanswered keepalives, before any round touches it."""
    config = fleet_config(tmp_path, fleet100, [0])
    config = dataclasses.replace(
        config, clients=(dataclasses.replace(config.clients[0], keepalive=1.0),)
    )
    pool = ConnectionPool(keep=600)

    async def main() -> tuple[bool, float]:
        result = await _pool_round(config, pool)()
        assert [r.status for r in result.results] == [Status.OK]
        [kept] = pool._kept.values()
        frozen = _session_pids(fleet100)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.wait_for(kept.conn.wait_closed(), 30)
            return kept.conn.is_closed(), loop.time() - t0
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGKILL)
            await pool.close()

    closed, after = asyncio.run(main())
    assert closed
    assert 2.0 <= after < 30  # three keepalives a second apart, then the fourth gives up
