"""A host page's chart series, kept between views.

Averaging 90 days of a host (129,600 samples at one a minute) into 1,000 buckets
is most of a host page's time on the server. Buckets are aligned to the epoch,
so one that closed a while ago (``REREAD``, as for the fleet's lines) never
changes, unless a round of the past is stored late (replayed from the spool):
each view asks the primary key for the samples stored since the last read, and
when one of them belongs to a closed bucket, everything is read again. Otherwise
a view reads only the part of a bucket at the window's start and the buckets
that are still open.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetstat.store import Store
from fleetstat.store.dashboard import (
    SeriesPoint,
    aligned,
    host_series,
    newest_sample_id,
    oldest_received_after,
)
from fleetstat.web.sparks import REREAD

KEPT = 64  # (host, bucket width) pairs; the least recently viewed go first
Key = tuple[str, int, int]


@dataclass(frozen=True)
class _Kept:
    seen: int  # the newest sample id when these were read
    first: datetime  # the first whole bucket kept
    final_before: datetime  # buckets from here on are read again
    points: tuple[SeriesPoint, ...]  # closed, whole buckets in [first, final_before)


class SeriesCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # pages render in worker threads
        self._kept: OrderedDict[Key, _Kept] = OrderedDict()

    def series(
        self, store: Store, ip: str, port: int, since: datetime, until: datetime, width: int
    ) -> list[SeriesPoint]:
        """What ``store.dashboard.host_series`` returns for these arguments."""
        key = (ip, port, width)
        start = aligned(since, width)
        first = start if start == since else start + timedelta(seconds=width)  # whole ones
        seen = newest_sample_id(store)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and (first < kept.first or until < kept.final_before):
            kept = None  # an earlier window than the kept one
        if kept is not None and seen != kept.seen:
            late = oldest_received_after(store, kept.seen)
            if late is not None and late < kept.final_before:
                kept = None  # a round of the past arrived: read everything again
        if kept is None:
            points = host_series(store, ip, port, since, until, width)
        else:
            head = host_series(store, ip, port, since, first, width) if since < first else []
            middle = [p for p in kept.points if p.at >= first]
            tail_from = max(kept.final_before, first)
            points = head + middle + host_series(store, ip, port, tail_from, until, width)
        final_before = max(first, aligned(until - REREAD, width))
        closed = tuple(p for p in points if first <= p.at < final_before)
        with self._lock:
            self._kept[key] = _Kept(seen, first, final_before, closed)
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return points
