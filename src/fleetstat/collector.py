"""A round: every configured host at once (bounded), each with its deadline.

Every host gets exactly one :class:`HostResult`, ok or a classified failure; an
unexpected exception for one host becomes that host's failed result, never the
round's. The transport is a parameter (``runner``) so scheduling, deadlines and
classification are tested against a fake in milliseconds; the real path is tested
against a real sshd.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fleetstat import envelope
from fleetstat.comb import recipient_comb
from fleetstat.document import Document, Limits, parse
from fleetstat.errors import EnvelopeError, TransportError
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.text import clean
from fleetstat.transport import KnownHosts, Probe, ProbeRun, TransportSettings, run_probe
from fleetstat.transport.hostkeys import default_known_hosts
from fleetstat.transport.jumps import Bastions

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from fleetstat.config import Client, Config, TopProcessesWhen

log = logging.getLogger(__name__)

Runner = Callable[["Client", bytes | Probe, Sequence[str], TransportSettings], Awaitable[ProbeRun]]
Progress = Callable[[HostResult], None]

Bookmarks = Mapping[tuple[str, int], str]

MAGIC_PREFIX = envelope.MAGIC + " "


@dataclass(frozen=True)
class RoundPlan:
    """What a round needs besides the config: the probe bytes and the server key."""

    probe: bytes | Probe
    private_key: X25519PrivateKey
    settings: TransportSettings
    concurrency: int
    top_processes: int = 5
    top_processes_when: TopProcessesWhen = "alerts"
    # --since per host: the event bookmark derived from the stored events
    # (store.events.read_bookmarks); hosts without one read their last 24 hours.
    # Or a coroutine function that gives them (app.collect_once reads them while
    # the round starts): only a host whose probe reads events waits for it.
    bookmarks: Bookmarks | Callable[[], Awaitable[Bookmarks]] = field(default_factory=dict)


def plan_round(config: Config, private_key: X25519PrivateKey, probe: bytes | Probe) -> RoundPlan:
    d = config.defaults
    known = KnownHosts(d.known_hosts or default_known_hosts(), d.host_keys)
    settings = TransportSettings(
        known_hosts=known, connect_timeout=d.timeouts.connect, run_timeout=d.timeouts.run
    )
    return RoundPlan(
        probe, private_key, settings, d.concurrency, d.top_processes, d.top_processes_when
    )


# The alert types whose mail lists the top processes (mail/render.py).
TOP_LIST_TYPES = ("cpu", "cpu-core", "load", "memory", "swap")


def top_when(client: Client) -> str:
    """``--top-when`` for a client: per type, the lowest level at which one of its
    cpu, cpu-core, load, memory or swap rules fires (``limit``) or keeps firing (``clear``).

    The probe reads the process table only when its document reaches one of
    these (probe/linux_processes.py), so a healthy host is spared the dearest
    read of the run; ``"none"`` when no rule could use the lists.
    """
    levels: dict[str, float] = {}
    for rule in client.alerts:
        if rule.type in TOP_LIST_TYPES and rule.limit is not None:
            level = rule.limit if rule.clear is None else min(rule.limit, rule.clear)
            # A cgroup memory rule measures the cgroup's share of its limit, or
            # the host's memory when no limit applies: the probe is asked about both.
            names = ("memory", "cgroup-memory") if rule.scope == "cgroup" else (rule.type,)
            for name in names:
                levels[name] = min(level, levels.get(name, level))
    return ",".join(f"{name}={_number(level)}" for name, level in sorted(levels.items())) or "none"


def _number(value: float) -> str:
    """``20`` for 20.0, but every digit of 33.33333333: the probe compares exactly."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def probe_argv(
    recipient_b64: str,
    challenge: bytes,
    top: int,
    since: str | None = None,
    events: int | None = None,
    top_when: str | None = None,
    recipient_comb: str | None = None,
) -> list[str]:
    """The probe's arguments; ``top_when`` None reads the process table every run."""
    argv = ["--recipient", recipient_b64, "--challenge", envelope.b64url_encode(challenge)]
    if recipient_comb is not None:
        argv += ["--recipient-comb", recipient_comb]
    argv += ["--top", str(top)]
    if top_when is not None and top > 0:
        argv += ["--top-when", top_when]
    if since is not None:
        argv += ["--since", since]
    if events is not None:
        argv += ["--events", str(events)]
    return argv


def events_wanted(client: Client) -> int | None:
    """``--events`` for a client: its max when events are enabled or it is Windows.

    None leaves the probe's default, which on Windows is to read 500 (the
    assignment mails Windows security events on every run) and elsewhere none.
    """
    if client.events or client.os == "windows":
        return client.events_max
    return None


def limits_for(client: Client, top: int) -> Limits:
    """What ``client``'s document may hold: events only when its config asks for them.

    ``<events>`` or ``os="windows"``: up to ``<events max>`` per round; ``os="auto"``:
    the same, but only when the document turns out to be a Windows host's (whose
    probe reads its Security log by default, see :func:`events_wanted`); other
    clients: none. The inflated size and value count follow (document.Limits).
    """
    if client.events or client.os == "windows":
        return Limits(events=client.events_max, top=top)
    if client.os == "auto":
        return Limits(events=client.events_max, events_if_windows=True, top=top)
    return Limits(top=top)


def line_bound(limits: Limits) -> int:
    """The longest sealed line a document within ``limits`` makes.

    A sealed line holds the compressed document base64url-encoded; zlib makes
    incompressible data a little larger, never by half.
    """
    return (limits.max_bytes * 3 // 2 + 1024) * 4 // 3 + len(MAGIC_PREFIX)


# Room on stdout beside the sealed line: what a chatty shell rc prints before it
# (find_envelope_line skips it) and the line's newline.
STDOUT_SLACK = 64 * 1024


def output_limit(limits: Limits) -> int:
    """The most of a host's stdout the transport keeps: its longest line, plus slack.

    Without it the transport read up to its own 16 MiB ceiling before the
    client's limit applied, so a host could make the central machine hold 16 MiB
    per connection; now it holds what this client's document may take.
    """
    return line_bound(limits) + STDOUT_SLACK


# What a probe's stderr and our messages about a host keep (attempts.stderr, .error).
STDERR_CHARS = 4096
ERROR_CHARS = 2000


def find_envelope_line(stdout: bytes) -> str:
    """The FLEETSTAT line, even when a chatty shell rc printed something before it."""
    text = stdout.decode("ascii", "replace")
    for line in reversed(text.splitlines()):
        if line.startswith(MAGIC_PREFIX):
            return line.strip()
    first = text.strip().splitlines()[0][:80] if text.strip() else "(nothing)"
    raise EnvelopeError(f"output is not a {envelope.MAGIC} line: {first!r}")


async def collect_round(
    config: Config,
    plan: RoundPlan,
    *,
    runner: Runner = run_probe,
    progress: Progress | None = None,
    clients: Sequence[Client] | None = None,
    interrupt: asyncio.Event | None = None,
) -> RoundResult:
    """Run the probe on every client; return one result per client, in config order.

    Once ``interrupt`` is set (Ctrl-C on ``collect``), no more host is started; those
    in flight finish within their deadline, and the others are counted in
    ``not_started`` and have no result.
    """
    started = datetime.now(UTC)
    limit = asyncio.Semaphore(max(1, plan.concurrency))
    recipient = envelope.public_key_b64(plan.private_key.public_key())
    # The server key's comb (comb.py) halves the probe's shared-secret step.
    table = envelope.b64url_encode(recipient_comb(envelope.public_key_bytes(plan.private_key)))
    targets = list(clients if clients is not None else config.clients)

    async def one(client: Client) -> HostResult | None:
        since = await _since(plan, client)
        async with limit:
            if interrupt is not None and interrupt.is_set():
                return None
            result = await _collect_host(client, plan, recipient, runner, since, table)
        if progress is not None:
            progress(result)
        return result

    # One connection per jump host for the whole round (transport/jumps.py), made
    # here unless the plan brings a longer-lived one (closed by its owner).
    own_jumps = plan.settings.jumps is None and any(client.jump for client in targets)
    if own_jumps:
        plan = replace(plan, settings=replace(plan.settings, jumps=Bastions()))
    try:
        gathered = await asyncio.gather(*(one(c) for c in targets))
    finally:
        if own_jumps and plan.settings.jumps is not None:
            await plan.settings.jumps.close()
    results = tuple(result for result in gathered if result is not None)
    return RoundResult(
        started_at=started,
        finished_at=datetime.now(UTC),
        results=results,
        not_started=len(gathered) - len(results),
    )


async def _since(plan: RoundPlan, client: Client) -> str | None:
    """The client's ``--since``: only event collectors read it."""
    if events_wanted(client) is None:
        return None
    bookmarks = plan.bookmarks
    if callable(bookmarks):
        bookmarks = await bookmarks()
    return bookmarks.get((client.ip, client.port))


async def _collect_host(
    client: Client,
    plan: RoundPlan,
    recipient: str,
    runner: Runner,
    since: str | None,
    comb: str | None = None,
) -> HostResult:
    started = datetime.now(UTC)
    t0 = time.monotonic()
    challenge = os.urandom(16)
    when = top_when(client) if plan.top_processes_when == "alerts" else None
    argv = probe_argv(
        recipient, challenge, plan.top_processes, since, events_wanted(client), when, comb
    )
    limits = limits_for(client, plan.top_processes)
    # The transport stops reading at this client's bound, not at its own ceiling.
    most = min(plan.settings.max_output_bytes, output_limit(limits))
    settings = replace(plan.settings, max_output_bytes=most)
    retries = 0

    def failed(status: Status, error: str, stderr: str | None = None) -> HostResult:
        return HostResult(
            client=client,
            status=status,
            started_at=started,
            duration_seconds=time.monotonic() - t0,
            # Both may quote what the host printed: made inert here, once.
            error=clean(error, ERROR_CHARS)[0],
            retries=retries,
            stderr=_clean_stderr(stderr),
        )

    try:
        async with asyncio.timeout(plan.settings.host_deadline):
            run = await runner(client, plan.probe, argv, settings)
    except TransportError as exc:
        retries = getattr(exc, "retries", 0)
        return failed(exc.status, str(exc), exc.stderr)
    except TimeoutError:
        return failed(
            Status.TIMEOUT,
            f"{client.ip}:{client.port} did not finish within the host deadline "
            f"({plan.settings.host_deadline:g}s)",
        )
    except Exception as exc:  # one host never sinks the round
        log.exception("unexpected error collecting from %s", client.ip)
        return failed(Status.PROBE_ERROR, f"internal error: {type(exc).__name__}: {exc}")
    retries = run.retries
    stderr = _clean_stderr(run.stderr.decode("utf-8", "replace")[-STDERR_CHARS:])
    try:
        line = find_envelope_line(run.stdout)
        document = open_document(line, plan.private_key, challenge, limits)
    except EnvelopeError as exc:  # DocumentError too: it names the field
        return failed(Status.BAD_PAYLOAD, f"{client.ip}:{client.port}: {exc}", stderr)
    if document.notes:
        log.info(
            "%s:%d: document checked with %d change(s): %s",
            client.ip, client.port, len(document.notes), "; ".join(document.notes[:3]),
        )  # fmt: skip
    return HostResult(
        client=client,
        status=Status.OK,
        started_at=started,
        duration_seconds=time.monotonic() - t0,
        document=document,
        retries=retries,
        stderr=stderr,
    )


def open_document(line: str, key: X25519PrivateKey, challenge: bytes, limits: Limits) -> Document:
    """The boundary: open the envelope, inflate within ``limits``, check the document.

    Raises :class:`EnvelopeError` (or its :class:`DocumentError`) for anything
    that is not a sane document for this client; nothing downstream sees the raw JSON.
    """
    plaintext = envelope.open_line(line, key, challenge, max_line_bytes=line_bound(limits))
    return parse(envelope.inflate(plaintext, limits.max_bytes), limits)


def _clean_stderr(text: str | None) -> str | None:
    text = (text or "").strip()
    return clean(text, STDERR_CHARS, newlines=True)[0] if text else None
