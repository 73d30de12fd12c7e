"""``/metrics`` scraped by a real Prometheus (Debian's package), and ``promtool check metrics``.

Acceptance 2: Prometheus, started here on loopback with a scrape config pointing
at ``fleetstat serve`` (with a program's token, as an operator would set it up),
scrapes ``/metrics``; a PromQL query over its HTTP API returns each simulated
host's memory ratio, equal to what the API's ``/hosts`` says; promtool finds
nothing to complain about in the exposition.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from serve_fixtures import Served, add_user, run_cli, serve_config

from fleetstat.simfleet import SimFleet, free_port

HOSTS = [0, 1, 2]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: scripts/setup installs Debian's prometheus package")
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return path


@pytest.mark.sshd
def test_prometheus_scrapes_every_hosts_memory_ratio(tmp_path: Path, sim_fleet: SimFleet) -> None:
    prometheus, promtool = _tool("prometheus"), _tool("promtool")
    config = serve_config(tmp_path, sim_fleet, HOSTS)
    add_user(config)
    created = run_cli("token", "create", "--name", "prometheus", "-c", str(config))
    assert created.returncode == 0, created.stderr
    token_file = tmp_path / "prometheus.token"
    token_file.write_text(created.stdout.strip())
    token_file.chmod(0o600)

    served = Served(config, "--every", "1h")
    scraper: subprocess.Popen[bytes] | None = None
    try:
        served.wait_for("event=round ")
        with served.client(served.login()) as http:
            exposition = http.get("/metrics").text
            hosts = http.get("/api/v1/hosts").json()["items"]
        expected = {h["host"]: h["memory_percent"] / 100 for h in hosts}
        checked = subprocess.run([promtool, "check", "metrics"], input=exposition,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
            checked.stdout + checked.stderr
        )

        port = free_port()
        target = served.url.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: fleetstat\n"
            f"    authorization: {{credentials_file: {token_file}}}\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        scraper = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        found = _query_until(port, "fleetstat_host_memory_used_ratio", len(HOSTS))
        ratios = {r["metric"]["host"]: float(r["value"][1]) for r in found}
        assert set(ratios) == {f"sim-{i:03d}" for i in HOSTS}
        for host, ratio in ratios.items():
            assert 0 < ratio < 1 and ratio == pytest.approx(expected[host], abs=1e-3)
        up = _query_until(port, 'up{job="fleetstat"}', 1)
        assert up[0]["value"][1] == "1"  # the scrape itself succeeded, token and all
        assert served.stop() == 0
    finally:
        if scraper is not None:
            scraper.terminate()
            scraper.wait(30)
        served.kill()


def _query_until(port: int, promql: str, count: int, timeout: float = 60) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query",
                               params={"query": promql}, timeout=10)  # fmt: skip
            last = answer.text
            result = answer.json()["data"]["result"]
            if len(result) >= count:
                return result  # type: ignore[no-any-return]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"Prometheus never returned {count} series for {promql}: {last}")
