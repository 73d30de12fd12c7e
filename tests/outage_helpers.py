"""``fleetstat watch`` as a process, and a database that goes away for one test only.

The PostgreSQL and MariaDB servers on this machine are shared by every test
suite running on it: they are never stopped. A test cuts *its own* path to them
instead: its database URL points at a :class:`Gate`, a TCP forwarder on a free
loopback port. ``cut()`` closes the listener and aborts every connection through
it, as a stopped server does (new connections are refused at once, open ones
break mid-statement); ``restore()`` listens on the same port again. SQLite goes
away by ``chattr +i`` on its file: immutable even for root, so every new
connection opens it read-only and the round's write fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
import sqlalchemy as sa

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
SIGTERM_BIT = 1 << (15 - 1)  # SIGTERM in /proc/PID/status's SigCgt mask


class Gate:
    """A loopback TCP forwarder to ``target`` that can be cut and restored.

    Every connection is known from the moment it is accepted, so a cut aborts it
    even while its leg to the server is still being opened, and a leg that opens
    after a cut (or after a cut and a restore) is dropped: a cut gate forwards
    nothing. ``close()`` ends every forwarding task before it closes its loop, so
    no socket is left for the garbage collector to find open.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._cuts = 0  # how many times the gate was cut: a connection opened across one dies
        self.port = self._call(self._listen(0))

    def _call(self, coroutine: object) -> int:
        future: Future[int] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        return future.result(30)

    async def _listen(self, port: int) -> int:
        self._server = await asyncio.start_server(
            self._forward, "127.0.0.1", port, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        cuts = self._cuts
        self._pipes.add(client_w)
        server_w: asyncio.StreamWriter | None = None
        try:
            if self._server is None:  # accepted in the loop turn that cut the gate
                return
            try:
                server_r, server_w = await asyncio.open_connection(*self.target)
            except OSError:
                return
            if self._cuts != cuts:  # cut while the server's leg was being opened
                return
            self._pipes.add(server_w)
            await asyncio.gather(_pump(client_r, server_w), _pump(server_r, client_w))
        finally:
            for writer in (client_w, server_w):
                if writer is not None:
                    writer.transport.abort()
                    self._pipes.discard(writer)

    async def _cut(self) -> int:
        self._cuts += 1
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        return 0

    async def _shutdown(self) -> int:
        await self._cut()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # the aborted transports close their sockets in this turn
        return 0

    def cut(self) -> None:
        """The database is gone for this test's connections."""
        self._call(self._cut())

    def restore(self) -> None:
        """It answers again, on the same port."""
        if self._server is None:
            self._call(self._listen(self.port))

    def close(self) -> None:
        self._call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def url(self, real_url: str) -> str:
        return (
            sa.make_url(real_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction of a forwarded connection, until either side ends it."""
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: not even root may open ``path`` for writing until the block ends."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


class Watch:
    """``fleetstat watch`` as a child process, its stderr lines collected as they come."""

    def __init__(self, config: Path, every: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FLEETSTAT, "watch", "-c", str(config), "--every", every],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "JOURNAL_STREAM": ""},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def count(self, marker: str) -> int:
        return sum(1 for line in list(self.lines) if marker in line)

    def events(self, name: str) -> list[str]:
        """The log lines of ``event=name`` (exactly that event, not ``name_*``)."""
        return [line for line in list(self.lines) if f" event={name} " in f"{line} "]

    def wait_for(self, marker: str, times: int = 1, timeout: float = 90) -> None:
        """Until ``marker`` (``"event=round "``) is in ``times`` lines; else fail."""
        deadline = time.monotonic() + timeout
        while self.count(marker) < times:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"no {times} x {marker!r} in:\n" + "\n".join(self.lines))
            time.sleep(0.05)

    def wait_for_signal_handler(self, timeout: float = 60) -> None:
        """Until the process catches SIGTERM (its SigCgt mask in /proc says so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                caught = next(ln for ln in status.splitlines() if ln.startswith("SigCgt:"))
                if int(caught.split()[1], 16) & SIGTERM_BIT:
                    return
            time.sleep(0.005)
        pytest.fail("fleetstat never caught SIGTERM:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        """Kill it if still running; collect the last lines; close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


def field(line: str, name: str) -> str | None:
    """The value of ``name=`` in a logfmt line (unquoted values only)."""
    for part in line.split():
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    return None
