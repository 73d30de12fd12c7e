"""What the CLI commands do, as library calls (the CLI only parses and prints)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetstat import envelope
from fleetstat.collector import Progress, RoundPlan, Runner, collect_round, plan_round
from fleetstat.config.secrets import require_secrets
from fleetstat.errors import MailError, RoundLockedError, StoreError
from fleetstat.heap import round_starts
from fleetstat.model import RoundResult
from fleetstat.probe_bundle import build_probe
from fleetstat.transport import Probe
from fleetstat.transport.keys import unlock as unlock_keys

# The store, alerts and mail modules (SQLAlchemy: ~0.3 s of import) are imported
# where they are used: ``collect`` imports them in a thread while the round's
# first connections are made (see :func:`run_round`).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from fleetstat.alerts import AlertView
    from fleetstat.config import Client, Config
    from fleetstat.errors import UsageError
    from fleetstat.mail import FlushReport
    from fleetstat.metrics import CpuCounters
    from fleetstat.spool import Spool, Spooled
    from fleetstat.spool.replay import ReplayReport
    from fleetstat.store import Store
    from fleetstat.store.outbox import OutboxEntry
    from fleetstat.store.reports import History, HostRef, HostState
    from fleetstat.store.retention import PruneReport
    from fleetstat.store.roundlock import RoundLock
    from fleetstat.transport.pool import ConnectionPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectOutcome:
    round: RoundResult
    round_id: int | None  # None: the round is in the spool, not (yet) in the database
    database: str
    mail_sent: int = 0  # accepted by the SMTP server in this run
    mail_queued: int = 0  # still in the outbox afterwards (new, refused, or no SMTP)
    mail_failed: int = 0  # attempted in this run and not accepted
    mail_error: str | None = None  # why nothing could be sent, when that is the case
    alerts_firing: int = 0  # alerts firing after this round
    spooled: Spooled | None = None  # the database did not take the round: where it waits
    database_error: str | None = None  # why the database did not take it
    replayed: ReplayReport | None = None  # spooled rounds written before this one


def load_or_create_key(path: Path) -> X25519PrivateKey:
    """The server's private key; created (0600) on first use so a first run just works.

    A key that other users can read is used, with a warning: anyone who reads it
    can open every payload.
    """
    if not path.exists():
        envelope.generate_keypair(path)
        log.warning("created server key pair %s (+ .pub); keep the private key safe", path)
    warning = envelope.check_key_permissions(path)
    if warning:
        log.warning("%s", warning)
    return envelope.load_private_key(path)


def round_probe() -> Probe:
    """The probe a round uploads: each host gets its platform's variant, no module
    it would never import (``probe_bundle.PLATFORM_ONLY``)."""
    return Probe(
        posix=functools.partial(build_probe, "posix"),
        windows=functools.partial(build_probe, "windows"),
    )


def require_round_secrets(config: Config, database_url: str | None = None) -> None:
    """A round logs in to the hosts, the SMTP server and the database: raise
    ``ConfigError`` naming each of their ``password-env`` variables that is unset,
    and each encrypted key whose passphrase is wrong or missing (decrypted here,
    once, for every later round)."""
    require_secrets(config, "client", "smtp", *(() if database_url else ("database",)))
    unlock_keys(config)


def _store(config: Config, url: str | None) -> Store:
    from fleetstat.store import Store

    if url is None:
        require_secrets(config, "database")
    return Store(url or config.database_url)


def open_store(config: Config, url: str | None = None, *, schema: bool = True) -> Store:
    """The store at ``url`` (``--db``), else the config's, schema brought up to date.

    ``schema=False``: not connected yet (``serve``, which starts whether or not
    the database answers, and makes the schema once it does).
    """
    store = _store(config, url)
    if not schema:
        return store
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store


def open_existing(config: Config, url: str | None = None) -> Store:
    """The store for a command that only reads (or prunes, or sends what is queued):
    it never creates a database or changes its schema. No database, an empty one or
    an older schema is a ``NoDatabaseError`` (exit 2) that says to run ``db upgrade``."""
    from fleetstat.store import Store

    if url is None:
        require_secrets(config, "database")
    store = Store(url or config.database_url, create=False)
    try:
        store.require_schema()
    except BaseException:
        store.close()
        raise
    return store


@dataclass(frozen=True)
class _OpenedStore:
    """What a round needs from the store, read before anything of it is stored."""

    store: Store
    lock: RoundLock
    bookmarks: Mapping[tuple[str, int], str]
    previous_cpu: Mapping[tuple[str, int], CpuCounters]
    replayed: ReplayReport | None  # the spool's rounds written first (None: it was empty)


def round_holder() -> str:
    """Who runs this round, for the message of a second one: command, pid, machine."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv else "fleetstat"
    return f"{command} (pid {os.getpid()} on {socket.gethostname()})"


def _open_for_round(
    config: Config, url: str | None, spool: Spool, should_stop: Callable[[], bool]
) -> _OpenedStore:
    """The store with the round lock taken (before the schema is made or upgraded:
    two first rounds must not both migrate), the spool's rounds written (oldest
    first, under the lock), then what the round reads from it.

    Raises the store's :class:`StoreError` when it cannot be opened, or when it
    fails again during the replay (the spool keeps what was not written), and
    :class:`RoundLockedError` when another round holds the lock.
    """
    from fleetstat.spool import SpoolError
    from fleetstat.spool.replay import log_replayed, replay, waiting
    from fleetstat.store.events import read_bookmarks
    from fleetstat.store.roundlock import RoundLock

    store = _store(config, url)
    try:
        lock = RoundLock(store, round_holder()).acquire()
        try:
            store.ensure_schema()
            lock.announce()
            replayed = None
            if waiting(spool):
                replayed = replay(
                    config, store, spool, should_stop=should_stop, on_round=log_replayed
                )
                if replayed.error is not None:
                    raise replayed.error
            hosts = [(c.ip, c.port) for c in config.clients]
            # Event bookmarks come from the stored events: they advance only once stored.
            bookmarks = read_bookmarks(store, hosts)
            try:
                spool.save_bookmarks(bookmarks)  # what an outage starts from
            except SpoolError as exc:
                log.warning("%s", exc)
            return _OpenedStore(store, lock, bookmarks, store.previous_cpu(), replayed)
        except BaseException:
            lock.release()
            raise
    except BaseException:
        store.close()
        raise


def collect_once(
    config: Config,
    *,
    progress: Progress | None = None,
    database_url: str | None = None,
    now: datetime | None = None,
) -> CollectOutcome:
    """One round in an event loop of its own (``fleetstat collect``): :func:`run_round`.

    Ctrl-C (SIGINT), when called in the main thread: the first stops starting
    hosts; those in flight finish within their deadline, what arrived is stored
    and mailed, and ``outcome.round.not_started`` counts the rest. The second
    aborts at once (exit 130) with a log line; nothing of the round is stored.
    """

    async def interruptible() -> CollectOutcome:
        interrupt = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            if interrupt.is_set():
                log.warning("second Ctrl-C: aborting at once, nothing of this round is stored")
                logging.shutdown()
                os._exit(130)
            interrupt.set()
            log.warning(
                "Ctrl-C: no more hosts are started; those in flight finish within their "
                "deadline and what arrived is stored (Ctrl-C again to abort at once)"
            )

        handled = threading.current_thread() is threading.main_thread()
        if handled:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await run_round(config, progress=progress, database_url=database_url,
                                   now=now, interrupt=interrupt)  # fmt: skip
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(interruptible())


async def run_round(
    config: Config,
    *,
    progress: Progress | None = None,
    database_url: str | None = None,
    now: datetime | None = None,
    runner: Runner | None = None,
    interrupt: asyncio.Event | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CollectOutcome:
    """One round: probe every host, store every result, evaluate alerts, send the mail.

    The seam a long-lived loop (``watch``, ``serve``) calls once per round: a
    coroutine taking the config and returning the outcome. Everything that blocks
    (the store, SMTP) runs in a worker thread, so the loop keeps serving while a
    round is stored. ``runner`` replaces the transport (tests; a connection pool).

    The store is opened (SQLAlchemy imported, schema checked, bookmarks read) in a
    thread while the round starts: on a 500-host round that is 0.3-0.5 s of one
    core that the first connections' sshd work would otherwise wait for. Rounds
    the spool holds are written first, oldest first (``should_stop`` ends that
    between two of them).

    Nothing collected is lost when the database is away: when it cannot be
    opened, fails while the round is written, or spooled rounds are still
    waiting, the round goes to the spool (``outcome.spooled``) and is written
    by a later round, in order. The round is stored before alerts are
    evaluated, and alerts are queued before anything is sent: an SMTP server
    that is down costs neither data nor mail. ``now`` stands in for the clock of
    the alert and mail steps (tests).

    One round at a time per database: the store's thread takes the round lock
    (``store/roundlock.py``) and holds it until the mail went out. When another
    round holds it, this one is cancelled and
    :class:`~fleetstat.errors.RoundLockedError` (exit 75) says who holds it:
    that round stores the interval, so this one is not spooled.
    """
    from fleetstat.spool import Spool

    require_round_secrets(config, database_url)
    key = load_or_create_key(config.key_path)
    plan = plan_round(config, key, round_probe())
    spool = Spool.for_config(config)
    loop = asyncio.get_running_loop()
    stop = should_stop or _never
    round_starts()
    opening = loop.run_in_executor(None, _open_for_round, config, database_url, spool, stop)
    try:
        result = await _collect_while_opening(
            config, plan, opening, progress, runner, spool, interrupt
        )
    except BaseException:
        opening.add_done_callback(_close_when_opened)
        raise
    try:
        opened = await opening
    except RoundLockedError:
        raise
    except StoreError as exc:
        spool_it = functools.partial(_spool_round, url=database_url)
        return await asyncio.to_thread(spool_it, config, spool, result, exc, None)
    return await asyncio.to_thread(_store_or_spool, config, spool, opened, result, now)


def connection_pool(config: Config) -> ConnectionPool | None:
    """The SSH connections ``watch`` and ``serve`` keep between rounds, or None when
    ``keep-connections="off"`` leaves none to keep (``transport/pool.py``).

    ``run_round(config, runner=pool.run_probe)`` then runs each round on them.
    Raises ``FleetstatError`` at once when the process may not open enough files
    for the fleet's connections (after raising its soft limit to the hard one).
    """
    from fleetstat.config.validate import DEFAULT_KEEP_CONNECTIONS
    from fleetstat.transport.pool import ConnectionPool, ensure_fd_limit

    d = config.defaults
    keep = DEFAULT_KEEP_CONNECTIONS if d.keep_connections is None else d.keep_connections
    pool = ConnectionPool(keep=keep, max_age=d.max_connection_age)
    kept = sum(1 for client in config.clients if pool.keep_for(client) > 0)
    if kept == 0:
        return None
    ensure_fd_limit(kept, d.concurrency)
    return pool


def _never() -> bool:
    return False


@contextlib.contextmanager
def _releasing(lock: RoundLock) -> Iterator[None]:
    """Hold ``lock`` for the block, then release it; a database gone meanwhile has
    dropped the session's lock itself, and its error is not the round's: the
    round was spooled already, or its own error is on its way."""
    try:
        yield
    finally:
        try:
            lock.release()
        except StoreError as exc:
            log.info("round lock released by the database going away: %s", exc)


async def _collect_while_opening(
    config: Config,
    plan: RoundPlan,
    ready: asyncio.Future[_OpenedStore],
    progress: Progress | None,
    runner: Runner | None,
    spool: Spool,
    interrupt: asyncio.Event | None = None,
) -> RoundResult:
    """The round's hosts, while the store opens. Another round holding the lock
    cancels this one; a database that cannot be opened does not (the round is
    spooled): hosts that read events then continue from the spool's bookmarks."""

    async def bookmarks() -> Mapping[tuple[str, int], str]:
        try:
            return (await asyncio.shield(ready)).bookmarks
        except RoundLockedError:
            raise
        except StoreError:  # no database: continue from the spool's bookmarks
            return await asyncio.to_thread(spool.bookmarks)

    plan = replace(plan, bookmarks=bookmarks)
    options: dict[str, Any] = {"progress": progress, "interrupt": interrupt}
    if runner is not None:
        options["runner"] = runner
    collecting = asyncio.ensure_future(collect_round(config, plan, **options))
    both: set[asyncio.Future[Any]] = {collecting, ready}
    try:
        await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        collecting.cancel()
        raise
    if ready.done() and isinstance(ready.exception(), RoundLockedError):
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        ready.result()  # raises: another round holds the lock
    return await collecting


def _close_when_opened(opening: asyncio.Future[_OpenedStore]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opened = opening.result()
        with opened.store, _releasing(opened.lock):
            pass


def _store_or_spool(
    config: Config, spool: Spool, opened: _OpenedStore, result: RoundResult, now: datetime | None
) -> CollectOutcome:
    from fleetstat.spool.health import DatabaseHealth
    from fleetstat.spool.replay import store_round_once

    # The lock is held until the round's mail went out, then released; then the store.
    with opened.store as store, _releasing(opened.lock):
        replayed = opened.replayed
        if replayed is not None and not replayed.complete:
            # Spooled rounds are still waiting (a stop came during the replay):
            # this round goes after them, or the order would be lost.
            waiting = f"{replayed.left} earlier round(s) still in the spool"
            return _spool_round(config, spool, result, waiting, replayed, store=store)
        try:
            stored = store_round_once(
                config, store, result, previous_cpu=opened.previous_cpu, now=now
            )
        except StoreError as exc:
            return _spool_round(config, spool, result, exc, replayed, store=store)
        DatabaseHealth(config, spool, store.display_url).recovered(
            replayed.written if replayed else 0
        )
        outcome = CollectOutcome(
            round=stored.round,
            round_id=stored.round_id,
            database=store.display_url,
            alerts_firing=stored.evaluation.firing if stored.evaluation else 0,
            replayed=replayed,
        )
        try:
            return replace(outcome, **deliver_mail(config, store, now=now))
        except StoreError as exc:  # the round is stored; the mail waits in the outbox
            return replace(outcome, mail_error=str(exc))


def _spool_round(
    config: Config,
    spool: Spool,
    result: RoundResult,
    why: StoreError | str,
    replayed: ReplayReport | None,
    *,
    store: Store | None = None,
    url: str | None = None,
) -> CollectOutcome:
    """Keep ``result`` in the spool; raise :class:`SpoolError` when even that fails."""
    from fleetstat.spool import SpoolError
    from fleetstat.spool.health import DatabaseHealth, display_url

    database = store.display_url if store else display_url(url or config.database_url)
    reason = str(why)
    try:
        spooled = spool.put(result, reason)
    except SpoolError as exc:
        raise SpoolError(f"{reason}; and this round is lost: {exc}") from exc
    if isinstance(why, StoreError):  # the database failed (not: rounds were waiting)
        DatabaseHealth(config, spool, database).failed(reason)
    return CollectOutcome(
        round=result,
        round_id=None,
        database=database,
        spooled=spooled,
        database_error=reason,
        replayed=replayed,
    )


def deliver_mail(config: Config, store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """Flush the outbox when the config has ``<smtp>``; the ``mail_*`` outcome fields."""
    from fleetstat.mail import flush_outbox, outbox_backlog

    if config.smtp is None:
        pending, _ = outbox_backlog(store, now)
        note = "no <smtp> in the config: messages stay queued" if pending else None
        return {"mail_queued": pending, "mail_error": note}
    report = flush_outbox(store, config.smtp, now)
    return {
        "mail_sent": len(report.sent),
        "mail_queued": report.pending,
        "mail_failed": len(report.failed),
        "mail_error": str(report.error) if report.error else None,
    }


@dataclass(frozen=True)
class ReplayOutcome:
    """``fleetstat spool replay``: what the replay wrote and what the mail step did."""

    report: ReplayReport
    database: str
    mail: dict[str, Any]


def replay_spool(
    config: Config, *, database_url: str | None = None, now: datetime | None = None
) -> ReplayOutcome:
    """Write the spooled rounds now, oldest first, then send what they queued.

    Holds the round lock, as a round does (the spool's rounds are written in
    order, never beside a round); another round holding it raises
    :class:`RoundLockedError`. When the database still cannot be reached,
    ``report.error`` says why and every round stays spooled.
    """
    from fleetstat.spool import Spool
    from fleetstat.spool.health import DatabaseHealth, display_url
    from fleetstat.spool.replay import ReplayReport, log_replayed, replay
    from fleetstat.store.roundlock import RoundLock

    spool = Spool.for_config(config)
    url = database_url or config.database_url
    try:
        store = _store(config, database_url)
        try:
            lock = RoundLock(store, round_holder()).acquire()
        except BaseException:
            store.close()
            raise
    except RoundLockedError:
        raise
    except StoreError as exc:
        shown = display_url(url)
        DatabaseHealth(config, spool, shown).failed(str(exc))
        return ReplayOutcome(ReplayReport(left=len(spool.entries()), error=exc), shown, {})
    with store, _releasing(lock):
        try:
            store.ensure_schema()
        except StoreError as exc:
            DatabaseHealth(config, spool, store.display_url).failed(str(exc))
            return ReplayOutcome(ReplayReport(left=len(spool.entries()), error=exc),
                                 store.display_url, {})  # fmt: skip
        lock.announce()
        report = replay(config, store, spool, on_round=log_replayed)
        health = DatabaseHealth(config, spool, store.display_url)
        if report.error is not None:
            health.failed(str(report.error))
            return ReplayOutcome(report, store.display_url, {})
        if report.complete:
            health.recovered(report.written)
        return ReplayOutcome(report, store.display_url, deliver_mail(config, store, now=now))


def flush_mail(
    config: Config, *, database_url: str | None = None, everything: bool = True
) -> FlushReport:
    """``fleetstat mail flush``: send what the outbox holds now (``everything``: ignore backoff)."""
    from fleetstat.mail import flush_outbox

    if config.smtp is None:
        raise MailError(
            f"{config.path} has no <smtp>: add "
            '<smtp host="mail.example.com" from="fleetstat@example.com"/> to send mail'
        )
    require_secrets(config, "smtp")
    with open_existing(config, database_url) as store:
        return flush_outbox(store, config.smtp, everything=everything)


def list_mail(
    config: Config, *, database_url: str | None = None, which: str = "unsent", limit: int = 200
) -> list[OutboxEntry]:
    """``fleetstat mail list``: outbox rows, newest first (``which``: unsent, failed, queued,
    all)."""
    from fleetstat.store import outbox

    with open_store(config, database_url) as store:
        return outbox.listing(store, which=which, limit=limit)


def list_alerts(
    config: Config, *, database_url: str | None = None, pending: bool = False
) -> list[AlertView]:
    """``fleetstat alerts``: the alerts firing now for the clients in ``config``."""
    from fleetstat.alerts import active_alerts

    with open_existing(config, database_url) as store:
        return active_alerts(store, config, pending=pending)


# -- issue 5: reports, history, retention ------------------------------------------------


def _named(client: Client, hosts: list[str]) -> bool:
    return bool(
        {client.label, client.ip, client.address, f"{client.ip}:{client.port}"} & set(hosts)
    )


def _nobody_named(config: Config, hosts: list[str]) -> UsageError:
    from fleetstat.errors import UsageError

    return UsageError(
        f"no client in {config.path} is named {', '.join(hosts)} "
        "(give a name, an ip, or ip:port from the config)"
    )


def only_hosts(config: Config, hosts: list[str]) -> Config:
    """``config`` with only the clients ``hosts`` names (``collect --host``: re-check
    one host after a fix). Every name must match a client: a typo is a ``UsageError``."""
    unknown = [name for name in hosts if not any(_named(c, [name]) for c in config.clients)]
    if unknown:
        raise _nobody_named(config, unknown)
    return replace(config, clients=tuple(c for c in config.clients if _named(c, hosts)))


def host_refs(config: Config, hosts: list[str] | None = None) -> list[HostRef]:
    """The configured clients as reports name them; ``hosts`` filters by name, ip or ip:port.

    Raises ``UsageError`` when nothing matches ``hosts`` (a typo should not
    print an empty report).
    """
    from fleetstat.store.reports import HostRef

    refs = []
    for client in config.clients:
        if hosts and not _named(client, hosts):
            continue
        rules = frozenset(rule.key for rule in client.alerts)
        refs.append(HostRef(client.ip, client.port, client.label, rules))
    if hosts and not refs:
        raise _nobody_named(config, hosts)
    return refs


def report(
    config: Config,
    *,
    database_url: str | None = None,
    hosts: list[str] | None = None,
    failing: bool = False,
    now: datetime | None = None,
) -> list[HostState]:
    """``fleetstat report``: the latest state of every configured host, in config order."""
    from fleetstat.store.reports import host_states

    refs = host_refs(config, hosts)
    with open_existing(config, database_url) as store:
        states = host_states(store, refs, now=now)
    return [s for s in states if s.failing] if failing else states


def history(
    config: Config,
    host: str,
    since: datetime,
    *,
    until: datetime | None = None,
    database_url: str | None = None,
    buckets: int = 48,
) -> History:
    """``fleetstat history HOST``: one host's figures over a window."""
    from fleetstat.errors import UsageError
    from fleetstat.store.reports import host_history

    refs = host_refs(config, [host])
    if len(refs) > 1:
        raise UsageError(f"{host!r} names {len(refs)} clients; give ip:port")
    with open_existing(config, database_url) as store:
        return host_history(store, refs[0], since, until, buckets=buckets)


def prune_now(
    config: Config, *, database_url: str | None = None, now: datetime | None = None
) -> PruneReport:
    """``fleetstat prune``: apply ``<retention>`` once."""
    from fleetstat.store.retention import prune

    with open_existing(config, database_url) as store:
        return prune(store, config.retention, now=now)
