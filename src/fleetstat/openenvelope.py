"""``fleetstat open-envelope``: a probe's plain document, for a person to read.

Two uses, both for when a host's row says ``bad_payload`` or ``probe_error``:

- with no line given, run the probe on this machine (the exact zipapp a round
  uploads, sealed to a key made for this one run) and open what it printed: does
  the probe work, and what does a document look like;
- with a line a probe printed on a host by hand (docs/probe.md), open it with the
  server's private key and the challenge that was passed to the probe.

Either way the document is printed as the probe wrote it (JSON), before the
server's checks (``fleetstat.document``) cut or refuse anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleetstat import envelope
from fleetstat.errors import EnvelopeError, FleetstatError, UsageError
from fleetstat.probe_bundle import build_probe

RUN_TIMEOUT = 60.0


def run_probe_here(python: str | None = None) -> dict[str, Any]:
    """Run the round's probe zipapp with ``python`` (this interpreter by default) and
    open its line; the document, or a ``FleetstatError`` with the probe's stderr."""
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    argv = [
        "--recipient", envelope.public_key_b64(key.public_key()),
        "--challenge", envelope.b64url_encode(challenge),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fleetstat-open.") as folder:  # 0700
        probe = Path(folder) / "probe.pyz"
        probe.write_bytes(build_probe())
        try:
            done = subprocess.run(
                [python or sys.executable, "-I", "-S", str(probe), *argv],
                capture_output=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FleetstatError(f"cannot run the probe here: {exc}") from None
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise FleetstatError(f"the probe exited with status {done.returncode}: {stderr[-2000:]}")
    return open_probe_line(done.stdout, key, challenge)


def open_probe_line(line: bytes | str, key: X25519PrivateKey, challenge: bytes) -> dict[str, Any]:
    """The document in a probe's ``FLEETSTAT/1 ...`` line (its first line)."""
    text = line.decode("ascii", "replace") if isinstance(line, bytes) else line
    first = text.strip().splitlines()[0] if text.strip() else ""
    return envelope.decode_document(envelope.open_line(first, key, challenge))


def open_line_from_host(line: str, key_path: Path, challenge: str) -> dict[str, Any]:
    """``--key`` and ``--challenge`` as given on the command line."""
    try:
        raw_challenge = envelope.b64url_decode(challenge)
    except ValueError:
        raise UsageError("--challenge is not base64url (the value passed to the probe)") from None
    key = envelope.load_private_key(key_path)
    try:
        return open_probe_line(line, key, raw_challenge)
    except EnvelopeError as exc:
        raise EnvelopeError(
            f"{exc} (is it the server key the probe had in --recipient, and the same --challenge?)"
        ) from None
