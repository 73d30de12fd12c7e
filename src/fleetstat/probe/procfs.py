"""The one way in to the host's files.

Every read of /proc, /etc or /sys goes through :func:`read_text` with an explicit
``root`` (``"/"`` on a real host), never a module global, so tests aim the
collectors at recorded trees under ``tests/fixtures/proc/<distro>/``
(the psutil ``procfs_path`` idea without its global state).
"""

import os


def host_path(root, relpath):
    """``relpath`` ("proc/meminfo") under ``root`` ("/" on a real host)."""
    return os.path.join(root, relpath)


def read_text(root, relpath):
    """The whole file as text.

    os.open/os.read rather than open(): no buffered reader or text wrapper per
    file, which halves the cost of reading every /proc/[pid]/stat (twice per
    run, hundreds of processes). /proc files are generated per read() call, so
    they are read to EOF in large chunks. Undecodable bytes (process names,
    mount paths) are replaced rather than failing the family: the document must
    be valid UTF-8 JSON.
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


def read_short(path):
    """A /proc file known to be short (``/proc/[pid]/stat``), usually in one read().

    :func:`read_text` costs a second read() to see EOF, a join and a path join;
    over every process, twice per run, that is a third of the processes family's
    CPU on the host. A read that fills the buffer falls back to reading on.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 4096)
        if len(data) == 4096:
            chunks = [data]
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def list_pids(root):
    """Numeric entries of /proc: the pids visible to us (a snapshot; any may vanish)."""
    return [int(name) for name in os.listdir(host_path(root, "proc")) if name.isdigit()]
