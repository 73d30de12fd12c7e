"""A jump host in front of a simulated fleet that nothing else can reach.

The fleet runs in a network namespace of its own (``SimFleet(netns=True)``:
loopback only, no route in or out). The bastion is a second, stock OpenSSH
``sshd`` started inside that namespace (and the fleet's mount namespace, for
its login user), with sshd's defaults for what a bastion is about:
``MaxStartups 10:30:100``, ``MaxSessions 10``, ``AllowTcpForwarding yes``. From
outside it is reached through a relay: a small process that listens on
127.0.0.1 here, then moves itself into the fleet's namespace (``setns``) and
carries each connection to the bastion's port there. So a client reaches the
hosts through the bastion or not at all.

The bastion logs at INFO into ``log_path``: one ``Accepted publickey`` line per
login, which tests count. :meth:`SimBastion.kill` ends sshd and every session
it forked (SIGKILL: the connections drop, as when a bastion dies);
:meth:`SimBastion.start` brings it back on the same port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fleetstat.simfleet import SimFleet, SimFleetError, find_sshd, free_port

# Listens here, then setns() into the fleet's network namespace and relays there.
_RELAY = """import asyncio, ctypes, os, socket, sys
listen_port, ns_pid, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", listen_port))
listener.listen(128)
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/proc/%s/ns/net" % ns_pid, os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
    sys.exit("relay: setns failed: errno %d" % ctypes.get_errno())

async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

async def main():
    server = await asyncio.start_server(handle, sock=listener)
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


@dataclass
class SimBastion:
    """A stock sshd inside ``fleet``'s network namespace, reached at ``port`` here."""

    fleet: SimFleet
    workdir: Path
    port: int = 0  # the relay's, on 127.0.0.1 outside the namespace
    inner_port: int = 0  # the bastion sshd's, inside the namespace
    _sshd: subprocess.Popen[bytes] | None = None
    _relay: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> Path:
        return self.workdir / "bastion_host_ed25519_key"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bastion.log"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "bastion.pid"

    @property
    def jump(self) -> str:
        """The client's ``jump=`` for it."""
        return f"{self.fleet.user}@127.0.0.1:{self.port}"

    def known_hosts_line(self) -> str:
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def logins(self) -> int:
        """Logins the bastion accepted since it was first started."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").count("Accepted publickey")
        return 0

    def __enter__(self) -> SimBastion:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SimBastion:
        if self.fleet.pid is None or not self.fleet.netns:
            raise SimFleetError("a bastion needs a started SimFleet(netns=True)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        if not self.host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(self.host_key)], check=True)  # fmt: skip
        self.inner_port = self.inner_port or free_port()
        self.port = self.port or free_port()
        config = self._write_config()
        self.pid_path.unlink(missing_ok=True)
        namespace = ["nsenter", f"--target={self.fleet.pid}", "--net", "--mount"]
        with self.log_path.open("ab") as log:
            self._sshd = subprocess.Popen(
                [*namespace, find_sshd(), "-D", "-e", "-f", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self._wait(lambda: self.pid_path.exists() and self.pid_path.read_text().strip() != "")
        if self._relay is None or self._relay.poll() is not None:
            self._relay = subprocess.Popen(
                [sys.executable, "-c", _RELAY, str(self.port), str(self.fleet.pid),
                 str(self.inner_port)],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            assert self._relay.stdout is not None
            if self._relay.stdout.readline().strip() != b"ready":
                raise SimFleetError("the bastion's relay did not start")
        return self

    def _wait(self, ready: object) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._sshd is not None and self._sshd.poll() is not None:
                raise SimFleetError(f"bastion sshd exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if callable(ready) and ready():
                    return
            time.sleep(0.05)
        raise SimFleetError("bastion sshd did not start within 60s")

    def kill(self) -> None:
        """SIGKILL sshd and every session process it forked: the bastion is gone."""
        proc, self._sshd = self._sshd, None
        if proc is None:
            return
        for pid in [*_descendants(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.kill()
            relay.wait(timeout=10)
            if relay.stdout is not None:
                relay.stdout.close()

    def _write_config(self) -> Path:
        # sshd's defaults for what matters here: MaxStartups 10:30:100,
        # MaxSessions 10, AllowTcpForwarding yes; only logging and paths are set.
        # The fleet's own authorized_keys, where its login user can read it (sshd
        # reads the file as that user; the fleet's workdir is private).
        authorized = self.fleet.remote(self.fleet.home / ".ssh" / "authorized_keys")
        text = f"""# fleetstat simulated bastion; generated, do not edit
ListenAddress 127.0.0.1:{self.inner_port}
HostKey {self.host_key}
HostKeyAlgorithms ssh-ed25519
KexAlgorithms {self.fleet.kex_algorithms or "curve25519-sha256"}
PidFile {self.pid_path}
AuthorizedKeysFile {authorized}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {self.fleet.user}
PrintMotd no
UseDNS no
LogLevel INFO
"""
        path = self.workdir / "bastion_sshd_config"
        path.write_text(text)
        return path


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's sessions start sessions of their own, so
    neither a process group nor a session holds them all)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
