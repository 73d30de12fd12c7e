"""``/api/v1/monitoring``: pause and resume the rounds of a running ``fleetstat serve``.

Acceptance 3: no round starts while paused, rounds resume after, and the state
is kept across a restart. Rounds run every 0.5 s here, so a 2 s pause would
have seen several.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from serve_fixtures import Served, add_user, serve_config

from fleetstat.simfleet import SimFleet
from fleetstat.store import Store


@pytest.mark.sshd
def test_pause_resume_and_restart(tmp_path: Path, sim_fleet: SimFleet) -> None:
    config = serve_config(tmp_path, sim_fleet, [0])
    add_user(config)
    served = Served(config, "--every", "0.5s")
    try:
        served.wait_for("event=round ", times=2)
        token = served.login()
        with served.client(token) as http:
            paused = http.post("/api/v1/monitoring", json={"running": False})
            assert paused.status_code == 200, paused.text
            assert paused.json()["running"] is False and paused.json()["rounds_here"] is True
            # A round in flight when the pause came completes; none starts after it.
            while http.get("/api/v1/monitoring").json()["in_round"]:
                time.sleep(0.05)
            started = served.count("event=round_start")
            time.sleep(2)
            assert served.count("event=round_start") == started, served.log
            assert http.get("/api/v1/monitoring").json()["running"] is False
        assert served.stop() == 0
    finally:
        served.kill()
    assert served.count("event=monitoring running=false by=alice") == 1

    again = Served(config, "--every", "0.5s")  # a restart: still paused
    try:
        again.wait_for("event=watch_start")
        assert again.count("running=False") == 1, again.log
        time.sleep(2)
        assert again.count("event=round_start") == 0, again.log
        token = again.login()
        with again.client(token) as http:
            assert http.get("/api/v1/monitoring").json()["running"] is False
            assert http.get("/api/v1/health").json()["monitoring"] is False
            resumed = http.post("/api/v1/monitoring", json={"running": True})
            assert resumed.json()["running"] is True
            again.wait_for("event=round ", times=2, timeout=30)  # at once, then on schedule
            metrics = http.get("/metrics").text
            assert "fleetstat_monitoring_running 1.0" in metrics
            found = re.search(r"^fleetstat_rounds_total (\S+)$", metrics, re.M)
            assert found and float(found.group(1)) >= 2  # this process's rounds only
            bad = http.post("/api/v1/monitoring", json={"running": "maybe"})
            assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
        assert again.stop() == 0
    finally:
        again.kill()
    with Store(f"sqlite:///{tmp_path / 'fleetstat.db'}") as store:
        # Three rounds or more before the pause, two or more after the resume.
        assert store.count("rounds") >= 4
