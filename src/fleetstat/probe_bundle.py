"""The probe zipapp, built in memory from the ``fleetstat.probe`` sources.

Layout of the archive (run as ``python3 -I -S probe.pyz ...``)::

    __main__.py                  install zipload, import and run fleetstat_probe.__main__.main
    fleetstat_probe/__init__.py
    fleetstat_probe/__main__.py  the real entry point
    fleetstat_probe/*.py         collectors, sealing, ...
    fleetstat_probe/*.cpython-311.pyc  the same modules compiled by the server's Python
                                 (see :func:`bytecode`; other hosts use the sources)
    fleetstat_probe/__init__.pyc, zipload.pyc  the same, named for zipimport itself

The transport runs it as ``python3 -I -S -c "<bootstrap>" probe.pyz ...`` (no
runpy; see ``transport/posix.py``).

The package is renamed ``fleetstat_probe`` so that it can never be confused with
(or shadowed by) an installed ``fleetstat`` on the host; the probe uses relative
imports only. The build is deterministic (sorted entries, fixed 1980-01-01
timestamps, fixed permissions and creator system), so the same sources give the
same bytes and the same digest in every round and on every server running the
same Python minor version (the .pyc entries are that version's). ``fleetstat
probe --output FILE`` writes the whole archive; a round uploads one of its two
variants (:data:`PLATFORM_ONLY`), the same entries less one platform's modules.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import marshal
import sys
import zipfile
from importlib import resources

PACKAGE = "fleetstat_probe"
SOURCE_PACKAGE = "fleetstat.probe"
# zipload: compile each probe module once, not twice as zipimport does.
ROOT_MAIN = (
    b"from fleetstat_probe.zipload import install\n"
    b"install()\n"
    b"from fleetstat_probe.__main__ import main\nimport sys\n\nsys.exit(main())\n"
)
# The earliest timestamp a zip entry can carry (DOS date); any fixed value would do.
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # "created by" system: Unix, so the permission bits below are honoured
_FILE_MODE = 0o644
# zlib's default level, not 9: the POSIX variant's build (compiling included) takes
# 18.5-18.8 ms of the server's CPU instead of 26.0-26.9, for 0.6 % more to upload
# (117,206 bytes against 116,528; python3.11, 3 processes each).
_ZLIB_LEVEL = 6


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


# Loaded by zipimport itself, before zipload's finder is in place. zipimport
# looks for ``<name>.pyc`` beside ``<name>.py`` (not the cache-tag name), uses it
# when its magic number is this interpreter's and falls back to the source
# otherwise (a bad magic is "try the next file", from 3.6's C zipimport to the
# pure-Python one of 3.8+), so these two get that legacy name.
_ZIPIMPORT_LOADED = ("__init__.py", "zipload.py")


def bytecode(name: str, source: bytes) -> tuple[str, bytes] | None:
    """``(archive name, .pyc bytes)`` of one probe module for *this* interpreter.

    Compiling is most of the probe's start-up after the interpreter's own: ~10 ms
    of a ~42 ms run on the host (python3.11, bench/README.md). A host whose Python
    has this server's cache tag and magic number (same minor version) runs the
    bytecode (zipload's finder checks both, zipimport checks the magic of the two
    modules it loads itself); any other host compiles the source beside it, so
    the host's version need not be known in advance. Unchecked-hash pyc (PEP 552):
    nothing depends on timestamps, and the bytes are the same for the same
    sources and the same Python minor version.
    """
    tag = sys.implementation.cache_tag
    if tag is None:
        return None
    # optimize=2 drops the docstrings (and asserts, which the probe does not use
    # for checks): 14 % less bytecode to upload and unmarshal (147 against 172 KB).
    code = compile(source, f"{PACKAGE}/{name}", "exec", dont_inherit=True, optimize=2)
    flags = (0b01).to_bytes(4, "little")  # hash-based, not checked against the source
    header = importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source)
    stem = name[:-3]
    archive_name = f"{stem}.pyc" if name in _ZIPIMPORT_LOADED else f"{stem}.{tag}.pyc"
    return f"{PACKAGE}/{archive_name}", header + marshal.dumps(code)


def _build(sources: dict[str, bytes]) -> bytes:
    files = {"__main__.py": ROOT_MAIN}
    files.update({f"{PACKAGE}/{name}": data for name, data in sources.items()})
    for name, data in sources.items():
        compiled = bytecode(name, data)
        if compiled is not None:
            files[compiled[0]] = compiled[1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            archive.writestr(_entry(name), files[name], compresslevel=_ZLIB_LEVEL)
    return buffer.getvalue()


# Modules that only one platform imports (probe/registry.py, probe/events.py).
# A round uploads each host the variant for its kind (transport.ssh.Probe): a
# POSIX host gets no Windows module and a Windows host no Linux one, 117 and
# 99 KB instead of 149 KB to send, decrypt and unpack in every round. The full
# archive runs anywhere (``fleetstat probe``).
PLATFORM_ONLY = {
    "posix": ("windows.py", "windows_events.py", "windows_event_text.py"),
    "windows": ("linux.py", "linux_disks.py", "linux_events.py", "linux_processes.py"),
}


@functools.lru_cache(maxsize=3)
def build_probe(variant: str | None = None) -> bytes:
    """The zipapp: every module, or with ``variant`` ("posix", "windows") only what
    that kind of host imports. Built once per process, the same bytes each time."""
    sources = probe_sources()
    if variant is not None:
        left_out = PLATFORM_ONLY[variant]
        sources = {name: data for name, data in sources.items() if name not in left_out}
    return _build(sources)


@functools.lru_cache(maxsize=1)
def probe_digest() -> str:
    """SHA-256 of :func:`build_probe` in hex, for logs and ``fleetstat probe``."""
    return hashlib.sha256(build_probe()).hexdigest()
