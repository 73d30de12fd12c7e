"""Time the dashboard in Debian's Chromium on a database of production shape.

Fills (or, with --keep, reuses) the database of ``bench/history_report.py`` --
HOSTS hosts x one sample a minute x DAYS days -- gives each host's latest sample
a real document (as ``bench/api_bench.py`` does), starts ``fleetstat serve
--no-watch`` on a free loopback port with a user, and drives ``/usr/bin/chromium``
with Playwright. Every measured load is a fresh browser context (an empty cache):

- the fleet page with all HOSTS: interactive when ``fleet.js`` has attached its
  handlers (its ``performance.mark("fleetstat:fleet-ready")``, after the rows are
  parsed); serve reads the rows once as it starts (``event=dashboard_warm`` in its
  log, with the seconds it took: kept in the result), the bench waits for that;
  the first load is reported apart from the later ones;
- a host page over 90 days (``?window=90d``, a host in the middle): ready when
  all five charts are drawn (``performance.mark("fleetstat:charts")``);
- page weight: the bytes that crossed the wire for the page and every asset it
  loaded (``transferSize`` of the navigation and resource entries: compressed,
  headers included), beside the decoded sizes.

Results go to ``bench/results/dashboard_bench-<backend>-<hosts>x<days>d.json``.

    .venv/bin/python bench/dashboard_bench.py --backend sqlite --hosts 5 --days 1   # smoke
    .venv/bin/python bench/dashboard_bench.py --backend postgresql --hosts 500 --days 90

The figures in docs/dashboard.md come from two smaller shapes, which fill in
minutes instead of an hour (the fleet page reads the last 24 h of each host; a
host page reads only its host's part of the index), three runs of each:

    .venv/bin/python bench/dashboard_bench.py --hosts 500 --days 1 --keep --pages fleet --tag run1
    .venv/bin/python bench/dashboard_bench.py --hosts 20 --days 90 --keep --pages host --tag run1

Targets (issue 15): the fleet page with 500 hosts interactive in under 1 s, a
host page over 90 days in under 1 s, page weight without cache under 300 KB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_bench import FLEETSTAT, Server, real_documents, write_config
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

from fleetstat.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "bench-password-1"
FIGURES = """(mark) => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const ready = performance.getEntriesByName(mark)[0];
  const sum = (key) => resources.reduce((total, r) => total + r[key], 0);
  return {
    ready_ms: ready ? ready.startTime : null,
    response_start_ms: nav.responseStart,
    response_end_ms: nav.responseEnd,
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    load_ms: nav.loadEventEnd,
    transfer_bytes: nav.transferSize + sum("transferSize"),
    decoded_bytes: nav.decodedBodySize + sum("decodedBodySize"),
    html_transfer_bytes: nav.transferSize,
    html_decoded_bytes: nav.decodedBodySize,
    requests: 1 + resources.length,
  };
}"""


def measure(browser: Any, base: str, state: Any, path: str, mark: str) -> dict[str, Any]:
    # A fresh context: no cache, no service worker, the login's cookie only.
    # bypass_csp: the page forbids eval, which wait_for_function uses.
    context = browser.new_context(
        base_url=base, storage_state=state, viewport={"width": 1280, "height": 800},
        bypass_csp=True,
    )  # fmt: skip
    try:
        page = context.new_page()
        page.goto(path, wait_until="load")
        page.wait_for_function("(m) => performance.getEntriesByName(m).length > 0", arg=mark)
        figures: dict[str, Any] = page.evaluate(FIGURES, mark)
        if "/login" in page.url:
            raise SystemExit(f"{path}: sent to the login page")
        return {key: round(v, 1) if isinstance(v, float) else v for key, v in figures.items()}
    finally:
        context.close()


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ready = [run["ready_ms"] for run in runs]
    return {
        "ready_ms_median": round(statistics.median(ready), 1),
        "ready_ms_max": round(max(ready), 1),
        "transfer_bytes_max": max(run["transfer_bytes"] for run in runs),
        "decoded_bytes_max": max(run["decoded_bytes"] for run in runs),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sqlite-path", type=Path, default=Path("/tmp/fleetstat-bench.db"))
    parser.add_argument("--keep", action="store_true", help="reuse a filled database")
    parser.add_argument("--repeats", type=int, default=5, help="loads of each page")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fleetstat-dashboard-bench"))
    parser.add_argument("--pages", choices=("both", "fleet", "host"), default="both",
                        help="which pages to load (a shape may suit only one)")  # fmt: skip
    parser.add_argument("--tag", default="", help="appended to the result file's name")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no {CHROMIUM}: scripts/setup installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    url = database_url(args.backend, args.sqlite_path)
    result: dict[str, Any] = {
        "bench": "dashboard_bench",
        "backend": args.backend,
        "shape": {"hosts": args.hosts, "days": args.days, "samples_per_host_per_minute": 1},
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    engine = sa.create_engine(url, poolclass=NullPool)
    marker = shape_marker(engine) if args.keep else None
    engine.dispose()
    if marker and marker["hosts"] == args.hosts and marker["days"] == args.days:
        log(f"reusing the filled database ({marker})")
        Store(url).upgrade()
        end = datetime.fromisoformat(marker["end"])
    else:
        recreate(args.backend, args.sqlite_path)
        Store(url).upgrade()
        engine = sa.create_engine(url, poolclass=NullPool)
        end = datetime.now(UTC).replace(microsecond=0)
        log(f"filling {args.hosts} hosts x {args.days} days")
        result["fill_seconds"] = fill(engine, args.backend, args.hosts, args.days, end)
        engine.dispose()
    # The fleet page's lines cover the last 24 h: data that ended long ago would
    # make them cheap. Said in the result, so a stale --keep run is visible.
    result["data_age_seconds"] = round((datetime.now(UTC) - end).total_seconds())
    result["documents"] = real_documents(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    result["sizes"] = sizes(engine, args.backend)
    engine.dispose()

    args.workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(args.workdir, url, args.hosts)
    env = {**os.environ, "BENCH_PW": "unused", "FS_BENCH_PW": PASSWORD}
    for command in (["user", "remove", "bench"], ["user", "add", "bench", "--password-env",
                                                  "FS_BENCH_PW"]):  # fmt: skip
        subprocess.run([FLEETSTAT, *command, "-c", str(config)], capture_output=True, text=True,
                       env=env, timeout=120)  # fmt: skip
    server = Server(config, env)
    # serve reads the fleet page's rows (the 24-hour lines) as it starts: how long
    # that took, from its log; the page is measured once it is done.
    deadline = time.monotonic() + 600
    while "event=dashboard_warm" not in server.log_path.read_text():
        if time.monotonic() > deadline:
            raise SystemExit("serve did not log event=dashboard_warm in 600 s")
        time.sleep(0.2)
    warm = re.search(r"event=dashboard_warm .*", server.log_path.read_text())
    result["serve_warm_log"] = warm.group(0) if warm else None
    middle = f"host-{max(1, args.hosts // 2)}"
    result["loadavg_before"] = loadavg()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            result["chromium"] = browser.version
            login = browser.new_context(base_url=server.url)
            page = login.new_page()
            page.goto("/login?next=/rounds")  # not the fleet page: its first load is measured
            page.fill("#username", "bench")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/rounds")
            state = login.storage_state()
            login.close()
            if args.pages in ("both", "fleet"):
                log("fleet page, first load (after serve's warm-up)")
                fleet, ready = "/", "fleetstat:fleet-ready"
                result["fleet_first"] = measure(browser, server.url, state, fleet, ready)
                log(f"fleet page x {args.repeats} (24-hour lines from the cache)")
                runs = [measure(browser, server.url, state, fleet, ready)
                        for _ in range(args.repeats)]  # fmt: skip
                result["fleet"] = summary(runs)
            if args.pages in ("both", "host"):
                log(f"host page over 90 days x {args.repeats}")
                host, ready = f"/hosts/{middle}?window=90d", "fleetstat:charts"
                runs = [measure(browser, server.url, state, host, ready)
                        for _ in range(args.repeats)]  # fmt: skip
                result["host_90d"] = summary(runs)
            browser.close()
        result["rss_after"] = server.rss()
    finally:
        server.stop()
    result["loadavg_after"] = loadavg()
    RESULTS.mkdir(exist_ok=True)
    tag = f"-{args.tag}" if args.tag else ""
    out = RESULTS / f"dashboard_bench-{args.backend}-{args.hosts}x{args.days}d{tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    print(f"{'page':12} {'ready ms (median)':>18} {'ready ms (max)':>15} {'KB on the wire':>15} "
          f"{'KB decoded':>11}")  # fmt: skip
    first = result.get("fleet_first")
    if first:
        kb, decoded = first["transfer_bytes"] / 1000, first["decoded_bytes"] / 1000
        print(f"{'fleet, 1st':12} {first['ready_ms']:>18} {'':>15} {kb:>15.1f} {decoded:>11.1f}")
    for name in [key for key in ("fleet", "host_90d") if key in result]:
        figures = result[name]
        print(f"{name:12} {figures['ready_ms_median']:>18} {figures['ready_ms_max']:>15} "
              f"{figures['transfer_bytes_max'] / 1000:>15.1f} "
              f"{figures['decoded_bytes_max'] / 1000:>11.1f}")  # fmt: skip
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")


if __name__ == "__main__":
    main()
