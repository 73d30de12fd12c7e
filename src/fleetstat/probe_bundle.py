"""The probe zipapp, built in memory from the ``fleetstat.probe`` sources.

Layout of the archive (run as ``python3 -I -S probe.pyz ...``)::

    __main__.py                  three lines: import and run fleetstat_probe.__main__.main
    fleetstat_probe/__init__.py
    fleetstat_probe/__main__.py  the real entry point
    fleetstat_probe/*.py         collectors, sealing, ...

The package is renamed ``fleetstat_probe`` so that it can never be confused with
(or shadowed by) an installed ``fleetstat`` on the host; the probe uses relative
imports only. The build is deterministic (sorted entries, fixed 1980-01-01
timestamps, fixed permissions and creator system), so the same sources give the
same bytes and the same digest in every round and on every server, and an
operator can compare ``fleetstat probe --output FILE`` with what was uploaded.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from importlib import resources

PACKAGE = "fleetstat_probe"
SOURCE_PACKAGE = "fleetstat.probe"
ROOT_MAIN = b"from fleetstat_probe.__main__ import main\nimport sys\n\nsys.exit(main())\n"
# The earliest timestamp a zip entry can carry (DOS date); any fixed value would do.
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # "created by" system: Unix, so the permission bits below are honoured
_FILE_MODE = 0o644


def probe_sources() -> dict[str, bytes]:
    """``{file name: source}`` for every ``*.py`` of ``fleetstat.probe``, sorted."""
    package = resources.files(SOURCE_PACKAGE)
    found = {
        entry.name: entry.read_bytes()
        for entry in package.iterdir()
        if entry.is_file() and entry.name.endswith(".py")
    }
    return dict(sorted(found.items()))


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = _UNIX
    info.external_attr = (0o100000 | _FILE_MODE) << 16  # regular file, rw-r--r--
    return info


def _build(sources: dict[str, bytes]) -> bytes:
    files = {"__main__.py": ROOT_MAIN}
    files.update({f"{PACKAGE}/{name}": data for name, data in sources.items()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            archive.writestr(_entry(name), files[name], compresslevel=9)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def build_probe() -> bytes:
    """The zipapp uploaded to every host: built once per process, same bytes each time."""
    return _build(probe_sources())


@functools.lru_cache(maxsize=1)
def probe_digest() -> str:
    """SHA-256 of :func:`build_probe` in hex, for logs and ``fleetstat probe``."""
    return hashlib.sha256(build_probe()).hexdigest()
