"""The hourly aggregates (``samples_hourly``, revision 0010) on SQLite, PostgreSQL and MariaDB.

They must always equal what the samples say: kept by each round's transaction
(several rounds into one hour merge), by a ``<cluster>`` shard's (a redelivered
shard counts once), and filled by the migration from the samples already stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alert_helpers import client, failed, ok, round_of

from fleetstat.model import RoundResult
from fleetstat.store import Store
from fleetstat.store.cluster import open_round
from fleetstat.store.hourly import SOURCES, floor_hour
from fleetstat.store.roundwrite import write_shard
from fleetstat.store.schema import HOURLY_FIGURES, rounds, samples, samples_hourly

WEB = client(ip="10.0.0.5", name="web")
DB = client(ip="10.0.0.6", name="db")
OTHER_PORT = client(ip="10.0.0.5", port=2222, name="web-2222")
START = datetime(2026, 11, 20, 9, 37, 13, tzinfo=UTC)


def figures(n: int, host: int) -> dict[str, Any]:
    """Varied figures for round ``n`` of host number ``host``; every third round has an
    interval CPU (the rest: null, so the charts' CPU falls back to the short one)."""
    families: dict[str, Any] = {
        "cpu": {"used_percent": float((n * 37 + host * 11) % 100)}
        | ({"interval_percent": float((n * 13 + host) % 90) + 0.25} if n % 3 == 0 else {}),
        "memory": {"used_percent": 20.0 + (n * 7 + host * 3) % 61 + 0.125},
        "swap": {"used_percent": float(n % 5)},
        "load": {"avg1": (n % 17) / 4.0, "avg5": 0.5, "avg15": 0.25},
        "disks": [{"mount": "/", "used_percent": 40.0 + (n + host) % 9, "total_bytes": 1,
                   "used_bytes": 1}],
    }  # fmt: skip
    return families


def rounds_every(minutes: int, count: int, start: datetime = START) -> list[RoundResult]:
    found = []
    for n in range(count):
        at = start + timedelta(minutes=minutes * n)
        results = [ok(WEB, at, **figures(n, 1)), ok(OTHER_PORT, at, **figures(n, 3))]
        results.append(failed(DB, at) if n % 4 == 1 else ok(DB, at, **figures(n, 2)))
        found.append(round_of(*results))
    return found


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        opened.upgrade()
        yield opened


def expected_hours(store: Store) -> dict[tuple[str, int, datetime], dict[str, Any]]:
    """The hourly rows computed here, in Python, from every stored sample."""
    columns = [samples.c.client_ip, samples.c.client_port, samples.c.received_at]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(*columns, *SOURCES.values())).all()
    found: dict[tuple[str, int, datetime], dict[str, Any]] = {}
    for row in rows:
        ip, port, at, *values = row
        entry = found.setdefault((ip, port, floor_hour(at)), {"count": 0, "at": [], "chart": []})
        entry["count"] += 1
        entry["at"].append(at)
        for name, value in zip(HOURLY_FIGURES, values, strict=True):
            if value is not None:
                entry.setdefault(name, []).append(value)
        by_name = dict(zip(HOURLY_FIGURES, values, strict=True))
        chart = by_name["cpu_interval"] if by_name["cpu_interval"] is not None else by_name["cpu"]
        if chart is not None:
            entry["chart"].append(chart)
    return found


def assert_hourly_is_the_samples(store: Store) -> int:
    """Every hourly row equals the samples of its host and hour; how many rows."""
    expected = expected_hours(store)
    with store.engine.connect() as conn:
        stored = {(r.client_ip, r.client_port, r.hour): r for r in conn.execute(
            sa.select(samples_hourly))}  # fmt: skip
    assert set(stored) == set(expected)
    for key, row in stored.items():
        want = expected[key]
        assert row.sample_count == want["count"], key
        assert (row.first_at, row.last_at) == (min(want["at"]), max(want["at"])), key
        for name in HOURLY_FIGURES:
            values = want.get(name, [])
            got = (getattr(row, f"{name}_n"), getattr(row, f"{name}_min"),
                   getattr(row, f"{name}_max"))  # fmt: skip
            if not values:
                assert got == (0, None, None), (key, name)
                assert getattr(row, f"{name}_sum") is None, (key, name)
                continue
            assert got == (len(values), min(values), max(values)), (key, name)
            assert math.isclose(getattr(row, f"{name}_sum"), sum(values), rel_tol=1e-12)
        assert row.chart_cpu_n == len(want["chart"]), key
        assert math.isclose(row.chart_cpu_sum or 0.0, sum(want["chart"]), rel_tol=1e-12)
    return len(stored)


def test_each_round_adds_its_samples_to_their_hours(store: Store) -> None:
    # Every 7 minutes for 5 hours: 8 or 9 rounds merge into each hour, the first
    # hour and the last are partial; one host fails now and then.
    for one in rounds_every(7, 43):
        store.record_round(one)
    rows = assert_hourly_is_the_samples(store)
    assert rows == 3 * 6  # three hosts (two share an address) x hours 09..14
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.sum(samples_hourly.c.sample_count))).scalar()
    assert total == store.count("samples") == 43 * 3 - 11


def test_a_round_replayed_from_the_past_lands_in_its_hours(store: Store) -> None:
    for one in rounds_every(20, 6):
        store.record_round(one)
    # A round of an hour stored later (spool replay), then one of the same hours again.
    store.record_round(rounds_every(20, 1, START - timedelta(hours=3))[0])
    store.record_round(rounds_every(20, 2, START + timedelta(minutes=5))[1])
    assert_hourly_is_the_samples(store)


def test_a_redelivered_shard_counts_once(store: Store) -> None:
    store.record_round(rounds_every(10, 1)[0])  # the hour has rows already
    at = START + timedelta(minutes=10)
    round_id = open_round(store, "9f0b7c5e-1111-4222-8333-444455556666", at, 3)

    def shard(number: int, *results: Any) -> tuple[dict[str, Any], RoundResult]:
        row = {
            "round_id": round_id,
            "shard": number,
            "zone": "default",
            "worker": "w1",
            "outcome": "stored",
            "hosts": len(results),
            "committed_at": at,
            "seconds": 1.0,
        }
        return row, round_of(*results)  # fmt: skip

    first = shard(0, ok(WEB, at, **figures(5, 1)), ok(OTHER_PORT, at, **figures(5, 3)))
    second = shard(1, ok(DB, at, **figures(5, 2)))
    assert write_shard(store, *first) is not None
    assert write_shard(store, *second) is not None
    # The same shard again (a redelivered message): dropped, nothing added.
    assert write_shard(store, *first) is None
    assert store.count("samples") == 6
    assert assert_hourly_is_the_samples(store) == 3
    with store.engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(samples_hourly.c.client_port, sa.func.sum(samples_hourly.c.sample_count))
                .where(samples_hourly.c.client_ip == WEB.ip)
                .group_by(samples_hourly.c.client_port)
            ).all()
        )
    assert counts == {22: 2, 2222: 2}


def test_a_round_that_rolls_back_adds_nothing(store: Store) -> None:
    store.record_round(rounds_every(10, 1)[0])
    before = assert_hourly_is_the_samples(store)

    def fails(*_: Any) -> None:  # the last step of the round's transaction
        raise RuntimeError("the events mail failed")

    with pytest.raises(RuntimeError):
        store.record_round(rounds_every(10, 2)[1], then=fails)
    assert store.count("samples") == 3
    assert assert_hourly_is_the_samples(store) == before


def test_upgrade_to_0010_fills_the_hours_from_the_samples(db_url: str) -> None:
    from alembic import command

    from fleetstat.store import migrate

    with Store(db_url) as store:
        with store.engine.begin() as conn:
            command.upgrade(migrate.alembic_config(conn), "0009")
        with store.engine.begin() as conn:
            for n in range(30):
                at = START + timedelta(minutes=11 * n)
                round_id = conn.execute(
                    sa.insert(rounds).values(started_at=at, finished_at=at, hosts_total=2,
                                             hosts_ok=2, hosts_failed=0, retries=0,
                                             duration_seconds=1.0)
                ).inserted_primary_key[0]  # type: ignore[index]  # fmt: skip
                conn.execute(
                    sa.insert(samples),
                    [
                        {"round_id": round_id, "client_ip": ip, "client_port": 22,
                         "received_at": at + timedelta(seconds=h), "document": {},
                         "cpu_percent": float((n * 37 + h) % 100),
                         "cpu_interval_percent": None if n % 3 else float(n),
                         "memory_percent": 30.0 + n % 7, "swap_percent": None,
                         "disk_max_percent": 50.0 + h, "load1": n / 8.0}
                        for h, ip in enumerate(("10.0.0.5", "10.0.0.6"))
                    ],
                )  # fmt: skip
        assert store.ensure_schema() is True
        assert store.current_revision() == "0010"
        assert assert_hourly_is_the_samples(store) == 2 * 6  # 09:37 .. 14:56
        # And kept from here on by the rounds.
        store.record_round(rounds_every(10, 1, START + timedelta(hours=5, minutes=10))[0])
        assert assert_hourly_is_the_samples(store) == 2 * 6 + 1  # 10.0.0.5:2222 at 14:00
