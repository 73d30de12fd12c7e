"""The one command a POSIX host runs: temp dir, upload on stdin, run, clean up.

One exec channel does everything (DESIGN.md, "Remote execution"): a separate SFTP
session costs the central machine about twice the CPU. The script is handed to
``/bin/sh -c`` inside single quotes, so it must contain no single quote and no
backslash, and every ``!`` must end a line (csh expands history even inside
single quotes, but not a ``!`` before a newline): then sh, bash, zsh, fish and
csh login shells all pass it through untouched.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

# Exit codes the script itself uses; everything else is the probe's own.
EXIT_NO_TEMP_DIR = 120
EXIT_UPLOAD_FAILED = 121
EXIT_NO_PYTHON = 119
EXIT_SIGNALLED = 129
# The bootstrap arms SIGALRM for the run timeout; with no handler installed the
# kernel ends the interpreter (wherever it is, C calls included), and the shell
# reports 128 + SIGALRM.
EXIT_ALARM = 142
# What the Windows script returns for the same event (and GNU ``timeout``, which
# fleetstat used here up to 0.1.0 and an operator may still wrap the probe in).
EXIT_TIMEOUT = 124
EXIT_KILLED = 137

# Five processes on the host in the common case: the login shell, /bin/sh, the
# $(mktemp) subshell and mktemp, python3. The upload, the deadline and the
# removal of the temp dir are the bootstrap's (below), so no ``cat``, ``timeout``
# or ``rm`` runs unless something went wrong: each of those is a fork and exec,
# 1-3 ms of the host's CPU (bench/README.md). The EXIT trap still removes the dir
# whenever the bootstrap could not (killed, crashed, upload failed).
_SCRIPT = """umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/fleetstat.XXXXXXXX") || exit 120
cleanup() { if [ -d "$d" ]; then rm -rf "$d"; fi; }
trap cleanup EXIT
trap "exit 129" HUP INT TERM PIPE
if command -v python3 >/dev/null 2>&1; then py=python3
elif command -v python >/dev/null 2>&1 &&
  python -c "import sys; sys.exit(sys.version_info < (3, 6))" </dev/null >/dev/null 2>&1
then py=python
else echo "fleetstat: no python3 (or python 3.6+) on PATH=$PATH" >&2; exit 119
fi
"$py" -I -S -c "__BOOTSTRAP__" "$d/probe.pyz" "$@"
"""

_FORBIDDEN = ("'", "\\", "! ", "!$", '!"')
# The bootstrap, run as ``python3 -I -S -c BOOTSTRAP <dir>/probe.pyz ARGS`` with
# the zipapp on stdin (Python 3.6+; it sits inside the script's double quotes, so
# it holds no quote, backslash, dollar or backtick):
#
# 1. ``alarm(run timeout)``: the deadline. ``_signal`` is the C module behind
#    ``signal`` (which would import enum at every start).
# 2. Write stdin into the new file (O_EXCL, 0600) in the private dir: the upload.
# 3. Run the archive from ``sys.path`` rather than as ``python3 probe.pyz``: that
#    goes through runpy (importlib.util, contextlib, ...), 2-4 ms per run.
#    ``zipload.install()`` makes every further module compile once, not twice.
# 4. After ``main()`` returns: flush, remove the file and the dir, and leave with
#    ``os._exit``: the interpreter's teardown of the probe's modules is about
#    2 ms of CPU and there is nothing left to tear down for.
# An exception anywhere takes Python's usual way out (traceback, exit 1) and the
# shell's EXIT trap removes the dir.
BOOTSTRAP = """import sys, os
try:
    import _signal as signal
except ImportError:
    import signal
signal.alarm(__RUN__)
path = sys.argv.pop(1)
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        while chunk:
            chunk = chunk[os.write(fd, chunk):]
    os.close(fd)
except OSError as exc:
    print(exc, file=sys.stderr)
    os._exit(121)
sys.path.insert(0, path)
from fleetstat_probe.zipload import install
install()
from fleetstat_probe.__main__ import main
code = main()
sys.stdout.flush()
sys.stderr.flush()
try:
    os.remove(path)
    os.rmdir(os.path.dirname(path))
except OSError:
    pass
os._exit(code)"""


def bootstrap(run_timeout: float) -> str:
    """The ``-c`` bootstrap with its deadline: whole seconds, rounded up, at least 1."""
    return BOOTSTRAP.replace("__RUN__", str(max(1, int(run_timeout + 0.999))))


def probe_command(argv: Sequence[str], *, run_timeout: float) -> str:
    """The exec request for a POSIX host. ``argv`` goes to the probe, shell-quoted.

    The probe arrives on stdin; the caller must send EOF after it.
    """
    script = _SCRIPT.replace("__BOOTSTRAP__", bootstrap(run_timeout))
    if any(ch in script for ch in _FORBIDDEN):  # pragma: no cover - guards edits to _SCRIPT
        raise AssertionError("the remote script must not contain ' or \\, nor ! mid-line")
    if any(ch in BOOTSTRAP for ch in '"$`'):  # pragma: no cover - guards edits to BOOTSTRAP
        raise AssertionError("the bootstrap sits in double quotes: no quote, $ or backquote")
    args = " ".join(shlex.quote(arg) for arg in argv)
    # "fleetstat" becomes $0 of the inner shell, so "$@" is exactly ``argv``.
    return f"exec /bin/sh -c '{script}' fleetstat {args}".rstrip()
