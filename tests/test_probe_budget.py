"""The probe's import budget: what the host's Python loads to run it on Linux.

Every module the probe imports costs each monitored host CPU on every round (the
probe avoids ``os``, ``json``, ``re``, ``hashlib``, ``argparse`` and ``runpy`` on
this path: docs/performance.md). This runs the transport's real remote command
(``posix.probe_command``: the shell script, the bootstrap, the zipapp on stdin)
with the arguments a round sends a default client, under ``python -v``, and
compares what was imported with the budget below. One more import fails here
before it costs a fleet anything; one fewer asks for the budget to shrink.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from test_probe_package import PYTHONS

from fleetstat import envelope, probe_bundle
from fleetstat.collector import events_wanted, probe_argv, top_when
from fleetstat.comb import recipient_comb
from fleetstat.config import Client, Defaults
from fleetstat.transport import posix

# What the probe imports beyond a bare ``python3 -I -S -c pass`` of the same
# interpreter (whose own start-up set differs between versions). The probe's own
# modules are ``fleetstat_probe.*``; the rest are C modules it uses instead of
# their Python wrappers (``_json`` not ``json``, ``_struct`` not ``struct``,
# ``_sha256`` not ``hashlib``).
BUDGET = frozenset(
    {
        "_json", "_sha256", "_struct", "binascii", "zlib",
        "fleetstat_probe", "fleetstat_probe.__main__", "fleetstat_probe._chacha",
        "fleetstat_probe._os", "fleetstat_probe._x25519", "fleetstat_probe.common",
        "fleetstat_probe.linux", "fleetstat_probe.linux_disks", "fleetstat_probe.procfs",
        "fleetstat_probe.registry", "fleetstat_probe.seal", "fleetstat_probe.zipload",
    }
)  # fmt: skip
# What an older Python loads on top: 3.6 imports time on demand, and its zipimport
# decodes the archive's names with these codecs.
OLDER = {(3, 6): frozenset({"time", "encodings.ascii", "encodings.cp437"})}

# Each of these alone costs the host's Python 1-4 ms per run (docs/performance.md).
NEVER = ("os", "json", "re", "hashlib", "argparse", "runpy", "struct", "subprocess")


@pytest.mark.parametrize("python", PYTHONS)
def test_the_probe_loads_its_budget_and_nothing_more(python: str, tmp_path: Path) -> None:
    version = _version(python)
    loaded = imported(python, tmp_path, _default_argv()) - _bare(python)
    allowed = BUDGET | OLDER.get(version, frozenset())
    avoided = [name for name in NEVER if name in loaded]
    assert avoided == [], f"the probe imports {avoided}, which its start-up savings avoid"
    assert loaded - allowed == set(), (
        f"the probe now imports {sorted(loaded - allowed)} on Python {version}: each module "
        "costs every host CPU on every round; import it lazily where it is needed, or, if "
        "it must be, add it to BUDGET in tests/test_probe_budget.py and say why"
    )
    assert allowed - loaded == set(), (
        f"the probe no longer imports {sorted(allowed - loaded)}: take it out of the budget"
    )


def _version(python: str) -> tuple[int, int]:
    done = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    major, minor = done.stdout.split()
    return int(major), int(minor)


def imported(python: str, tmp_path: Path, argv: list[str]) -> set[str]:
    """Modules imported by ``python`` running the remote command, as -X importtime lists."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    # The script on the host runs "python3 -I -S -c BOOTSTRAP ARGS"; this python3
    # adds -v, which writes "import 'name' # loader" on stderr for each module
    # imported (-X importtime would too, but Python 3.6 lacks it).
    wrapper = tools / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec {python} -v "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    done = subprocess.run(
        ["/bin/sh", "-c", posix.probe_command(argv, run_timeout=60)],
        input=probe_bundle.build_probe(),
        capture_output=True,
        env={"PATH": f"{tools}:/usr/bin:/bin", "TMPDIR": str(work)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.startswith(b"FLEETSTAT/1 "), done.stdout[:100]
    return _modules(done.stderr.decode())


def _bare(python: str) -> set[str]:
    done = subprocess.run([python, "-v", "-I", "-S", "-c", "pass"], capture_output=True, timeout=60)
    return _modules(done.stderr.decode())


def _modules(stderr: str) -> set[str]:
    return set(re.findall(r"^import '?([\w.]+)'? # ", stderr, re.M))


def _default_argv() -> list[str]:
    """The arguments a round sends a client with no alert rules, in the default config."""
    key = X25519PrivateKey.generate()
    client = Client(ip="192.0.2.1", username="monitor")
    comb = envelope.b64url_encode(recipient_comb(envelope.public_key_bytes(key)))
    return probe_argv(
        envelope.public_key_b64(key.public_key()),
        os.urandom(16),
        Defaults().top_processes,
        None,
        events_wanted(client),
        top_when(client),
        comb,
    )
