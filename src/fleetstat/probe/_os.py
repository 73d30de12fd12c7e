"""The few ``os`` functions the probe uses on Linux, without ``import os``.

``import os`` costs about 1.3 ms of CPU at a ``python3 -I -S`` start (stat,
posixpath, genericpath and _collections_abc come with it; 80 interleaved runs
of ``python3 -I -S -c "import os"`` against ``-c pass``), on every host in every
round, for functions that all live in the interpreter's built-in ``posix``
module, which ``os`` merely re-exports. Modules import this one as ``os``::

    from . import _os as os

so the calls read as usual. Off POSIX (Windows) everything comes from ``os``
itself; code for Windows only imports ``os`` directly.
"""

try:
    import posix as _native
except ImportError:  # Windows (nt): os is what the rest of the probe uses there
    import os as _native

O_RDONLY = _native.O_RDONLY
close = _native.close
cpu_count = _native.cpu_count
getpid = _native.getpid
listdir = _native.listdir
open = _native.open  # noqa: A001 - os.open, as os names it
read = _native.read
stat = _native.stat
urandom = _native.urandom
# POSIX only; None elsewhere, as getattr(os, name, None) would give.
statvfs = getattr(_native, "statvfs", None)
sysconf = getattr(_native, "sysconf", None)
uname = getattr(_native, "uname", None)

_S_IFMT = 0o170000
_S_IFDIR = 0o040000


def _join(root, relpath):
    """``os.path.join(root, relpath)`` for the probe's paths (text, POSIX)."""
    if relpath.startswith("/") or not root:
        return relpath
    return root + relpath if root.endswith("/") else root + "/" + relpath


def _isdir(path):
    """``os.path.isdir(path)``."""
    try:
        return (stat(path).st_mode & _S_IFMT) == _S_IFDIR
    except (OSError, ValueError):
        return False


if _native.__name__ == "posix":
    join, isdir = _join, _isdir
else:  # pragma: no cover - Windows
    join, isdir = _native.path.join, _native.path.isdir
