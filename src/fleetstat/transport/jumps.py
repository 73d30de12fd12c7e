"""Jump hosts (bastions): one SSH connection per bastion carries every tunnel through it.

A round opens each bastion once, on first use, and every host behind it gets a
``direct-tcpip`` channel on that connection (asyncssh's ``tunnel=``): 200
hosts behind one bastion cost it one login, not 200. Multi-hop chains
(``jump="outer,inner"``) are connections through connections, each shared the
same way, keyed by the whole chain up to it and the credentials it logs in with.

Logins through a bastion are throttled (:data:`LOGINS_PER_BASTION` at once per
connection): each one is a TCP connection the bastion opens to a host, and a
fleet behind one bastion is usually a fleet of stock sshds, whose
``MaxStartups 10:30:100`` starts dropping unauthenticated connections beyond
10. A login still dropped is retried as any other (ssh.py).

A bastion that cannot be reached fails every host behind it with the bastion
named, without trying it once per host; one that is lost mid-round does the
same for the hosts that had not finished. Neither is tried again for
:data:`DOWN_SECONDS` (the rest of a round): the next round connects again.

:class:`Bastions` lives for one round (``collect_round`` makes and closes one
when the plan brings none), or as long as a connection pool (``pool.py``: in
``watch``, ``serve`` and cluster workers), whose ``retain`` calls
:meth:`Bastions.drop_lost` as each round starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from fleetstat.errors import TransportError
from fleetstat.model import Status
from fleetstat.transport import unlink

if TYPE_CHECKING:
    from fleetstat.config import Client, JumpHop

# Unauthenticated logins at once through one bastion: what a stock sshd behind
# it accepts without dropping any (MaxStartups 10:30:100).
LOGINS_PER_BASTION = 10
# A bastion that failed or was lost is reported, not tried again, this long: the
# rest of a round (a new round, drop_lost, tries at once). A keeper with no rounds
# (a cluster worker's pool) so tries again a minute later, not never.
DOWN_SECONDS = 60.0

ChainKey = tuple[object, ...]
# Opens one hop: (client, hop, tunnel or None) -> a logged-in connection (ssh.py).
HopConnector = Callable[
    ["Client", "JumpHop", "asyncssh.SSHClientConnection | None"],
    Awaitable[asyncssh.SSHClientConnection],
]


def chain_key(client: Client, hops: tuple[JumpHop, ...]) -> ChainKey:
    """What makes two clients share a bastion connection: the same hops, logged in
    to with the same credentials (a hop without IdentityFile uses the client's keys)."""
    own_keys: tuple[Path, ...] = ()
    if any(not hop.identity_files for hop in hops):
        own_keys = client.keys
    return (
        tuple((hop.host, hop.port, hop.username, hop.identity_files) for hop in hops),
        own_keys,
        client.agent,
    )


class Bastions:
    """The bastion connections of a round: :meth:`get` one, :meth:`close` them all."""

    def __init__(self) -> None:
        self._conns: dict[ChainKey, asyncio.Task[asyncssh.SSHClientConnection]] = {}
        self._slots: dict[int, asyncio.Semaphore] = {}
        # When each failed or lost chain was first seen so (the loop's clock): it
        # is reported, not tried again, for DOWN_SECONDS (or until drop_lost). A
        # connection found closed before anyone saw it go (lost between rounds)
        # is connected again at once.
        self._down: dict[ChainKey, float] = {}
        self.logins = 0  # bastion logins made (a test counts them)

    async def get(
        self, client: Client, connect_hop: HopConnector
    ) -> asyncssh.SSHClientConnection | None:
        """The connection the client's own login goes through; None without jump hosts.

        Raises :class:`TransportError` naming the bastion when it cannot be
        reached or was lost in this round.
        """
        if not client.jump:
            return None
        return await self._chain(client, len(client.jump), connect_hop)

    async def _chain(
        self, client: Client, depth: int, connect_hop: HopConnector
    ) -> asyncssh.SSHClientConnection:
        hops = client.jump[:depth]
        key = chain_key(client, hops)
        task = self._conns.get(key)
        if task is not None and (_closed(task) or _failed(task)):
            seen = self._down.get(key)
            now = asyncio.get_running_loop().time()
            if seen is None and _failed(task):
                self._down[key] = seen = now
            if seen is None or now - seen >= DOWN_SECONDS:
                self._down.pop(key, None)
                task = None  # lost unseen, or down long enough: connect again
        if task is None:
            task = asyncio.ensure_future(self._open(client, depth, connect_hop))
            self._conns[key] = task
        try:
            conn = await asyncio.shield(task)
        except TransportError:
            self._down.setdefault(key, asyncio.get_running_loop().time())
            raise
        if conn.is_closed():
            raise self.lost(client) or TransportError(
                Status.UNREACHABLE, f"jump host {hops[-1].label} closed", host=client.address
            )
        return conn

    async def _open(
        self, client: Client, depth: int, connect_hop: HopConnector
    ) -> asyncssh.SSHClientConnection:
        hop = client.jump[depth - 1]
        tunnel = await self._chain(client, depth - 1, connect_hop) if depth > 1 else None
        try:
            async with self.slot(tunnel):
                conn = await connect_hop(client, hop, tunnel)
        except TransportError as exc:
            raise TransportError(
                exc.status if exc.status is not Status.TIMEOUT else Status.UNREACHABLE,
                f"via jump host {hop.label}: {exc}",
                host=client.address,
            ) from exc
        self.logins += 1
        return conn

    @contextlib.asynccontextmanager
    async def slot(self, tunnel: asyncssh.SSHClientConnection | None) -> AsyncIterator[None]:
        """A place among the logins in progress through ``tunnel`` (none when direct)."""
        if tunnel is None:
            yield
            return
        limit = self._slots.setdefault(id(tunnel), asyncio.Semaphore(LOGINS_PER_BASTION))
        async with limit:
            yield

    def lost(self, client: Client) -> TransportError | None:
        """The error of a host whose bastion connection closed under it; None when
        every connection of its chain is still open."""
        for depth in range(1, len(client.jump) + 1):
            key = chain_key(client, client.jump[:depth])
            task = self._conns.get(key)
            if task is not None and _closed(task):
                self._down.setdefault(key, asyncio.get_running_loop().time())
                hop = client.jump[depth - 1]
                return TransportError(
                    Status.UNREACHABLE,
                    f"lost jump host {hop.label} ({hop.address}) in this round: "
                    f"{client.address} is reached only through it; the next round "
                    "connects again",
                    host=client.address,
                )
        return None

    def drop_lost(self) -> int:
        """Forget the chains that failed or whose connection closed, so the next
        :meth:`get` connects again (a keeper across rounds calls it as a round
        starts: within a round, a lost bastion stays lost for DOWN_SECONDS). How
        many were dropped."""
        self._down.clear()
        dropped = [
            key
            for key, task in self._conns.items()
            if task.cancelled() or _failed(task) or _closed(task)
        ]
        for key in dropped:
            del self._conns[key]
        return len(dropped)

    async def close(self) -> None:
        """Close every bastion connection (innermost first) and forget them."""
        tasks = list(self._conns.values())
        self._conns.clear()
        self._slots.clear()
        for task in reversed(tasks):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                continue
            if task.cancelled() or task.exception() is not None:
                continue
            conn = task.result()
            conn.close()
            unlink.connection_closed(conn)
            with contextlib.suppress(Exception):
                await conn.wait_closed()


def _failed(task: asyncio.Task[asyncssh.SSHClientConnection]) -> bool:
    """Whether the task could not make its connection."""
    return task.done() and not task.cancelled() and task.exception() is not None


def _closed(task: asyncio.Task[asyncssh.SSHClientConnection]) -> bool:
    """Whether the task made a connection that has closed since."""
    return (
        task.done()
        and not task.cancelled()
        and task.exception() is None
        and task.result().is_closed()
    )
