"""``store/dashboard.py``: the dashboard's reads, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alert_helpers import client, failed, ok, round_of, rule

from fleetstat.alerts import evaluate_round
from fleetstat.config import Client
from fleetstat.metrics import fill_interval_cpu
from fleetstat.model import HostResult
from fleetstat.store import Store, dashboard

WEB = client(rule("memory", 50), ip="10.0.0.5", name="web-01")
DB = client(ip="10.0.0.6", name="db-01")
WIDTH = 600  # 10-minute buckets


def sample(host: Client, at: datetime, cpu: float, memory: float) -> HostResult:
    load = {"avg1": cpu / 100, "avg5": 0.1, "avg15": 0.1}
    return ok(host, at, cpu={"count": 2, "used_percent": cpu}, memory={"used_percent": memory},
              swap={"used_percent": 1.0}, load=load)  # fmt: skip


def test_series_buckets_and_recent_rows(db_url: str) -> None:
    # Aligned to a bucket edge an hour ago, so the expected buckets are plain.
    t0 = dashboard.aligned(datetime.now(UTC) - timedelta(hours=1), WIDTH) + timedelta(seconds=5)
    minute = timedelta(minutes=1)
    rounds = [
        round_of(sample(WEB, t0, 10.0, 40.0), sample(DB, t0, 50.0, 20.0)),
        round_of(sample(WEB, t0 + 2 * minute, 30.0, 60.0), failed(DB, t0 + 2 * minute)),
        round_of(sample(WEB, t0 + 25 * minute, 70.0, 80.0)),  # two buckets later
    ]
    with Store(db_url) as store:
        store.upgrade()
        assert dashboard.fleet_version(store) == "0-0-0"
        versions = []
        for one in rounds:
            one = fill_interval_cpu(one, store.previous_cpu())
            store.record_round(one)
            versions.append(dashboard.fleet_version(store))
            evaluate_round(store, one, now=one.finished_at)
            versions.append(dashboard.fleet_version(store))
        # Each round's attempts move it, and so does an evaluation that changed a state:
        # the second round's made WEB's memory alert fire (the fleet page shows it), so
        # a page read between that round's attempts and its alerts is not kept.
        assert versions[0] != versions[2] != versions[4], versions
        assert versions[2] != versions[3] and versions[3].endswith("-1"), versions
        now = datetime.now(UTC)
        points = dashboard.host_series(store, "10.0.0.5", 22, t0 - minute, now, WIDTH)
        edge = t0 - timedelta(seconds=5)
        assert [p.at for p in points] == [edge, edge + 2 * timedelta(seconds=WIDTH)]
        assert points[0].values["memory"] == pytest.approx(50.0)
        assert points[1].values["memory"] == pytest.approx(80.0)
        assert points[0].values["swap"] == pytest.approx(1.0)
        assert points[1].values["load"] == pytest.approx(0.7)
        assert points[0].values["cpu"] is not None

        rows = dashboard.fleet_buckets(
            store, [("10.0.0.5", 22), ("10.0.0.6", 22), ("10.0.0.9", 22)], t0 - minute, now, WIDTH
        )
        first = int(t0.timestamp()) // WIDTH
        by_host = {(ip, bucket): v for ip, _port, bucket, v in rows}
        assert set(by_host) == {("10.0.0.5", first), ("10.0.0.5", first + 2), ("10.0.0.6", first)}
        assert by_host[("10.0.0.6", first)] == pytest.approx(50.0)

        assert dashboard.fleet_version(store).split("-")[0] != "0"
        tried = dashboard.recent_attempts(store, "10.0.0.6", 22)
        assert [a.status for a in tried] == ["timeout", "ok"]
        assert tried[0].error == "timeout after 5s"
        states = dashboard.host_alert_states(store, "10.0.0.5", 22)
        assert [(s.rule_key, s.state) for s in states] == [("memory", "firing")]
        mail = dashboard.alert_mail(store, ("10.0.0.5", 22))
        assert mail and "FIRING memory" in mail[0].subject
        assert dashboard.alert_mail(store, ("10.0.0.6", 22)) == []
        assert dashboard.recent_events(store, "10.0.0.5", 22) == []
        assert dashboard.resolved_alerts(store, now - timedelta(days=1)) == []


def test_the_series_cache_reads_what_the_store_would(db_url: str) -> None:
    """The host page's kept series (web/series.py) equals a fresh read: as time moves on,
    as rounds arrive, and when a round of the past is stored late (a spool replay)."""
    from fleetstat.web.series import SeriesCache

    now = datetime.now(UTC)
    start = now - timedelta(hours=6)
    with Store(db_url) as store:
        store.upgrade()
        for step in range(0, 6 * 60, 7):  # a sample every 7 minutes for 6 hours
            store.record_round(
                round_of(sample(WEB, start + timedelta(minutes=step), step % 97, 50.0))
            )
        cache = SeriesCache()

        def both(until: datetime) -> None:
            since = until - timedelta(hours=5, minutes=3)  # not on a bucket's edge
            fresh = dashboard.host_series(store, "10.0.0.5", 22, since, until, WIDTH)
            kept = cache.series(store, "10.0.0.5", 22, since, until, WIDTH)
            assert [(p.at, p.values) for p in kept] == [(p.at, p.values) for p in fresh]
            assert len(fresh) > 20

        both(now)
        both(now + timedelta(minutes=13))  # the window moved: a new partial first bucket
        store.record_round(round_of(sample(WEB, now + timedelta(minutes=14), 99.0, 90.0)))
        both(now + timedelta(minutes=15))  # a new round: the open buckets read again
        # A round of three hours ago stored now: a closed bucket changed.
        store.record_round(round_of(sample(WEB, now - timedelta(hours=3), 0.0, 0.0)))
        both(now + timedelta(minutes=16))
