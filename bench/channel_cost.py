"""What one exec channel on a kept connection costs the host, by what it runs.

    python bench/channel_cost.py [--rounds 8] [--channels 20]

Starts a one-host simulated fleet (root: its login user and the cgroups), logs
in once, and on that one connection runs, in every round and in a shuffled
order, ``--channels`` channels in a row of each variant, reading the sshd
cgroup's CPU (sshd, the login shell and everything it starts) before and after:

- ``exit 0``: sshd's session and the login shell alone;
- ``python3 -I -S -c pass``: the interpreter's start, exec'd by the login shell;
- the probe as a fresh login runs it (``transport/posix.py``: the login shell
  execs ``/bin/sh``, which picks ``python3``) with the upload on stdin;
- the probe as a kept connection runs it once the script has run there (the
  login shell execs ``python3`` itself).

Prints the median (min-max) CPU per channel of each, and writes them to
``bench/results/channel_cost-NAME.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from measure import CpuGroup, loadavg

from fleetstat import comb, envelope
from fleetstat.collector import probe_argv
from fleetstat.probe_bundle import build_probe
from fleetstat.simfleet import SimFleet, host_address
from fleetstat.transport import posix, ssh

RESULTS = Path(__file__).resolve().parent / "results"


def variants() -> dict[str, tuple[str, bytes]]:
    key = X25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    argv = probe_argv(
        envelope.public_key_b64(key.public_key()), os.urandom(16), 5, top_when="cpu=101",
        recipient_comb=envelope.b64url_encode(comb.recipient_comb(raw)),
    )  # fmt: skip
    probe = build_probe("posix")
    return {
        "exit 0": ("exit 0", b""),
        "python3 -I -S -c pass": ("exec python3 -I -S -c pass", b""),
        "probe, script (fresh login)": (posix.probe_command(argv, run_timeout=30), probe),
        "probe, python3 direct (kept)": (
            posix.probe_command(argv, run_timeout=30, interpreter=posix.DIRECT),
            probe,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--channels", type=int, default=20, help="channels in a row per sample")
    parser.add_argument("--name", default="latest")
    args = parser.parse_args()
    runs = variants()
    workdir = Path(tempfile.mkdtemp(prefix="fleetstat-channel-"))
    fleet = SimFleet(workdir, count=1)
    fleet.start()
    assert fleet.pid is not None
    group = CpuGroup.create(f"channel-{fleet.port}")
    if group is None:
        fleet.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        sys.exit("needs cgroups (run as root)")
    group.add(fleet.pid)
    options = fleet.login_options(encryption_algs=list(ssh.ENCRYPTION_ALGS))
    samples: dict[str, list[float]] = {name: [] for name in runs}

    async def measure() -> None:
        async with asyncssh.connect(host_address(0), fleet.port, options=options) as conn:
            for name, (command, upload) in runs.items():  # each works, before timing
                done = await conn.run(command, input=upload, encoding=None)
                assert done.exit_status == 0, (name, done.exit_status, done.stderr[-300:])
            for _ in range(args.rounds):
                order = list(runs)
                random.shuffle(order)
                for name in order:
                    command, upload = runs[name]
                    await asyncio.sleep(0.3)  # the last channel's processes gone
                    before = group.cpu_seconds()
                    for _ in range(args.channels):
                        await conn.run(command, input=upload, encoding=None)
                    await asyncio.sleep(0.3)
                    samples[name].append((group.cpu_seconds() - before) * 1000 / args.channels)

    load = loadavg()
    try:
        asyncio.run(measure())
    finally:
        fleet.stop()
        group.remove()
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "rounds": args.rounds,
        "channels": args.channels,
        "loadavg_before": load,
        "loadavg_after": loadavg(),
        "host_cpu_ms_per_channel": {
            name: {
                "median": round(statistics.median(values), 2),
                "min": round(min(values), 2),
                "max": round(max(values), 2),
            }
            for name, values in samples.items()
        },
    }
    for name, s in result["host_cpu_ms_per_channel"].items():  # type: ignore[attr-defined]
        print(f"{name:30} {s['median']:6.2f} ms  ({s['min']:.2f}-{s['max']:.2f})")
    out = RESULTS / f"channel_cost-{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
