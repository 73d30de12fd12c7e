"""``fleetstat serve``: the HTTP API and the rounds in one process, one event loop.

- uvicorn runs inside the loop (``Server.serve()``) on a socket bound here, so
  a port in use is a clear error before anything starts and ``--listen :0``
  gets a free port (the log line ``event=serve_start`` names the URL).
- Unless ``--no-watch``, the :class:`~fleetstat.watch.Watcher` runs beside it,
  paused or not as ``/api/v1/monitoring`` last left it (stored in the database).
- The loop owns SIGTERM/SIGINT (uvicorn's own handlers are switched off): the
  first finishes the round in flight, flushes the outbox, then stops the
  server (open requests get ``GRACE_SECONDS``); exit 0. A second aborts.
- Requests that read the database run in worker threads, so a request never
  waits for a round and a round never waits for a request.
- A database that does not answer at start does not stop it (``event=
  database_unreachable``): it serves, ``/api/v1/health`` says the database is
  unreachable (503), other requests get 503 ``database_unavailable``, the rounds
  are spooled as ``collect`` spools them, and the database is asked again (after
  1 s, doubling up to 30 s) until it answers (``event=database_ready``): then the
  schema is made and a pause stored there applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetstat.errors import FleetstatError, RoundLockedError, StoreError
from fleetstat.watch import _emit, install_stop_signals, watcher_for

if TYPE_CHECKING:
    from collections.abc import Awaitable

    import uvicorn

    from fleetstat.api import ServerContext
    from fleetstat.config import Config
    from fleetstat.store import Store
    from fleetstat.watch import Watcher

GRACE_SECONDS = 5.0
DEAD_TOKENS_KEPT = timedelta(days=30)  # for `fleetstat token list` and the log's ids
# A database that did not answer at start is asked again after this long, doubling
# up to the most: an outage of hours costs a connection attempt every 30 s.
RETRY_FIRST_SECONDS = 1.0
RETRY_MOST_SECONDS = 30.0


@dataclass(frozen=True)
class ServeOptions:
    """The command line over ``<http>``: each None takes the config's value."""

    host: str | None = None
    port: int | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    watch: bool | None = None
    every: float = 300.0
    database_url: str | None = None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; :class:`FleetstatError` naming the address when it fails.

    Made with ``IPPROTO_TCP`` spelled out: asyncio sets TCP_NODELAY only on
    sockets whose ``proto`` says TCP, and ``socket.create_server`` leaves it 0.
    Without it a keep-alive client waits out the 40 ms delayed ACK on every
    response that goes out in two writes (measured: p50 44 ms instead of 1 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise FleetstatError(
            f"cannot listen on {shown}: {exc.strerror or exc} "
            "(another server there? choose another with --listen HOST:PORT)"
        ) from None
    return sock


def tls_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise FleetstatError(
            f"cannot use the TLS certificate {certfile} with key {keyfile}: {exc} "
            "(both PEM files; the key must belong to the certificate)"
        ) from None
    return context


def run_serve(config: Config, options: ServeOptions) -> int:
    """Serve until SIGTERM/SIGINT; the exit code (0)."""
    return asyncio.run(serve(config, options))


async def serve(config: Config, options: ServeOptions) -> int:
    import uvicorn

    from fleetstat import web
    from fleetstat.api import ServerContext, create_app
    from fleetstat.app import open_store

    http = config.http
    host = options.host or http.host
    port = options.port if options.port is not None else http.port
    certfile = options.certfile or http.certfile
    keyfile = options.keyfile or http.keyfile
    if (certfile is None) != (keyfile is None):
        raise FleetstatError("TLS needs both --certfile and --keyfile (or both in <http>)")
    tls = tls_context(certfile, keyfile) if certfile and keyfile else None
    watching = http.watch if options.watch is None else options.watch
    sock = bind(host, port)
    with contextlib.closing(sock):
        store = await asyncio.to_thread(open_store, config, options.database_url, schema=False)
        with store:
            context = ServerContext(
                config,
                store,
                session_lifetime=timedelta(seconds=http.session_lifetime),
                metrics_public=http.metrics_public,
            )
            away, running = await _prepare(context)
            if watching:
                # Paused or not is kept in the database: while it is away the rounds
                # run (spooled, nothing lost), and a stored pause applies once it answers.
                context.watcher = watcher_for(
                    config, options.every, database_url=options.database_url, running=running
                )
            pages: list[Any] = []  # the FastAPI app the pages went into (to warm them)
            server = _server(
                uvicorn.Config(
                    create_app(context, extensions=(web.install, pages.append)),
                    log_config=None,
                    access_log=False,  # the app logs requests itself, without query strings
                    lifespan="off",
                    proxy_headers=False,  # the client address is the peer's, for the throttle
                    server_header=False,
                    timeout_graceful_shutdown=int(GRACE_SECONDS),
                )
            )
            server.config.load()
            server.config.ssl = tls  # checked above, with a message that names the files
            name, bound_port = sock.getsockname()[:2]
            url = f"{'https' if tls else 'http'}://{_url_host(name)}:{bound_port}"
            if away is not None:
                _emit(logging.WARNING, event="database_unreachable", error=away,
                      retry_seconds=RETRY_FIRST_SECONDS)  # fmt: skip
            _emit(logging.INFO, event="serve_start", url=url, watch=watching, pid=os.getpid(),
                  database=store.display_url)  # fmt: skip
            later = _until_ready(context) if away is not None else None
            # The fleet page's rows read once now, beside the start (not before it: a
            # large fleet's 24-hour lines take seconds), so its first view is quick.
            warming = None if away is not None else asyncio.ensure_future(
                asyncio.to_thread(web.warm, pages[0])
            )  # fmt: skip
            try:
                return await _run(server, sock, context.watcher, later)
            finally:
                if warming is not None:
                    await warming  # it ends on its own; the store closes after it


def prepare_database(store: Store) -> None:
    """Make the schema or bring it up to date, drop dead tokens; StoreError when the
    database does not answer.

    The schema under the round lock, as a round makes it: when the database was
    away at start this process's rounds already run, and two migrations must not
    run at once. A round that holds the lock makes the schema itself.
    """
    from fleetstat.app import round_holder
    from fleetstat.store.accounts import delete_dead_tokens
    from fleetstat.store.roundlock import RoundLock

    with contextlib.suppress(RoundLockedError), RoundLock(store, round_holder()).acquire():
        store.ensure_schema()
    # Every login leaves a row; those expired or revoked a month ago go.
    delete_dead_tokens(store, datetime.now(UTC) - DEAD_TOKENS_KEPT)


async def _prepare(context: ServerContext) -> tuple[str | None, bool]:
    """The database made ready and the stored pause read: (None, running), or
    (the error, True) when it does not answer."""
    from fleetstat.api.routes_monitoring import stored_running

    try:
        await asyncio.to_thread(prepare_database, context.store)
        return None, await asyncio.to_thread(stored_running, context)
    except StoreError as exc:
        return str(exc), True
    except OSError as exc:  # the SQLite round lock's file beside the database
        return f"cannot take the round lock: {exc}", True


async def _until_ready(context: ServerContext) -> None:
    """Ask the database again, waiting longer each time, until it is ready."""
    delay = RETRY_FIRST_SECONDS
    while True:
        await asyncio.sleep(delay)
        away, running = await _prepare(context)
        if away is None:
            break
        delay = min(delay * 2, RETRY_MOST_SECONDS)
    _emit(logging.INFO, event="database_ready", database=context.store.display_url)
    if context.watcher is not None and not running:
        context.watcher.pause()


async def _run(
    server: uvicorn.Server,
    sock: socket.socket,
    watcher: Watcher | None,
    later: Awaitable[None] | None = None,
) -> int:
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    watching = asyncio.ensure_future(watcher.run()) if watcher is not None else None
    # Asking a database that was away at start again: ends when it answers, or here.
    waiting = asyncio.ensure_future(later) if later is not None else None

    def stop(name: str) -> None:
        if watcher is not None:
            watcher.request_stop(name)  # the server stops once the rounds have
        else:
            server.should_exit = True

    install_stop_signals(stop)
    if watcher is not None and watching is not None:
        await asyncio.wait({serving, watching}, return_when=asyncio.FIRST_COMPLETED)
        if not watching.done():  # the server ended first (it failed): stop the rounds
            watcher.request_stop("server stopped")
        await watching
        server.should_exit = True
    await serving
    if waiting is not None:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    _emit(logging.INFO, event="serve_stop")
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's Server without its signal handling: the loop owns the signals."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)
