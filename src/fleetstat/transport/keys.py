"""Client key files: parsed (and decrypted) once per file version, not per connection.

Given a path, asyncssh reads and parses the key file again for every
connection, in its executor thread: at 500 hosts that was ~2% of the round's
CPU on the central machine (py-spy). So the key pairs are loaded here, keyed
on the file's mtime (a long-running ``watch`` picks up a replaced key) and the
passphrase.

An encrypted key (``passphrase-env``) is decrypted once, by :func:`unlock`
before a round's first login: a wrong or missing passphrase is one
:class:`ConfigError` naming the file and the variable (exit 2), not a failed
login per host. asyncssh decrypts PEM and PKCS#8 keys with ``cryptography``;
OpenSSH's own format (what ``ssh-keygen`` writes by default) needs the
``bcrypt`` module for its KDF, which fleetstat does not depend on, so such a
key is decrypted by ``ssh-keygen -p`` on a private copy instead (the
passphrase on its stdin, never on a command line), and the copy removed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from fleetstat.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from fleetstat.config import Config


class PassphraseError(Exception):
    """The passphrase is wrong, or missing for an encrypted key."""


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int, passphrase: str | None) -> Sequence[asyncssh.SSHKeyPair]:
    try:
        return asyncssh.load_keypairs([path], passphrase=passphrase)
    except asyncssh.KeyEncryptionError as exc:
        if passphrase is not None and "bcrypt" in str(exc):
            key = asyncssh.import_private_key(_decrypt_with_ssh_keygen(path, passphrase))
            return asyncssh.load_keypairs([key])
        raise PassphraseError(f"cannot decrypt it: {exc}") from exc
    except asyncssh.KeyImportError as exc:
        text = str(exc)
        if "Passphrase must be specified" in text:
            raise PassphraseError(
                "it is encrypted and no passphrase-env gives its passphrase"
            ) from exc
        if passphrase is not None and "decrypt" in text.lower():
            raise PassphraseError("the passphrase is wrong") from exc
        raise


def _decrypt_with_ssh_keygen(path: str, passphrase: str) -> bytes:
    """The key decrypted by OpenSSH's own ssh-keygen, on a copy in a private folder."""
    keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
    with tempfile.TemporaryDirectory(prefix="fleetstat-key-") as folder:
        copy = Path(folder) / "key"
        copy.write_bytes(Path(path).read_bytes())
        copy.chmod(0o600)
        # No controlling terminal (a new session) and stdin not a terminal: ssh-keygen
        # reads the old passphrase from stdin. -N "": the copy's new one, empty.
        done = subprocess.run(
            [keygen, "-p", "-q", "-f", str(copy), "-N", ""],
            input=passphrase.encode() + b"\n",
            capture_output=True,
            start_new_session=True,
            env={"PATH": os.defpath, "LC_ALL": "C"},
            timeout=60,
        )
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").replace("Enter old passphrase:", "")
            if "incorrect passphrase" in reason:
                raise PassphraseError("the passphrase is wrong")
            raise PassphraseError(f"ssh-keygen could not decrypt it: {reason.strip()[:200]}")
        return copy.read_bytes()


def client_keys(paths: Iterable[Path], passphrase: str | None) -> list[asyncssh.SSHKeyPair | str]:
    """Key pairs for ``paths``; a file that does not load is handed to asyncssh as a
    path, so the login fails with asyncssh's own error (classified per host)."""
    keys: list[asyncssh.SSHKeyPair | str] = []
    for path in paths:
        try:
            keys.extend(_load(str(path), os.stat(path).st_mtime_ns, passphrase))
        except (OSError, ValueError, PassphraseError):
            keys.append(str(path))
    return keys


def unlock(config: Config) -> None:
    """Decrypt every encrypted key the clients and their jump hosts use, once.

    Raises :class:`ConfigError` with one issue per key file whose passphrase is
    wrong or missing. A file that is no key at all is left to each login (it is
    ``auth_failed`` for the hosts that use it, with the file named).
    """
    issues: dict[str, ConfigIssue] = {}
    for client in config.clients:
        files = [*client.keys, *(path for hop in client.jump for path in hop.identity_files)]
        for path in files:
            if str(path) in issues:
                continue
            try:
                _load(str(path), os.stat(path).st_mtime_ns, client.passphrase)
            except PassphraseError as exc:
                variable = f" (passphrase-env {client.passphrase_env})" * bool(
                    client.passphrase_env
                )
                issues[str(path)] = ConfigIssue(
                    str(config.path),
                    client.line,
                    f"key file {path}{variable}: {exc}",
                    'export the passphrase in the variable passphrase-env="VAR" names '
                    "(in <defaults> or the client)",
                )
            except (OSError, ValueError):
                continue
    if issues:
        raise ConfigError(list(issues.values()))
