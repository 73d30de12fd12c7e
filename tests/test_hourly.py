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


# -- reads ---------------------------------------------------------------------------------


def statements(store: Store) -> list[str]:
    """The SQL run on ``store`` from now on (to tell which path a read took)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    return seen


def close(a: float | None, b: float | None) -> bool:
    return a == b if a is None or b is None else math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# A window of 10 h 21 min with partial hours at both ends: 10:18:18 .. 20:39:13.
SINCE = START + timedelta(minutes=41, seconds=5)
UNTIL = START + timedelta(hours=11, minutes=2)


def test_a_long_history_is_whole_hours_and_raw_edges_with_the_same_figures(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetstat.store import hourly
    from fleetstat.store.reports import HostRef, host_history

    for one in rounds_every(13, 58):  # 09:37 .. 21:58, past both ends of the window
        store.record_round(one)
    refs = [HostRef(WEB.ip, 22, "web"), HostRef(DB.ip, 22, "db"), HostRef(WEB.ip, 2222, "x")]
    seen = statements(store)
    fast = [host_history(store, ref, SINCE, UNTIL) for ref in refs]
    wide = host_history(store, refs[0], SINCE, UNTIL, buckets=6)  # buckets of 6,210 s
    assert any("samples_hourly" in sql for sql in seen)
    seen.clear()
    monkeypatch.setattr(hourly, "LONG_WINDOW", timedelta(days=3650))  # today's raw path
    slow = [host_history(store, ref, SINCE, UNTIL) for ref in refs]
    raw_wide = host_history(store, refs[0], SINCE, UNTIL, buckets=6)
    assert not any("samples_hourly" in sql for sql in seen)

    for got, want in zip(fast, slow, strict=True):
        assert got.samples == want.samples > 30
        assert (got.first_sample_at, got.last_sample_at) == (
            want.first_sample_at,
            want.last_sample_at,
        )
        assert (got.attempts, got.failed_attempts) == (want.attempts, want.failed_attempts)
        for name, stat in want.stats.items():
            mine = got.stats[name]
            assert (mine.min, mine.max) == (stat.min, stat.max), name
            assert close(mine.avg, stat.avg), (name, mine.avg, stat.avg)
        # Buckets of 777 s, narrower than an hour: the plot keeps the raw path.
        assert got.cpu_series == want.cpu_series
        assert got.memory_series == want.memory_series
    # The edges count: without them the window would hold fewer samples.
    assert fast[0].first_sample_at is not None and fast[0].first_sample_at < SINCE + HOUR
    assert fast[0].last_sample_at is not None and fast[0].last_sample_at >= UNTIL - HOUR

    # Buckets wider than an hour: whole hours go to the bucket of their start, so a
    # bucket may differ from the raw one, but the same buckets hold samples and the
    # sample-weighted mean over the window is the same.
    assert wide.bucket_seconds == raw_wide.bucket_seconds == 6210
    assert [v is None for v in wide.cpu_series] == [v is None for v in raw_wide.cpu_series]
    assert all(
        fast[0].stats["memory"].min <= v <= fast[0].stats["memory"].max  # type: ignore[operator]
        for v in wide.memory_series
        if v is not None
    )


HOUR = timedelta(hours=1)


def test_chart_series_of_whole_hour_buckets_are_the_raw_ones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetstat.store import dashboard, hourly

    for one in rounds_every(13, 58):
        store.record_round(one)
    seen = statements(store)
    # Two-hour buckets start on whole hours: the hourly rows give the same averages.
    fast = dashboard.host_series(store, WEB.ip, 22, SINCE, UNTIL, 7200)
    assert any("samples_hourly" in sql for sql in seen)
    narrow = dashboard.host_series(store, WEB.ip, 22, SINCE, UNTIL, 1800)
    monkeypatch.setattr(hourly, "LONG_WINDOW", timedelta(days=3650))
    slow = dashboard.host_series(store, WEB.ip, 22, SINCE, UNTIL, 7200)
    assert narrow == dashboard.host_series(store, WEB.ip, 22, SINCE, UNTIL, 1800)

    assert [p.at for p in fast] == [p.at for p in slow]
    assert [p.at.hour for p in fast] == [10, 12, 14, 16, 18, 20]
    for got, want in zip(fast, slow, strict=True):
        assert set(got.values) == set(want.values) == {"cpu", "memory", "swap", "disk", "load"}
        for name, value in want.values.items():
            assert close(got.values[name], value), (got.at, name, got.values[name], value)


def test_hours_are_utc_hours_whatever_the_sessions_time_zone(
    db_url: str, db_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetstat.store import hourly
    from fleetstat.store.reports import HostRef, host_history

    set_zone, show_zone, zone_shown = {
        # +05:30: the whole hours there are not UTC's.
        "postgresql": ("SET TIME ZONE 'Asia/Kolkata'", "SHOW TIME ZONE", "Asia/Kolkata"),
        "mariadb": ("SET time_zone = '+05:30'", "SELECT @@session.time_zone", "+05:30"),
    }.get(db_backend, (None, "", ""))
    with Store(db_url) as store:
        if set_zone is not None:

            def zone(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute(set_zone)
                cursor.close()

            sa.event.listen(store.engine, "connect", zone)
        store.upgrade()
        for one in rounds_every(13, 58):
            store.record_round(one)
        if set_zone is not None:
            with store.engine.connect() as conn:
                assert conn.execute(sa.text(show_zone)).scalar() == zone_shown
        assert_hourly_is_the_samples(store)
        ref = HostRef(WEB.ip, 22, "web")
        fast = host_history(store, ref, SINCE, UNTIL)
        monkeypatch.setattr(hourly, "LONG_WINDOW", timedelta(days=3650))
        slow = host_history(store, ref, SINCE, UNTIL)
    assert fast.samples == slow.samples
    assert fast.stats["memory"].min == slow.stats["memory"].min
    assert close(fast.stats["memory"].avg, slow.stats["memory"].avg)
