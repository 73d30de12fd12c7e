"""What the CLI commands do, as library calls (the CLI only parses and prints)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetstat import envelope
from fleetstat.collector import Progress, RoundPlan, Runner, collect_round, plan_round
from fleetstat.config.secrets import require_secrets
from fleetstat.errors import MailError
from fleetstat.model import RoundResult
from fleetstat.probe_bundle import build_probe

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
    from fleetstat.store import Store
    from fleetstat.store.outbox import OutboxEntry
    from fleetstat.store.reports import History, HostRef, HostState
    from fleetstat.store.retention import PruneReport
    from fleetstat.store.roundlock import RoundLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectOutcome:
    round: RoundResult
    round_id: int
    database: str
    mail_sent: int = 0  # accepted by the SMTP server in this run
    mail_queued: int = 0  # still in the outbox afterwards (new, refused, or no SMTP)
    mail_failed: int = 0  # attempted in this run and not accepted
    mail_error: str | None = None  # why nothing could be sent, when that is the case
    alerts_firing: int = 0  # alerts firing after this round


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


def require_round_secrets(config: Config, database_url: str | None = None) -> None:
    """A round logs in to the hosts, the SMTP server and the database: raise
    ``ConfigError`` naming each of their ``password-env`` variables that is unset."""
    require_secrets(config, "client", "smtp", *(() if database_url else ("database",)))


def _store(config: Config, url: str | None) -> Store:
    from fleetstat.store import Store

    if url is None:
        require_secrets(config, "database")
    return Store(url or config.database_url)


def open_store(config: Config, url: str | None = None) -> Store:
    """The store at ``url`` (``--db``), else the config's, schema brought up to date."""
    store = _store(config, url)
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


def round_holder() -> str:
    """Who runs this round, for the message of a second one: command, pid, machine."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv else "fleetstat"
    return f"{command} (pid {os.getpid()} on {socket.gethostname()})"


def _open_for_round(config: Config, url: str | None) -> _OpenedStore:
    """The store with the round lock taken (before the schema is made or upgraded:
    two first rounds must not both migrate), then what the round reads from it."""
    from fleetstat.store.events import read_bookmarks
    from fleetstat.store.roundlock import RoundLock

    store = _store(config, url)
    try:
        lock = RoundLock(store, round_holder()).acquire()
        try:
            store.ensure_schema()
            lock.announce()
            hosts = [(c.ip, c.port) for c in config.clients]
            # Event bookmarks come from the stored events: they advance only once stored.
            return _OpenedStore(store, lock, read_bookmarks(store, hosts), store.previous_cpu())
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
) -> CollectOutcome:
    """One round: probe every host, store every result, evaluate alerts, send the mail.

    The seam a long-lived loop (``watch``, ``serve``) calls once per round: a
    coroutine taking the config and returning the outcome. Everything that blocks
    (the store, SMTP) runs in a worker thread, so the loop keeps serving while a
    round is stored. ``runner`` replaces the transport (tests; a connection pool).

    The store is opened (SQLAlchemy imported, schema checked, bookmarks read) in a
    thread while the round starts: on a 500-host round that is 0.3-0.5 s of one
    core that the first connections' sshd work would otherwise wait for. When the
    store cannot be opened, the round is cancelled and the store's error raised,
    so nothing is collected that could not be kept.

    The round is stored before alerts are evaluated, and alerts are queued before
    anything is sent: an SMTP server that is down costs neither data nor mail.
    ``now`` stands in for the clock of the alert and mail steps (tests).

    One round at a time per database: the store's thread takes the round lock
    (``store/roundlock.py``) and holds it until the mail went out. When another
    round holds it, this one is cancelled like for any store error and
    :class:`~fleetstat.errors.RoundLockedError` (exit 75) says who holds it.
    """
    require_round_secrets(config, database_url)
    key = load_or_create_key(config.key_path)
    plan = plan_round(config, key, build_probe())
    loop = asyncio.get_running_loop()
    opening = loop.run_in_executor(None, _open_for_round, config, database_url)
    try:
        result = await _collect_while_opening(config, plan, opening, progress, runner, interrupt)
    except BaseException:
        opening.add_done_callback(_close_when_opened)
        raise
    opened = await opening
    return await asyncio.to_thread(_store_and_close, config, opened, result, now)


async def _collect_while_opening(
    config: Config,
    plan: RoundPlan,
    ready: asyncio.Future[_OpenedStore],
    progress: Progress | None,
    runner: Runner | None,
    interrupt: asyncio.Event | None = None,
) -> RoundResult:
    async def bookmarks() -> Mapping[tuple[str, int], str]:
        return (await asyncio.shield(ready)).bookmarks

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
    if ready.done() and ready.exception() is not None:
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        ready.result()  # raises the store's error
    return await collecting


def _close_when_opened(opening: asyncio.Future[_OpenedStore]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opened = opening.result()
        with opened.store, opened.lock:
            pass


def _store_and_close(
    config: Config, opened: _OpenedStore, result: RoundResult, now: datetime | None
) -> CollectOutcome:
    # The lock is held until the round's mail went out, then released; then the store.
    with opened.store as store, opened.lock:
        return _store_round(config, store, result, opened.previous_cpu, now)


def _store_round(
    config: Config,
    store: Store,
    result: RoundResult,
    previous_cpu: Mapping[tuple[str, int], CpuCounters],
    now: datetime | None,
) -> CollectOutcome:
    from fleetstat.alerts import evaluate_round
    from fleetstat.hostfail import with_failures
    from fleetstat.mail.events import queue_event_mail
    from fleetstat.metrics import fill_interval_cpu

    # One host's failure in any step below is that host's (fleetstat.hostfail): it
    # is marked bad_payload, logged, and the others are stored, alerted and mailed.
    # Before the round is stored and alerts run: both read cpu.interval_percent.
    result = fill_interval_cpu(result, previous_cpu)
    written = store.write_round(
        result,
        then=lambda conn, rid, stored: queue_event_mail(conn, stored, rid, url=store.url, now=now),
    )
    result, round_id = written.round, written.round_id
    evaluation = evaluate_round(store, result, defaults=config.defaults, now=now, once=True)
    if evaluation.failures:
        result = with_failures(result, "alerts", evaluation.failures)
        store.mark_failed(round_id, result, evaluation.failures)
    for address in evaluation.unaddressed:
        log.warning("alert for %s not mailed: the client has no mail address", address)
    outcome = CollectOutcome(
        round=result,
        round_id=round_id,
        database=store.display_url,
        alerts_firing=evaluation.firing,
    )
    return replace(outcome, **deliver_mail(config, store, now=now))


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
