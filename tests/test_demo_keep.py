"""``fleetstat demo --keep``: the simulated fleet, the mail sink and ``serve`` stay up,
so the commands and the API work against them until SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_fixtures import FLEETSTAT, run_cli


@pytest.mark.sshd
def test_demo_keep_leaves_the_fleet_and_the_api_running(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the demo's simulated hosts need root here")
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [FLEETSTAT, "demo", "--dir", str(workdir), "--hosts", "2", "--keep"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JOURNAL_STREAM": "", "COLUMNS": "200"},
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True),  # type: ignore[arg-type]
        threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True),  # type: ignore[arg-type]
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("event=serve_start" in line for line in err):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(out + err)
            time.sleep(0.1)
        text = "".join(out)
        url = re.search(r"url=(\S+)", "".join(err)).group(1)  # type: ignore[union-attr]
        password = re.search(r"log in as demo, password (\S+)\)", text).group(1)  # type: ignore[union-attr]
        assert "2/2 hosts ok" in text
        config = str(workdir / "fleetstat.xml")

        # serve starts a round at once and holds the round lock meanwhile: a collect
        # beside it would be refused (exit 75), rightly. Wait for that round to end.
        while not any("event=round " in line for line in err):
            assert proc.poll() is None and time.monotonic() < deadline + 120, "".join(err)
            time.sleep(0.1)
        # The CLI against the running fleet: another round, then the report.
        collected = run_cli("collect", "-c", config, "-q")
        assert collected.returncode == 0, collected.stdout + collected.stderr
        report = run_cli("report", "-c", config)
        assert report.returncode == 0 and report.stdout.count(" ok ") >= 2, report.stdout

        with httpx.Client(base_url=url, timeout=30) as http:
            login = http.post("/api/v1/login", data={"username": "demo", "password": password})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            hosts = http.get("/api/v1/hosts", headers={"Authorization": f"Bearer {token}"})
            assert [h["status"] for h in hosts.json()["items"]] == ["ok", "ok"]
            assert "/api/v1/hosts" in http.get("/openapi.json").json()["paths"]
            # The dashboard: a browser is sent to its login page, which takes the user.
            page = http.get("/", follow_redirects=True)
            assert page.status_code == 200 and "Log in to fleetstat" in page.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, "".join(err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for reader in readers:
            reader.join(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    # The fleet went down with the demo: its hosts no longer answer.
    again = run_cli("collect", "-c", str(workdir / "fleetstat.xml"), "-q")
    assert again.returncode == 1
