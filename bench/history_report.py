"""Time ``fleetstat report`` and ``fleetstat history`` on a database of production shape.

Fills a fresh database with HOSTS hosts x one sample a minute x DAYS days (the
issue's target is 500 x 1/min x 90 days, about 65 million samples) using set-based
SQL (PostgreSQL: INSERT ... SELECT over generate_series; SQLite: a recursive CTE),
one day per statement, then ``samples_hourly`` from the samples in one INSERT ...
SELECT ... GROUP BY (what revision 0010's backfill does), then times the library
calls behind the two commands (median of --runs runs, after one untimed warm-up)
and writes a JSON result to bench/results/.

    .venv/bin/python bench/history_report.py --backend postgresql --hosts 500 --days 90
    .venv/bin/python bench/history_report.py --backend sqlite --hosts 500 --days 7

The fill drops the secondary indexes first and builds them once at the end (what a
bulk load does; a live fleet builds them row by row), then runs VACUUM ANALYZE on
PostgreSQL (or ANALYZE on SQLite): autovacuum does the same on a live database, and
PostgreSQL's index-only scans need the visibility map it sets. --keep reuses a
filled database of the same shape (only the timings run again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from fleetstat.store import Store, hourly
from fleetstat.store.reports import HostRef, host_history, host_states
from fleetstat.store.schema import samples_hourly

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = "fleetstat_bench_reports"
# Secondary indexes dropped during the fill and rebuilt after it, as 0002/0004 define them.
INDEXES = {
    "samples": {
        "ix_samples_host_history": (
            "client_ip, client_port, received_at, cpu_percent, cpu_interval_percent, "
            "memory_percent, swap_percent, disk_max_percent, load1"
        ),
        "ix_samples_round_id": "round_id",
        "ix_samples_attempt_id": "attempt_id",
    },
    "attempts": {
        "ix_attempts_host_started_covering": "client_ip, client_port, started_at, status",
        "ix_attempts_round_id": "round_id",
    },
}
# A small document: the bench measures the reports, which never read it; a real
# one (about 4 KB with the process lists) goes to TOAST on PostgreSQL anyway.
DOCUMENT = '{"schema": 1, "bench": true}'
ATTEMPT_DAYS = 30  # attempts="30d": the attempts table holds at most a month


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


# -- database ---------------------------------------------------------------------------


def database_url(backend: str, sqlite_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{sqlite_path}"
    return sa.make_url(PG_ADMIN).set(database=PG_DB).render_as_string(hide_password=False)


def recreate(backend: str, sqlite_path: Path) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{PG_DB}"')
    admin.dispose()


def shape_marker(engine: sa.Engine) -> dict[str, Any] | None:
    try:
        with engine.connect() as conn:
            value = conn.exec_driver_sql("SELECT shape FROM bench_shape").scalar()
    except sa.exc.SQLAlchemyError:
        return None
    return json.loads(value) if value else None


# -- fill -------------------------------------------------------------------------------


def fill(engine: sa.Engine, backend: str, hosts: int, days: int, end: datetime) -> dict[str, Any]:
    """Rounds, samples, attempts, host_latest and a few alert states; timings per step."""
    minutes = days * 1440
    start = end - timedelta(minutes=minutes)
    timings: dict[str, float] = {}
    with engine.begin() as conn:
        for indexes in INDEXES.values():
            for name in indexes:
                conn.exec_driver_sql(f"DROP INDEX {name}")
    t0 = time.perf_counter()
    with engine.begin() as conn:
        _settings(conn, backend)
        conn.exec_driver_sql(
            _sql(backend, _rounds_sql(backend)), {"start": _ts(backend, start), "n": minutes}
        )
    timings["rounds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    attempt_from = max(0, minutes - ATTEMPT_DAYS * 1440)
    for day in range(days):
        first, last = day * 1440 + 1, (day + 1) * 1440
        with engine.begin() as conn:
            _settings(conn, backend)
            params = {"first": first, "last": last, "hosts": hosts, "start": _ts(backend, start)}
            conn.exec_driver_sql(_sql(backend, _samples_sql(backend)), params)
            if last > attempt_from:
                params["first"] = max(first, attempt_from + 1)
                conn.exec_driver_sql(_sql(backend, _attempts_sql(backend)), params)
        elapsed = time.perf_counter() - t0
        rate = (day + 1) * 1440 * hosts / elapsed
        log(f"day {day + 1}/{days}: {rate:,.0f} samples/s, {elapsed:.0f}s so far")
    timings["samples_and_attempts"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with engine.begin() as conn:
        _settings(conn, backend)
        for table, indexes in INDEXES.items():
            for name, columns in indexes.items():
                conn.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({columns})")
                log(f"index {name} built, {time.perf_counter() - t0:.0f}s so far")
    timings["indexes"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with engine.begin() as conn:
        _settings(conn, backend)
        # The hourly aggregates (revision 0010) that long history windows read: one
        # INSERT ... SELECT ... GROUP BY over all the samples, the statement of the
        # migration's backfill (a live fleet adds each round's samples as it goes).
        query = hourly.aggregate(backend)
        names = [column.name for column in samples_hourly.c]
        conn.execute(sa.insert(samples_hourly).from_select(names, query))
    timings["hourly"] = time.perf_counter() - t0
    log(f"samples_hourly filled in {timings['hourly']:.0f}s")

    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(_latest_sql(backend), {"hosts": hosts})
        conn.exec_driver_sql(
            "INSERT INTO alert_states (client_ip, client_port, rule_key, metric, state, "
            "breach_count, first_breached_at, last_value, limit_value) "
            "SELECT client_ip, client_port, 'memory', 'memory', 'firing', 3, "
            "sample_received_at, 91.0, 90.0 FROM host_latest WHERE sample_id IN "
            "(SELECT sample_id FROM host_latest ORDER BY sample_id LIMIT 10)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE bench_shape (shape TEXT)"
            if backend == "sqlite"
            else "CREATE TABLE bench_shape (shape text)"
        )
        conn.exec_driver_sql(
            "INSERT INTO bench_shape VALUES (%(s)s)" if backend != "sqlite" else
            "INSERT INTO bench_shape VALUES (:s)",
            {"s": json.dumps({"hosts": hosts, "days": days, "end": end.isoformat()})},
        )  # fmt: skip
    timings["host_latest"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if backend == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    timings["analyze"] = time.perf_counter() - t0
    return timings


def _settings(conn: sa.Connection, backend: str) -> None:
    if backend == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '2GB'")
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")


def _ts(backend: str, moment: datetime) -> Any:
    # SQLite stores naive UTC text in SQLAlchemy's format; PostgreSQL takes timestamptz.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if backend == "sqlite" else moment


def _series(backend: str, name: str, low: str, high: str) -> str:
    """A table ``name(x)`` of the integers low..high."""
    if backend == "postgresql":
        return f"generate_series(({low})::int, ({high})::int) AS {name}(x)"
    return name


def _with(backend: str, *series: tuple[str, str, str]) -> str:
    if backend == "postgresql":
        return ""
    parts = [
        f"{name}(x) AS (SELECT {low} UNION ALL SELECT x + 1 FROM {name} WHERE x < {high})"
        for name, low, high in series
    ]
    return "WITH RECURSIVE " + ", ".join(parts) + " "


def _minute(backend: str, expr: str) -> str:
    """The timestamp ``start + expr minutes`` (plus a per-host offset added by callers)."""
    if backend == "postgresql":
        return f"%(start)s::timestamptz + ({expr}) * interval '1 minute'"
    return f"strftime('%Y-%m-%d %H:%M:%f000', :start, '+' || ({expr}) || ' minutes')"


def _seconds(backend: str, base: str, seconds: str) -> str:
    if backend == "postgresql":
        return f"({base}) + ({seconds}) * interval '1 second'"
    return f"strftime('%Y-%m-%d %H:%M:%f000', {base}, '+' || ({seconds}) || ' seconds')"


def _rounds_sql(backend: str) -> str:
    n = "%(n)s" if backend == "postgresql" else ":n"
    at = _minute(backend, "r.x - 1")
    fin = _seconds(backend, at, "30")
    return (
        _with(backend, ("r", "1", n))
        + "INSERT INTO rounds (id, started_at, finished_at, hosts_total, hosts_ok, "
        "hosts_failed, retries, duration_seconds) "
        f"SELECT r.x, {at}, {fin}, 0, 0, 0, 0, 30.0 FROM {_series(backend, 'r', '1', n)}"
    )


def _sql(backend: str, text: str) -> str:
    """psycopg reads ``%`` as a placeholder when parameters are passed: escape modulo."""
    return text.replace(" % ", " %% ") if backend == "postgresql" else text


def _p(backend: str, name: str) -> str:
    return f"%({name})s" if backend == "postgresql" else f":{name}"


def _figures() -> str:
    # Deterministic, varied figures (no random(): runs must be comparable).
    return (
        "((h.x * 37 + r.x * 11) % 1000) / 10.0, "  # cpu_percent
        "((h.x * 13 + r.x * 7) % 1000) / 10.0, "  # cpu_interval_percent
        "20 + ((h.x * 7 + r.x) % 600) / 10.0, "  # memory_percent
        "((h.x * 3) % 100) / 10.0, "  # swap_percent
        "40 + ((h.x * 17 + r.x / 1440) % 500) / 10.0"  # disk_max_percent
    )


def _ip(backend: str) -> str:
    if backend == "postgresql":
        return "'10.' || (h.x / 65536) || '.' || ((h.x / 256) % 256) || '.' || (h.x % 256)"
    return "'10.' || (h.x / 65536) || '.' || ((h.x / 256) % 256) || '.' || (h.x % 256)"


def _samples_sql(backend: str) -> str:
    first, last, hosts = (_p(backend, k) for k in ("first", "last", "hosts"))
    at = _seconds(backend, _minute(backend, "r.x - 1"), "h.x % 30")
    doc = f"'{DOCUMENT}'" + ("::jsonb" if backend == "postgresql" else "")
    return (
        _with(backend, ("r", first, last), ("h", "1", hosts))
        + "INSERT INTO samples (round_id, client_ip, client_port, collected_at, received_at, "
        "hostname, os, kernel, cpu_percent, cpu_interval_percent, memory_percent, "
        "swap_percent, disk_max_percent, disk_max_mount, cpu_count, memory_total_bytes, "
        "load1, load5, load15, uptime_seconds, document) "
        f"SELECT r.x, {_ip(backend)}, 22, {at}, {at}, 'host-' || h.x, 'Debian 12', "
        f"'6.1.0', {_figures()}, '/', 4, 8589934592, "
        "(h.x % 40) / 10.0, (h.x % 30) / 10.0, (h.x % 20) / 10.0, r.x * 60.0, "
        f"{doc} FROM {_series(backend, 'r', first, last)} "
        f"CROSS JOIN {_series(backend, 'h', '1', hosts)}"
    )


def _attempts_sql(backend: str) -> str:
    first, last, hosts = (_p(backend, k) for k in ("first", "last", "hosts"))
    at = _seconds(backend, _minute(backend, "r.x - 1"), "h.x % 30")
    # About one attempt in a hundred failed (timeout), spread over hosts and time.
    return (
        _with(backend, ("r", first, last), ("h", "1", hosts))
        + "INSERT INTO attempts (round_id, client_ip, client_port, client_name, status, "
        "duration_seconds, started_at, retries) "
        f"SELECT r.x, {_ip(backend)}, 22, 'host-' || h.x, "
        "CASE WHEN (r.x + h.x) % 97 = 0 THEN 'timeout' ELSE 'ok' END, 1.5, "
        f"{at}, 0 FROM {_series(backend, 'r', first, last)} "
        f"CROSS JOIN {_series(backend, 'h', '1', hosts)}"
    )


def _latest_sql(backend: str) -> str:
    # The newest sample and attempt of each host: what record_round keeps up to date.
    return (
        "INSERT INTO host_latest (client_ip, client_port, last_attempt_id, last_attempt_at, "
        "last_status, sample_id, sample_received_at) "
        "SELECT a.client_ip, a.client_port, a.id, a.started_at, a.status, s.id, s.received_at "
        "FROM attempts a JOIN samples s ON s.client_ip = a.client_ip "
        "AND s.client_port = a.client_port AND s.round_id = a.round_id "
        "WHERE a.round_id = (SELECT max(id) FROM rounds)"
    )


# -- timing -----------------------------------------------------------------------------


def timed(runs: int, call: Any) -> dict[str, Any]:
    call()  # warm-up, untimed: the first run after a fill pays for cold caches
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return {
        "median_ms": round(statistics.median(samples), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
        "runs_ms": [round(s, 2) for s in samples],
    }


def measure(url: str, hosts: int, end: datetime, runs: int) -> dict[str, Any]:
    refs = [HostRef(f"10.{h // 65536}.{(h // 256) % 256}.{h % 256}", 22, f"host-{h}")
            for h in range(1, hosts + 1)]  # fmt: skip
    middle = refs[len(refs) // 2]
    results: dict[str, Any] = {}
    with Store(url) as store:
        results["report"] = timed(runs, lambda: host_states(store, refs, now=end))
        for label, days in (("history_7d", 7), ("history_30d", 30), ("history_90d", 90)):
            since = end - timedelta(days=days)
            results[label] = timed(runs, lambda s=since: host_history(store, middle, s, end))
        check = host_history(store, middle, end - timedelta(days=7), end)
        results["history_7d"]["samples_in_window"] = check.samples
        results["history_7d"]["failed_attempts"] = check.failed_attempts
        states = host_states(store, refs, now=end)
        results["report"]["hosts"] = len(states)
        results["report"]["hosts_with_sample"] = sum(1 for s in states if s.sample_at)
    return results


def sizes(engine: sa.Engine, backend: str) -> dict[str, Any]:
    with engine.connect() as conn:
        counts = {
            t: int(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one())
            for t in ("samples", "samples_hourly", "attempts", "rounds", "host_latest")
        }
        if backend == "postgresql":
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        else:
            size = None
    return {"rows": counts, "database_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sqlite-path", type=Path, default=Path("/tmp/fleetstat-bench.db"))
    parser.add_argument("--keep", action="store_true", help="reuse a filled database")
    args = parser.parse_args()

    url = database_url(args.backend, args.sqlite_path)
    result: dict[str, Any] = {
        "bench": "history_report",
        "backend": args.backend,
        "shape": {"hosts": args.hosts, "days": args.days, "samples_per_host_per_minute": 1},
        "started_at": datetime.now(UTC).isoformat(),
        "loadavg_before": loadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    engine = sa.create_engine(url, poolclass=NullPool)
    marker = shape_marker(engine) if args.keep else None
    if marker and marker["hosts"] == args.hosts and marker["days"] == args.days:
        end = datetime.fromisoformat(marker["end"])
        log(f"reusing the filled database ({marker})")
    else:
        engine.dispose()
        recreate(args.backend, args.sqlite_path)
        Store(url).upgrade()
        engine = sa.create_engine(url, poolclass=NullPool)
        end = datetime.now(UTC).replace(microsecond=0)
        total = args.hosts * args.days * 1440
        log(f"filling {args.hosts} hosts x {args.days} days ({total:,} samples)")
        t0 = time.perf_counter()
        result["fill_seconds"] = fill(engine, args.backend, args.hosts, args.days, end)
        result["fill_seconds"]["total"] = round(time.perf_counter() - t0, 1)
        log(f"filled in {result['fill_seconds']['total']:.0f}s")
    result["sizes"] = sizes(engine, args.backend)
    engine.dispose()
    result["loadavg_before_timing"] = loadavg()
    result["timings"] = measure(url, args.hosts, end, args.runs)
    result["loadavg_after"] = loadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"history_report-{args.backend}-{args.hosts}x{args.days}d.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    print(json.dumps(result["timings"], indent=2))


if __name__ == "__main__":
    main()
