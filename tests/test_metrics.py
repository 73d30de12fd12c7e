"""Interval CPU (issue 5, acceptance 2): busy delta / total delta between collections.

A recorded counter sequence of one 2-core host, one collection every 5 minutes,
with a missed round, a reboot, a boot time that jitters by a second, and counters
that go backwards; then the same through the store and the alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alert_helpers import checked, client, failed, ok, round_of, rule

from fleetstat.alerts import evaluate_round
from fleetstat.metrics import (
    CpuCounters,
    fill_interval_cpu,
    interval_between,
    interval_cpu_percent,
)
from fleetstat.model import RoundResult
from fleetstat.store import Store
from fleetstat.store.schema import host_latest, samples

BOOT = "2026-11-19T23:01:54Z"
REBOOT = "2026-11-22T10:22:10Z"

# (collected_at, boot_time, total_seconds, busy_seconds, expected interval %).
# The first row comes from tests/fixtures/documents/linux.json. A 2-core host's
# total grows by 600 s in 5 minutes.
RECORDED: list[tuple[str, str | None, float, float, float | None]] = [
    ("10:00", BOOT, 425001.31, 23457.21, None),  # first collection: nothing to compare
    ("10:05", BOOT, 425601.31, 23517.21, 10.0),  # 60 busy of 600
    ("10:10", BOOT, 426201.31, 23817.21, 50.0),  # 300 of 600
    # 10:15 missed (host unreachable): the next interval is simply 10 minutes long
    ("10:20", BOOT, 427401.31, 23937.21, 10.0),  # 120 of 1200
    # rebooted at 10:22:10: counters restart near zero, boot time moves
    ("10:25", REBOOT, 360.0, 90.0, None),
    ("10:30", REBOOT, 960.0, 150.0, 10.0),
    ("10:35", "2026-11-22T10:22:11Z", 1560.0, 750.0, 100.0),  # boot time jitters 1 s
    ("10:40", None, 1500.0, 760.0, None),  # no boot time, total went backwards
    ("10:45", None, 2100.0, 820.0, 10.0),
]


def cpu(total: float, busy: float) -> dict[str, float]:
    return {"total_seconds": total, "busy_seconds": busy}


def test_the_recorded_sequence() -> None:
    previous: tuple[dict[str, float], str | None] | None = None
    for at, boot, total, busy, expected in RECORDED:
        current = (cpu(total, busy), boot)
        got = None if previous is None else interval_cpu_percent(*previous, *current)
        assert got == (pytest.approx(expected) if expected is not None else None), at
        previous = current


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        (cpu(100, 10), cpu(100, 10), None),  # the same collection twice: no interval
        (cpu(100, 10), cpu(90, 5), None),  # everything went backwards
        (cpu(100, 10), cpu(200, 5), None),  # busy went backwards alone
        (cpu(100, 10), cpu(700, 610.01), 100.0),  # 0.01 s rounding past 100 % is clamped
        (cpu(100, 10), cpu(700, 10), 0.0),  # idle all along
        (cpu(100, 10), {"total_seconds": 700}, None),  # busy missing
        (None, cpu(700, 10), None),
        (cpu(100, 10), {"total_seconds": "700", "busy_seconds": 20}, None),  # junk
        (cpu(100, 10), {"total_seconds": float("nan"), "busy_seconds": 20}, None),
    ],
)
def test_edges(prev: Any, cur: Any, expected: float | None) -> None:
    got = interval_cpu_percent(prev, BOOT, cur, BOOT)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_boot_time_compared_with_tolerance_and_as_datetime() -> None:
    a, b = cpu(100, 10), cpu(700, 70)
    boot = datetime(2026, 11, 19, 23, 1, 54, tzinfo=UTC)
    assert interval_cpu_percent(a, boot, b, boot + timedelta(seconds=2)) == pytest.approx(10.0)
    assert interval_cpu_percent(a, boot, b, boot + timedelta(minutes=3)) is None
    # A reboot that happens to leave the counters higher than before is still a reboot.
    assert interval_cpu_percent(a, BOOT, cpu(10_000, 500), REBOOT) is None


def test_counters_from_a_document() -> None:
    doc = checked({"schema": 1, "cpu": cpu(600, 60), "boot_time": BOOT})
    counters = CpuCounters.from_document(doc)
    assert counters == CpuCounters(600.0, 60.0, datetime(2026, 11, 19, 23, 1, 54, tzinfo=UTC))
    assert CpuCounters.from_document(checked({"schema": 1, "cpu": None})) is None
    assert interval_between(CpuCounters(0, 0, None), counters) == pytest.approx(10.0)
    assert interval_between(None, counters) is None


# -- through the store and the alerts ------------------------------------------------------


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        opened.upgrade()
        yield opened


def collect(store: Store, round: RoundResult) -> RoundResult:
    """What collect_once does between the round and the alerts: the round as stored."""
    round = fill_interval_cpu(round, store.previous_cpu())
    store.record_round(round)
    return round


def test_interval_cpu_across_rounds_stored_and_alerted(store: Store) -> None:
    web = client(rule("cpu", 40, window="interval"))
    t0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    step = timedelta(minutes=5)
    stored: list[float | None] = []
    firing: list[int] = []

    def host_round(index: int, total: float, busy: float, boot: str) -> RoundResult:
        return round_of(
            ok(web, t0 + index * step, cpu=cpu(total, busy), boot_time=boot, uptime_seconds=1.0)
        )

    rounds = [
        host_round(0, 425001.31, 23457.21, BOOT),
        host_round(1, 425601.31, 23517.21, BOOT),  # 10 %
        host_round(2, 426201.31, 23817.21, BOOT),  # 50 %: the interval alert fires
        round_of(failed(web, t0 + 3 * step)),  # missed: counters stay where they were
        host_round(4, 427401.31, 23937.21, BOOT),  # 10 % over the 10 minutes
        host_round(5, 360.0, 90.0, REBOOT),  # reboot: unknown
        host_round(6, 960.0, 150.0, REBOOT),  # 10 %
    ]
    for index, one in enumerate(rounds):
        one = collect(store, one)
        result = one.results[0]
        if result.ok:
            assert result.document is not None and result.document.cpu is not None
            stored.append(result.document.cpu.interval_percent)
        evaluation = evaluate_round(store, one, now=t0 + index * step + timedelta(seconds=7))
        firing.append(evaluation.firing)

    assert stored == [None, 10.0, 50.0, 10.0, None, 10.0]
    with store.engine.connect() as conn:
        column = list(
            conn.execute(sa.select(samples.c.cpu_interval_percent).order_by(samples.c.id)).scalars()
        )
        latest = conn.execute(sa.select(host_latest)).one()
    assert column == stored
    # The short window (12.5 % in the fixture) never crosses 40 %: only the interval does.
    assert firing == [0, 0, 1, 1, 0, 0, 0]
    assert latest.last_status == "ok"
    assert (latest.cpu_total_seconds, latest.cpu_busy_seconds) == (960.0, 150.0)
    assert latest.boot_time == datetime(2026, 11, 22, 10, 22, 10, tzinfo=UTC)


def test_previous_counters_are_one_query_for_the_whole_fleet(store: Store) -> None:
    hosts = [client(ip=f"10.0.{i // 250}.{i % 250}", name=f"h{i}") for i in range(300)]
    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    collect(store, round_of(*(ok(h, at, cpu=cpu(100.0, 10.0)) for h in hosts)))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        previous = store.previous_cpu()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert len(previous) == 300
    later = round_of(*(ok(h, at + timedelta(minutes=5), cpu=cpu(700.0, 70.0)) for h in hosts))
    filled = fill_interval_cpu(later, previous).results
    assert [r.document.cpu.interval_percent for r in filled if r.document and r.document.cpu] == [
        10.0
    ] * 300
