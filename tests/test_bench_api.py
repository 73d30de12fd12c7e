"""bench/api_bench.py reads wrk's output right, whatever unit wrk picks.

wrk prints each duration in the unit that keeps it short (us, ms, s, m, h) and
pads the shorter units with a trailing space: a parser that wants ``ms`` at the
end of the line loses every latency over a second.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench" / "api_bench.py"

# `wrk -t1 -c4 -d6s --latency --timeout 10s` against a server answering in 1 ms
# to 2.5 s, as printed (wrk pads "s" and "m" with a trailing space, written \x20 here).
SECONDS = """\
Running 6s test @ http://127.0.0.1:18911/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   838.38ms  877.92ms   2.52s    86.67%
    Req/Sec    10.21     16.57    60.00     85.71%
  Latency Distribution
     50%  306.26ms
     75%    1.49s\x20
     90%    2.51s\x20
     99%    2.52s\x20
  26 requests in 6.06s, 2.87KB read
Requests/sec:      4.29
Transfer/sec:     484.72B
"""

# The same layout for a fast endpoint and for one slower than a minute, with errors.
MIXED = """\
  Latency Distribution
     50%  812.00us
     75%    3.10ms
     90%    1.05m\x20
     99%    2.50m\x20
  12 requests in 20.00s, 1.00MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 2
Requests/sec:      0.60
"""


def _bench() -> ModuleType:
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("api_bench_under_test", BENCH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH.parent))


def test_latencies_in_seconds_are_read() -> None:
    figures = _bench().parse_wrk(SECONDS)
    assert figures["p50_ms"] == 306.26
    assert figures["p90_ms"] == 2510.0
    assert figures["p99_ms"] == 2520.0
    assert figures["requests_per_second"] == 4.29
    assert figures["non_2xx"] == 0
    assert figures["socket_errors"] is None


def test_microseconds_milliseconds_and_minutes() -> None:
    figures = _bench().parse_wrk(MIXED)
    assert figures["p50_ms"] == 0.812
    assert figures["p90_ms"] == 63000.0
    assert figures["p99_ms"] == 150000.0
    assert figures["non_2xx"] == 2
    assert figures["socket_errors"] == "connect 0, read 0, write 0, timeout 3"
    assert figures["requests_per_second"] == 0.6


def test_missing_figures_are_none() -> None:
    figures = _bench().parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    assert figures["p50_ms"] is None and figures["p99_ms"] is None
    assert figures["requests_per_second"] is None
