"""The fleet page's 24-hour sparklines, kept between requests.

Averaging every host's last day on each page view would read 500 x 1,440 index
entries (a sample a minute) every time. Buckets are aligned to the epoch, so a
bucket that closed an hour ago never changes: the cache keeps closed buckets
and asks the store only for the recent ones (``REREAD`` back from now, which
covers a round whose samples were stamped before a bucket's end and committed
after it). Between rounds (the same ``version``) nothing is read at all.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fleetstat.store import Store
from fleetstat.store.dashboard import fleet_buckets

WIDTH = 1800  # seconds per point: 48 points over 24 h
POINTS = 48
REREAD = timedelta(minutes=15)
Host = tuple[str, int]


class SparkCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # pages render in worker threads
        self._buckets: dict[int, dict[Host, float | None]] = {}
        self._final_before: int | None = None  # buckets below this are never read again
        self._key: tuple[int, int, tuple[Host, ...]] | None = None
        self._series: dict[Host, list[float | None]] = {}

    def series(
        self, store: Store, hosts: Sequence[Host], version: int, now: datetime | None = None
    ) -> dict[Host, list[float | None]]:
        """Per host, ``POINTS`` CPU averages (None: no sample), oldest first."""
        now = now or datetime.now(UTC)
        current = int(now.timestamp()) // WIDTH
        first = current - POINTS + 1
        key = (version, current, tuple(hosts))
        with self._lock:
            if self._key == key:
                return self._series
            if self._key is not None and self._key[2] != key[2]:  # other hosts: start again
                self._buckets, self._final_before = {}, None
            for old in [b for b in self._buckets if b < first]:
                del self._buckets[old]
            start = first if self._final_before is None else max(first, self._final_before)
            since = datetime.fromtimestamp(start * WIDTH, UTC)
            rows = fleet_buckets(store, hosts, since, now + timedelta(seconds=1), WIDTH)
            for bucket in range(start, current + 1):
                self._buckets[bucket] = {}
            for ip, port, bucket, value in rows:
                if bucket in self._buckets:
                    self._buckets[bucket][(ip, port)] = value
            self._final_before = int((now - REREAD).timestamp()) // WIDTH
            self._series = {
                host: [self._buckets[b].get(host) for b in range(first, current + 1)]
                for host in hosts
            }
            self._key = key
            return self._series


def spark_path(values: list[float | None]) -> str:
    """SVG path data on a 0-100 scale for x 0..POINTS-1 (the template's viewBox leaves
    half a step and a little height around it); gaps break the line."""
    segments: list[list[tuple[int, int]]] = []
    pen_up = True
    for x, value in enumerate(values):
        if value is None:
            pen_up = True
            continue
        point = (x, 100 - round(min(max(value, 0.0), 100.0)))
        if pen_up:
            segments.append([point])
        else:
            segments[-1].append(point)
        pen_up = False
    parts = []
    for segment in segments:
        if len(segment) == 1:  # a lone point: a short flat stroke around it, or it won't show
            x, y = segment[0]
            parts.append(f"M{x - 0.4:g} {y}h0.8")
        else:
            parts.append("M" + "L".join(f"{x} {y}" for x, y in segment))
    return "".join(parts)
