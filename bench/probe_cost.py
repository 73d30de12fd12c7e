"""The probe's own CPU cost, this tree against another commit's, interleaved.

    python bench/probe_cost.py --baseline 4fcddf6 [--repeats 60] [--python /usr/bin/python3]
                               [--modes default,below] [--name NAME]

Builds the probe zipapp of this checkout and of ``--baseline`` (any git
revision: its ``src/`` is exported to a temporary directory and its own
``probe_bundle`` builds it), then runs, in every repeat and in a shuffled
order, ``python3 -I -S -c pass`` (the bare interpreter) and each zipapp once per
mode, each as a fresh child process. A child's CPU is the change in this
process's ``RUSAGE_CHILDREN`` (user + system) across its run, so it counts the
probe's whole life: interpreter start, imports, collectors, sealing. Modes:

- ``default``: the probe's defaults, as an operator runs it by hand: the 0.25 s
  CPU window, the process table read in that window, top 5;
- ``below``: as the server runs it on a healthy host, ``--top-when`` limits the
  host does not reach (``cpu=101``): no process table, only its count.

Prints medians, quartiles and min-max per runner and mode, the median above the
bare interpreter, and the ratio of medians (this tree / baseline); writes them
to ``bench/results/probe_cost-NAME.json`` with the load average before and
after. On a shared machine use many repeats and compare within one run only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleetstat import envelope
from fleetstat.probe_bundle import build_probe

ROOT = Path(__file__).resolve().parent.parent
MODES = {"default": [], "below": ["--top-when", "cpu=101"]}
BUILD = (
    "import sys; from fleetstat.probe_bundle import build_probe;"
    " sys.stdout.buffer.write(build_probe())"
)


def baseline_probe(revision: str, workdir: Path) -> bytes:
    """The zipapp that ``revision``'s own probe_bundle builds from its own sources."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    done = subprocess.run(
        [sys.executable, "-c", BUILD],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(workdir / "src")},
        cwd=workdir,
    )
    return done.stdout


def child_cpu_ms(argv: list[str]) -> float:
    """CPU milliseconds (user + system) of one child process, start to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {
        "median": round(statistics.median(values), 2),
        "p25": round(q[0], 2),
        "p75": round(q[2], 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "n": len(values),
    }


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare with")
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument(
        "--python",
        default="/usr/bin/python3",
        help="the hosts' interpreter (a real binary: a pyenv shim is a shell script)",
    )
    parser.add_argument("--modes", default="default,below")
    parser.add_argument("--name", default="latest")
    args = parser.parse_args()
    modes = args.modes.split(",")
    key = X25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        probes = {"baseline": work / "baseline.pyz", "this": work / "this.pyz"}
        probes["baseline"].write_bytes(baseline_probe(args.baseline, work / "baseline"))
        probes["this"].write_bytes(build_probe())
        common = ["--recipient", envelope.public_key_b64(key.public_key())]
        common += ["--challenge", envelope.b64url_encode(os.urandom(16))]
        runs: dict[str, list[str]] = {"bare": [args.python, "-I", "-S", "-c", "pass"]}
        for name, path in probes.items():
            for mode in modes:
                runs[f"{name}/{mode}"] = [args.python, "-I", "-S", str(path), *common, *MODES[mode]]
        for argv in runs.values():  # warm the page cache and check that each one runs
            child_cpu_ms(argv)
        load_before = loadavg()
        started = time.monotonic()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs)
        for _ in range(args.repeats):
            random.shuffle(order)
            for name in order:
                samples[name].append(child_cpu_ms(runs[name]))
        elapsed = time.monotonic() - started
    result = {
        "baseline": args.baseline,
        "python": args.python,
        "repeats": args.repeats,
        "seconds": round(elapsed, 1),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpu_ms": {name: summary(values) for name, values in samples.items()},
    }
    bare = result["cpu_ms"]["bare"]["median"]
    print(
        f"{args.repeats} repeats, {elapsed:.0f} s, load {load_before} -> {result['loadavg_after']}"
    )
    print(f"{'runner':<20} {'median':>8} {'p25-p75':>15} {'min-max':>15} {'above bare':>11}")
    for name, s in result["cpu_ms"].items():
        above = "" if name == "bare" else f"{s['median'] - bare:.2f}"
        print(
            f"{name:<20} {s['median']:>8.2f} {s['p25']:>7.2f}-{s['p75']:<7.2f}"
            f" {s['min']:>7.2f}-{s['max']:<7.2f} {above:>11}"
        )
    ratios = {}
    for mode in modes:
        this, base = (result["cpu_ms"][f"{n}/{mode}"]["median"] for n in ("this", "baseline"))
        ratios[mode] = {
            "whole": round(this / base, 3),
            "above_bare": round((this - bare) / (base - bare), 3),
        }
        whole, above = ratios[mode]["whole"], ratios[mode]["above_bare"]
        print(f"{mode}: this / baseline = {whole:.3f} (above bare: {above:.3f})")
    result["ratios"] = ratios
    out = ROOT / "bench" / "results" / f"probe_cost-{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
