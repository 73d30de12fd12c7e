"""CPU of ``collect``'s table for a round of N hosts: fleetstat's plain layout against rich's.

    python bench/table_cost.py [--hosts 500] [--repeats 5]

Builds a round of N hosts (a tenth failing with a long error), then times, in
this process and with ``time.process_time``, writing its table to /dev/null the
two ways ``collect`` can: ``present.plain_table`` (stdout a pipe or a file, no
``--wide``) and rich's ``Table`` (a terminal, or ``--wide``). Checks first that
both give the same text. Prints the median of each.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from datetime import UTC, datetime

from rich.console import Console

from fleetstat import present
from fleetstat.config import Client
from fleetstat.model import HostResult, RoundResult, Status


def a_round(hosts: int) -> RoundResult:
    now = datetime.now(UTC)
    results = []
    for i in range(hosts):
        client = Client(ip=f"10.1.{i // 250}.{i % 250 + 1}", username="u", name=f"web-{i:04d}")
        if i % 10 == 9:
            error = f"{client.ip}:22: connection refused after 3 attempts " + "x" * 200
            results.append(HostResult(client, Status.UNREACHABLE, now, 1.0, error=error))
        else:
            results.append(HostResult(client, Status.OK, now, 1.0))
    return RoundResult(now, now, tuple(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = a_round(args.hosts)
    width = present.PIPE_WIDTH
    rows = present.summary_rows(result)
    console = Console(file=io.StringIO(), width=width, soft_wrap=True, color_system=None)
    console.print(present.summary_table(result))
    if present.plain_table(present.SUMMARY_COLUMNS, rows, width) != console.file.getvalue():  # type: ignore[attr-defined]
        sys.exit("the two layouts differ: fix present.plain_table first")
    timings: dict[str, list[float]] = {"plain": [], "rich": []}
    with open(os.devnull, "w") as sink:
        for _ in range(args.repeats):
            t0 = time.process_time()
            sink.write(
                present.plain_table(present.SUMMARY_COLUMNS, present.summary_rows(result), width)
                or ""
            )
            t1 = time.process_time()
            Console(file=sink, width=width, soft_wrap=True).print(present.summary_table(result))
            t2 = time.process_time()
            timings["plain"].append((t1 - t0) * 1000)
            timings["rich"].append((t2 - t1) * 1000)
    for name, values in timings.items():
        median = statistics.median(values)
        spread = f"min {min(values):.1f}, max {max(values):.1f}"
        per_host = median / args.hosts * 1000
        print(
            f"{name:6} {median:8.1f} ms ({spread}) for {args.hosts} hosts, {per_host:.0f} us/host"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
