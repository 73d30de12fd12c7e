"""Public key login in one step: send the signed request without asking first.

RFC 4252 section 7 lets a client first ask whether a key would be accepted (a
request without signature, answered by ``SSH_MSG_USERAUTH_PK_OK``) and only then
sign, or send the signature straight away. asyncssh always asks first, which is
right for a client trying many agent keys. fleetstat logs in with the one key the
config names, so the question only costs: on the host, sshd's monitor looks the
key up in ``authorized_keys`` twice instead of once, and there is one more round
trip. Measured against the simulated fleet's sshd (OpenSSH 9.2, ed25519 key,
sequential logins, 12 x 20 each): 26.9 -> 25.9 ms of sshd CPU per login and
8.0 -> 7.4 ms of the client's.

The answer is the same either way: a key the host refuses ends in
``SSH_MSG_USERAUTH_FAILURE`` and asyncssh goes on to the next method, exactly as
after a refused query. asyncssh has no option for this, so :func:`install`
registers a subclass of its publickey handler, and only when the installed
asyncssh has the pieces it relies on; otherwise asyncssh's own flow stays.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

_installed: type | None = None


def install(auth: ModuleType | None = None) -> bool:
    """Make asyncssh's publickey login sign first; True when it does (idempotent)."""
    global _installed
    if auth is None:
        from asyncssh import auth as asyncssh_auth

        auth = asyncssh_auth
    handlers = getattr(auth, "_client_auth_handlers", None)
    base = getattr(auth, "_ClientPublicKeyAuth", None)
    if not isinstance(handlers, dict) or not isinstance(base, type):
        return False
    current = handlers.get(b"publickey")
    if _installed is not None and current is _installed:
        return True
    if current is not base or not _fits(base):
        return False

    class SignFirstPublicKeyAuth(base):  # type: ignore[misc, valid-type]
        """asyncssh's publickey client auth, without the PK_OK query."""

        async def _start(self) -> None:
            self._keypair = await self._conn.public_key_auth_requested()
            if self._keypair is None:
                self._conn.try_next_auth(next_method=True)
                return
            await self._send_signed_request()

    handlers[b"publickey"] = SignFirstPublicKeyAuth
    _installed = SignFirstPublicKeyAuth
    return True


def _fits(base: Any) -> bool:
    """Whether ``base`` works as the override assumes (asyncssh 2.14 to 2.24 at least)."""
    if not callable(getattr(base, "_send_signed_request", None)):
        return False
    try:
        from asyncssh.connection import SSHClientConnection
    except ImportError:  # pragma: no cover - asyncssh without that module
        return False
    try_next = getattr(SSHClientConnection, "try_next_auth", None)
    if try_next is None or not hasattr(SSHClientConnection, "public_key_auth_requested"):
        return False
    return "next_method" in inspect.signature(try_next).parameters
