"""``fleetstat watch``: rounds on a schedule, for months, under systemd or by hand.

- One process, one asyncio event loop for its whole life: each round is a
  coroutine of that loop (:func:`fleetstat.app.run_round`), the store's and the
  mail's blocking calls run in worker threads, and ``fleetstat serve`` runs its
  HTTP server in the same loop. Connections and caches may therefore outlive a
  round.
- Rounds never overlap: the next one starts ``every`` seconds after the previous
  one *started*, or as soon as it ends when it ran longer (and that is logged).
- SIGTERM or Ctrl-C (SIGINT), handled by the loop, asks for a stop: the round in
  flight completes and is stored, the outbox is flushed, and ``run`` returns 0. A
  second signal aborts at once (the round in flight is then not stored: its one
  transaction never began, or the database rolls it back).
- A round that raises is logged and the next one runs on schedule. A round the
  database did not take is kept in the spool (``event=spooled``) and written,
  in order, by the first round that reaches the database again
  (``event=replayed``); a stop request during that replay is honoured between
  two spooled rounds, the rest wait (:mod:`fleetstat.spool`).
- A stop request that comes before the loop runs (during start-up) is kept and
  honoured as soon as it does: no round starts, and ``run`` returns 0.
- Retention (``<retention>``) is applied after the first round and then once a day.
- Logs: one ``key=value`` line per round (counts, duration), one per failed host,
  one per prune, on stderr; under systemd (``JOURNAL_STREAM`` set) each line
  starts with its syslog priority (``<4>``) so journald files it at that level.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from fleetstat.errors import RoundLockedError

if TYPE_CHECKING:
    from fleetstat.app import CollectOutcome
    from fleetstat.config import Config
    from fleetstat.store.retention import PruneReport
    from fleetstat.transport.pool import ConnectionPool

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 86400.0
MIN_EVERY_SECONDS = 0.01  # rounds never overlap, so a tiny interval only means "back to back"

RoundFn = Callable[[], Awaitable["CollectOutcome"]]
PruneFn = Callable[[Callable[[], bool]], "PruneReport | None"]
FlushFn = Callable[[], dict[str, Any]]


# -- log lines ---------------------------------------------------------------------------


def logfmt(**fields: object) -> str:
    """``key=value`` pairs; values with spaces, quotes or ``=`` are JSON-quoted."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, float):
            text = f"{value:.3f}"
        elif isinstance(value, datetime):
            text = value.isoformat()
        else:
            text = str(value)
        if not text.isprintable():
            # Escapes, not raw control characters: a host name or a URL path sent
            # by someone else must not drive the terminal that reads the log.
            text = json.dumps(text, ensure_ascii=True).replace("\x7f", "\\u007f")
        elif not text or any(c in text for c in ' "=\\'):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class LogfmtFormatter(logging.Formatter):
    """One line per record: ``ts=... level=... <fields>``; journald priority prefix.

    Records from this module already hold ``key=value`` text; any other record
    (a library warning) becomes ``logger=... msg="..."``.
    """

    _PRIORITY: ClassVar[dict[str, int]] = {
        "DEBUG": 7,
        "INFO": 6,
        "WARNING": 4,
        "ERROR": 3,
        "CRITICAL": 2,
    }

    def __init__(self, *, journald: bool | None = None) -> None:
        super().__init__()
        self.journald = bool(os.environ.get("JOURNAL_STREAM")) if journald is None else journald

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not getattr(record, "logfmt", False):
            message = logfmt(logger=record.name, msg=message)
        if record.exc_info:
            message += " " + logfmt(exception=self.formatException(record.exc_info))
        level = record.levelname.lower()
        if self.journald:  # journald has its own timestamps
            return f"<{self._PRIORITY.get(record.levelname, 6)}>level={level} {message}"
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"ts={ts} level={level} {message}"


def configure_logging(stream: Any = None) -> None:
    """Route every log record to ``stream`` (stderr) as logfmt lines: for the CLI."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # The rounds' lines, and serve's logins, refusals and failed requests (with
    # -v every request): INFO, or DEBUG when the root logger is at DEBUG.
    for name in (log.name, "fleetstat.api", "fleetstat.cluster"):
        logging.getLogger(name).setLevel(min(logging.INFO, root.level or logging.INFO))


def _emit(level: int, **fields: object) -> None:
    log.log(level, "%s", logfmt(**fields), extra={"logfmt": True})


# -- the scheduler -----------------------------------------------------------------------


@dataclass
class WatchStats:
    rounds: int = 0  # rounds that completed and were stored
    crashed: int = 0  # rounds that raised
    skipped: int = 0  # rounds not run: another round held the database's round lock
    overran: int = 0  # rounds longer than the interval
    prunes: int = 0
    stop_reason: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Watcher:
    """Runs ``round_fn`` every ``every`` seconds until asked to stop, in the running loop.

    ``round_fn`` is a coroutine function (:func:`fleetstat.app.run_round` bound to a
    config); it runs as a coroutine of this loop, one at a time. ``prune_fn`` and
    ``flush_fn`` block (SQL, SMTP) and run in a worker thread. The three callables
    are seams for tests; :func:`watcher_for` builds the real ones from a config.
    ``prune_fn`` gets a ``should_stop`` callable and may return None when there is
    nothing to prune (no ``<retention>``).

    :meth:`pause` and :meth:`resume` hold the rounds without stopping the loop
    (``serve``'s ``/monitoring``): a round in flight completes, no new one starts
    while paused, and on resume the next one starts at once.
    """

    def __init__(
        self,
        every: float,
        round_fn: RoundFn,
        *,
        prune_fn: PruneFn | None = None,
        flush_fn: FlushFn | None = None,
        prune_every: float = PRUNE_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_rounds: int | None = None,
        running: bool = True,
        tick_fn: Callable[[], object] | None = None,
        tick_every: float = 30.0,
        close_fn: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if not every >= MIN_EVERY_SECONDS:
            raise ValueError(f"the interval must be at least {MIN_EVERY_SECONDS}s, not {every}")
        self.every = every
        self.round_fn = round_fn
        self.prune_fn = prune_fn
        self.flush_fn = flush_fn
        self.prune_every = prune_every
        self.clock = clock
        self.max_rounds = max_rounds
        # Between rounds, every tick_every seconds (in a thread): the database's
        # health check, so its DOWN mail does not wait for a long interval.
        self.tick_fn = tick_fn
        self.tick_every = tick_every
        # Last, however run() ends: what outlives a round (kept SSH connections).
        self.close_fn = close_fn
        # The SSH connections kept between rounds (watcher_for sets it), for a look.
        self.connections: ConnectionPool | None = None
        self.stats = WatchStats()
        self.in_round = False
        # asyncio.Event binds to the running loop on first wait (Python 3.10+), so
        # a Watcher may be built before the loop runs.
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # set on stop and on pause/resume
        self._running = running
        self._last_prune: float | None = None

    # -- stopping and pausing -----------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """False while paused (rounds held); says nothing about stopping."""
        return self._running

    def request_stop(self, reason: str = "requested") -> None:
        """Finish the round in flight (if any), flush, and return from :meth:`run`."""
        if not self._stop.is_set():
            self.stats.stop_reason = reason
            self._stop.set()
            self._wake.set()

    def pause(self) -> None:
        if self._running:
            self._running = False
            _emit(logging.INFO, event="paused", in_round=self.in_round or None)
            self._wake.set()

    def resume(self) -> None:
        if not self._running:
            self._running = True
            _emit(logging.INFO, event="resumed")
            self._wake.set()

    def install_signal_handlers(self, on_stop: Callable[[], None] | None = None) -> None:
        """SIGTERM and SIGINT (in the running loop) ask for a stop; a second one aborts.

        ``on_stop`` runs after the first signal (``serve`` stops its HTTP server
        there). The second signal takes the signal's default action at once: the
        process ends (the round in flight is then not stored: its one
        transaction never began, or is rolled back by the database).
        """

        def stop(name: str) -> None:
            self.request_stop(name)
            if on_stop is not None:
                on_stop()

        install_stop_signals(stop)

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> int:
        """Rounds until a stop request; then flush the outbox. The exit code (0)."""
        _emit(logging.INFO, event="watch_start", every=self.every, pid=os.getpid(),
              running=self._running)  # fmt: skip
        try:
            await self._rounds()
        finally:
            await self._close()
        await self._final_flush()
        _emit(logging.INFO, event="watch_stop", reason=self.stats.stop_reason,
              rounds=self.stats.rounds, crashed=self.stats.crashed,
              overran=self.stats.overran)  # fmt: skip
        return 0

    async def _close(self) -> None:
        """What outlives a round (kept SSH connections), however the loop ended."""
        if self.close_fn is None:
            return
        try:
            await self.close_fn()
        except Exception as exc:  # closing must not hide how the loop ended
            _emit(logging.ERROR, event="close_failed", error=f"{type(exc).__name__}: {exc}")

    async def _rounds(self) -> None:
        next_start = self.clock()
        while not self.stopping:
            if not self._running:
                await self._wait(None)
                next_start = self.clock()  # resumed: a round at once, then on schedule
                continue
            delay = next_start - self.clock()
            if delay > 0:
                ticking = self.tick_fn is not None and delay > self.tick_every
                woken = await self._wait(min(delay, self.tick_every) if ticking else delay)
                if ticking and not woken:
                    await self._tick()
                continue  # woken early (pause, stop) or on time: check again
            started = self.clock()
            await self._one_round()
            elapsed = self.clock() - started
            next_start = started + self.every
            if elapsed > self.every:
                self.stats.overran += 1
                _emit(logging.WARNING, event="round_overran", duration=elapsed,
                      every=self.every, delayed_by=elapsed - self.every,
                      note="the next round starts now; rounds never overlap")  # fmt: skip
                next_start = self.clock()
            if self.max_rounds is not None and self.stats.rounds + self.stats.crashed >= (
                self.max_rounds
            ):
                self.request_stop("max_rounds")
            await self._maybe_prune()

    async def _wait(self, seconds: float | None) -> bool:
        """Sleep until ``seconds`` pass or a stop/pause/resume wakes us (True)."""
        self._wake.clear()
        if self.stopping:
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _tick(self) -> None:
        assert self.tick_fn is not None
        try:
            await asyncio.to_thread(self.tick_fn)
        except Exception as exc:  # a check between rounds must not end the watch
            _emit(logging.ERROR, event="check_failed", error=f"{type(exc).__name__}: {exc}")

    async def _one_round(self) -> None:
        number = self.stats.rounds + self.stats.crashed + 1
        _emit(logging.INFO, event="round_start", n=number)
        t0 = self.clock()
        self.in_round = True
        try:
            outcome = await self.round_fn()
        except RoundLockedError as exc:  # a `collect` by hand runs: this one waits its turn
            self.stats.skipped += 1
            _emit(logging.WARNING, event="round_skipped", n=number, reason="locked",
                  holder=exc.holder or "unknown")  # fmt: skip
            return
        except Exception as exc:  # one bad round must not end months of watching
            self.stats.crashed += 1
            _emit(logging.ERROR, event="round_failed", n=number, duration=self.clock() - t0,
                  error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            log.debug("round %d traceback", number, exc_info=True)
            return
        finally:
            self.in_round = False
        self.stats.rounds += 1
        result = outcome.round
        _log_spool(number, outcome)
        for host in result.results:
            if not host.ok:
                _emit(logging.WARNING, event="host_failed", round=outcome.round_id,
                      host=host.client.label, address=host.client.address,
                      status=host.status.value, duration=host.duration_seconds,
                      error=host.error)  # fmt: skip
        _emit(
            logging.WARNING if outcome.spooled else logging.INFO,
            event="spooled" if outcome.spooled else "round",
            n=number,
            round=outcome.round_id,
            hosts=len(result.results),
            ok=result.ok_count,
            failed=result.failed_count,
            retries=result.retries,
            duration=(result.finished_at - result.started_at).total_seconds(),
            total=self.clock() - t0,
            alerts_firing=outcome.alerts_firing,
            mail_sent=outcome.mail_sent,
            mail_queued=outcome.mail_queued,
            mail_failed=outcome.mail_failed,
            mail_error=outcome.mail_error,
            uuid=outcome.round.uuid,
            spool_depth=outcome.spooled.depth if outcome.spooled else None,
            error=outcome.database_error,
        )

    async def _maybe_prune(self) -> None:
        if self.prune_fn is None or self.stopping:
            return
        now = self.clock()
        if self._last_prune is not None and now - self._last_prune < self.prune_every:
            return
        self._last_prune = now
        try:
            report = await asyncio.to_thread(self.prune_fn, lambda: self.stopping)
        except Exception as exc:
            _emit(logging.ERROR, event="prune_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if report is None:
            return
        self.stats.prunes += 1
        _emit(logging.INFO, event="prune", samples=report.samples, attempts=report.attempts,
              events=report.events, mail=report.mail, rounds=report.rounds,
              hourly=report.hourly, batches=report.batches, duration=report.seconds,
              stopped=report.stopped or None)  # fmt: skip

    async def _final_flush(self) -> None:
        # No round ran (stopped during start-up): nothing of ours is queued, and
        # opening the database only to find that out would delay the stop.
        if self.flush_fn is None or self.stats.rounds + self.stats.crashed == 0:
            return
        try:
            fields = await asyncio.to_thread(self.flush_fn)
        except Exception as exc:
            _emit(logging.ERROR, event="flush_failed", error=f"{type(exc).__name__}: {exc}")
            return
        _emit(logging.INFO, event="flush", **fields)


def _log_spool(number: int, outcome: CollectOutcome) -> None:
    """What the spool did in this round: rounds written first, rounds dropped."""
    replayed = outcome.replayed
    if replayed is not None and (replayed.written or replayed.already or replayed.unreadable):
        _emit(logging.INFO, event="replayed", n=number, rounds=replayed.written,
              already=replayed.already or None, unreadable=replayed.unreadable or None,
              left=replayed.left, stopped=replayed.stopped or None)  # fmt: skip
    spooled = outcome.spooled
    if spooled is not None and spooled.dropped:
        _emit(logging.ERROR, event="spool_dropped", n=number, rounds=len(spooled.dropped),
              names=",".join(spooled.dropped),
              note="the spool reached <spool max-size>: oldest rounds dropped")  # fmt: skip


# Stop signals that came before the loop took over (start-up): see catch_stop_signals_early.
_early_signals: list[str] = []


def catch_stop_signals_early() -> None:
    """From the start of ``watch``/``serve`` until :func:`install_stop_signals`: a
    SIGTERM or SIGINT is remembered (no round will start, the exit is 0), a second
    one aborts. Without this, a signal during start-up (config, imports, the
    loop's creation) would end the process by its default action, status 143.
    """

    def remember(signum: int, _frame: object) -> None:
        if _early_signals:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _early_signals.append(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, remember)


def install_stop_signals(on_first: Callable[[str], object]) -> None:
    """SIGTERM/SIGINT in the running loop: the first calls ``on_first(name)``, the
    second ends the process by the signal's default action (an abort).

    The loop's own handlers (``add_signal_handler``) run as ordinary callbacks
    between coroutine steps, never in the middle of one, so a stop request cannot
    tear a round apart; the second signal does not wait for anything. A signal
    caught by :func:`catch_stop_signals_early` counts as the first.
    """
    loop = asyncio.get_running_loop()
    stopping = False

    def handler(signum: int) -> None:
        nonlocal stopping
        name = signal.Signals(signum).name
        if stopping:
            _emit(logging.WARNING, event="aborting", signal=name)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stopping = True
        _emit(logging.WARNING, event="stopping", signal=name,
              note="finishing the round in flight; send it again to abort")  # fmt: skip
        on_first(name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler, sig)
    if _early_signals:  # it came during start-up: stop before the first round
        handler(signal.Signals[_early_signals[0]])


def watcher_for(
    config: Config,
    every: float,
    *,
    database_url: str | None = None,
    max_rounds: int | None = None,
    running: bool = True,
) -> Watcher:
    """A :class:`Watcher` doing real rounds, retention and mail for ``config``.

    Raises ``ConfigError`` at once when a ``password-env`` the rounds log in with
    is unset: not a failed round every interval.
    """
    from fleetstat.app import (
        connection_pool,
        deliver_mail,
        open_store,
        require_round_secrets,
        run_round,
    )
    from fleetstat.store.retention import prune

    require_round_secrets(config, database_url)
    # <cluster>: the workers log in to the hosts, not this loop (the coordinator).
    pool = connection_pool(config) if config.cluster is None else None
    if pool is not None and pool.keep < every:
        _emit(logging.WARNING, event="keep_connections_short", keep=pool.keep, every=every,
              note="connections idle longer than keep-connections are closed: "
              "every round logs in again")  # fmt: skip

    watcher: Watcher | None = None

    def stopping() -> bool:  # read by the spool's replay between two rounds
        return watcher is not None and watcher.stopping

    async def local_round() -> CollectOutcome:
        if pool is None:
            return await run_round(config, database_url=database_url, should_stop=stopping)
        pool.retain(config.clients)
        return await run_round(config, database_url=database_url, should_stop=stopping,
                               runner=pool.run_probe)  # fmt: skip

    async def close_connections() -> None:
        if pool is None:
            return
        open_now = len(pool)
        await pool.close()
        _emit(logging.INFO, event="connections_closed", open=open_now,
              **dataclasses.asdict(pool.stats))  # fmt: skip

    one_round: RoundFn = local_round
    if config.cluster is not None:
        # <cluster>: this loop is the coordinator, the workers collect. Imported
        # only here: without <cluster> nothing loads the broker code.
        from fleetstat.cluster.coordinator import Coordinator

        one_round = Coordinator(config, database_url).round_fn()

    def prune_old(should_stop: Callable[[], bool]) -> PruneReport | None:
        retention = config.retention
        if retention.samples is None and retention.attempts is None and retention.events is None:
            return None
        with open_store(config, database_url) as store:
            return prune(store, retention, should_stop=should_stop)

    def flush() -> dict[str, Any]:
        with open_store(config, database_url) as store:
            return deliver_mail(config, store)

    def check_database() -> None:
        from fleetstat.spool.health import check_database_health

        check_database_health(config, database_url)

    watcher = Watcher(every, one_round, prune_fn=prune_old, flush_fn=flush,
                      max_rounds=max_rounds, running=running, tick_fn=check_database,
                      tick_every=max(1.0, min(30.0, config.database_alert_after / 2)),
                      close_fn=close_connections)  # fmt: skip
    watcher.connections = pool
    return watcher


def run_watch(config: Config, every: float, *, database_url: str | None = None) -> int:
    """``fleetstat watch``: one event loop for the life of the process; the exit code."""

    async def main() -> int:
        watcher = watcher_for(config, every, database_url=database_url)
        watcher.install_signal_handlers()
        return await watcher.run()

    return asyncio.run(main())
