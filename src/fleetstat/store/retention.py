"""Retention: delete what is older than ``<retention>`` allows, in short transactions.

Each table is pruned in batches of at most ``batch_size`` rows, one transaction per
batch: a batch picks the next ids to delete walking the primary key (``SELECT id
... ORDER BY id LIMIT n``), then deletes that id range with the same conditions.
No statement scans or locks a table for long, a collection round running beside
``watch`` waits at most one batch, and an interrupted prune simply stops between
batches and carries on at the next run.

What is never deleted, whatever its age:

- the latest sample and the latest attempt of each host (``host_latest`` points at
  them; ``fleetstat report`` shows them; the foreign keys enforce it as well);
- the samples and attempts of a host with an unresolved alert (``pending`` or
  ``firing``), from shortly before its first breach on: the evidence the alert
  mail refers to, and what ``history`` shows about it;
- queued mail (``mail_outbox.sent_at`` and ``failed_at`` null); sent mail, and
  mail the outbox gave up on, goes with the attempts' age (it is their
  notification log);
- a round still referenced by any sample, attempt or event.

The hourly aggregates (``samples_hourly``, store/hourly.py) go with the samples'
age, an hour at a time: the rows of hours wholly before the samples' cutoff, but
not the hour of a host's latest sample nor the hours of an unresolved alert's
window (the samples in them are kept too). An hour the cutoff cuts keeps its row
whole.

"Older than" means: samples by ``received_at``, attempts by ``started_at`` (both
found through their round, whose ``finished_at`` is before the cutoff), security
events by ``occurred_at``, mail by ``sent_at`` or ``failed_at``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from fleetstat.config import Retention
from fleetstat.store.core import Store
from fleetstat.store.hourly import floor_hour
from fleetstat.store.schema import (
    alert_states,
    attempts,
    cluster_shards,
    host_latest,
    mail_outbox,
    rounds,
    samples,
    samples_hourly,
    security_events,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
# An alert's first_breached_at is when the round was evaluated, a little after the
# samples it judged were received (a round lasts up to connect + run timeouts):
# keep a margin before it so the breaching samples themselves are kept.
ALERT_WINDOW_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class PruneReport:
    """Rows deleted per table, batches run, and whether a stop request cut it short."""

    samples: int = 0
    hourly: int = 0  # samples_hourly rows (revision 0010)
    attempts: int = 0
    events: int = 0
    mail: int = 0
    rounds: int = 0
    batches: int = 0
    seconds: float = 0.0
    stopped: bool = False

    @property
    def total(self) -> int:
        return self.samples + self.hourly + self.attempts + self.events + self.mail + self.rounds


def prune(
    store: Store,
    retention: Retention,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    should_stop: Callable[[], bool] = lambda: False,
) -> PruneReport:
    """Apply ``retention`` (ages in seconds; None keeps forever) to the database."""
    now = now or datetime.now(UTC)
    started = time.monotonic()
    run = _Run(store, batch_size, should_stop)
    with store.errors("prune old rows"):
        windows = _alert_windows(store)
        if retention.samples is not None:
            cutoff = now - timedelta(seconds=retention.samples)
            run.samples = run.by_round(
                samples,
                _round_before(store, cutoff),
                keep=sa.and_(
                    _not_latest(samples.c.id, host_latest.c.sample_id),
                    _outside(windows, samples.c.client_ip, samples.c.client_port,
                             samples.c.received_at),
                ),
            )  # fmt: skip
            run.hourly = run.hours_before(floor_hour(cutoff), _hourly_kept(windows))
        if retention.attempts is not None:
            cutoff = now - timedelta(seconds=retention.attempts)
            run.attempts = run.by_round(
                attempts,
                _round_before(store, cutoff),
                keep=sa.and_(
                    _not_latest(attempts.c.id, host_latest.c.last_attempt_id),
                    _outside(windows, attempts.c.client_ip, attempts.c.client_port,
                             attempts.c.started_at),
                ),
            )  # fmt: skip
            run.mail = run.by_ids(
                mail_outbox,
                sa.or_(
                    sa.and_(mail_outbox.c.sent_at.is_not(None), mail_outbox.c.sent_at < cutoff),
                    # Given up on (fleetstat mail list --failed): kept as long as attempts.
                    sa.and_(mail_outbox.c.failed_at.is_not(None), mail_outbox.c.failed_at < cutoff),
                ),
            )
        if retention.events is not None:
            cutoff = now - timedelta(seconds=retention.events)
            run.events = run.by_ids(
                security_events,
                sa.and_(
                    security_events.c.occurred_at.is_not(None),
                    security_events.c.occurred_at < cutoff,
                ),
            )
        ages = [retention.samples, retention.attempts]
        if all(age is not None for age in ages):
            oldest = now - timedelta(seconds=max(age or 0.0 for age in ages))
            run.rounds = run.old_rounds(oldest)
    report = PruneReport(
        samples=run.samples,
        hourly=run.hourly,
        attempts=run.attempts,
        events=run.events,
        mail=run.mail,
        rounds=run.rounds,
        batches=run.batches,
        seconds=time.monotonic() - started,
        stopped=run.stopped,
    )
    log.debug("prune: %s", report)
    return report


class _Run:
    """The batches of one prune: counts, and the stop check between batches."""

    def __init__(self, store: Store, batch_size: int, should_stop: Callable[[], bool]) -> None:
        self.engine = store.engine
        self.batch_size = max(1, batch_size)
        self.should_stop = should_stop
        self.samples = self.hourly = self.attempts = self.events = self.mail = self.rounds = 0
        self.batches = 0
        self.stopped = False

    def by_round(
        self, table: sa.Table, last_round: int | None, *, keep: ColumnElement[bool]
    ) -> int:
        """Delete rows of rounds up to ``last_round`` (all finished before the cutoff)."""
        if last_round is None:
            return 0
        return self.by_ids(table, sa.and_(table.c.round_id <= last_round, keep))

    def by_ids(self, table: sa.Table, condition: ColumnElement[bool]) -> int:
        """Delete the rows matching ``condition``, ``batch_size`` ids per transaction."""
        deleted = 0
        after: int | None = None
        while not self._stop():
            pick = sa.select(table.c.id).where(condition).order_by(table.c.id)
            if after is not None:
                pick = pick.where(table.c.id > after)
            with self.engine.begin() as conn:
                ids = list(conn.execute(pick.limit(self.batch_size)).scalars())
                if not ids:
                    break
                # The range, not an IN list of 5,000 values; the condition again, so
                # a row that became protected meanwhile (or sits between) stays.
                result = conn.execute(
                    sa.delete(table).where(table.c.id >= ids[0], table.c.id <= ids[-1], condition)
                )
            deleted += max(0, result.rowcount or 0)
            self.batches += 1
            after = ids[-1]
            if len(ids) < self.batch_size:
                break
        return deleted

    def hours_before(self, end: datetime, keep: ColumnElement[bool]) -> int:
        """Delete the hourly rows of hours starting before ``end`` (hours wholly before
        the samples' cutoff), oldest first, about ``batch_size`` rows per transaction:
        a batch ends at the hour of its ``batch_size``-th row and takes that whole hour."""
        hour = samples_hourly.c.hour
        condition = sa.and_(hour < end, keep)
        deleted = 0
        while not self._stop():
            pick = sa.select(hour).where(condition).order_by(hour).limit(self.batch_size)
            with self.engine.begin() as conn:
                hours = list(conn.execute(pick).scalars())
                if not hours:
                    break
                result = conn.execute(sa.delete(samples_hourly).where(hour <= hours[-1], condition))
            deleted += max(0, result.rowcount or 0)
            self.batches += 1
            if len(hours) < self.batch_size:
                break
        return deleted

    def old_rounds(self, before: datetime) -> int:
        """Rounds that finished before ``before`` and nothing refers to any more."""
        with self.engine.connect() as conn:
            keep_from = _lowest_referenced_round(conn)
        condition = rounds.c.finished_at < before
        if keep_from is not None:
            condition = sa.and_(condition, rounds.c.id < keep_from)
        with self.engine.begin() as conn:  # <cluster>'s shard rows go with their rounds
            conn.execute(sa.delete(cluster_shards).where(cluster_shards.c.committed_at < before))
        return self.by_ids(rounds, condition)

    def _stop(self) -> bool:
        if self.should_stop():
            self.stopped = True
        return self.stopped


def _round_before(store: Store, cutoff: datetime) -> int | None:
    """The newest round that finished before ``cutoff``: all its rows are older."""
    query = sa.select(sa.func.max(rounds.c.id)).where(rounds.c.finished_at < cutoff)
    with store.engine.connect() as conn:
        value = conn.execute(query).scalar()
    return None if value is None else int(value)


def _lowest_referenced_round(conn: Connection) -> int | None:
    lowest = [
        conn.execute(sa.select(sa.func.min(table.c.round_id))).scalar()
        for table in (samples, attempts, security_events)
    ]
    found = [int(value) for value in lowest if value is not None]
    return min(found) if found else None


def _not_latest(column: Any, pointer: Any) -> ColumnElement[bool]:
    # IS NOT NULL inside: NOT IN over a list holding a null is never true.
    return column.not_in(sa.select(pointer).where(pointer.is_not(None)))


def _hourly_kept(windows: list[_Window]) -> ColumnElement[bool]:
    """Hourly rows kept like the samples in them: the hour of a host's latest sample,
    and the hours of an unresolved alert's window (any sample at or after its start)."""
    h = samples_hourly.c
    latest = sa.exists().where(
        host_latest.c.client_ip == h.client_ip,
        host_latest.c.client_port == h.client_port,
        host_latest.c.sample_received_at >= h.first_at,
        host_latest.c.sample_received_at <= h.last_at,
    )
    return sa.and_(sa.not_(latest), _outside(windows, h.client_ip, h.client_port, h.last_at))


_Window = tuple[str, int, datetime | None]


def _alert_windows(store: Store) -> list[_Window]:
    """Hosts with an unresolved alert and since when their rows must stay."""
    query = (
        sa.select(
            alert_states.c.client_ip,
            alert_states.c.client_port,
            sa.func.min(alert_states.c.first_breached_at),
            sa.func.count(alert_states.c.first_breached_at),
            sa.func.count(),
        )
        .where(alert_states.c.state.in_(("pending", "firing")))
        .group_by(alert_states.c.client_ip, alert_states.c.client_port)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    windows: list[_Window] = []
    for ip, port, first, dated, total in rows:
        # A state without first_breached_at (should not happen): keep everything.
        since = first - ALERT_WINDOW_MARGIN if first is not None and dated == total else None
        windows.append((ip, port, since))
    return windows


def _outside(windows: list[_Window], ip: Any, port: Any, moment: Any) -> ColumnElement[bool]:
    """True for rows not inside any unresolved alert's window."""
    if not windows:
        return sa.true()
    inside = [
        sa.and_(ip == w_ip, port == w_port, *([moment >= since] if since is not None else []))
        for w_ip, w_port, since in windows
    ]
    return sa.not_(sa.or_(*inside))
