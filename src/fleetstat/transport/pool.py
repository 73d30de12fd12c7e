"""SSH connections kept between rounds (``keep-connections``, ``watch`` and ``serve``).

The login is about half of what a round costs a host (key exchange, the
signature check, sshd forking its monitor and session: some 24 of 48 ms of the
host's CPU, ``bench/``) and most of what it costs the central machine. A kept
connection pays it once: each round opens a new exec channel on it, and the
probe is uploaded, run and removed exactly as on a fresh login (``posix.py``);
only the login is saved.

What a kept connection is allowed to be:

- **Idle at most ``keep-connections``** (default 10 minutes): a timer closes it
  after that long without a round; keepalives (``keepalive@openssh.com`` every
  :data:`KEEPALIVE_SECONDS`, :data:`KEEPALIVE_COUNT` unanswered ones end it)
  notice a peer that went away between rounds.
- **Younger than ``max-connection-age``** (default 24 h): an older one is
  closed and replaced by a fresh login, with the full host-key check of the
  round's known_hosts, so a changed key is found within a day even on a
  connection that never broke.
- **Replaced when it failed**: a channel that timed out, broke or sent too
  much closes its connection (a killed session may still hold the channel),
  and the next round logs in again.
- **Retried once when it went stale**: a kept connection that will not open a
  channel within the connect timeout (sshd restarted, the host rebooted) is
  not the host's failure: the same round logs in afresh, once, and that login
  is judged like any other (a changed host key is ``host_key_mismatch``).
- **Within sshd's ``MaxSessions``** (10 by default): at most
  :data:`MAX_SESSIONS` channels at once per connection. A round opens one per
  host (two on a Windows host: the shell check, then the probe), and rounds
  never overlap, so the bound is a guard, not a queue.

One connection per address (the config has one client per address), kept with
everything that decided its login (user, credentials, known_hosts file and
policy): a client whose login changed gets a new connection, and
:meth:`ConnectionPool.retain` closes those of clients no longer configured.
:meth:`ConnectionPool.close` closes them all (``watch``/``serve`` stopping).
Each kept connection holds one file descriptor: :func:`ensure_fd_limit` raises
``RLIMIT_NOFILE`` at start, or says why it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetstat.errors import FleetstatError
from fleetstat.transport import posix, ssh
from fleetstat.transport.jumps import Bastions

if TYPE_CHECKING:
    import asyncssh

    from fleetstat.config import Client

log = logging.getLogger(__name__)

# OpenSSH's default MaxSessions: channels open at once on one connection.
MAX_SESSIONS = 10
# ServerAliveInterval / ServerAliveCountMax: a peer that answers none of 3
# keepalives a minute apart is gone; its connection closes before the next round.
KEEPALIVE_SECONDS = 60.0
KEEPALIVE_COUNT = 3
DEFAULT_MAX_AGE = 24 * 3600.0
# File descriptors beyond the connections: the database, the HTTP server and its
# clients, logs, the spool, SMTP, the event loop's own.
FD_RESERVE = 256

Address = tuple[str, int]
# What decided a login: a kept connection serves only a client with the same.
Login = tuple[object, ...]


def login_of(client: Client, settings: ssh.TransportSettings) -> Login:
    """What decides ``client``'s login: :func:`bare_client` and the host-key check."""
    known = settings.known_hosts
    return (bare_client(client), str(known.path), known.policy)


def bare_client(client: Client) -> Client:
    """The client without what plays no part in the login.

    Built by blanking the fields that do not (name, mail, alerts, ...) rather
    than listing those that do, so a login option added to ``Client`` later
    counts without anyone remembering it here.
    """
    return dataclasses.replace(
        client,
        name=None,
        mail=(),
        alerts=(),
        line=None,
        events=False,
        events_max=0,
        keep_connections=None,
    )


@dataclass(eq=False)
class _Kept:
    """One kept connection and its bookkeeping."""

    address: Address
    login: Login
    conn: asyncssh.SSHClientConnection
    opened_at: float
    keep: float
    sessions: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_SESSIONS))
    idle_timer: asyncio.TimerHandle | None = None
    runs: int = 0
    # Whether the next run execs python3 directly (posix.DIRECT): unknown (None)
    # until the script has run here, False once that found no python3.
    direct: bool | None = None


@dataclass
class PoolStats:
    """Counts since the pool was made (logged when it closes; tests read them)."""

    logins: int = 0  # fresh logins that succeeded and were kept
    reused: int = 0  # rounds run on a kept connection
    stale: int = 0  # kept connections that would not open a channel: logged in again
    aged: int = 0  # closed at max-connection-age
    idle_closed: int = 0  # closed after keep-connections without a round
    failed: int = 0  # closed because a run on them failed
    dropped: int = 0  # closed because their client left the config (or changed)
    direct: int = 0  # runs that exec'd python3 directly, without the script
    script_again: int = 0  # of those, hosts with no python3: run again by the script


class ConnectionPool:
    """SSH connections kept between rounds, one per host; :meth:`run_probe` is a Runner."""

    def __init__(
        self,
        *,
        keep: float,
        max_age: float = DEFAULT_MAX_AGE,
        keepalive: float = KEEPALIVE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``keep``: how long an idle connection stays open, for clients that do not
        set ``keep-connections`` themselves (0: those are not kept)."""
        self.keep = keep
        self.max_age = max_age
        self.keepalive = keepalive
        self.clock = clock
        self.stats = PoolStats()
        self._kept: dict[Address, _Kept] = {}
        self._closed = False
        # Jump hosts' connections, kept as long as the pool: the kept connections
        # behind a bastion are channels on its one connection (jumps.py).
        self.jumps = Bastions()

    def __len__(self) -> int:
        return len(self._kept)

    def keep_for(self, client: Client) -> float:
        """Seconds ``client``'s connection may idle: its own setting, else the pool's."""
        return self.keep if client.keep_connections is None else client.keep_connections

    # -- the Runner ------------------------------------------------------------------

    async def run_probe(
        self,
        client: Client,
        probe: bytes | ssh.Probe,
        argv: Sequence[str],
        settings: ssh.TransportSettings,
    ) -> ssh.ProbeRun:
        """:func:`ssh.run_probe`, on the client's kept connection when there is one."""
        keep = self.keep_for(client)
        if keep <= 0 or self._closed:
            return await ssh.run_probe(client, probe, argv, settings)
        if client.jump:  # through the pool's bastion connections, not the round's
            settings = dataclasses.replace(settings, jumps=self.jumps)
        address = (client.ip, client.port)
        login = login_of(client, settings)
        where = f"{client.ip}:{client.port}"
        t0 = time.monotonic()
        kept = self._usable(address, login)
        retries = 0
        if kept is not None:
            try:
                run = await self._run(kept, client, probe, argv, settings, reused=True)
            except ssh.SessionNotOpened as exc:
                # sshd restarted, the host rebooted: log in again, in this round.
                self.stats.stale += 1
                retries = 1
                log.info("kept connection to %s went stale (%s): logging in again", where, exc)
                self._discard(kept)
            else:
                self.stats.reused += 1
                run.timings = {"connect": 0.0, "run": time.monotonic() - t0}
                ssh.raise_for_exit(run, where, settings)
                return run
        try:
            conn, login_retries = await ssh.login(client, settings)
        except FleetstatError as exc:
            if retries:
                exc.retries = retries + getattr(exc, "retries", 0)  # type: ignore[attr-defined]
            raise
        t_connected = time.monotonic()
        kept = self._adopt(client, address, login, conn, keep)
        run = await self._run(kept, client, probe, argv, settings, reused=False)
        run.retries = retries + login_retries
        run.timings = {"connect": t_connected - t0, "run": time.monotonic() - t_connected}
        ssh.raise_for_exit(run, where, settings)
        return run

    async def _run(
        self,
        kept: _Kept,
        client: Client,
        probe: bytes | ssh.Probe,
        argv: Sequence[str],
        settings: ssh.TransportSettings,
        *,
        reused: bool,
    ) -> ssh.ProbeRun:
        """One channel on ``kept``; a failed run closes the connection, a stale one is
        :class:`ssh.SessionNotOpened` (only when ``reused``)."""
        self._stop_idle_timer(kept)
        open_timeout = settings.connect_timeout if reused else None
        try:
            async with kept.sessions:
                run = await self._exec(kept, client, probe, argv, settings, open_timeout)
        except ssh.SessionNotOpened:
            raise
        except BaseException:
            # A timed-out or broken channel (or a cancelled round) may leave the
            # session open on the host: this connection is not used again.
            self.stats.failed += 1
            self._discard(kept)
            raise
        kept.runs += 1
        self._start_idle_timer(kept)
        return run

    async def _exec(
        self,
        kept: _Kept,
        client: Client,
        probe: bytes | ssh.Probe,
        argv: Sequence[str],
        settings: ssh.TransportSettings,
        open_timeout: float | None,
    ) -> ssh.ProbeRun:
        """The run itself: python3 exec'd directly where the script has run on this
        connection before (one ``/bin/sh`` less on the host), else the script."""
        if kept.direct:
            self.stats.direct += 1
            run = await ssh.run_on_connection(
                kept.conn, client, probe, argv, settings,
                open_timeout=open_timeout, interpreter=posix.DIRECT,
            )  # fmt: skip
            if not posix.interpreter_missing(run.exit_status, run.stdout, run.stderr):
                return run
            # No python3 there (the script picked python): the script again,
            # now and from now on on this connection.
            self.stats.script_again += 1
            kept.direct = False
        run = await ssh.run_on_connection(
            kept.conn, client, probe, argv, settings, open_timeout=open_timeout
        )
        if kept.direct is None and run.exit_status == 0 and not run.windows:
            kept.direct = True
        return run

    # -- bookkeeping -----------------------------------------------------------------

    def _usable(self, address: Address, login: Login) -> _Kept | None:
        """The kept connection to ``address`` if it is open, young enough and
        logged in as ``login`` would."""
        kept = self._kept.get(address)
        if kept is None:
            return None
        if kept.login != login:  # the client's login changed (a reloaded config)
            self.stats.dropped += 1
            self._discard(kept)
            return None
        if kept.conn.is_closed():  # the peer went away between rounds (keepalive, EOF)
            self._discard(kept)
            return None
        if self.clock() - kept.opened_at >= self.max_age:
            self.stats.aged += 1
            log.info("connection to %s:%d reached max-connection-age: logging in again", *address)
            self._discard(kept)
            return None
        return kept

    def _adopt(
        self,
        client: Client,
        address: Address,
        login: Login,
        conn: asyncssh.SSHClientConnection,
        keep: float,
    ) -> _Kept:
        old = self._kept.pop(address, None)
        if old is not None:  # two runs on one host at once (not in rounds): the newer stays
            self._close(old)
        # ssh_config's ServerAliveInterval for this host, when it set one.
        conn.set_keepalive(client.keepalive or self.keepalive, KEEPALIVE_COUNT)
        kept = _Kept(address, login, conn, self.clock(), keep)
        self._kept[address] = kept
        self.stats.logins += 1
        return kept

    def _start_idle_timer(self, kept: _Kept) -> None:
        if self._kept.get(kept.address) is not kept:
            return
        self._stop_idle_timer(kept)
        loop = asyncio.get_running_loop()
        kept.idle_timer = loop.call_later(kept.keep, self._idle, kept)

    @staticmethod
    def _stop_idle_timer(kept: _Kept) -> None:
        if kept.idle_timer is not None:
            kept.idle_timer.cancel()
            kept.idle_timer = None

    def _idle(self, kept: _Kept) -> None:
        if self._kept.get(kept.address) is kept:
            self.stats.idle_closed += 1
            self._discard(kept)

    def _discard(self, kept: _Kept) -> None:
        if self._kept.get(kept.address) is kept:
            del self._kept[kept.address]
        self._close(kept)

    def _close(self, kept: _Kept) -> None:
        self._stop_idle_timer(kept)
        with contextlib.suppress(Exception):  # closing what may be half gone
            ssh.close_connection(kept.conn)

    def retain(self, clients: Iterable[Client]) -> int:
        """Close the connections of hosts not in ``clients`` (a reloaded config) or
        whose login changed; how many were closed. Called as each round starts: a
        bastion lost in the last round is connected again in this one."""
        self.jumps.drop_lost()
        wanted = {(c.ip, c.port): c for c in clients}
        gone = [
            kept
            for address, kept in self._kept.items()
            if address not in wanted or not _same_client(kept.login, wanted[address])
        ]
        for kept in gone:
            self.stats.dropped += 1
            self._discard(kept)
        return len(gone)

    async def close(self) -> None:
        """Close every kept connection (``watch``/``serve`` stopping) and wait for them."""
        self._closed = True
        kept, self._kept = list(self._kept.values()), {}
        for one in kept:
            self._close(one)
        if kept:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.gather(
                        *(one.conn.wait_closed() for one in kept), return_exceptions=True
                    )
        await self.jumps.close()  # after the connections tunnelled through them


def _same_client(login: Login, client: Client) -> bool:
    """Whether ``login`` was made for ``client`` as configured now (host keys aside:
    the round's known_hosts are checked when the connection is next used)."""
    return login[0] == bare_client(client)


def ensure_fd_limit(connections: int, concurrency: int) -> int:
    """Make room for ``connections`` kept connections beside ``concurrency`` fresh ones.

    Raises the soft ``RLIMIT_NOFILE`` to the hard limit when it is too low for
    that; when even the hard limit is, a :class:`FleetstatError` says what to
    change. Returns the soft limit in force.
    """
    needed = connections + concurrency + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        # An unlimited hard limit is still bounded by the kernel's nr_open.
        target = hard if hard != resource.RLIM_INFINITY else max(needed, 65536)
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise FleetstatError(
                f"keeping {connections} SSH connections open needs about {needed} file "
                f"descriptors, but this process may open only {hard} (ulimit -Hn): raise "
                "the limit (LimitNOFILE= in the systemd unit, nofile in "
                '/etc/security/limits.conf) or set keep-connections="off" in <defaults>'
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("raised the open-files limit from %d to %d for kept connections", soft, target)
        soft = target
    return soft
