"""``/metrics`` and ``/api/v1/hosts`` are rendered once per generation of the store
(api/cache.py): a round stored by another process -- ``collect`` from cron --
must show at once, not the body rendered before it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from serve_fixtures import Served, run_cli, serve_config

from fleetstat.simfleet import SimFleet


def _last_success(metrics: str, host: str) -> float:
    found = re.search(
        rf'^fleetstat_host_last_success_timestamp_seconds\{{host="{host}"\}} (\S+)$', metrics, re.M
    )
    assert found, metrics[:2000]
    return float(found.group(1))


def _collect(config: Path) -> None:
    done = run_cli("collect", "-c", str(config), "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.sshd
def test_a_round_stored_by_collect_shows_in_metrics_and_hosts(
    tmp_path: Path, sim_fleet: SimFleet, db_url: str
) -> None:
    config = serve_config(tmp_path, sim_fleet, [0, 1], database_url=db_url)
    _collect(config)
    created = run_cli("token", "create", "--name", "cache", "-c", str(config))
    assert created.returncode == 0, created.stderr
    served = Served(config, "--no-watch")
    try:
        with served.client(created.stdout.strip()) as http:
            before = http.get("/metrics").text
            hosts_before = http.get("/api/v1/hosts").json()["items"]
            assert http.get("/metrics").text == before  # nothing moved: the same body
            ages = [h["sample_age_seconds"] for h in http.get("/api/v1/hosts").json()["items"]]
            # The ages are the request's, not the rendering's.
            assert ages[0] >= hosts_before[0]["sample_age_seconds"]

            _collect(config)  # a second round, stored by another process

            after = http.get("/metrics").text
            hosts_after = http.get("/api/v1/hosts").json()["items"]
        for name in ("sim-000", "sim-001"):
            assert _last_success(after, name) > _last_success(before, name)
        assert [h["host"] for h in hosts_after] == ["sim-000", "sim-001"]
        for old, new in zip(hosts_before, hosts_after, strict=True):
            assert new["status"] == "ok" and new["sample_at"] > old["sample_at"]
            assert new["last_attempt_at"] > old["last_attempt_at"]
    finally:
        assert served.stop() == 0
