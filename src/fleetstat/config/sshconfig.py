"""The OpenSSH client side of a client: ssh_config and jump hosts, resolved once at load.

``<defaults ssh-config="~/.ssh/config">`` (or a client's own ``ssh-config=``)
is read with asyncssh's own parser (``asyncssh.config.SSHClientConfig``: Host,
Match, Include, the ``%h``-style tokens) for each client's ``ip``, as ``ssh
<ip>`` would read it. What the XML gives wins: ``port=`` and ``username=``
are handed to the parser as given (so ``Match user`` sees them, as with ``ssh
-p -l``), and ``key=`` comes before any IdentityFile. Resolved here, once per
host per load, so a round never parses a file; :func:`describe` is what
``check-config --resolve`` prints.

Jump hosts use OpenSSH's ProxyJump syntax, ``[user@]host[:port]`` hops
separated by commas, first hop first. Each hop is looked up in the same
ssh_config (its HostName, Port, User, IdentityFile, and for the first hop its
own ProxyJump); a hop without a user logs in as the client's user, a hop
without an IdentityFile with the client's keys.

Loading needs no network: hostname canonicalisation (CanonicalizeHostname) is
not applied. ``Match exec`` runs its command, as ssh does.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from fleetstat.config.model import Client, JumpHop
from fleetstat.config.validate import Invalid, check_host, parse_int

NONE = "none"
# A hop's own ProxyJump is followed this deep: a loop in ssh_config ends here.
MAX_JUMP_DEPTH = 8


@dataclass(frozen=True)
class SshView:
    """What an ssh_config file says about one host."""

    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    identity_files: tuple[Path, ...] = ()
    proxy_jump: str | None = None
    keepalive: float | None = None
    identity_agent: str | None = None


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return str(os.getuid())


def read_ssh_config(path: Path, host: str, *, port: int | None, user: str | None) -> SshView:
    """The options ``path`` gives ``host``; raises ``OSError`` or ``ValueError`` (a bad line)."""
    from asyncssh.config import SSHClientConfig

    args = (local_user(), user or (), host, port or ())
    config = SSHClientConfig.load(None, [path], False, False, False, *args)
    if config.has_match_final():  # "Match final" blocks: a second pass, as ssh makes
        config = SSHClientConfig.load(config, [path], True, False, True, *args)

    def text(option: str) -> str | None:
        value = config.get(option)
        return str(value) if value not in (None, "") else None

    listed = config.get("IdentityFile") or []
    files = tuple(_identity_path(str(item)) for item in cast(list[object], listed))
    interval = config.get("ServerAliveInterval")
    return SshView(
        hostname=text("Hostname"),
        port=int(str(config.get("Port"))) if config.get("Port") is not None else None,
        user=text("User"),
        identity_files=tuple(dict.fromkeys(path for path in files if path.is_file())),
        proxy_jump=text("ProxyJump"),
        keepalive=float(str(interval)) if interval else None,
        identity_agent=text("IdentityAgent"),
    )


def _identity_path(raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else Path.home() / path


@dataclass(frozen=True)
class HopSpec:
    """One hop as written: ``[user@]host[:port]``."""

    user: str | None
    host: str
    port: int | None
    text: str


def parse_jump(text: str) -> tuple[HopSpec, ...]:
    """ProxyJump syntax: ``[user@]host[:port]`` (or ``ssh://...``) hops, comma-separated."""
    fix = 'write jump="bastion" or jump="ops@10.0.0.1:2222,inner" (first hop first)'
    hops = []
    for part in text.split(","):
        piece = part.strip().removeprefix("ssh://")
        if not piece:
            raise Invalid(f"{text!r} has an empty hop", fix)
        user, _, hostport = piece.rpartition("@")
        host, port_text = hostport, ""
        if hostport.startswith("["):  # [fd00::1]:2222
            end = hostport.find("]")
            host, port_text = hostport[1:end], hostport[end + 2 :]
            if end < 0 or (hostport[end + 1 :] and not hostport[end + 1 :].startswith(":")):
                raise Invalid(f"{piece!r} is not [user@]host[:port]", fix)
        elif hostport.count(":") == 1:
            host, port_text = hostport.split(":")
        try:
            name = check_host(host)
            port = parse_int(port_text, 1, 65535) if port_text else None
        except Invalid as exc:
            raise Invalid(f"jump host {piece!r}: {exc.message}", fix) from None
        hops.append(HopSpec(user or None, name, port, part.strip()))
    return tuple(hops)


def resolve_jump(
    hops: tuple[HopSpec, ...], ssh_config: Path | None, client_user: str, depth: int = 0
) -> tuple[JumpHop, ...]:
    """The hops with ssh_config applied; the first hop's own ProxyJump goes before it."""
    resolved: list[JumpHop] = []
    for index, hop in enumerate(hops):
        view = (
            read_ssh_config(ssh_config, hop.host, port=hop.port, user=hop.user)
            if ssh_config is not None
            else SshView()
        )
        if index == 0 and view.proxy_jump and view.proxy_jump.lower() != NONE:
            if depth >= MAX_JUMP_DEPTH:
                raise Invalid(
                    f"jump host {hop.text!r}: ProxyJump nests more than {MAX_JUMP_DEPTH} deep",
                    "look for a ProxyJump loop in the ssh_config file",
                )
            before = parse_jump(view.proxy_jump)
            resolved.extend(resolve_jump(before, ssh_config, client_user, depth + 1))
        resolved.append(
            JumpHop(
                host=view.hostname or hop.host,
                port=hop.port or view.port or 22,
                username=hop.user or view.user or client_user,
                identity_files=view.identity_files,
                spec=hop.text,
            )
        )
    return tuple(resolved)


def describe(client: Client) -> list[tuple[str, str]]:
    """``check-config --resolve``: what a client logs in with, as (what, value) rows."""
    rows = [
        ("client", client.label),
        ("connects to", f"{client.connect_host}:{client.port}"),
        ("username", client.username),
    ]
    if client.ssh_config is not None:
        rows.append(("ssh-config", str(client.ssh_config)))
    keys = ", ".join(str(path) for path in client.keys)
    rows.append(("keys", keys or "(none)"))
    rows.append(("password", f"from ${client.password_env}" if client.password_env else
                 "given" if client.password else "(none)"))  # fmt: skip
    if client.passphrase_env:
        state = "set" if client.passphrase else "not set"
        rows.append(("key passphrase", f"from ${client.passphrase_env} ({state})"))
    rows.append(("agent", client.agent or "(none)"))
    for number, hop in enumerate(client.jump, 1):
        hop_keys = ", ".join(str(path) for path in hop.identity_files) or "the client's keys"
        rows.append((f"jump {number}", f"{hop.username}@{hop.address} ({hop.label}; {hop_keys})"))
    if not client.jump:
        rows.append(("jump", "(direct)"))
    if client.keepalive:
        rows.append(("keepalive", f"{client.keepalive:g}s (ServerAliveInterval)"))
    return rows


@dataclass(frozen=True)
class Resolved:
    """A client's OpenSSH side, as :func:`resolve_client` found it."""

    hostname: str | None
    port: int
    username: str
    identity_files: tuple[Path, ...]
    jump: tuple[JumpHop, ...]
    agent: str | None
    keepalive: float | None
    ssh_config: Path | None


@dataclass(frozen=True)
class Given:
    """What a client's XML says, before ssh_config: ``None`` where it says nothing."""

    ip: str
    port: int | None
    username: str | None
    key: Path | None
    has_password: bool
    ssh_config: Path | None  # the client's, else the defaults' ("none" already applied)
    jump: tuple[HopSpec, ...] | None  # () = "none": direct, whatever ssh_config says
    agent: str | None  # a socket path, NONE, or None (not given)


def resolve_client(given: Given, env: Mapping[str, str]) -> Resolved:
    """Apply ssh_config under what the XML gives; raises OSError/ValueError from the file
    and :class:`Invalid` from a ProxyJump it holds."""
    view = SshView()
    if given.ssh_config is not None:
        view = read_ssh_config(given.ssh_config, given.ip, port=given.port, user=given.username)
    username = given.username or view.user or local_user()
    files = ((given.key,) if given.key else ()) + view.identity_files
    hops = given.jump
    if hops is None and view.proxy_jump and view.proxy_jump.lower() != NONE:
        hops = parse_jump(view.proxy_jump)
    jump = resolve_jump(hops, given.ssh_config, username) if hops else ()
    return Resolved(
        hostname=view.hostname if view.hostname and view.hostname != given.ip else None,
        port=given.port or view.port or 22,
        username=username,
        identity_files=tuple(dict.fromkeys(files)),
        jump=jump,
        agent=_agent(given, view, env),
        keepalive=view.keepalive,
        ssh_config=given.ssh_config,
    )


def _agent(given: Given, view: SshView, env: Mapping[str, str]) -> str | None:
    """The agent socket: agent= (client, then defaults), ssh_config's IdentityAgent, and
    for a client with no key= and no password, ``$SSH_AUTH_SOCK``.

    A client given a key or a password offers only that (as IdentitiesOnly would):
    an agent holding many keys would otherwise spend sshd's MaxAuthTries on them.
    """
    choice = given.agent if given.agent is not None else view.identity_agent
    if choice is None and not (given.key or given.has_password):
        choice = "SSH_AUTH_SOCK"
    if choice is None or choice.lower() == NONE:
        return None
    if choice == "SSH_AUTH_SOCK":
        return env.get("SSH_AUTH_SOCK") or None
    return str(Path(choice).expanduser())
