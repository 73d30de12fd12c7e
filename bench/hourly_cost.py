"""What keeping ``samples_hourly`` costs a round: ``Store.write_round`` of HOSTS hosts
on PostgreSQL, alternately with the hourly upsert and with it replaced by a no-op.

Per round: the writing process's CPU (``time.process_time``: what the collector
pays) and wall time; and the upsert statement's own wall time (the database's
work). Rounds are 10 minutes apart, so some open a new hour and most add to one.
A database of its own (``fleetstat_bench_hourly_cost``) is created and dropped.

    .venv/bin/python bench/hourly_cost.py --hosts 500 --rounds 24
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from fleetstat.config import Client
from fleetstat.document import Limits, check
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.store import Store, hourly

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCUMENT = json.loads((ROOT / "tests" / "fixtures" / "documents" / "linux.json").read_text())
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB = "fleetstat_bench_hourly_cost"


def a_round(hosts: list[Client], at: datetime, n: int) -> RoundResult:
    results = []
    for host in hosts:
        raw = dict(DOCUMENT, cpu=dict(DOCUMENT["cpu"], used_percent=float(n % 90)))
        document = check(raw, Limits(events=100_000), now=datetime.now(UTC))
        results.append(HostResult(host, Status.OK, at, 1.0, document=document))
    return RoundResult(at, at + timedelta(seconds=6), tuple(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=24, help="timed rounds (half of each)")
    args = parser.parse_args()
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{DB}"')
    url = sa.make_url(ADMIN).set(database=DB).render_as_string(hide_password=False)
    hosts = [
        Client(ip=f"10.1.{i // 250}.{i % 250}", port=22, username="bench", name=f"host-{i}")
        for i in range(args.hosts)
    ]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10 * (args.rounds + 2))
    real = hourly.refresh_round
    upserts: list[float] = []

    def timed(conn: Any, round_id: int) -> None:
        t0 = time.perf_counter()
        real(conn, round_id)
        upserts.append((time.perf_counter() - t0) * 1000)

    figures: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    result: dict[str, Any] = {
        "bench": "hourly_cost",
        "hosts": args.hosts,
        "loadavg_before": Path("/proc/loadavg").read_text().strip(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    try:
        with Store(url) as store:
            store.upgrade()
            rounds = [a_round(hosts, start + timedelta(minutes=10 * n), n)
                      for n in range(args.rounds + 2)]  # fmt: skip
            for warm in rounds[:2]:
                store.write_round(warm)
            for n, one in enumerate(rounds[2:]):
                mode = "with" if n % 2 == 0 else "without"
                hourly.refresh_round = timed if mode == "with" else (lambda conn, round_id: None)
                c0, w0 = time.process_time(), time.perf_counter()
                store.write_round(one)
                cpu = (time.process_time() - c0) * 1000
                figures[mode].append((cpu, (time.perf_counter() - w0) * 1000))
            hourly.refresh_round = real
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        admin.dispose()
    for mode, runs in figures.items():
        result[mode] = {
            "rounds": len(runs),
            "cpu_ms_median": round(statistics.median(c for c, _ in runs), 1),
            "wall_ms_median": round(statistics.median(w for _, w in runs), 1),
        }
    result["upsert_wall_ms"] = {
        "median": round(statistics.median(upserts), 1),
        "all": sorted(round(u, 1) for u in upserts),
    }
    result["loadavg_after"] = Path("/proc/loadavg").read_text().strip()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hourly_cost-postgresql-{args.hosts}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
