"""Host-key policies: ``strict`` (known_hosts only), ``accept-new``, ``off``.

Never an interactive prompt. ``accept-new`` behaves like OpenSSH's
``StrictHostKeyChecking=accept-new``: a host with no recorded key is trusted on
first use and its key appended to the known_hosts file; a host whose recorded key
differs is refused, exactly as under ``strict``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import asyncssh

from fleetstat.errors import ConfigError, ConfigIssue

HostKeyPolicy = Literal["strict", "accept-new", "off"]

log = logging.getLogger(__name__)


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def host_pattern(host: str, port: int) -> str:
    """The known_hosts name for a host, as OpenSSH writes it."""
    return host if port == 22 else f"[{host}]:{port}"


class KnownHosts:
    """A known_hosts file read once per round, with first-use recording."""

    def __init__(self, path: Path, policy: HostKeyPolicy) -> None:
        self.path = path
        self.policy = policy
        try:
            self._text = path.read_text(encoding="utf-8") if path.exists() else ""
            self._parsed = asyncssh.import_known_hosts(self._text)
        except (OSError, ValueError) as exc:  # unreadable, a folder, not UTF-8, a bad line
            raise _unusable(path, exc) from None
        self.recorded: list[str] = []

    def asyncssh_arg(self) -> asyncssh.SSHKnownHosts | None:
        """What to hand ``asyncssh.connect(known_hosts=...)``; None disables checking."""
        return None if self.policy == "off" else self._parsed

    def has_entry(self, host: str, addr: str, port: int) -> bool:
        """Whether known_hosts holds a key for ``host`` (a name or an address).

        asyncssh parses ``addr`` as an IP address; a client given by name (or
        reached through a jump host, where there is no peer address) has none.
        """
        addr = addr if _is_ip(addr) else ""
        trusted, _ca, _revoked, *_rest = self._parsed.match(host, addr, port)
        return bool(trusted)

    def accept_first_use(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Trust ``key`` when the policy allows it and the host has no recorded key."""
        if self.policy != "accept-new" or self.has_entry(host, addr, port):
            return False
        line = f"{host_pattern(host, port)} {key.export_public_key('openssh').decode().strip()}\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Append with O_APPEND so concurrent fleetstat processes cannot interleave
        # a line; one write() of a short line is atomic on local filesystems.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self.recorded.append(line.strip())
        log.warning("recorded new host key for %s in %s", host_pattern(host, port), self.path)
        return True


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _unusable(path: Path, exc: OSError | ValueError) -> ConfigError:
    """The whole round needs this file: a config error that names it, not one per host."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    fix = (
        "make it readable by this user, or point known-hosts= in <defaults> at another file"
        if isinstance(exc, OSError)
        else "correct or delete that line (ssh-keygen -R HOST removes a host's lines)"
    )
    return ConfigError([ConfigIssue(str(path), None, f"known_hosts file: {reason}", fix)])


class _PolicyClient(asyncssh.SSHClient):
    """asyncssh asks this only for keys that known_hosts does not already trust."""

    def __init__(self, known: KnownHosts) -> None:
        self._known = known

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self._known.accept_first_use(host, addr, port, key)


def client_factory(known: KnownHosts) -> Callable[[], asyncssh.SSHClient]:
    """A zero-argument factory (what asyncssh wants) of clients bound to ``known``.

    One per KnownHosts, not one class per connection: a class costs ~1.5 KB and
    a round holds 500 of them (tracemalloc, bench/README.md).
    """
    return functools.partial(_PolicyClient, known)
