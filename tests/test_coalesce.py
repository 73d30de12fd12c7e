"""transport/coalesce.py on a real loopback TCP connection: the writes of one loop
turn leave in one send, in order; close sends what is pending, abort drops it;
the receiving side and the end of the connection reach the protocol as before."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetstat.transport.coalesce import CoalescingTcp


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.transport: Any = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def _pair() -> tuple[Recorder, Recorder, Any, asyncio.Server]:
    """(the server's recorder, the client's session, the client's transport, server)."""
    server_side: list[Recorder] = []

    def serve() -> Recorder:
        server_side.append(Recorder())
        return server_side[-1]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, session = await CoalescingTcp().create_connection(Recorder, "127.0.0.1", port)
    for _ in range(100):
        if server_side:
            break
        await asyncio.sleep(0.01)
    return server_side[0], session, transport, server


async def _received(recorder: Recorder, size: int) -> bytes:
    for _ in range(500):
        if sum(map(len, recorder.chunks)) >= size:
            break
        await asyncio.sleep(0.01)
    return b"".join(recorder.chunks)


def test_writes_of_one_turn_go_out_together_in_order() -> None:
    async def main() -> tuple[list[int], bytes, int, bytes]:
        peer, session, transport, server = await _pair()
        sent: list[int] = []
        inner = transport._inner
        original = inner.write
        inner.write = lambda data: (sent.append(len(data)), original(data))
        parts = [bytes([i]) * (i + 1) for i in range(8)]
        for part in parts:
            transport.write(part)
        assert sent == []  # nothing sent inside the turn that wrote
        assert transport.get_write_buffer_size() == sum(map(len, parts))
        data = await _received(peer, sum(map(len, parts)))
        peer.transport.write(b"answer")  # and the other way, to asyncssh's session
        answer = await _received(session, 6)
        transport.close()
        await asyncio.wait_for(session.lost, 5)
        server.close()
        return sent, data, len(parts), answer

    sent, data, count, answer = asyncio.run(main())
    assert sent == [sum(range(1, count + 1))]  # one write of all eight
    assert data == b"".join(bytes([i]) * (i + 1) for i in range(count))
    assert answer == b"answer"


def test_close_sends_what_is_pending_and_abort_drops_it() -> None:
    async def main() -> tuple[bytes, bytes]:
        peer, _session, transport, server = await _pair()
        transport.write(b"last words")
        transport.close()  # in the same turn: still sent, then the connection ends
        closed = await _received(peer, 10)
        await asyncio.wait_for(peer.lost, 5)

        peer2, _session2, transport2, server2 = await _pair()
        transport2.write(b"never")
        transport2.abort()
        await asyncio.wait_for(peer2.lost, 5)
        server.close()
        server2.close()
        return closed, b"".join(peer2.chunks)

    closed, aborted = asyncio.run(main())
    assert closed == b"last words"
    assert aborted == b""


def test_the_socket_and_peer_are_asyncssh_s_to_see() -> None:
    async def main() -> tuple[Any, Any, bool]:
        _peer, _session, transport, server = await _pair()
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        closing = transport.is_closing()
        transport.abort()
        server.close()
        return peer, sock, closing

    peer, sock, closing = asyncio.run(main())
    assert peer[0] == "127.0.0.1" and sock is not None and closing is False
