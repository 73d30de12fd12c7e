"""A round into the database exactly once, and the spool's rounds into it in order.

:func:`store_round_once` is the one way a round is written, as it runs or from
the spool: the round and its events mail in one transaction (``rounds.uuid``
unique), then its alerts in another that claims ``rounds.alerts_at``. Either
step may have committed before a crash (or an outage between the two); doing
the whole thing again does only what is missing:

- the uuid is stored: the round is not written again;
- its alerts were evaluated: they are not evaluated again, no mail twice.

:func:`replay` writes the spooled rounds, oldest first, each with its own times
(the alerts move at the round's time; their mail says it is late), and removes
a file only after its round is in the database. A stop request is honoured
between two rounds; the rest wait for the next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fleetstat.errors import StoreError
from fleetstat.spool.directory import Spool, SpoolError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from fleetstat.alerts import Evaluation
    from fleetstat.config import Config
    from fleetstat.metrics import CpuCounters
    from fleetstat.model import RoundResult
    from fleetstat.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """What :func:`store_round_once` did with one round."""

    round_id: int
    written: bool  # False: the round was already stored (a replay after a crash)
    evaluation: Evaluation | None  # None: its alerts were already evaluated
    round: RoundResult  # as stored: a host that failed alone is marked (fleetstat.hostfail)


@dataclass(frozen=True)
class ReplayReport:
    """What one :func:`replay` did."""

    written: int = 0  # rounds stored from the spool
    already: int = 0  # found stored already (a crash between commit and removal)
    unreadable: int = 0  # files moved to unreadable/
    left: int = 0  # rounds still spooled afterwards
    stopped: bool = False  # a stop request ended it between two rounds
    error: StoreError | None = None  # the database failed again: the rest wait

    @property
    def complete(self) -> bool:
        """Nothing is left: a new round may be written after these."""
        return self.left == 0


def store_round_once(
    config: Config,
    store: Store,
    result: RoundResult,
    *,
    previous_cpu: Mapping[tuple[str, int], CpuCounters] | None = None,
    now: datetime | None = None,
    late: datetime | None = None,
) -> Stored:
    """Store ``result`` and evaluate its alerts, each unless it already was.

    ``previous_cpu``: the hosts' counters before this round (read here when not
    given; the caller that read them while the round ran passes them, and its
    round is new). ``now`` stands in for the clock of the alert and mail steps;
    ``late``: the round is written from the spool at this time.
    """
    from fleetstat.alerts import evaluate_round
    from fleetstat.hostfail import with_failures
    from fleetstat.mail.events import queue_event_mail
    from fleetstat.metrics import fill_interval_cpu

    known = store.round_state(result.uuid) if previous_cpu is None else None
    written = known is None
    if known is None:
        # One host's failure in any step below is that host's (fleetstat.hostfail):
        # it is marked bad_payload, logged, and the others are stored and alerted.
        # Before the round is stored and alerts run: both read cpu.interval_percent.
        result = fill_interval_cpu(
            result, store.previous_cpu() if previous_cpu is None else previous_cpu
        )

        def events_mail(
            conn: Connection, round_id: int, stored: RoundResult
        ) -> Mapping[tuple[str, int], str]:
            return queue_event_mail(conn, stored, round_id, url=store.url, now=now, late=late)

        try:
            done = store.write_round(result, then=events_mail, replayed_at=late)
        except StoreError:
            known = store.round_state(result.uuid)  # stored meanwhile by another replayer?
            if known is None:
                raise
            written = False
        else:
            result, round_id = done.round, done.round_id
    if known is not None:
        round_id = known.id
        if known.alerts_at is not None:
            return Stored(round_id, written, None, result)
    evaluation = evaluate_round(
        store, result, defaults=config.defaults, now=now, once=True, late=late
    )
    if evaluation.failures:
        result = with_failures(result, "alerts", evaluation.failures)
        store.mark_failed(round_id, result, evaluation.failures)
    for address in evaluation.unaddressed:
        log.warning("alert for %s not mailed: the client has no mail address", address)
    return Stored(round_id, written, evaluation, result)


def replay(
    config: Config,
    store: Store,
    spool: Spool,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_round: Callable[[RoundResult, Stored], object] | None = None,
) -> ReplayReport:
    """Write every spooled round, oldest first; remove each file once it is stored.

    Stops early, leaving the rest spooled, when ``should_stop()`` says so between
    two rounds or when the database fails again (``report.error``). A file that
    cannot be read is moved to ``unreadable/`` and counted, never replayed.
    ``on_round`` is called after each round is stored (logging).
    """
    clients = {(c.ip, c.port): c for c in config.clients}
    written = already = unreadable = 0
    stopped = False
    error: StoreError | None = None
    for entry in spool.entries():
        if should_stop():
            stopped = True
            break
        try:
            spooled = spool.load(entry, clients)
        except FileNotFoundError:
            continue  # another process replayed it just now
        except SpoolError as exc:
            spool.quarantine(entry, str(exc))
            unreadable += 1
            continue
        try:
            stored = store_round_once(
                config, store, spooled, now=spooled.finished_at, late=datetime.now(UTC)
            )
        except StoreError as exc:
            error = exc
            break
        # Only now: a crash before this line replays the round, which is then
        # recognised by its uuid (and its alerts by alerts_at) and only removed.
        spool.remove(entry)
        written += stored.written
        already += not stored.written
        if on_round is not None:
            on_round(spooled, stored)
    left = len(spool.entries())
    return ReplayReport(written, already, unreadable, left, stopped, error)


def waiting(spool: Spool) -> bool:
    """Rounds are in the spool; an unreadable spool is said, and not a reason to fail."""
    try:
        return bool(spool.entries())
    except SpoolError as exc:
        log.error("%s; spooled rounds (if any) are not replayed", exc)
        return False


def log_replayed(round: RoundResult, stored: Stored) -> None:
    log.info(
        "replayed round %s of %s from the spool as round %d%s",
        round.uuid, round.started_at.isoformat(), stored.round_id,
        "" if stored.written else " (it was stored already)",
    )  # fmt: skip
