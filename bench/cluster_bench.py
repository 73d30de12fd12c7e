"""A round over N simulated hosts by 1, 2 and 4 worker processes, against one
single-process ``fleetstat collect``, in the same run (issue 17, acceptance 2).

    .venv/bin/python bench/cluster_bench.py --n 50 --rounds 2            # smoke: does it work?
    .venv/bin/python bench/cluster_bench.py --n 1000 --rounds 4 --name n1000

Runs as root (the fleet's login user). One OpenSSH sshd (simfleet) serves every
host; the database is PostgreSQL on 127.0.0.1:5432 (``fleetstat_cluster_bench``,
recreated), the broker RabbitMQ on 127.0.0.1:5672 (queues under a prefix of this
run, deleted at the end). For each setup the first round is a warm-up and not
counted; per round it records:

- ``wall``: the round's wall time as the coordinator (or ``collect``) saw it;
- ``cpu_coordinator``: the CPU of the process that ran the round: ``collect``'s
  whole process (``wait4`` rusage) for the single-process runs; this process's
  CPU (``time.process_time``: the coordinator runs here, the bench idles) for
  the cluster runs: placing, sending, polling, closing, alerts and mail;
- ``cpu_workers``: the sum of the worker processes' CPU over the round
  (``/proc/<pid>/stat``), which is where SSH, the envelopes and the shard
  writes happen;
- ``cpu_sshd``: the simulated hosts' side (sshd, shells, the probes), for
  reference: on a real estate it is spent on the hosts;
- ``messages``: shard messages published in the round (each is delivered and
  acknowledged once; a re-sent shard counts twice).

Per-host figures are the round's figures divided by N. Results: one JSON line
per round in ``bench/results/cluster_bench-NAME.jsonl`` and the medians in
``bench/results/cluster_bench-NAME.json``; docs/scaling.md explains how they
feed the scale model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from measure import loadavg, proc_tree_cpu

from fleetstat import envelope
from fleetstat.simfleet import SimFleet

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work" / "cluster"
RESULTS = BENCH / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "fleetstat_cluster_bench"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
BROKER = "amqp://guest:guest@127.0.0.1:5672/"
FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_config(fleet: SimFleet, n: int, args: argparse.Namespace, cluster: str) -> Path:
    path = WORK / ("cluster.xml" if cluster else "single.xml")
    path.write_text(
        f"""<fleetstat>
  <database url="{DB_URL}"/>
  <key path="{WORK / "server.key"}"/>
  <defaults concurrency="{args.concurrency}" connect-timeout="30s" run-timeout="60s"
            host-keys="strict" known-hosts="{fleet.known_hosts}"/>
  {cluster}
{fleet.client_xml(auth="key", indices=list(range(n)))}
</fleetstat>
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")


def single_rounds(fleet: SimFleet, config: Path, rounds: int) -> list[dict[str, Any]]:
    found = []
    for number in range(rounds + 1):
        sshd0 = proc_tree_cpu(fleet.pid or 0)
        t0 = time.monotonic()
        proc = subprocess.Popen([FLEETSTAT, "collect", "-q", "-c", str(config)],
                                stdout=subprocess.DEVNULL)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        if number == 0:
            continue  # warm-up
        found.append({
            "setup": "collect", "workers": 0, "wall": wall,
            "cpu_coordinator": usage.ru_utime + usage.ru_stime, "cpu_workers": 0.0,
            "cpu_sshd": proc_tree_cpu(fleet.pid or 0) - sshd0, "messages": 0,
            "exit": proc.returncode,
        })  # fmt: skip
    return found


def cluster_rounds(
    fleet: SimFleet, config_path: Path, workers: int, rounds: int, prefix: str
) -> list[dict[str, Any]]:
    from fleetstat.cluster.coordinator import Coordinator
    from fleetstat.config import load_config

    config = load_config(config_path)
    procs = []
    logs = WORK / "logs"
    logs.mkdir(exist_ok=True)
    for i in range(workers):
        with (logs / f"w{workers}-{i}.log").open("wb") as out:
            command = [FLEETSTAT, "worker", "-c", str(config_path), "--name", f"bw{i}"]
            procs.append(subprocess.Popen(command, stderr=out))
    coordinator = Coordinator(config)
    found = []
    try:
        _wait_live(procs, config)
        for number in range(rounds + 1):
            workers0 = sum(proc_tree_cpu(p.pid) for p in procs)
            sshd0 = proc_tree_cpu(fleet.pid or 0)
            cpu0, t0 = time.process_time(), time.monotonic()
            outcome = asyncio.run(coordinator.run_round())
            wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
            if number == 0:
                continue
            found.append({
                "setup": f"{workers} worker(s)", "workers": workers, "wall": wall,
                "cpu_coordinator": cpu,
                "cpu_workers": sum(proc_tree_cpu(p.pid) for p in procs) - workers0,
                "cpu_sshd": proc_tree_cpu(fleet.pid or 0) - sshd0,
                "messages": coordinator.last_messages,
                "ok": outcome.round.ok_count,
            })  # fmt: skip
    finally:
        coordinator.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
        _forget_queues(prefix, [f"bw{i}" for i in range(workers)])
    return found


def _wait_live(procs: list[subprocess.Popen[bytes]], config: Any) -> None:
    from fleetstat.store import Store
    from fleetstat.store import cluster as rows

    with Store(config.database_url) as store:
        for _ in range(600):
            if len(rows.live_workers(store, 6.0)) >= len(procs):
                return
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker exited: see bench/.work/cluster/logs")
            time.sleep(0.2)
    raise SystemExit("workers did not start")


def _forget_queues(prefix: str, names: list[str]) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    channel = connection.channel()
    for name in names:
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(f"{prefix}.default.{name}{suffix}")
    connection.close()


def summary(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    table = []
    for setup in dict.fromkeys(r["setup"] for r in rows):
        mine = [r for r in rows if r["setup"] == setup]

        def med(key: str, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[key] for r in mine)

        table.append({
            "setup": setup, "rounds": len(mine), "wall_s": med("wall"),
            "coordinator_ms_per_host": 1000 * med("cpu_coordinator") / n,
            "workers_ms_per_host": 1000 * med("cpu_workers") / n,
            "sshd_ms_per_host": 1000 * med("cpu_sshd") / n,
            "messages_per_round": med("messages"),
        })  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="simulated hosts")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds per setup")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("cluster_bench.py needs root: the fleet's login user")
    name = args.name or f"n{args.n}"
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    key = WORK / "server.key"
    if not key.exists():
        envelope.generate_keypair(key)
    _, most = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket per host in flight
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))
    recreate_database()
    fleet = SimFleet(WORK / "fleet", count=args.n)
    fleet.start()
    prefix = f"bench{secrets.token_hex(4)}"
    cluster = (f'<cluster broker="{BROKER}" shard-size="{args.shard_size}" heartbeat="2s" '
               f'queue-prefix="{prefix}"/>')  # fmt: skip
    single = write_config(fleet, args.n, args, "")
    clustered = write_config(fleet, args.n, args, cluster)
    subprocess.run([FLEETSTAT, "db", "upgrade", "-c", str(single)], check=True)
    load_before = loadavg()
    rows: list[dict[str, Any]] = []
    jsonl = RESULTS / f"cluster_bench-{name}.jsonl"
    try:
        log(f"{args.n} hosts: single-process collect")
        rows += single_rounds(fleet, single, args.rounds)
        for workers in args.workers:
            log(f"{args.n} hosts: {workers} worker(s)")
            rows += cluster_rounds(fleet, clustered, workers, args.rounds, prefix)
    finally:
        fleet.stop()
    with jsonl.open("a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({"n": args.n, **row}) + "\n")
    table = summary(rows, args.n)
    result = {
        "n": args.n,
        "shard_size": args.shard_size,
        "concurrency": args.concurrency,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "summary": table,
    }
    (RESULTS / f"cluster_bench-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'setup':<14} {'wall s':>8} {'coord ms/host':>14} {'workers ms/host':>16} "
          f"{'sshd ms/host':>13} {'msgs/round':>11}")  # fmt: skip
    for row in table:
        print(f"{row['setup']:<14} {row['wall_s']:>8.2f} {row['coordinator_ms_per_host']:>14.2f} "
              f"{row['workers_ms_per_host']:>16.2f} {row['sshd_ms_per_host']:>13.2f} "
              f"{row['messages_per_round']:>11.0f}")  # fmt: skip
    print(f"load average before {load_before}, after {loadavg()}")


if __name__ == "__main__":
    main()
