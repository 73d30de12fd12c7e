"""``fleetstat serve`` as a real process on a free loopback port, for the API tests.

The server binds ``127.0.0.1:0`` (the kernel picks the port) and names its URL
in the ``event=serve_start`` log line, which :class:`Served` waits for. Its
stderr lines are kept for assertions on the log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from fleetstat.simfleet import SimFleet

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
PASSWORD = "s3cret-pass-word"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETSTAT, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})  # fmt: skip


def add_user(config: Path, name: str = "alice", password: str = PASSWORD) -> None:
    done = run_cli("user", "add", name, "-c", str(config), "--password-env", "FS_PW",
                   env={"FS_PW": password})  # fmt: skip
    assert done.returncode == 0, done.stderr


def serve_config(
    tmp_path: Path,
    fleet: SimFleet,
    indices: list[int],
    *,
    database_url: str | None = None,
    http: str = "",
    inside: dict[int, str] | None = None,
) -> Path:
    """A config for these simulated hosts; the first also has a memory rule it breaks;
    ``inside`` adds elements to some clients (by index: ``{3: '<events enabled="true"/>'}``).

    Generous timeouts: on a loaded 2-core machine a probe run can take seconds,
    and the tests assert that every host answered.
    """
    db = database_url or f"sqlite:///{tmp_path / 'fleetstat.db'}"
    clients = []
    for n, i in enumerate(indices):
        host = fleet.hosts[i]
        rule = ('<alert type="memory" limit="1%"/>' if n == 0 else "") + (inside or {}).get(i, "")
        clients.append(
            f'<client ip="{host.address}" port="{fleet.port}" username="{fleet.user}" '
            f'key="{fleet.client_key}" mail="ops@example.com" name="sim-{i:03d}">{rule}</client>'
        )
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{db}"/>
  <key path="{tmp_path / "server.key"}"/>
  <defaults concurrency="10" connect-timeout="20s" run-timeout="30s" host-keys="strict"
            known-hosts="{fleet.known_hosts}" top-processes-when="always"/>
  {http}
  {"".join(clients)}
</fleetstat>
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (openssl), for serving TLS in the tests."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class Served:
    """``fleetstat serve`` in a child process; ``url`` once it listens."""

    def __init__(self, config: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FLEETSTAT, "serve", "-c", str(config), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "JOURNAL_STREAM": ""},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for("event=serve_start")
        found = re.search(r"url=(\S+)", line)
        assert found, line
        self.url = found.group(1)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def count(self, marker: str) -> int:
        return sum(1 for line in list(self.lines) if marker in line)

    def wait_for(self, marker: str, times: int = 1, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in list(self.lines) if marker in line]
            if len(found) >= times:
                return found[times - 1]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {times} x {marker!r} in:\n{self.log}")
            time.sleep(0.05)

    def client(self, token: str | None = None, **options: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **options)  # type: ignore[arg-type]

    def login(self, user: str = "alice", password: str = PASSWORD) -> str:
        with self.client() as http:
            answer = http.post("/api/v1/login", data={"username": user, "password": password})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal it and wait; the exit code."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.kill()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
