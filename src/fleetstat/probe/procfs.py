"""The one way in to the host's files.

Every read of /proc, /etc or /sys is of a path under an explicit ``root`` (``"/"``
on a real host; :func:`read_text`, or :func:`host_path` for the per-process loop
of ``linux_processes``), never a module global, so tests aim the collectors at
recorded trees under ``tests/fixtures/proc/<distro>/`` (the psutil
``procfs_path`` idea without its global state).
"""

from . import _os as os  # the os functions without import os: see _os.py


def host_path(root, relpath):
    """``relpath`` ("proc/meminfo") under ``root`` ("/" on a real host)."""
    return os.join(root, relpath)


def read_text(root, relpath):
    """The whole file as text.

    os.open/os.read rather than open(): no buffered reader or text wrapper per
    file, which roughly halves the cost of reading a small /proc file. /proc
    files are generated per read() call, so they are read to EOF in large
    chunks. Undecodable bytes (process names, mount paths) are replaced rather
    than failing the family: the document must be valid UTF-8 JSON.
    """
    fd = os.open(host_path(root, relpath), os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def count_pids(root):
    """The number of processes: pid directories in /proc (psutil's ``pids()``),
    one listdir, for runs that do not read the process table; None when /proc
    cannot be listed."""
    try:
        names = os.listdir(host_path(root, "proc"))
    except OSError:
        return None
    return sum(1 for name in names if name.isdigit())
