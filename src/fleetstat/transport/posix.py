"""The one command a POSIX host runs: pick Python, upload on stdin, run, leave nothing.

One exec channel does everything (docs/probe.md, "How the server starts it"): a separate SFTP
session costs the central machine about twice the CPU. The login shell gets
``exec /bin/sh -c '<script>' fleetstat '<bootstrap>' ARGS``; the script picks the
interpreter and ``exec``s it, so on a healthy host the whole run is one process
(the login shell, replaced by /bin/sh, replaced by python3). Everything else is
the bootstrap's, in Python:

1. ``alarm(run timeout)``: the deadline. No handler is installed, so the kernel
   ends the interpreter when it fires, wherever it is (C calls included); sshd
   reports the signal.
2. The upload: a new private directory (``mkdir`` 0700 under ``$TMPDIR`` or
   /tmp, with 96 random bits in its name: what ``mktemp -d`` makes), and in it
   ``probe.pyz`` (O_EXCL, 0600), opened and at once removed again with its
   directory; stdin is written into the open descriptor and the probe runs from
   ``/proc/self/fd/N``. Nothing of it is ever left on the host, whatever happens
   from then on: a stalled upload, the alarm, ``kill -9``, the OOM killer. Where
   there is no /proc the file stays until the probe returns.
3. The archive goes on ``sys.path`` rather than ``python3 probe.pyz``: that goes
   through runpy (importlib.util, contextlib, ...), 2-4 ms per run.
   ``zipload.install()`` makes every further module compile once, not twice.
4. After ``main()``: flush and ``_exit``; the interpreter's teardown of the
   probe's modules is about 2 ms of CPU and there is nothing left to tear down for.

On a kept connection (``transport/pool.py``) where the script has run once, the
login shell gets ``exec python3 -I -S -c '<bootstrap>' ARGS`` instead: the same
bootstrap, one ``/bin/sh`` fewer. A host where that finds no ``python3`` (the
script picked ``python``) goes back to the script, in the same round.

Before this design a shell script did steps 1, 2 and the clean-up with
``mktemp``, ``cat``, ``timeout`` and ``rm`` in five
processes; each fork and exec costs the host 1-3 ms of CPU (docs/performance.md).

Quoting: the script travels inside single quotes, so it holds no single quote and
no backslash, and every ``!`` ends a line (csh expands history even inside single
quotes, but not a ``!`` before a newline): sh, bash, zsh, fish and csh login
shells all pass it through untouched. The bootstrap and the probe's arguments are
words of their own, single-quoted by :func:`shlex.quote`; the bootstrap holds no
backslash and no ``!`` for the same shells.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

# Exit codes of the script and the bootstrap; everything else is the probe's own.
EXIT_NO_TEMP_DIR = 120
EXIT_UPLOAD_FAILED = 121
EXIT_NO_PYTHON = 119
# What a probe ended by the bootstrap's alarm reports when a shell relays it
# (128 + SIGALRM); over SSH it arrives as the exit signal "ALRM" instead.
EXIT_ALARM = 142
# The interpreter a kept connection runs directly once the script has found one
# there (transport/pool.py): the script's first choice.
DIRECT = "python3"
# What the Windows script returns for the same event (and GNU ``timeout``, which
# an operator may wrap the probe in when running it by hand).
EXIT_TIMEOUT = 124
# 128 + SIGKILL: nothing of fleetstat's sends KILL before the server has given
# up, so on a host this is someone else's doing (the OOM killer, an operator).
EXIT_KILLED = 137

_SCRIPT = """if command -v python3 >/dev/null 2>&1; then py=python3
elif command -v python >/dev/null 2>&1 &&
  python -c "import sys; sys.exit(sys.version_info < (3, 6))" </dev/null >/dev/null 2>&1
then py=python
else echo "fleetstat: no python3 (or python 3.6+) on PATH=$PATH" >&2; exit 119
fi
boot=$1
shift
exec "$py" -I -S -c "$boot" "$@"
"""

_FORBIDDEN = ("'", "\\", "! ", "!$", '!"')

# Python 3.0+ syntax up to the version check, 3.6+ after it (vermin checks it).
# ``posix``, the built-in module behind ``os``, rather than ``os`` itself, whose
# import costs ~1.3 ms of the host's CPU (probe/_os.py); so paths are bytes here.
BOOTSTRAP = """import sys, posix
if sys.version_info < (3, 6):
    print("fleetstat: the probe needs Python 3.6+, not", sys.version.split()[0], file=sys.stderr)
    posix._exit(119)
try:
    import _signal as signal
except ImportError:
    import signal
signal.alarm(__RUN__)
where = posix.environ.get(b"TMPDIR") or b"/tmp"
folder = where.rstrip(b"/") + b"/fleetstat." + posix.urandom(12).hex().encode()
path = folder + b"/probe.pyz"
try:
    keep = posix.stat(b"/proc/self/fd").st_mode & 0o170000 != 0o040000
except OSError:
    keep = True


def clean():
    for remove, name in ((posix.remove, path), (posix.rmdir, folder)):
        try:
            remove(name)
        except OSError:
            pass


try:
    posix.mkdir(folder, 0o700)
except OSError as exc:
    print("fleetstat: cannot create a private temp dir in", where.decode(), exc, file=sys.stderr)
    posix._exit(120)
try:
    fd = posix.open(path, posix.O_RDWR | posix.O_CREAT | posix.O_EXCL, 0o600)
    if not keep:
        clean()
    while True:
        chunk = posix.read(0, 65536)
        if not chunk:
            break
        while chunk:
            chunk = chunk[posix.write(fd, chunk) :]
except OSError as exc:
    clean()
    print("fleetstat: cannot write the probe:", exc, file=sys.stderr)
    posix._exit(121)
if keep:
    sys.path.insert(0, path.decode(sys.getfilesystemencoding(), "surrogateescape"))
else:
    sys.path.insert(0, "/proc/self/fd/%d" % fd)
try:
    from fleetstat_probe.zipload import install

    install()
    from fleetstat_probe.__main__ import main

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
finally:
    if keep:
        clean()
posix._exit(code)
"""


def bootstrap(run_timeout: float) -> str:
    """The ``-c`` bootstrap with its deadline: whole seconds, rounded up, at least 1."""
    return BOOTSTRAP.replace("__RUN__", str(max(1, int(run_timeout + 0.999))))


def probe_command(
    argv: Sequence[str], *, run_timeout: float, interpreter: str | None = None
) -> str:
    """The exec request for a POSIX host. ``argv`` goes to the probe, shell-quoted.

    The probe arrives on stdin; the caller must send EOF after it. With
    ``interpreter`` (:data:`DIRECT`, on a kept connection where the script has
    run already) the login shell ``exec``s it at once, without the script that
    picks it: one ``/bin/sh`` less per run, 0.8-1.3 ms of the host's CPU
    (docs/performance.md, "Seventh pass"). :func:`interpreter_missing` tells when that failed.
    """
    if any(ch in _SCRIPT for ch in _FORBIDDEN):  # pragma: no cover - guards edits to _SCRIPT
        raise AssertionError("the remote script must not contain ' or \\, nor ! mid-line")
    boot = bootstrap(run_timeout)
    if any(ch in boot for ch in _FORBIDDEN[1:]):  # pragma: no cover - guards edits
        raise AssertionError("the bootstrap must not contain \\, nor ! mid-line")
    words = " ".join(shlex.quote(arg) for arg in (boot, *argv))
    if interpreter is not None:
        return f"exec {shlex.quote(interpreter)} -I -S -c {words}"
    # "fleetstat" becomes $0 of the inner shell, the bootstrap $1, the probe's
    # arguments the rest.
    return f"exec /bin/sh -c '{_SCRIPT}' fleetstat {words}"


def interpreter_missing(exit_status: int | None, stdout: bytes, stderr: bytes) -> bool:
    """Whether a run started with ``interpreter`` never reached it: the login
    shell found no such command (126/127 from sh, bash, zsh, fish; csh says
    "Command not found." with 1). Nothing ran, so the script may run instead."""
    if stdout:
        return False
    return exit_status in (126, 127) or b"not found" in stderr.lower()
