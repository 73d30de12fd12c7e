"""Load ``fleetstat serve``'s API with wrk on a database of production shape.

Fills (or, with --keep, reuses) the database of ``bench/history_report.py`` --
HOSTS hosts x one sample a minute x DAYS days -- gives each host's latest sample
a real probe document (tests/fixtures/documents/linux.json, so /metrics has
memory, swap, load and filesystems to show), writes a config with those HOSTS
clients, starts ``fleetstat serve --no-watch`` on a free loopback port with a
program's token, and runs Debian's ``wrk`` (a C load generator, HTTP/1.1
keep-alive) against:

- ``/api/v1/hosts`` (all HOSTS in one page), ``/metrics``,
- ``/api/v1/hosts/{host}/stats`` over 7 and 90 days (one host in the middle),
- and, side by side in the same run, node_exporter's ``/metrics`` when Debian's
  ``prometheus-node-exporter`` is installed (started here on a free loopback
  port; it describes one machine, fleetstat describes HOSTS).

Per endpoint: one request alone first (``first_request_ms``: /metrics and /hosts
render once per stored round, api/cache.py), then p50/p90/p99 latency and
requests/s under wrk (``--latency``); the
server's RSS (VmRSS) and peak RSS (VmHWM) after the runs. Results go to
``bench/results/api_bench-<backend>-<hosts>x<days>d.json``.

    .venv/bin/python bench/api_bench.py --backend sqlite --hosts 5 --days 1 --duration 3  # smoke
    .venv/bin/python bench/api_bench.py --backend postgresql --hosts 500 --days 90        # real

Targets (issue 14): p99 under 50 ms for /hosts and /metrics at 500 hosts, /stats
over 90 days under 200 ms, serve RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from history_report import (
    RESULTS,
    database_url,
    fill,
    loadavg,
    log,
    recreate,
    shape_marker,
    sizes,
)

from fleetstat.simfleet import free_port
from fleetstat.store import Store

ROOT = Path(__file__).resolve().parent.parent
FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
DOCUMENT = ROOT / "tests" / "fixtures" / "documents" / "linux.json"


def host_ip(h: int) -> str:
    """The address history_report.py gives host number ``h`` (1-based)."""
    return f"10.{h // 65536}.{(h // 256) % 256}.{h % 256}"


def write_config(folder: Path, url: str, hosts: int) -> Path:
    clients = "\n".join(
        f'  <client ip="{host_ip(h)}" username="bench" password-env="BENCH_PW" name="host-{h}">'
        '<alert type="memory" limit="90%"/></client>'
        for h in range(1, hosts + 1)
    )
    path = folder / "fleetstat.xml"
    path.write_text(
        f'<fleetstat>\n  <database url="{url}"/>\n  <key path="{folder / "server.key"}"/>\n'
        f"{clients}\n</fleetstat>\n"
    )
    path.chmod(0o600)
    return path


def real_documents(url: str) -> int:
    """Give every host's latest sample the recorded Linux document; how many."""
    document = DOCUMENT.read_text()
    engine = sa.create_engine(url, poolclass=NullPool)
    value = "CAST(:doc AS JSONB)" if engine.dialect.name == "postgresql" else ":doc"
    with engine.begin() as conn:
        done = conn.execute(
            sa.text(
                f"UPDATE samples SET document = {value} "
                "WHERE id IN (SELECT sample_id FROM host_latest WHERE sample_id IS NOT NULL)"
            ),
            {"doc": document},
        )
    engine.dispose()
    return int(done.rowcount)


class Server:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.log_path = config.parent / "serve.log"
        self.log_file = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [FLEETSTAT, "serve", "-c", str(config), "--no-watch", "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=self.log_file, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 600  # a first start may migrate a large database
        while time.monotonic() < deadline:
            found = re.search(r"event=serve_start url=(\S+)", self.log_path.read_text())
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"fleetstat serve exited:\n{self.log_path.read_text()}")
            time.sleep(0.2)
        raise SystemExit("fleetstat serve did not start in 600 s")

    def rss(self) -> dict[str, int]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {
            key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024  # type: ignore[union-attr]
            for key in ("VmRSS", "VmHWM")
        }

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log_file.close()


# wrk prints a duration with the unit that keeps it short: us, ms, s, m or h
# ("1.23s", "2.50m"), padded with trailing spaces when the unit has fewer letters.
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float | None:
    """A wrk duration in milliseconds; None when it is not one."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)?", text.strip())
    if found is None:
        return None
    number, unit = found.groups()
    return round(float(number) * _UNITS[unit or "us"], 3)  # bare numbers are microseconds


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures of one ``wrk --latency`` run's output."""
    percentiles = dict(re.findall(r"^\s*(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$", text, re.M))
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)$", text, re.M)
    return {
        "p50_ms": _ms(percentiles["50"]) if "50" in percentiles else None,
        "p90_ms": _ms(percentiles["90"]) if "90" in percentiles else None,
        "p99_ms": _ms(percentiles["99"]) if "99" in percentiles else None,
        "requests_per_second": float(rate.group(1)) if rate else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }


def wrk(url: str, token: str | None, args: argparse.Namespace) -> dict[str, Any]:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
               "--latency", "--timeout", "10s"]  # fmt: skip
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=600)
    rest = url.split("//", 1)[1]
    return {"url": rest.split("/", 1)[1] if "/" in rest else "", **parse_wrk(done.stdout)}


def first_request(url: str, token: str | None) -> float:
    """Milliseconds of one request before the load: /metrics and /hosts render their
    body once per store generation (the first request after a round pays it), and
    wrk's few seconds should measure the steady state between rounds."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=600) as got:
        got.read()
    return round((time.perf_counter() - started) * 1000, 1)


def node_exporter() -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    return proc, f"http://127.0.0.1:{port}/metrics"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sqlite-path", type=Path, default=Path("/tmp/fleetstat-bench.db"))
    parser.add_argument("--keep", action="store_true", help="reuse a filled database")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fleetstat-api-bench"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/setup installs it (apt-get install wrk)")

    url = database_url(args.backend, args.sqlite_path)
    result: dict[str, Any] = {
        "bench": "api_bench",
        "backend": args.backend,
        "shape": {"hosts": args.hosts, "days": args.days, "samples_per_host_per_minute": 1},
        "load": {
            "tool": "wrk",
            "threads": args.threads,
            "connections": args.connections,
            "seconds_per_endpoint": args.duration,
        },
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    engine = sa.create_engine(url, poolclass=NullPool)
    marker = shape_marker(engine) if args.keep else None
    engine.dispose()
    if marker and marker["hosts"] == args.hosts and marker["days"] == args.days:
        log(f"reusing the filled database ({marker})")
        Store(url).upgrade()  # a database filled before revision 0004 gets its index
    else:
        recreate(args.backend, args.sqlite_path)
        Store(url).upgrade()
        engine = sa.create_engine(url, poolclass=NullPool)
        end = datetime.now(UTC).replace(microsecond=0)
        log(f"filling {args.hosts} hosts x {args.days} days")
        result["fill_seconds"] = fill(engine, args.backend, args.hosts, args.days, end)
        engine.dispose()
    result["documents"] = real_documents(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    result["sizes"] = sizes(engine, args.backend)
    engine.dispose()

    args.workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(args.workdir, url, args.hosts)
    env = {**os.environ, "BENCH_PW": "unused"}
    created = subprocess.run([FLEETSTAT, "token", "create", "--name", "bench", "-c", str(config)],
                             capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    if created.returncode != 0:
        raise SystemExit(created.stderr)
    token = created.stdout.strip()
    server = Server(config, env)
    middle = f"host-{max(1, args.hosts // 2)}"
    endpoints = {
        "hosts": f"{server.url}/api/v1/hosts",
        "metrics": f"{server.url}/metrics",
        "stats_7d": f"{server.url}/api/v1/hosts/{middle}/stats?since=7d",
        "stats_90d": f"{server.url}/api/v1/hosts/{middle}/stats?since=90d",
    }
    result["loadavg_before"] = loadavg()
    result["endpoints"] = {}
    try:
        result["rss_idle"] = server.rss()
        for name, endpoint in endpoints.items():
            first = first_request(endpoint, token)
            log(f"wrk {name} ({args.duration}s) after a first request of {first} ms")
            result["endpoints"][name] = {**wrk(endpoint, token, args), "first_request_ms": first}
        result["rss_after"] = server.rss()
    finally:
        server.stop()
    exporter = node_exporter()
    if exporter is not None:
        proc, exporter_url = exporter
        try:
            log(f"wrk node_exporter ({args.duration}s)")
            result["endpoints"]["node_exporter_metrics"] = wrk(exporter_url, None, args)
        finally:
            proc.terminate()
            proc.wait(30)
    else:
        result["node_exporter"] = "not installed (apt-get install prometheus-node-exporter)"
    result["loadavg_after"] = loadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api_bench-{args.backend}-{args.hosts}x{args.days}d.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    print(f"{'endpoint':24} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>9} {'non-2xx':>8}")
    for name, figures in result["endpoints"].items():
        print(f"{name:24} {figures['p50_ms']!s:>9} {figures['p99_ms']!s:>9} "
              f"{figures['requests_per_second']!s:>9} {figures['non_2xx']:>8}")  # fmt: skip
    mib = 1024 * 1024
    print(f"serve RSS {result['rss_after']['VmRSS'] / mib:.1f} MiB, "
          f"peak {result['rss_after']['VmHWM'] / mib:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
