"""Files written whole or not at all: the server key, the spool's rounds."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically: a private temp file, then a rename.

    The temp file is created with ``mode`` already (O_CREAT | O_EXCL, then fchmod
    so the umask cannot widen or narrow it), so the file is never readable by
    others, not even for a moment. The data is fsynced before the rename and the
    directory after it, so a crash or a power loss leaves the old file or the new
    one, whole, and never loses a rename that returned.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable (POSIX: fsync the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
