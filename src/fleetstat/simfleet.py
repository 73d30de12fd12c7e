"""A simulated fleet: one real OpenSSH ``sshd`` serving many loopback "hosts".

Used by the demo, the tests and the benchmarks. Every address in 127.0.0.0/8 is
local on Linux, so one sshd bound to 0.0.0.0 and restricted to loopback clients
(``AllowUsers *@127.0.0.0/8``) answers on all of them; ``Match LocalAddress``
blocks give chosen addresses a behaviour (a python3 that hangs, none at all, only
a ``python``, one that prints garbage, one that seals a hostile document:
``hostile:<class>``, see ``simhostile``) through ``SetEnv PATH=...``, and a
TMPDIR of their own so a test can see that nothing was left behind.

As root, the sshd runs in a private mount namespace (``unshare --mount``) whose
/etc is the fleet's own view (``workdir/etc``): a passwd and a shadow with one
extra user, and for every other entry a symlink into the real /etc (mounted at
/etc/.real), so password logins work without touching the real system. Not a
bind mount over /etc/passwd itself: anything that rewrites the real file by
renaming a new one over it (useradd, an apt package adding a system user)
detaches such a mount in every namespace, and the fleet's user would vanish
mid-run. As another user, sshd runs as that user and only key logins work.

Everything a fleet writes lives under its ``workdir`` (mode 0700): keys, config,
logs, and ``hosts/``, the simulated hosts' home, TMPDIRs and fake interpreters.
Nothing sits in a shared folder such as /tmp, where another run's clean-up, a
stale-directory sweep or a tmp cleaner could remove it mid-run. The login user
cannot traverse a private tree like pytest's (``/tmp/pytest-of-root`` is 0700),
so inside sshd's namespace ``hosts/`` is also bind-mounted at ``/srv``
(``remote_root``): the hosts see their files there, and nothing outside the
namespace changes. Each fleet's login uid is ``SIM_UID_BASE + port``: two fleets
alive at once hold different ports, so they never share a uid.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetstat import simhostile
from fleetstat.errors import FleetstatError

if TYPE_CHECKING:
    import asyncssh

BEHAVIOURS = ("ok", "hang", "no_python", "python_only", "garbage", "fail", "stuck")
# "hostile:<class>": a python3 that seals a hostile document (see simhostile.py).
HOSTILE = tuple(f"hostile:{name}" for name in simhostile.CLASSES)
SIM_USER = "fleetsim"
# Above every uid a Debian system hands out (and 65534, nobody), below 2**31.
SIM_UID_BASE = 4_000_000
# Where the login user sees ``hosts/`` inside sshd's mount namespace (as root): the
# first that exists. Shadowed in that namespace only.
REMOTE_ROOTS = ("/srv", "/mnt", "/media")
# Tries with a fresh port when another process took ours between free_port() and
# sshd's bind (both suites on a machine draw from the same ephemeral range).
START_TRIES = 5

# A host whose probe hangs mid-run (as on a dead NFS mount): the host's real
# python3 runs the real bootstrap, which arms its deadline and takes the upload,
# and then sleeps where the probe's main() would run. __PYTHON__ is that python3.
# FLEETSTAT_SIM_HANG_ALARM (set per host from SimFleet.hang_alarms), when not 0,
# shortens the deadline the bootstrap arms.
_HANGING_PYTHON = """#!__PYTHON__ -IS
import os, re, sys
args = sys.argv[1:]
code = args.index("-c") + 1
if "code = main()" not in args[code] or "signal.alarm(" not in args[code]:
    sys.exit("simfleet: the bootstrap no longer calls main() or alarm(); update _HANGING_PYTHON")
args[code] = args[code].replace("code = main()", "import time; time.sleep(3600); code = 0")
alarm = int(os.environ.get("FLEETSTAT_SIM_HANG_ALARM") or 0)
if alarm:
    args[code] = re.sub(
        r"signal\\.alarm\\((\\d+)\\)",
        lambda m: "signal.alarm(%d)" % min(int(m.group(1)), alarm),
        args[code],
    )
os.execv("__PYTHON__", ["__PYTHON__"] + args)
"""
_FAKE_PYTHONS = {
    "hang": _HANGING_PYTHON,
    # A python3 that never gets as far as the bootstrap, so no alarm is armed: only
    # the server's "signal" request at its deadline (transport/ssh.py) ends it.
    "stuck": "#!/bin/sh\nexec sleep 3600\n",
    "garbage": "#!/bin/sh\necho 'hello from a host that does not speak fleetstat'\nexit 0\n",
    "fail": "#!/bin/sh\necho 'Traceback: probe crashed on purpose' >&2\nexit 3\n",
}
# rsyslog's part for the auth_log option: sshd -e lines, time-stamped (RFC 3339)
# and tagged, appended to /var/log/auth.log inside sshd's namespace.
_SYSLOG_WRITER = """import socket, sys, time
host = socket.gethostname()
with open("/var/log/auth.log", "a", buffering=1, encoding="utf-8") as out:
    for line in sys.stdin:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        out.write("%s %s sshd: %s\\n" % (stamp, host, line.rstrip("\\r\\n")))
"""


class SimFleetError(FleetstatError):
    """The simulated fleet cannot start (no sshd, no permission, port in use)."""


def find_sshd() -> str:
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SimFleetError(
        "OpenSSH sshd is not installed: run scripts/setup (apt-get install openssh-server)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_address(index: int) -> str:
    """The i-th host's address in 127.1.0.0/16 and up: never .0 or .255 in the last byte."""
    hi, lo = divmod(index, 250)
    return f"127.{1 + hi // 250}.{hi % 250}.{lo + 2}"


@dataclass
class SimHost:
    address: str
    behaviour: str
    tmpdir: Path


@dataclass
class SimFleet:
    """Start with ``start()`` (or as a context manager); ``stop()`` kills everything."""

    workdir: Path
    count: int = 5
    behaviours: dict[int, str] = field(default_factory=dict)  # host index -> behaviour
    port: int = 0
    max_startups: str = "1000:30:1000"
    max_sessions: int = 100
    # Pinned for every client (fleetstat, the bench's reference runner, Ansible's
    # OpenSSH): OpenSSH 9.x prefers the post-quantum hybrid sntrup761x25519-sha512,
    # whose sshd side costs several times the CPU of curve25519-sha256, and
    # asyncssh and the OpenSSH client would otherwise negotiate different ones.
    # "" leaves sshd's default list.
    kex_algorithms: str = "curve25519-sha256"
    extra_config: str = ""
    # As root only: sshd logs at INFO, time-stamped like rsyslog, into a private
    # /var/log/auth.log inside its namespace (``auth_log_path`` from outside), and
    # the namespace has no journald, so the probe reads events from that file.
    auth_log: bool = False
    # Host index -> seconds after which that "hang" host's probe is ended by its
    # own alarm, when shorter than the run timeout it was sent (unlisted: that run
    # timeout). Tests give healthy hosts a deadline a loaded machine never reaches
    # and still see hanging ones time out quickly.
    hang_alarms: dict[int, int] = field(default_factory=dict)
    # sshd's LogLevel into workdir/sshd.log ("VERBOSE": every login and why one
    # failed, for a test run's post-mortem). auth_log needs INFO or more.
    log_level: str = "ERROR"
    # As root only: sshd in a network namespace of its own (loopback only), so
    # nothing outside reaches the hosts; a SimBastion (simbastion.py) in that
    # namespace, behind a relay, is the only way in.
    netns: bool = False
    hosts: list[SimHost] = field(default_factory=list)
    password: str = ""
    # Each fleet's login user has a uid of its own (from the port), so stopping one
    # fleet (pkill -U) or listing its processes never touches another fleet's
    # sessions: test runs and the bench may share a machine.
    uid: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _uid_given: bool = False

    # -- paths -------------------------------------------------------------
    @property
    def user(self) -> str:
        return SIM_USER if self.as_root else _current_user()

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def pid(self) -> int | None:
        """The sshd listener's pid (every session is forked from it), None when stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def host_key(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_ed25519_key"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    def login_options(self, **overrides: Any) -> asyncssh.SSHClientConnectionOptions:
        """asyncssh options for a key login to the fleet's hosts, nothing read from
        ~/.ssh (no agent, no ssh_config); ``overrides`` are further options."""
        import asyncssh

        return asyncssh.SSHClientConnectionOptions(
            username=self.user,
            client_keys=[asyncssh.read_private_key(str(self.client_key))],
            known_hosts=asyncssh.read_known_hosts(str(self.known_hosts)),
            agent_path=None,
            config=(),
            **overrides,
        )

    @property
    def hostroot(self) -> Path:
        """The simulated hosts' files (home, TMPDIRs, fake interpreters), seen from here."""
        return self.workdir / "hosts"

    @property
    def remote_root(self) -> Path:
        """``hostroot`` as sshd and the login user see it."""
        if not self.as_root:
            return self.hostroot
        for candidate in REMOTE_ROOTS:
            if Path(candidate).is_dir():
                return Path(candidate)
        raise SimFleetError(f"none of {', '.join(REMOTE_ROOTS)} exists to mount the hosts on")

    def remote(self, path: Path) -> Path:
        """A path under ``hostroot`` as the simulated hosts see it."""
        return self.remote_root / path.relative_to(self.hostroot)

    @property
    def home(self) -> Path:
        return self.hostroot / "home"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "sshd.pid"

    @property
    def auth_log_path(self) -> Path:
        """The simulated hosts' /var/log/auth.log, seen from outside the namespace."""
        return self.workdir / "varlog" / "auth.log"

    def _namespace_command(self, sshd: str, config: Path) -> list[str]:
        """sshd in a private mount namespace with the fleet's /etc (the sim user's
        passwd/shadow), ``hostroot`` at ``remote_root`` (and, with ``auth_log``, a
        private /var/log)."""
        mounts = [
            'mount --bind /etc "$1/.real"',
            'mount --rbind "$1" /etc',
            'mount --bind "$2" "$3"',
        ]
        args = [str(self.etc_view), str(self.hostroot), str(self.remote_root), sshd, str(config)]
        run = 'exec "$4" -D -e -f "$5"'
        if self.auth_log:
            varlog = self.auth_log_path.parent
            varlog.mkdir(mode=0o755, exist_ok=True)
            (varlog / "empty").mkdir(mode=0o755, exist_ok=True)
            self.auth_log_path.touch(mode=0o644)
            self.auth_log_path.chmod(0o644)  # readable by the sim user, like the adm group's
            mounts += [
                'mount --bind "$6" /var/log',
                "{ [ ! -d /run/systemd/journal ] || "
                'mount --bind "$6/empty" /run/systemd/journal; }',
            ]
            run = '{ "$4" -D -e -f "$5" 2>&1 | "$7" -u -c "$8"; }'
            args += [str(varlog), sys.executable, _SYSLOG_WRITER]
        if self.netns:
            mounts.insert(0, "ip link set lo up")
        script = " && ".join([*mounts, run])
        spaces = ["--net", "--mount"] if self.netns else ["--mount"]
        return ["unshare", *spaces, "--propagation", "private", "sh", "-c", script, "sim", *args]

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> SimFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SimFleet:
        sshd = find_sshd()
        for bad in set(self.behaviours.values()) - set(BEHAVIOURS) - set(HOSTILE):
            raise SimFleetError(f"unknown behaviour {bad!r}; use one of {BEHAVIOURS + HOSTILE}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        self.password = self.password or secrets.token_urlsafe(12)
        self._uid_given = self._uid_given or self.uid != 0
        port_given = self.port != 0
        self._keys()
        for attempt in range(1, START_TRIES + 1):
            if not port_given:
                self.port = free_port()
            if not self._uid_given:
                self.uid = SIM_UID_BASE + self.port
            self._prepare_hostroot()
            config = self._write_config()
            if self.as_root:
                Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
                self._write_accounts()
                cmd = self._namespace_command(sshd, config)
            elif self.netns:
                raise SimFleetError("a fleet in a network namespace of its own needs root")
            else:
                cmd = [sshd, "-D", "-e", "-f", str(config)]
            self.pid_path.unlink(missing_ok=True)
            log = self.log_path.open("ab")
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            log.close()
            try:
                self._wait_listening()
                return self
            except SimFleetError as exc:
                self._proc = None
                if port_given or attempt == START_TRIES or "Address already in use" not in str(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # The session's own process group holds sshd and every session it forked.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        self._kill_user_processes()
        shutil.rmtree(self.hostroot, ignore_errors=True)
        self.pid_path.unlink(missing_ok=True)

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop sshd and every session it holds, then start it again on the same port.

        What a host's reboot or an sshd upgrade that drops its connections does:
        connections kept by a client see their peer go away. ``new_host_key``:
        the sshd comes back with a new host key while ``known_hosts`` keeps the
        old one, as a reinstalled host looks to its clients.
        """
        known = self.known_hosts.read_text() if new_host_key else None
        self.stop()
        self._kill_user_processes()
        if new_host_key:
            for path in (self.host_key, self.host_key.with_suffix(".pub")):
                path.unlink(missing_ok=True)
        self.start()
        if known is not None:
            self.known_hosts.write_text(known)

    def accepted_logins(self) -> int:
        """Logins sshd accepted so far, over restarts: its ``Accepted ...`` lines
        (in the auth log with ``auth_log``, else ``sshd.log``; LogLevel INFO or more)."""
        path = self.auth_log_path if self.auth_log else self.log_path
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(1 for line in text.splitlines() if "Accepted " in line)

    def _kill_user_processes(self) -> None:
        if not self.as_root:
            return
        subprocess.run(["pkill", "-KILL", "-U", str(self.uid)], check=False)

    def _wait_listening(self) -> None:
        """Until sshd wrote its PidFile, which it does once its socket is bound.

        Not a connection to the port: that would also succeed when another process
        holds it and our sshd is exiting with "Address already in use". Generous:
        a loaded 2-core machine may take seconds to start a process.
        """
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SimFleetError(f"sshd exited at start: {self._log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if int(self.pid_path.read_text().strip()) > 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise SimFleetError(
            f"sshd did not listen on port {self.port} within 60s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return "(no log)"

    # -- setup pieces --------------------------------------------------------
    def _keys(self) -> None:
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetstat-sim",
                     "-f", str(key)],
                    check=True,
                )  # fmt: skip

    def _prepare_hostroot(self) -> None:
        """A fresh ``hostroot`` for this start (a killed run may have left one),
        owned by the login user: home with authorized_keys, TMPDIRs, interpreters."""
        shutil.rmtree(self.hostroot, ignore_errors=True)
        self.hostroot.mkdir(mode=0o700)
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(parents=True)
        shutil.copy(self.client_key.with_suffix(".pub"), ssh_dir / "authorized_keys")
        self._hosts()
        self._fake_bins()
        if self.as_root:
            for path in [self.hostroot, *self.hostroot.rglob("*")]:
                os.chown(path, self.uid, self.uid)

    def _hosts(self) -> None:
        self.hosts = []
        for i in range(self.count):
            behaviour = self.behaviours.get(i, "ok")
            tmp = self.hostroot / "hosttmp" / (behaviour if behaviour == "ok" else f"h{i}")
            tmp.mkdir(parents=True, exist_ok=True)
            self.hosts.append(SimHost(host_address(i), behaviour, tmp))
        pub = self.host_key.with_suffix(".pub").read_text().split()
        # One line per host, as ssh-keyscan writes them for a real fleet.
        self.known_hosts.write_text(
            "".join(f"[{h.address}]:{self.port} {pub[0]} {pub[1]}\n" for h in self.hosts)
        )

    def _fake_bins(self) -> None:
        host_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
        for behaviour, script in _FAKE_PYTHONS.items():
            bindir = self.hostroot / "bin" / behaviour
            bindir.mkdir(parents=True, exist_ok=True)
            target = bindir / "python3"
            target.write_text(script.replace("__PYTHON__", host_python or "/usr/bin/python3"))
            target.chmod(0o755)
        # A PATH with nothing on it: the remote script needs only the shell's
        # built-ins to find that there is no Python.
        (self.hostroot / "bin" / "no_python").mkdir(parents=True, exist_ok=True)
        # The host's Python as ``python`` and nothing else (no python3): what the
        # remote script falls back to.
        only = self.hostroot / "bin" / "python_only"
        only.mkdir(parents=True, exist_ok=True)
        if not (only / "python").is_symlink():
            (only / "python").symlink_to(host_python or "/usr/bin/python3")
        # Hostile hosts: the host's python3 runs simhostile.py instead of the bootstrap.
        hostile = self.hostroot / "bin" / "simhostile.py"
        shutil.copy(simhostile.__file__, hostile)
        hostile.chmod(0o644)
        python = host_python or "/usr/bin/python3"
        for behaviour in set(self.behaviours.values()) & set(HOSTILE):
            target = self.hostroot / "bin" / _bin_dir(behaviour) / "python3"
            target.parent.mkdir(parents=True, exist_ok=True)
            name = behaviour.partition(":")[2]
            remote = self.remote(hostile)
            target.write_text(f'#!/bin/sh\nexec {python} -I -S {remote} {name} "$@"\n')
            target.chmod(0o755)

    @property
    def etc_view(self) -> Path:
        """The /etc of sshd's namespace (as root): see the module's docstring."""
        return self.workdir / "etc"

    def _write_accounts(self) -> None:
        """The namespace's /etc: passwd/shadow with the sim user, symlinks for the rest."""
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=self.password.encode(), capture_output=True, check=True,
        ).stdout.decode().strip()  # fmt: skip
        passwd = Path("/etc/passwd").read_text()
        shadow = Path("/etc/shadow").read_text()
        home = self.remote(self.home)
        passwd += f"{SIM_USER}:x:{self.uid}:{self.uid}:fleetstat sim:{home}:/bin/sh\n"
        shadow += f"{SIM_USER}:{hashed}:19000:0:99999:7:::\n"
        view = self.etc_view
        shutil.rmtree(view, ignore_errors=True)
        view.mkdir(mode=0o755)
        view.chmod(0o755)  # the login user reads /etc (its umask aside)
        (view / ".real").mkdir()
        for name in os.listdir("/etc"):
            if name not in ("passwd", "shadow", ".real"):
                (view / name).symlink_to(Path(".real") / name)
        (view / "passwd").write_text(passwd)
        (view / "passwd").chmod(0o644)
        shadow_path = view / "shadow"
        shadow_path.write_text(shadow)
        shadow_path.chmod(0o600)

    def _write_config(self) -> Path:
        blocks = []
        for i, host in enumerate(self.hosts):
            if host.behaviour == "ok":
                continue
            path = "/usr/bin:/bin"
            bindir = self.remote(self.hostroot / "bin" / _bin_dir(host.behaviour))
            if host.behaviour in _FAKE_PYTHONS or host.behaviour in HOSTILE:
                path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
            elif host.behaviour in ("no_python", "python_only"):
                path = str(bindir)
            tmp = self.remote(host.tmpdir)
            alarm = (
                f" FLEETSTAT_SIM_HANG_ALARM={self.hang_alarms[i]}" if i in self.hang_alarms else ""
            )
            blocks.append(
                f"Match LocalAddress {host.address}\n  SetEnv TMPDIR={tmp} PATH={path}{alarm}\n"
            )
        # sshd keeps the first value it obtains, so specific blocks come first.
        ok_tmp = self.remote(self.hostroot / "hosttmp" / "ok")
        blocks.append(f"Match all\n  SetEnv TMPDIR={ok_tmp}\n")
        user_pattern = f"{self.user}@127.0.0.0/8"
        kex = f"KexAlgorithms {self.kex_algorithms}\n" if self.kex_algorithms else ""
        text = f"""# fleetstat simulated fleet; generated, do not edit
ListenAddress 0.0.0.0:{self.port}
HostKey {self.host_key}
HostKeyAlgorithms ssh-ed25519
{kex}PidFile {self.pid_path}
AuthorizedKeysFile {self.remote(self.home / ".ssh" / "authorized_keys")}
StrictModes no
UsePAM no
PasswordAuthentication {"yes" if self.as_root else "no"}
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {user_pattern}
MaxStartups {self.max_startups}
MaxSessions {self.max_sessions}
MaxAuthTries 6
LoginGraceTime 30
PrintMotd no
UseDNS no
LogLevel {"INFO" if self.auth_log and self.log_level == "ERROR" else self.log_level}
Subsystem sftp internal-sftp
{self.extra_config}
{"".join(blocks)}"""
        config_path = self.workdir / "sshd_config"
        config_path.write_text(text)
        return config_path

    # -- helpers for callers -------------------------------------------------
    def leftover_temp_dirs(self) -> list[Path]:
        """Any fleetstat temp dir still present on any simulated host."""
        return sorted((self.hostroot / "hosttmp").glob("*/fleetstat.*"))

    def user_processes(self) -> list[str]:
        """Processes still running as the sim user (sessions, probes) as "pid cmd" lines."""
        if not self.as_root:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=,args=", "-u", str(self.uid)], capture_output=True, text=True
        ).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def client_xml(
        self, *, auth: str = "key", mail: str = "ops@example.com", indices: list[int] | None = None
    ) -> str:
        """``<client>`` elements for these hosts, using the key or the password."""
        lines = []
        for i, host in enumerate(self.hosts):
            if indices is not None and i not in indices:
                continue
            cred = f'key="{self.client_key}"' if auth == "key" else f'password="{self.password}"'
            lines.append(
                f'  <client ip="{host.address}" port="{self.port}" username="{self.user}" '
                f'{cred} mail="{mail}" name="sim-{i:03d}"/>'
            )
        return "\n".join(lines)


def _bin_dir(behaviour: str) -> str:
    """A behaviour's folder of fake interpreters: no ":" (it would split PATH)."""
    return behaviour.replace(":", "-")


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
