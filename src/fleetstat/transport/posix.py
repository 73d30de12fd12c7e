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
# GNU/busybox ``timeout`` exits 124 when it had to stop the command, 137 when the
# command also ignored TERM and was killed by ``-k``.
EXIT_TIMEOUT = 124
EXIT_KILLED = 137

# Seconds between ``timeout`` sending TERM and sending KILL.
KILL_GRACE_SECONDS = 2

_SCRIPT = """umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/fleetstat.XXXXXXXX") || exit 120
cleanup() { rm -rf "$d"; }
trap cleanup EXIT
trap "exit 129" HUP INT TERM PIPE
cat > "$d/probe.pyz" || exit 121
if command -v python3 >/dev/null 2>&1; then py=python3
elif command -v python >/dev/null 2>&1 &&
  python -c "import sys; sys.exit(sys.version_info < (3, 6))" >/dev/null 2>&1; then py=python
else echo "fleetstat: no python3 (or python 3.6+) on PATH=$PATH" >&2; exit 119
fi
if command -v timeout >/dev/null 2>&1; then
timeout -k __GRACE__ __RUN__ "$py" -I -S -c "__RUN_PYZ__" "$d/probe.pyz" "$@"
else
"$py" -I -S -c "__RUN_PYZ__" "$d/probe.pyz" "$@" &
p=$!
( sleep __RUN__; kill -9 $p ) >/dev/null 2>&1 &
w=$!
wait $p
rc=$?
kill $w >/dev/null 2>&1
exit $rc
fi"""

_FORBIDDEN = ("'", "\\", "! ", "!$", '!"')
# The zipapp is run from its archive on sys.path rather than as
# ``python3 probe.pyz``: running a zip as a script goes through runpy (importlib.util,
# contextlib, ...), about 4 ms of the host's CPU per run; this is what the zip's
# own ``__main__.py`` does, minus runpy. ``-c`` puts "-c" in sys.argv[0]; the
# archive's path is argv[1], popped before the probe parses its arguments.
# ``zipload.install()`` then makes every further probe module compile once
# instead of twice (see probe/zipload.py).
RUN_PYZ = (
    "import sys;sys.path.insert(0,sys.argv.pop(1));"
    "from fleetstat_probe.zipload import install;install();"
    "from fleetstat_probe.__main__ import main;sys.exit(main())"
)


def probe_command(argv: Sequence[str], *, run_timeout: float) -> str:
    """The exec request for a POSIX host. ``argv`` goes to the probe, shell-quoted.

    The probe arrives on stdin; the caller must send EOF after it.
    """
    seconds = max(1, int(run_timeout + 0.999))
    script = (
        _SCRIPT.replace("__RUN_PYZ__", RUN_PYZ)
        .replace("__RUN__", str(seconds))
        .replace("__GRACE__", str(KILL_GRACE_SECONDS))
    )
    if any(ch in script for ch in _FORBIDDEN):  # pragma: no cover - guards edits to _SCRIPT
        raise AssertionError("the remote script must not contain ' or \\, nor ! mid-line")
    args = " ".join(shlex.quote(arg) for arg in argv)
    # "fleetstat" becomes $0 of the inner shell, so "$@" is exactly ``argv``.
    return f"exec /bin/sh -c '{script}' fleetstat {args}".rstrip()
