"""What asking Alembic costs a command's start, against the check without it.

    python bench/migrate_cost.py [--runs 7]

Makes an up-to-date SQLite database, then alternates fresh interpreters that
open it the way every ``fleetstat collect`` does (``Store(url).ensure_schema()``)
in two ways:

- ``lazy``: as fleetstat does it: the revision row against the newest script's
  number (``store/migrate.py``), no Alembic import;
- ``alembic``: the same answer asked of Alembic's API first (``ScriptDirectory``
  head, ``MigrationContext`` revision), which is what a start would pay if the
  check were not lazy (and what every start that does migrate pays anyway).

Each run reports the interpreter's own CPU (user + system, from getrusage) and its
resident memory (VmRSS) at the end; the medians and their differences are printed,
with /proc/loadavg. A small measurement (2 x runs short processes): on a loaded
machine the absolute figures grow, the difference less so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fleetstat.store import Store

CHILD = """
import json, resource, sys
from fleetstat.store import Store, migrate
with Store(sys.argv[1]) as store:
    if sys.argv[2] == "alembic":
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory
        head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
    assert store.ensure_schema() is False
    assert ("alembic" in sys.modules) == (sys.argv[2] == "alembic")
usage = resource.getrusage(resource.RUSAGE_SELF)
status = open("/proc/self/status").read().split("VmRSS:")[1].split()[0]  # kB
print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "rss_mb": int(status) / 1024}))
"""


def run(url: str, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'fleetstat.db'}"
        with Store(url) as store:
            store.ensure_schema()
        samples: dict[str, list[dict[str, float]]] = {"lazy": [], "alembic": []}
        run(url, "lazy")  # warm the page cache and the bytecode caches
        run(url, "alembic")
        for _ in range(args.runs):
            for mode in samples:  # interleaved, so load changes hit both alike
                samples[mode].append(run(url, mode))
    load = Path("/proc/loadavg").read_text().split()[:3]
    medians = {
        mode: {key: statistics.median(s[key] for s in runs) for key in ("cpu", "rss_mb")}
        for mode, runs in samples.items()
    }
    for mode, median in medians.items():
        print(f"{mode:8} cpu {median['cpu'] * 1000:6.0f} ms   rss {median['rss_mb']:5.1f} MB")
    cpu = (medians["alembic"]["cpu"] - medians["lazy"]["cpu"]) * 1000
    rss = medians["alembic"]["rss_mb"] - medians["lazy"]["rss_mb"]
    print(f"asking Alembic costs {cpu:.0f} ms of CPU and {rss:.1f} MB more per start")
    print(f"(medians of {args.runs} runs each, interleaved; loadavg {' '.join(load)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
