"""How big one spooled round is, and what writing and reading it costs.

The spool (``fleetstat.spool``) keeps one gzip'd JSON file per round the
database did not take. This builds a round of HOSTS hosts from the recorded
Linux document (``tests/fixtures/documents/linux.json``, about 2.5 KB of JSON),
with every number and string of each host's copy randomised so that gzip finds
no more repetition between hosts than real hosts would give it, then writes it
to a spool in a temp directory and reads it back.

    .venv/bin/python bench/spool_size.py --hosts 500

Prints the file size (bytes per host) and the CPU of encoding+writing (with
fsync) and of reading+decoding; light enough to run anywhere (no database).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetstat.config import Client
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.spool import Spool

DOCUMENT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "documents" / "linux.json"


def vary(value: Any, rng: random.Random) -> Any:
    """The same shape with fresh values: numbers redrawn, strings suffixed."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return rng.randrange(1, 2**40)
    if isinstance(value, float):
        return round(rng.random() * 100, 3)
    if isinstance(value, str):
        return f"{value}-{rng.randrange(16**6):06x}"
    if isinstance(value, list):
        return [vary(item, rng) for item in value]
    if isinstance(value, dict):
        return {key: vary(item, rng) for key, item in value.items()}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    document = json.loads(DOCUMENT.read_text())
    at = datetime.now(UTC)
    results = tuple(
        HostResult(
            Client(ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", username="monitor"),
            Status.OK,
            at,
            1.0,
            document=vary(copy.deepcopy(document), rng),
        )
        for i in range(args.hosts)
    )
    round_ = RoundResult(at, at, results)
    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(Path(folder) / "spool", 1024**3)
        t0 = time.process_time()
        spooled = spool.put(round_, "bench")
        put_cpu = time.process_time() - t0
        assert spooled.path is not None
        size = spooled.path.stat().st_size
        (entry,) = spool.entries()
        t0 = time.process_time()
        back = spool.load(entry, {})
        load_cpu = time.process_time() - t0
        assert len(back.results) == args.hosts
    raw = len(json.dumps(results[0].document))
    print(
        f"{args.hosts} hosts: {size} bytes ({size / args.hosts:.0f} per host; "
        f"{raw} bytes of JSON per document); put {put_cpu * 1000:.0f} ms CPU, "
        f"load {load_cpu * 1000:.0f} ms CPU"
    )


if __name__ == "__main__":
    main()
