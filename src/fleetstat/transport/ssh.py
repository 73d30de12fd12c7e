"""One SSH session to one host: connect, upload the probe on stdin, run, read, clean up.

asyncssh errors stop here: everything leaves as a :class:`TransportError` whose
``status`` is what the attempts table stores. The probe's upload is removed from
the host's disk before it runs (see ``posix.py``), so a dropped connection cannot
leave it behind; its own alarm ends a hung probe even when we are long gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from fleetstat.errors import TransportError
from fleetstat.model import Status
from fleetstat.transport import (
    coalesce,
    directconnect,
    posix,
    quietlog,
    signfirst,
    unlink,
    windows,
)
from fleetstat.transport.hostkeys import KnownHosts, client_factory, host_pattern
from fleetstat.transport.jumps import Bastions, HopConnector
from fleetstat.transport.keys import client_keys

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleetstat.config import Client, JumpHop

# Key logins send their signature at once, without asking first (signfirst.py):
# one lookup less in each host's sshd. False on an asyncssh it does not fit.
SIGN_FIRST = signfirst.install()
# asyncssh's log records that nobody writes cost nothing (quietlog.py).
QUIET_LOG = quietlog.install()

# Seconds we wait beyond the remote deadline (the bootstrap's alarm) before giving
# up on the channel: the host needs a moment to end the probe and report it.
RUN_GRACE_SECONDS = 3.0
STDERR_EXCERPT_BYTES = 4096
_READ_CHUNK = 65536
# What the shell detection on a Windows host may print: "Windows_NT" or "%OS%".
DETECT_BYTES = 4096
# The session channel's receive window: what the host may send before we read it,
# held by asyncssh on top of what _drain keeps (asyncssh's default is 2 MiB). With
# it, a host's stdout costs at most max_output_bytes + this + one read. A Linux
# document is 1.5-10.4 KB of JSON before compression (docs/contracts.md); a
# larger one (security events) costs a window update per 128 KiB, not a failure.
RECV_WINDOW = 256 * 1024
# Ciphers, in order of preference: asyncssh's own list with AES-GCM ahead of
# chacha20-poly1305 (OpenSSH's first choice, and asyncssh's). Both are AEADs
# with the same strength for this use; the difference is the central machine's
# CPU. asyncssh builds chacha20-poly1305 from two fresh ChaCha20 cipher contexts
# and a Poly1305 per packet: 36-57 us per packet against 5-24 us for AES-GCM,
# one AESGCM object per direction (64 B to 32 KB packets, AES-NI, measured with
# asyncssh 2.24). A round sends and receives some 40 packets per host, so that
# is about 1.3 ms per host. A host whose sshd has no GCM (OpenSSH before 6.2)
# negotiates the next one it knows.
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


@dataclass(frozen=True)
class TransportSettings:
    """Everything a session needs besides the host: deadlines, limits, host keys."""

    known_hosts: KnownHosts
    connect_timeout: float = 10.0
    run_timeout: float = 60.0
    max_output_bytes: int = 16 * 1024 * 1024
    # Transient failures (reset or closed before authentication, e.g. sshd's
    # MaxStartups dropping us) are retried with jittered backoff inside the host's
    # deadline; a definite answer (auth failure, host key) never is.
    max_retries: int = 4
    retry_base_seconds: float = 0.25
    # The round's jump host connections (jumps.py): one per bastion, shared by
    # every host behind it. None: each run_probe opens (and closes) its own.
    jumps: Bastions | None = field(default=None, compare=False)

    @property
    def host_deadline(self) -> float:
        """The most one host may cost the round, retries included."""
        return self.connect_timeout * 2 + self.run_timeout + RUN_GRACE_SECONDS


@dataclass(frozen=True)
class Probe:
    """The probe zipapp of a round, one variant per kind of host
    (``fleetstat.probe_bundle.build_probe``): the Windows one goes to hosts run as
    Windows (``os="windows"``, or detected), the POSIX one to every other host.
    A plain ``bytes`` probe goes to every host as it is.

    Each variant is asked of its builder when a host needs it (the builder keeps
    what it built): a fleet without Windows hosts never builds the Windows one,
    25-34 ms of compiling and compressing per process.
    """

    posix: Callable[[], bytes]
    windows: Callable[[], bytes]


def upload_for(probe: bytes | Probe, windows: bool) -> bytes:
    if isinstance(probe, Probe):
        return probe.windows() if windows else probe.posix()
    return probe


@dataclass
class ProbeRun:
    """What came back from the host."""

    stdout: bytes
    stderr: bytes
    exit_status: int | None
    retries: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    windows: bool = False  # run as a Windows host (its PowerShell or cmd.exe command)


def _excerpt(data: bytes) -> str:
    text = data[-STDERR_EXCERPT_BYTES:].decode("utf-8", "replace").strip()
    return text


def _classify_connect_error(exc: BaseException, client: Client, settings: TransportSettings):
    """Map a connect-phase exception to a TransportError a person can act on."""
    where = f"{client.ip}:{client.port}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        known = settings.known_hosts
        # Checked under the name connected to: ssh_config's HostName, else ip.
        name = client.connect_host
        if known.has_entry(name, name, client.port):
            msg = (
                f"host key for {where} does not match the one in {known.path}: "
                "if the host was reinstalled, remove the old line with "
                f"ssh-keygen -R '{host_pattern(name, client.port)}' -f {known.path}; "
                "otherwise investigate"
            )
        else:
            msg = (
                f"host key for {where} is not in {known.path}: add it (ssh-keyscan -p "
                f"{client.port} {name} >> {known.path}) or set "
                'host-keys="accept-new" in <defaults>'
            )
        return TransportError(Status.HOST_KEY_MISMATCH, msg, host=where)
    if isinstance(exc, asyncssh.PermissionDenied):
        how = "key " + str(client.key) if client.key else "password"
        return TransportError(
            Status.AUTH_FAILED,
            f"{client.username}@{where} refused our credentials ({how}): check the "
            "username, the password or that the public key is in authorized_keys",
            host=where,
        )
    if isinstance(exc, asyncssh.KeyImportError | asyncssh.KeyEncryptionError):
        return TransportError(
            Status.AUTH_FAILED,
            f"cannot use key file {client.key}: {exc} (an unencrypted OpenSSH or PEM key)",
            host=where,
        )
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, asyncssh.ConnectionLost) and "timeout" in str(exc).lower()
    ):
        return TransportError(
            Status.TIMEOUT,
            f"no SSH login on {where} within {settings.connect_timeout:g}s (connect timeout): "
            "is the host up and the port right?",
            host=where,
            retryable=False,
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            Status.UNREACHABLE,
            f"connection refused by {where}: nothing listens on port {client.port}",
            host=where,
        )
    if isinstance(exc, socket.gaierror):
        return TransportError(
            Status.UNREACHABLE, f"cannot resolve {client.ip}: {exc.strerror}", host=where
        )
    if isinstance(exc, ConnectionResetError | asyncssh.ConnectionLost | BrokenPipeError):
        return TransportError(
            Status.UNREACHABLE,
            f"{where} closed the connection before login ({exc}); sshd may be "
            "overloaded (MaxStartups) or dropping us",
            host=where,
            retryable=True,
        )
    if isinstance(exc, asyncssh.ChannelOpenError):  # a jump host could not reach it
        return TransportError(
            Status.UNREACHABLE,
            f"jump host {client.jump[-1].label if client.jump else '?'} cannot reach "
            f"{where}: {exc.reason}",
            host=where,
        )
    if isinstance(exc, asyncssh.DisconnectError):
        return TransportError(
            Status.UNREACHABLE, f"{where} disconnected before login: {exc}", host=where
        )
    if isinstance(exc, OSError):
        return TransportError(
            Status.UNREACHABLE, f"cannot reach {where}: {exc.strerror or exc}", host=where
        )
    return None


def login_options(
    client: Client, keys: Sequence[Path], settings: TransportSettings
) -> dict[str, Any]:
    """asyncssh.connect's options for a login as ``client`` offering ``keys``.

    Everything resolved already (config/sshconfig.py), so asyncssh reads no
    ssh_config (``config=()``) and no default key or agent of its own: the keys
    given (decrypted once, keys.py), the agent only when the client has one.
    """
    loaded = client_keys(keys, client.passphrase) if keys else []
    return {
        "username": client.username,
        "password": client.password,
        # [] would make asyncssh load ~/.ssh's default keys; None offers none
        # (and, with no agent, disables public-key login).
        "client_keys": loaded or (None if client.agent is None else []),
        "passphrase": None,
        "agent_path": client.agent,
        "known_hosts": settings.known_hosts.asyncssh_arg(),
        "client_factory": client_factory(settings.known_hosts),
        "connect_timeout": settings.connect_timeout,
        "login_timeout": settings.connect_timeout,
        "keepalive_interval": client.keepalive or 0,
        "encryption_algs": ENCRYPTION_ALGS,
        "config": (),
    }


async def _connect(
    client: Client,
    settings: TransportSettings,
    tunnel: asyncssh.SSHClientConnection | None = None,
    *,
    hop: bool = False,
) -> tuple[asyncssh.SSHClientConnection, int]:
    """Connect and log in, retrying transient failures with jittered backoff.

    A client with jump hosts goes through the round's connection to the last one
    (``settings.jumps``, jumps.py), each attempt waiting for a login slot on it.
    ``hop``: this is a jump host's own login (``tunnel`` given by :class:`Bastions`,
    which holds the slot).
    """
    bastions = settings.jumps if client.jump and not hop else None
    if bastions is not None:
        tunnel = await bastions.get(client, _hop_connector(settings))
    retries = 0
    while True:
        try:
            async with bastions.slot(tunnel) if bastions else contextlib.nullcontext():
                conn = await directconnect.connect(
                    client.connect_host,
                    client.port,
                    tunnel=tunnel if tunnel is not None else coalesce.DIRECT,
                    **login_options(client, client.keys, settings),
                )
            return conn, retries
        # asyncssh's key file errors are ValueErrors, not asyncssh.Errors.
        except (
            OSError,
            asyncssh.Error,
            asyncssh.KeyImportError,
            asyncssh.KeyEncryptionError,
            TimeoutError,
        ) as exc:
            lost = bastions.lost(client) if bastions else None
            err: TransportError | None = lost or _classify_connect_error(exc, client, settings)
            if err is None:
                raise
            if not err.retryable or retries >= settings.max_retries:
                err.retries = retries  # type: ignore[attr-defined]
                raise err from exc
            retries += 1
            delay = settings.retry_base_seconds * (2 ** (retries - 1))
            await asyncio.sleep(random.uniform(delay / 2, delay * 1.5))


def _hop_connector(settings: TransportSettings) -> HopConnector:
    """How :class:`Bastions` logs in to a jump host: as the client would, with the
    hop's own user and keys (its IdentityFile, else the client's), never a password."""

    async def connect_hop(
        client: Client, hop: JumpHop, tunnel: asyncssh.SSHClientConnection | None
    ) -> asyncssh.SSHClientConnection:
        as_hop = replace(
            client,
            ip=hop.host,
            hostname=None,
            port=hop.port,
            username=hop.username,
            password=None,
            password_env=None,
            key=None,
            identity_files=hop.identity_files or client.keys,
            jump=client.jump[: client.jump.index(hop)],  # the hops it is reached through
        )
        conn, _retries = await _connect(as_hop, settings, tunnel, hop=True)
        return conn

    return connect_hop


async def _drain(
    stream: asyncssh.SSHReader[bytes], limit: int, *, keep: bool = True
) -> tuple[bytes, bool]:
    """Read a stream to EOF, keeping at most ``limit`` bytes; True if it overflowed,
    then with what it read so far, or (``keep=False``) nothing, never copied."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > limit:
            return (b"".join(chunks) if keep else b""), True
        chunks.append(chunk)


async def _read_output(
    proc: asyncssh.SSHClientProcess[bytes], limit: int
) -> tuple[bytes, bool, bytes]:
    """stdout (at most ``limit`` bytes; True if it overflowed) and stderr's start.

    An overflowing stdout returns at once: the host, blocked on a full channel
    window, would never end its stderr, so waiting for both cost the run timeout.
    """
    errors = asyncio.ensure_future(_drain(proc.stderr, STDERR_EXCERPT_BYTES * 4))
    try:
        out, overflow = await _drain(proc.stdout, limit, keep=False)
        if overflow:
            return out, True, b""
        err, _ = await errors
        return out, False, err
    finally:
        errors.cancel()


async def _probe_command(
    conn: asyncssh.SSHClientConnection,
    client: Client,
    argv: Sequence[str],
    settings: TransportSettings,
    interpreter: str | None = None,
) -> tuple[str, bool]:
    """The exec request for this host and whether it is run as Windows: the POSIX
    one-channel script (or ``interpreter`` exec'd directly, see
    :func:`posix.probe_command`), or for Windows (``os="windows"``, or
    Win32-OpenSSH's version string when ``os="auto"``) the PowerShell one, after
    one short exec that tells cmd.exe from PowerShell."""
    server_version = str(conn.get_extra_info("server_version") or "")
    detected_windows = client.os == "auto" and windows.is_windows_server(server_version)
    if client.os == "windows" or detected_windows:
        shell = await _detect_shell(conn, f"{client.ip}:{client.port}")
        return windows.probe_command(argv, shell=shell, run_timeout=settings.run_timeout), True
    command = posix.probe_command(argv, run_timeout=settings.run_timeout, interpreter=interpreter)
    return command, False


async def _detect_shell(conn: asyncssh.SSHClientConnection, where: str) -> windows.Shell:
    """cmd.exe or PowerShell, from what :data:`windows.DETECT_COMMAND` printed.

    Read within DETECT_BYTES, like the probe's output within its limit: the
    answer is a dozen bytes, and a host that sends more is not a Windows shell
    answering (asyncssh's ``run`` would have kept all of it in memory).
    """
    proc = await conn.create_process(windows.DETECT_COMMAND, encoding=None, window=RECV_WINDOW)
    try:
        out, overflow, _ = await _read_output(proc, DETECT_BYTES)
    finally:
        proc.close()
        unlink.process_done(proc)
    if overflow:
        raise TransportError(
            Status.BAD_PAYLOAD,
            f"{where} sent more than {DETECT_BYTES} bytes for {windows.DETECT_COMMAND!r}",
            host=where,
        )
    return windows.shell_from_detection(out.decode("utf-8", "replace"))


async def run_probe(
    client: Client, probe: bytes | Probe, argv: Sequence[str], settings: TransportSettings
) -> ProbeRun:
    """Upload and run the probe on one POSIX or Windows host. Raises TransportError on failure.

    A login of its own, closed after the run (``collect``); ``watch`` and ``serve``
    keep the connection for the next round instead (``transport/pool.py``).
    Through jump hosts, a failure once the bastion connection is lost is that
    loss (``unreachable``, the bastion named), whatever broke first.
    """
    if client.jump and settings.jumps is None:  # no round around it: a chain of its own
        own = replace(settings, jumps=Bastions())
        try:
            return await run_probe(client, probe, argv, own)
        finally:
            assert own.jumps is not None
            await own.jumps.close()
    try:
        return await _run_probe(client, probe, argv, settings)
    except TransportError as exc:
        lost = settings.jumps.lost(client) if client.jump and settings.jumps else None
        if lost is None:
            raise
        raise lost from exc


async def _run_probe(
    client: Client, probe: bytes | Probe, argv: Sequence[str], settings: TransportSettings
) -> ProbeRun:
    t0 = time.monotonic()
    conn, retries = await login(client, settings)
    t_connected = time.monotonic()
    try:
        run = await run_on_connection(conn, client, probe, argv, settings)
    finally:
        close_connection(conn)
    run.retries = retries
    run.timings = {"connect": t_connected - t0, "run": time.monotonic() - t_connected}
    raise_for_exit(run, f"{client.ip}:{client.port}", settings)
    return run


def close_connection(conn: asyncssh.SSHClientConnection) -> None:
    """Close ``conn``, whose objects are then freed as soon as they are dropped
    (unlink.py: not left for the garbage collector's next full collection)."""
    conn.close()
    unlink.connection_closed(conn)


async def login(
    client: Client, settings: TransportSettings
) -> tuple[asyncssh.SSHClientConnection, int]:
    """A logged-in connection to ``client`` and the retries it took: every login of
    a probe run goes through here, :func:`run_probe`'s and the connection pool's
    (``transport/pool.py``), so both reach a host the same way."""
    return await _connect(client, settings)


class SessionNotOpened(Exception):
    """A kept connection would not open a session (or start the command) in time.

    Not a host's failure: the connection went stale (sshd restarted, the host
    rebooted, a NAT forgot us) and the caller logs in afresh. Raised only when
    :func:`run_on_connection` is given ``open_timeout``; the cause is chained.
    """


async def run_on_connection(
    conn: asyncssh.SSHClientConnection,
    client: Client,
    probe: bytes | Probe,
    argv: Sequence[str],
    settings: TransportSettings,
    *,
    open_timeout: float | None = None,
    interpreter: str | None = None,
) -> ProbeRun:
    """Run the probe on a new exec channel of ``conn``, a logged-in connection.

    The exit status is not judged here (:func:`raise_for_exit` does): a
    ProbeRun means the channel ran to its end and ``conn`` is fit for another.
    Raises TransportError when the channel failed, timed out or sent too much.
    With ``open_timeout`` (a kept connection), a failure to open the channel and
    start the command within that many seconds raises :class:`SessionNotOpened`.
    ``interpreter``: on a POSIX host, exec it directly instead of the script
    that picks one (:func:`posix.probe_command`).
    """
    where = f"{client.ip}:{client.port}"
    proc: asyncssh.SSHClientProcess[bytes] | None = None
    try:
        async with asyncio.timeout(settings.run_timeout + RUN_GRACE_SECONDS):
            if open_timeout is None:
                proc, on_windows = await _open_session(conn, client, argv, settings, interpreter)
            else:
                proc, on_windows = await _reopen_session(
                    conn, client, argv, settings, open_timeout, interpreter
                )
            _send_upload(proc, upload_for(probe, on_windows))
            out, out_over, err = await _read_output(proc, settings.max_output_bytes)
            if out_over:
                proc.close()
                raise TransportError(
                    Status.BAD_PAYLOAD,
                    f"{where} sent more than {settings.max_output_bytes} bytes on stdout",
                    host=where,
                )
            completed = await proc.wait(check=False)
    except TimeoutError:
        if proc is not None:
            _kill_session(proc)
        raise TransportError(
            Status.TIMEOUT,
            f"probe on {where} did not finish within {settings.run_timeout:g}s "
            "(run timeout); its own alarm ends it on the host",
            host=where,
        ) from None
    except asyncssh.ChannelOpenError as exc:
        raise TransportError(
            Status.PROBE_ERROR, f"{where} refused a session channel: {exc}", host=where
        ) from exc
    except (asyncssh.Error, OSError) as exc:
        raise TransportError(
            Status.UNREACHABLE, f"lost {where} while the probe ran: {exc}", host=where
        ) from exc
    finally:
        if proc is not None:  # its streams are read (or given up): freed when dropped
            unlink.process_done(proc)
    # A process ended by a signal (the bootstrap's alarm: "ALRM") has exit status
    # -1 and a negative returncode; report it the way a shell would, 128 + signal.
    status = completed.exit_status
    if completed.exit_signal and completed.returncode is not None:
        status = 128 - completed.returncode
    return ProbeRun(stdout=out, stderr=err, exit_status=status, windows=on_windows)


async def _open_session(
    conn: asyncssh.SSHClientConnection,
    client: Client,
    argv: Sequence[str],
    settings: TransportSettings,
    interpreter: str | None = None,
) -> tuple[asyncssh.SSHClientProcess[bytes], bool]:
    """The probe's session, started, and whether the host is run as Windows."""
    command, on_windows = await _probe_command(conn, client, argv, settings, interpreter)
    proc = await conn.create_process(command, encoding=None, window=RECV_WINDOW)
    return proc, on_windows


async def _reopen_session(
    conn: asyncssh.SSHClientConnection,
    client: Client,
    argv: Sequence[str],
    settings: TransportSettings,
    open_timeout: float,
    interpreter: str | None,
) -> tuple[asyncssh.SSHClientProcess[bytes], bool]:
    """:func:`_open_session` on a kept connection: any failure is :class:`SessionNotOpened`.

    A connection whose peer vanished without a word (a host powered off, a
    firewall that forgot the flow) answers nothing: the timeout bounds the wait
    so that the fresh login still fits in the host's deadline.
    """
    try:
        async with asyncio.timeout(open_timeout):
            return await _open_session(conn, client, argv, settings, interpreter)
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        raise SessionNotOpened(f"{client.ip}:{client.port}: {exc or type(exc).__name__}") from exc


def _send_upload(proc: asyncssh.SSHClientProcess[bytes], probe: bytes) -> None:
    """The probe on stdin, then EOF.

    A host that answers before it reads stdin (no Python: exit 119; a wrapper that
    prints something else and exits) may close the channel while the upload is
    still queued; asyncssh then refuses the rest with BrokenPipeError. The exit
    status and output that came back are the host's answer, so they are what
    gets classified, not the broken pipe.
    """
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(probe)
        proc.stdin.write_eof()


def _kill_session(proc: asyncssh.SSHClientProcess[bytes]) -> None:
    """Ask sshd to KILL the session's process group (RFC 4254 section 6.9).

    The probe's own alarm normally ends it long before this; this covers what
    the alarm cannot: an interpreter stuck before the bootstrap ran, a wrapper
    that never started Python. OpenSSH has honoured "signal" since 7.9 (not for
    ForceCommand sessions); an sshd that does not simply ignores it.
    """
    with contextlib.suppress(asyncssh.Error, OSError):
        proc.send_signal("KILL")


def raise_for_exit(run: ProbeRun, where: str, settings: TransportSettings) -> None:
    """Turn the remote script's own exit codes into classified failures."""
    code = run.exit_status
    stderr = _excerpt(run.stderr)
    if code == 0:
        return
    if code == posix.EXIT_NO_PYTHON:
        status, msg = Status.NO_PYTHON, f"no python3 (or python 3.6+) on {where}'s PATH"
    elif code in (posix.EXIT_ALARM, posix.EXIT_TIMEOUT):
        status = Status.TIMEOUT
        msg = f"probe on {where} was stopped after {settings.run_timeout:g}s (run timeout)"
    elif code == posix.EXIT_KILLED:
        status = Status.PROBE_ERROR
        msg = f"probe on {where} was killed (SIGKILL) on the host, e.g. by the OOM killer"
    elif code == posix.EXIT_NO_TEMP_DIR:
        status, msg = Status.PROBE_ERROR, f"cannot create a private temp dir on {where}"
    elif code == posix.EXIT_UPLOAD_FAILED:
        status, msg = Status.PROBE_ERROR, f"cannot write the probe into the temp dir on {where}"
    elif code == 127 and "not found" in stderr:
        status, msg = Status.PROBE_ERROR, f"a basic command is missing on {where}"
    elif code is None:
        status, msg = Status.PROBE_ERROR, f"probe on {where} ended without an exit status"
    else:
        status, msg = Status.PROBE_ERROR, f"probe on {where} exited with status {code}"
    if stderr:
        msg = f"{msg}: {stderr.splitlines()[-1][:300]}"
    raise TransportError(status, msg, host=where, exit_status=code, stderr=stderr or None)
