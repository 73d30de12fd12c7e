"""TCP for asyncssh with the writes of one event-loop turn sent together.

asyncssh writes every SSH packet to its transport on its own, and on an
encrypted connection it writes an empty ``SSH_MSG_IGNORE`` packet before each
one (its guard against the CBC-mode attacks on SSH). asyncio's socket
transport hands each write to ``send()`` at once when nothing is queued. So a
probe run on a kept connection (open a channel, ask for the command, upload
117 KB, EOF, close) was some 16 ``send()`` calls per host, and on a busy
collector the system calls were the largest part of its CPU: every one runs
the kernel's TCP path, which on loopback includes the receiving side's.

:class:`CoalescingTcp` is an asyncssh *tunnel* (an object with
``create_connection``, the interface asyncssh's ``tunnel=`` takes besides
another SSH connection): a plain TCP connection whose transport buffers the
writes asyncssh makes during one turn of the event loop and sends them as one
``write`` at the end of that turn (``loop.call_soon``). Nothing waits longer
than the turn that wrote it, the bytes and their order are unchanged, and
asyncio's own flow control (write buffer limits, pause/resume) still applies
to what is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class _Writer(asyncio.Transport):
    """The transport asyncssh sees: writes gathered per loop turn, the rest passed on."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._inner.is_closing():
            self._inner.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._inner.write_eof()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def close(self) -> None:
        self._flush()  # what asyncssh wrote last (a disconnect) still goes out
        self._inner.close()

    def abort(self) -> None:
        self._pending.clear()
        self._inner.abort()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + sum(map(len, self._pending))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()


class _Relay(asyncio.Protocol):
    """The socket's protocol: everything it hears goes to asyncssh's connection."""

    def __init__(self, session_factory: Callable[[], Any]) -> None:
        self._factory = session_factory
        self.session: Any = None
        self.writer: _Writer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.writer = _Writer(transport, asyncio.get_running_loop())
        self.session = self._factory()
        self.session.connection_made(self.writer)

    def data_received(self, data: bytes) -> None:
        self.session.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.session.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.connection_lost(exc)

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()


class CoalescingTcp:
    """asyncssh's ``tunnel=``: a direct TCP connection with coalesced writes."""

    async def create_connection(
        self, session_factory: Callable[[], Any], remote_host: str, remote_port: int
    ) -> tuple[asyncio.Transport, Any]:
        loop = asyncio.get_running_loop()
        relay = _Relay(session_factory)
        await loop.create_connection(lambda: relay, remote_host, remote_port)
        assert relay.writer is not None
        return relay.writer, relay.session


DIRECT = CoalescingTcp()
