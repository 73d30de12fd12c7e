"""A finished probe run's asyncssh objects freed when they are dropped, not by the GC.

A connection asyncssh has closed still points at itself: its packet handler is
one of its own bound methods (``_recv_handler``). A finished process and its
three streams point at each other (``SSHClientProcess._stdin``, ``_stdout``,
``_stderr``; each stream's ``_session``), and through its channel at the
connection. Such cycles are freed only by the cyclic garbage collector, and
only by a full collection: a connection lives for a second or two, long enough
to reach the oldest generation, and CPython runs a full collection when the
objects promoted since the last one exceed a quarter of those that survived it.
In a 500-host ``collect`` that was once, at the end of the round: every closed
connection of the round was still in memory (some 75 objects and 30 KB of
Python objects per host, its 4 KB remote command among them), 8-9 MB of the
round's peak RSS (docs/performance.md, "Sixth pass").

:func:`connection_closed` and :func:`process_done` cut those two cycles once
nothing of fleetstat uses the objects any more, so each is freed by reference
counting when its last user lets go. Only what is left is the asyncio socket
transport's own cycle (its read callback, a bound method of itself: a few
hundred bytes once the socket is closed). Both are no-ops on an asyncssh that
does not have the attributes (checked by ``tests/test_transport_unlink.py``).
"""

from __future__ import annotations

from typing import Any


def _no_more_packets() -> bool:
    """The packet handler of a closed connection: it reads nothing (asyncssh's own
    stand-in for a connection that stops reading is ``lambda: False``)."""
    return False


def connection_closed(conn: Any) -> None:
    """After ``conn.close()``: its packet handler no longer points back at it.

    ``close`` has asked the transport to stop reading, so no packet is parsed
    after it; should a last one arrive in the same turn, it is ignored, as by a
    connection asyncssh stops itself.
    """
    if hasattr(conn, "_recv_handler"):
        conn._recv_handler = _no_more_packets


def process_done(proc: Any) -> None:
    """When fleetstat no longer reads or writes ``proc``'s streams: forget them.

    asyncssh itself uses them only to hand them out (``stdin``, ``stdout``,
    ``stderr``); the process keeps its channel, its exit status and what it
    buffered.
    """
    for name in ("_stdin", "_stdout", "_stderr"):
        if hasattr(proc, name):
            setattr(proc, name, None)
