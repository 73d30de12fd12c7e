"""asyncssh's debug logging, skipped when nothing would be written.

asyncssh logs every SSH packet it sends or receives: ``log_sent_packet`` and
``log_received_packet`` take the packet's whole payload, look its name up and
format its size, and only then ``SSHLogger.packet`` finds that packet logging
(debug level 3) is off. ``SSHLogger.log`` turns each of its arguments into text
before ``logging`` looks at the level. A probe run is some 40 packet calls and
25 log calls, each 1-2 us for a record nobody writes (``timeit`` on the
installed asyncssh): about 0.1 ms of the collector's CPU per host and round.

:func:`install` wraps those three methods so that they return at once when the
record would be dropped, and call asyncssh's own otherwise: with ``-v``
(``logging`` at DEBUG) and ``asyncssh.set_debug_level(3)`` the packets are
logged exactly as before. Like ``signfirst``, it installs only when the
installed asyncssh has the pieces it relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

_MARK = "_fleetstat_quiet"


def install(asyncssh_logging: ModuleType | None = None, packet: ModuleType | None = None) -> bool:
    """Make asyncssh's dropped log records cost nothing; True when installed (idempotent)."""
    if asyncssh_logging is None or packet is None:
        from asyncssh import logging as asyncssh_logging_module
        from asyncssh import packet as packet_module

        asyncssh_logging, packet = asyncssh_logging_module, packet_module
    logger_cls = getattr(asyncssh_logging, "SSHLogger", None)
    packet_cls = getattr(packet, "SSHPacketLogger", None)
    if not isinstance(logger_cls, type) or not isinstance(packet_cls, type):
        return False
    names = ("log_sent_packet", "log_received_packet")
    methods = [getattr(logger_cls, "log", None)] + [getattr(packet_cls, n, None) for n in names]
    if not all(callable(m) for m in methods) or not hasattr(logger_cls, "_debug_level"):
        return False
    if all(getattr(m, _MARK, False) for m in methods):
        return True
    patched: Any = logger_cls  # a class whose method is replaced: no type to check it against
    patched.log = _quiet_log(patched.log)
    for name in names:
        setattr(packet_cls, name, _quiet_packet(getattr(packet_cls, name), logger_cls))
    return True


def _quiet_log(original: Callable[..., None]) -> Callable[..., None]:
    if getattr(original, _MARK, False):
        return original

    def log(self: Any, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            original(self, level, msg, *args, **kwargs)

    setattr(log, _MARK, True)
    return log


def _quiet_packet(original: Callable[..., None], logger_cls: type) -> Callable[..., None]:
    if getattr(original, _MARK, False):
        return original

    def log_packet(self: Any, pkttype: int, pktid: int | None, data: Any, note: str = "") -> None:
        # asyncssh writes a packet only at debug level 3, and only when DEBUG is on.
        if logger_cls._debug_level >= 3 and self.logger.isEnabledFor(logging.DEBUG):  # type: ignore[attr-defined]
            original(self, pkttype, pktid, data, note)

    setattr(log_packet, _MARK, True)
    return log_packet
