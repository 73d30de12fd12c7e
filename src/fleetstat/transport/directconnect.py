"""``asyncssh.connect`` with the connection's options built in the event loop.

``asyncssh.connect`` builds each connection's ``SSHClientConnectionOptions`` in
the loop's default executor, because building them may read files (ssh_config,
default keys, known_hosts). fleetstat hands asyncssh everything already loaded
(``config=()``, key pairs, a parsed known_hosts: ``ssh.login_options``), so the
build is CPU only, and the trip through a thread was most of its cost: 0.34 ms
of CPU per connection through the executor against 0.17 ms built directly
(300 in a row, ``time.process_time``), and more on a busy collector, where each
trip also wakes a thread and hands the GIL back and forth.

:func:`connect` builds the options itself and then does what
``asyncssh.connect`` does after its executor call (as asyncssh 2.24 does it:
``_connect`` with a connection factory, under ``connect_timeout``). It does so
only when the installed asyncssh has those pieces with the signature it relies
on (:data:`FITS`); otherwise it calls ``asyncssh.connect`` itself.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import asyncssh
from asyncssh import connection as _connection

_CONNECT_PARAMETERS = ["options", "config", "loop", "flags", "sock", "conn_factory", "msg"]


def fits(module: Any = _connection) -> bool:
    """Whether ``module`` (asyncssh.connection) has the ``_connect`` this relies on."""
    target = getattr(module, "_connect", None)
    if not inspect.iscoroutinefunction(target):
        return False
    classes = ("SSHClientConnection", "SSHClientConnectionOptions")
    if not all(isinstance(getattr(module, name, None), type) for name in classes):
        return False
    return list(inspect.signature(target).parameters) == _CONNECT_PARAMETERS


FITS = fits()


async def connect(host: str, port: int, **kwargs: Any) -> asyncssh.SSHClientConnection:
    """``asyncssh.connect(host, port, **kwargs)``, its options built here (see above)."""
    if not FITS:
        return await asyncssh.connect(host, port, **kwargs)
    loop = asyncio.get_running_loop()
    # asyncssh.connect's own defaults for what it passes on by name.
    base = kwargs.pop("options", None)
    config = kwargs.pop("config", ())
    tunnel = kwargs.pop("tunnel", ())
    options = _connection.SSHClientConnectionOptions(
        base, config=config, host=host, port=port, tunnel=tunnel, family=(), local_addr=(),
        loop=loop, **kwargs,
    )  # fmt: skip

    def conn_factory() -> asyncssh.SSHClientConnection:
        return _connection.SSHClientConnection(loop, options, wait="auth")

    opening = _connection._connect(
        options, config, loop, 0, None, conn_factory, "Opening SSH connection to"
    )
    conn: asyncssh.SSHClientConnection = await asyncio.wait_for(
        opening, timeout=options.connect_timeout
    )
    return conn
