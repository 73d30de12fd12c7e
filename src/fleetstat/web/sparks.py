"""The fleet page's 24-hour sparklines, kept between requests.

Averaging every host's last day on each page view would read 500 x 1,440 index
entries (a sample a minute) every time. Buckets are aligned to the epoch, so a
bucket that closed an hour ago never changes: the cache keeps closed buckets
and asks the store only for the recent ones (``REREAD`` back from now, which
covers a round whose samples were stamped before a bucket's end and committed
after it). Between rounds (the same ``version``) nothing is read at all.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
        self._key: tuple[str, int, tuple[Host, ...]] | None = None
        self._series: dict[Host, list[float | None]] = {}
        self._drawn: tuple[object, dict[Host, Spark]] | None = None

    def sparks(
        self, store: Store, hosts: Sequence[Host], version: str, now: datetime | None = None
    ) -> dict[Host, Spark]:
        """Per host, its line drawn (``spark``); drawn once per round, not per page view."""
        series = self.series(store, hosts, version, now)
        with self._lock:
            if self._drawn is None or self._drawn[0] is not series:
                self._drawn = (series, {host: spark(values) for host, values in series.items()})
            return self._drawn[1]

    def series(
        self, store: Store, hosts: Sequence[Host], version: str, now: datetime | None = None
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


# The sparkline's box in CSS pixels (fleetstat.css and fleet.js draw it at this size).
SPARK_W, SPARK_H = 110, 28


@dataclass(frozen=True)
class Spark:
    """A host's 24-hour CPU line as the page's script draws it, and in words.

    ``data`` is the ``POINTS`` half-hour averages rounded to whole percents, oldest
    first, comma-separated, empty where there was no sample: about 150 bytes. The
    script draws it on a canvas when the row scrolls into view (a line broken at
    gaps, a dot at the newest value). It was an SVG path per row: with 500 rows
    those were half of the page's bytes and most of the browser's layout work.
    """

    data: str
    label: str


def spark(values: Sequence[float | None]) -> Spark:
    """``values``: 0-100, one per bucket, oldest first (None: no sample)."""
    data = ",".join("" if v is None else str(round(min(max(v, 0.0), 100.0))) for v in values)
    known = [v for v in values if v is not None]
    label = (
        f"CPU over the last 24 h: average {statistics.fmean(known):.0f} %, "
        f"highest {max(known):.0f} %"
        if known
        else "no CPU figures in the last 24 h"
    )
    return Spark(data, label)
