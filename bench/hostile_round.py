"""Hostile hosts against the central machine: peak RSS and database growth per round.

    .venv/bin/python bench/hostile_round.py                      # 20 healthy hosts, 3 repeats
    .venv/bin/python bench/hostile_round.py --n 20 --repeats 5 --db postgresql

Issue 12, acceptance 2: the collector's peak RSS during a round with hostile hosts
stays within 100 MB of a healthy round's, and the database grows by at most what
the config allows per host per round. One simulated fleet (simfleet) serves N
healthy hosts and one host of every ``simhostile`` class (the bomb, the event
flood, the wide and deep documents ...). Each repeat runs two rounds, interleaved:
``fleetstat collect`` over the healthy hosts alone, and over the healthy hosts
plus the hostile ones; each a subprocess whose peak RSS is its ``wait4`` rusage.
Each variant keeps its own database across repeats, so the growth of a round is
the difference of row counts and bytes before and after it.

What the config allows per host per round (the hostile clients have
``<events enabled="true" max="EVENTS">``): one attempt, at most one sample whose
document is at most ``Limits.max_bytes`` of JSON, at most ``EVENTS`` security
events, and at most two mails (the alert mail and the events mail).

Results: a table on stdout and ``bench/results/hostile-<name>.json``. Needs root
(the fleet's throw-away login); small N is enough, the hostile hosts are the
point.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fleetstat import simhostile
from fleetstat.collector import limits_for
from fleetstat.config import load_config
from fleetstat.simfleet import SimFleet

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work" / "hostile"
RESULTS = BENCH / "results"
FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TABLES = ("attempts", "samples", "security_events", "mail_outbox")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_config(
    path: Path, fleet: SimFleet, db_url: str, n: int, hostile: bool, events: int
) -> Path:
    clients = [
        f'<client ip="{fleet.hosts[i].address}" port="{fleet.port}" username="{fleet.user}" '
        f'key="{fleet.client_key}" mail="owner@example.com" name="ok-{i}">'
        '<alert type="memory" limit="1%"/></client>'
        for i in range(n)
    ]
    if hostile:
        clients += [
            f'<client ip="{host.address}" port="{fleet.port}" username="{fleet.user}" '
            f'key="{fleet.client_key}" mail="victim@example.com">'
            f'<alert type="memory" limit="1%"/><alert type="unreachable"/>'
            f'<events enabled="true" max="{events}"/></client>'
            for host in fleet.hosts[n:]
        ]
    path.write_text(
        f"""<fleetstat>
  <database url="{db_url}"/>
  <key path="{WORK / "server.key"}"/>
  <defaults concurrency="100" connect-timeout="30s" run-timeout="60s" host-keys="strict"
            known-hosts="{fleet.known_hosts}" repeat="0"/>
{chr(10).join(clients)}
</fleetstat>
"""
    )
    path.chmod(0o600)
    return path


def database(name: str, backend: str) -> str:
    if backend == "sqlite":
        path = WORK / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    db = f"fleetstat_bench_hostile_{name}"
    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{db}"')
    engine.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"


def measure_db(url: str) -> dict[str, Any]:
    """Row counts, the database's bytes, and the largest stored document."""
    engine = sa.create_engine(url)
    found: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            for table in TABLES:
                found[table] = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            if url.startswith("sqlite"):
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
                size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
                found["bytes"] = pages * size
                longest = "SELECT max(length(document)) FROM samples"
            else:
                found["bytes"] = conn.exec_driver_sql(
                    "SELECT pg_database_size(current_database())"
                ).scalar()
                longest = "SELECT max(length(document::text)) FROM samples"
            found["largest_document_bytes"] = conn.exec_driver_sql(longest).scalar() or 0
            found["events_per_host"] = max(
                (row[0] for row in conn.exec_driver_sql(
                    "SELECT count(*) FROM security_events GROUP BY client_ip, client_port"
                )),
                default=0,
            )  # fmt: skip
    finally:
        engine.dispose()
    return found


def collect(config: Path) -> dict[str, Any]:
    """One ``fleetstat collect`` round as a subprocess: its peak RSS and wall time."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [FLEETSTAT, "collect", "-q", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if "Traceback" in out + err:
        raise SystemExit(f"collect left a traceback:\n{err}")
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_seconds": round(time.monotonic() - started, 2),
        "summary": out.strip().splitlines()[-2:] if out.strip() else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="healthy hosts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--events", type=int, default=50, help="<events max> of hostile clients")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--name", default="hostile")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("hostile_round.py needs root: the simulated fleet's login user")
    WORK.mkdir(parents=True, exist_ok=True)
    classes = list(simhostile.CLASSES)
    behaviours = {args.n + i: f"hostile:{name}" for i, name in enumerate(classes)}
    fleet = SimFleet(WORK / "fleet", count=args.n + len(classes), behaviours=behaviours)
    fleet.start()
    runs: list[dict[str, Any]] = []
    try:
        configs = {}
        for variant in ("healthy", "hostile"):
            url = database(f"{args.name}_{variant}", args.db)
            path = WORK / f"{variant}.xml"
            configs[variant] = write_config(
                path, fleet, url, args.n, variant == "hostile", args.events
            )
            collect(configs[variant])  # a first round: schema, key, first samples
        for repeat in range(args.repeats):
            order = ("healthy", "hostile") if repeat % 2 == 0 else ("hostile", "healthy")
            for variant in order:
                config = load_config(configs[variant])
                before = measure_db(config.database_url)
                run = collect(configs[variant])
                after = measure_db(config.database_url)
                run |= {
                    "variant": variant,
                    "repeat": repeat,
                    "hosts": len(config.clients),
                    "growth": {key: after[key] - before[key] for key in (*TABLES, "bytes")},
                    "largest_document_bytes": after["largest_document_bytes"],
                    "events_per_host": after["events_per_host"],
                }
                runs.append(run)
                log(f"{variant} repeat {repeat}: peak RSS {run['peak_rss_mb']} MB, "
                    f"{run['wall_seconds']} s, growth {run['growth']}")  # fmt: skip
        hostile_config = load_config(configs["hostile"])
        allowed = max(limits_for(c, 5).max_bytes for c in hostile_config.clients if c.events)
    finally:
        fleet.stop()
    report(args, runs, len(classes), allowed)


def report(
    args: argparse.Namespace, runs: list[dict[str, Any]], hostile: int, allowed: int
) -> None:
    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["variant"] == variant)

    def growth(variant: str, key: str) -> float:
        return statistics.median(r["growth"][key] for r in runs if r["variant"] == variant)

    healthy_rss, hostile_rss = median("healthy", "peak_rss_mb"), median("hostile", "peak_rss_mb")
    hosts = {"healthy": args.n, "hostile": args.n + hostile}
    lines = [
        f"{'variant':<8} {'hosts':>5} {'peak RSS MB':>11} {'wall s':>7} "
        + " ".join(f"{t + '/round':>20}" for t in (*TABLES, "bytes")),
    ]
    for variant in ("healthy", "hostile"):
        lines.append(
            f"{variant:<8} {hosts[variant]:>5} {median(variant, 'peak_rss_mb'):>11.1f} "
            f"{median(variant, 'wall_seconds'):>7.2f} "
            + " ".join(f"{growth(variant, t):>20.0f}" for t in (*TABLES, "bytes"))
        )
    per_host = {t: growth("hostile", t) / hosts["hostile"] for t in TABLES}
    largest = max(r["largest_document_bytes"] for r in runs)
    events = max(r["events_per_host"] for r in runs)
    verdicts = [
        f"peak RSS: hostile {hostile_rss:.1f} MB - healthy {healthy_rss:.1f} MB = "
        f"{hostile_rss - healthy_rss:+.1f} MB (within 100 MB: "
        f"{'yes' if hostile_rss - healthy_rss <= 100 else 'NO'})",
        f"per host per round (hostile round): {per_host['attempts']:.2f} attempts (<= 1), "
        f"{per_host['samples']:.2f} samples (<= 1), {per_host['mail_outbox']:.2f} mails (<= 2)",
        f"largest stored document: {largest} bytes (<= {allowed}: "
        f"{'yes' if largest <= allowed else 'NO'})",
        f"most events of one host, all rounds: {events} (<= {args.events} per round x "
        f"{args.repeats + 1} rounds = {args.events * (args.repeats + 1)}: "
        f"{'yes' if events <= args.events * (args.repeats + 1) else 'NO'})",
    ]
    print("\n".join([*lines, "", *verdicts]))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hostile-{args.name}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "verdicts": verdicts,
                               "loadavg": os.getloadavg()}, indent=2))  # fmt: skip
    log(f"results in {out}")


if __name__ == "__main__":
    main()
