"""``fleetstat watch``'s rounds, one at a time on the bench's signal (bench/warm_rounds.py).

    python bench/warm_runner.py fleetstat.xml ROUNDS

The real watch loop (``fleetstat.watch.watcher_for``: its connection pool when
the config keeps connections, the store, alerts and mail of each round; its start
frozen with ``fleetstat.heap.freeze_start`` as ``fleetstat watch`` does) with one
change: before each round it waits for a line on stdin, and after it prints one
JSON line (``{"round": n, "ok": hosts ok, "hosts": n, "retries": r, "wall": s}``)
and flushes. So the parent reads the CPU counters of this process's cgroup and
of the fleet's sshd around each round, and nothing of the start-up (imports,
the first connections' set-up) or of the waiting falls into a round's figures.
At the end, the pool's counts (logins, reuses) as a last JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    from fleetstat.config import load_config
    from fleetstat.watch import watcher_for

    try:
        from fleetstat.heap import freeze_start
    except ImportError:  # --fleetstat-src of a checkout before fleetstat.heap (e.g. dd40531)
        from fleetstat.app import freeze_start  # type: ignore[attr-defined,no-redef]

    config = load_config(Path(sys.argv[1]))
    rounds = int(sys.argv[2])
    freeze_start()  # as ``fleetstat watch`` does after its start

    async def run() -> int:
        watcher = watcher_for(config, 0.01, max_rounds=rounds)
        inner = watcher.round_fn
        done = 0

        async def gated() -> Any:
            nonlocal done
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:  # the bench went away
                watcher.request_stop("stdin closed")
            t0 = time.perf_counter()
            outcome = await inner()
            done += 1
            result = outcome.round
            print(json.dumps({
                "round": done, "hosts": len(result.results), "ok": result.ok_count,
                "retries": result.retries, "wall": round(time.perf_counter() - t0, 3),
            }), flush=True)  # fmt: skip
            return outcome

        watcher.round_fn = gated
        pool_stats: dict[str, Any] = {}
        close = watcher.close_fn

        async def closing() -> None:
            if close is not None:
                await close()
            pool = watcher.connections
            if pool is not None:
                pool_stats.update(vars(pool.stats))

        watcher.close_fn = closing
        code = await watcher.run()
        print(json.dumps({"pool": pool_stats}), flush=True)
        return code

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
