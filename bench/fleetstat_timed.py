"""``fleetstat collect`` exactly as the CLI runs it, with its steps timed.

    python bench/fleetstat_timed.py TIMINGS.json collect -c fleetstat.xml -q

Runs ``fleetstat.cli`` in this process as its ``main`` does (the real command:
config, key, store, probe, round, SQL write, alerts, mail outbox, the exit
without interpreter teardown) after wrapping four library calls
with a clock: the round (``collect_round``), the store's opening (in its thread,
during the round), the SQL write of the round (``Store.record_round``,
acceptance 5: one transaction per round) and the alert step. The wall-clock
seconds of each go to TIMINGS.json when the command exits. The wrappers add a
few microseconds; nothing else differs from ``fleetstat``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

timings: dict[str, float] = {"process_start": time.time()}


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def timed_async(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def main() -> None:
    out = Path(sys.argv.pop(1))
    t0 = time.perf_counter()
    from fleetstat import app, cli

    timings["import_seconds"] = time.perf_counter() - t0
    if os.environ.get("BENCH_NO_PYC"):
        from fleetstat import probe_bundle

        probe_bundle.bytecode = lambda name, source: None  # type: ignore[assignment]
    app.collect_round = timed_async("round_seconds", app.collect_round)  # type: ignore[attr-defined]
    open_for_round = timed("store_open_seconds", app._open_for_round)

    def open_and_time_the_rest(*args: Any, **kwargs: Any) -> Any:
        # The store modules are imported by the store's thread during the round
        # (app.collect_once); importing them here first would undo that.
        opened = open_for_round(*args, **kwargs)
        import fleetstat.alerts
        from fleetstat.store import Store

        fleetstat.alerts.evaluate_round = timed("alerts_seconds", fleetstat.alerts.evaluate_round)
        Store.record_round = timed("store_seconds", Store.record_round)  # type: ignore[method-assign]
        return opened

    app._open_for_round = open_and_time_the_rest

    sys.argv[0] = "fleetstat"
    code = cli.run()
    timings["total_seconds"] = time.time() - timings.pop("process_start")
    out.write_text(json.dumps(timings))
    cli.exit_now(code)


if __name__ == "__main__":
    main()
