"""The local spool: rounds the database did not take wait here until it does.

A mail transfer agent's promise: what was accepted is kept until it is delivered.
When a round's results cannot be written (the database is down, refuses, or its
file is read-only), the round goes to a directory on local disk, one file per
round, and the next round that finds the database working writes the spooled
rounds first, oldest first, with their own timestamps (``spool/replay.py``).

On disk (``<spool dir>``, made 0700; every file 0600)::

    round-20261122T100000.000000Z-<uuid>.json.gz   one round, oldest name first
    dropped.json        how many rounds the size bound dropped, and when
    bookmarks.json      the event bookmarks to use while the database is away
    unreadable/         spool files that could not be read back (kept, not replayed)
    .lock               flock: one writer of the directory at a time

A round file is gzip'd JSON (``zcat`` reads it; ``codec.py``), never a pickle.
Each file is written whole or not at all: a temp file, fsync, rename, fsync of
the directory. The directory's size is bounded (``<spool max-size>``): when a
new round would not fit, the oldest rounds are dropped first, each counted in
``dropped.json`` and logged.

This module knows files only, no SQL: ``spool_status`` is what ``report``, the
API's ``/health`` and ``fleetstat spool status`` show, with the database down.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetstat.config import Client, Config
from fleetstat.errors import FleetstatError
from fleetstat.files import fsync_directory, write_atomically
from fleetstat.model import RoundResult
from fleetstat.spool.codec import (
    PREFIX,
    SUFFIX,
    decode_round,
    encode_round,
    file_name,
    iso,
    parse_iso,
    round_bookmarks,
    started_at_of,
)

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 3600.0  # a temp file this old was left by a crash, not being written


class SpoolError(FleetstatError):
    """The spool directory cannot be used (not writable, full disk)."""


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled round on disk, as listed (its content is read by :meth:`Spool.load`)."""

    path: Path
    size: int
    started_at: datetime | None  # from the file name; None for a name we cannot parse

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Spooled:
    """What :meth:`Spool.put` did: the file written (None when it was dropped at once)."""

    path: Path | None
    dropped: tuple[str, ...]  # names of the rounds dropped to make room (oldest first)
    depth: int  # rounds in the spool afterwards


@dataclass(frozen=True)
class SpoolStatus:
    """The spool's depth and what its bound cost: for ``report``, ``/health``, the CLI."""

    directory: Path
    rounds: int
    bytes: int
    max_bytes: int
    oldest: datetime | None
    newest: datetime | None
    dropped: int  # rounds the size bound dropped, since the counter began
    last_dropped_at: datetime | None
    unreadable: int  # files moved aside because they could not be read back

    def as_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "rounds": self.rounds,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "oldest": iso(self.oldest),
            "newest": iso(self.newest),
            "dropped": self.dropped,
            "last_dropped_at": iso(self.last_dropped_at),
            "unreadable": self.unreadable,
        }


class Spool:
    """A spool directory with a size bound. Safe to share between processes (flock)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    @classmethod
    def for_config(cls, config: Config) -> Spool:
        if config.spool is None:
            raise SpoolError("this config has no spool settings (a Config built by hand)")
        return cls(config.spool.directory, config.spool.max_bytes)

    # -- writing ------------------------------------------------------------------------

    def put(self, round: RoundResult, reason: str) -> Spooled:
        """Keep ``round`` on disk; drop the oldest rounds first when it would not fit.

        Raises :class:`SpoolError` when the file cannot be written (the round is
        then lost, and the caller says so loudly).
        """
        data = encode_round(round, reason)
        name = file_name(round)
        with self._locked():
            entries = self.entries()
            total = sum(entry.size for entry in entries)
            dropped: list[str] = []
            while entries and total + len(data) > self.max_bytes:
                oldest = entries.pop(0)
                total -= oldest.size
                self._unlink(oldest.path)
                dropped.append(oldest.name)
            if total + len(data) > self.max_bytes:  # alone larger than the bound
                dropped.append(name)
                self._count_dropped(len(dropped))
                return Spooled(None, tuple(dropped), len(entries))
            if dropped:
                self._count_dropped(len(dropped))
            self._write(name, data)
            self._note_bookmarks(round)
        return Spooled(self.directory / name, tuple(dropped), len(entries) + 1)

    def remove(self, entry: SpoolEntry) -> None:
        """The round is in the database: forget it (a second remove is harmless)."""
        with self._locked():
            self._unlink(entry.path)

    def quarantine(self, entry: SpoolEntry, why: str) -> Path:
        """Move a file that cannot be read back aside, into ``unreadable/``."""
        target_dir = self.directory / "unreadable"
        with self._locked():
            target_dir.mkdir(mode=0o700, exist_ok=True)
            target = target_dir / entry.name
            os.replace(entry.path, target)
            fsync_directory(self.directory)
        log.error("spool file %s cannot be read (%s): moved to %s", entry.name, why, target)
        return target

    # -- reading ------------------------------------------------------------------------

    def entries(self) -> list[SpoolEntry]:
        """The spooled rounds, oldest first (by the round's start, then its uuid)."""
        found = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SpoolError(f"cannot read the spool {self.directory}: {exc.strerror}") from exc
        for name in sorted(names):
            if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
                continue
            path = self.directory / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # replayed by another process just now
                continue
            found.append(SpoolEntry(path, size, started_at_of(name)))
        return found

    def load(self, entry: SpoolEntry, clients: Mapping[tuple[str, int], Client]) -> RoundResult:
        """The round in ``entry``; hosts are matched to today's ``clients`` by (ip, port).

        Raises :class:`SpoolError` when the file cannot be read or is not a round.
        """
        data = entry.path.read_bytes()  # FileNotFoundError: another process replayed it
        try:
            return decode_round(data, clients)
        except ValueError as exc:
            raise SpoolError(f"spool file {entry.path}: {exc}") from exc

    def bookmarks(self) -> dict[tuple[str, int], str]:
        """The event bookmarks to send while the database is away (``bookmarks.json``)."""
        stored = _read_json(self.directory / "bookmarks.json")
        hosts = stored.get("hosts") if isinstance(stored, dict) else None
        if not isinstance(hosts, dict):
            return {}
        found = {}
        for key, mark in hosts.items():
            ip, _, port = str(key).rpartition(":")
            if ip and port.isdigit() and isinstance(mark, str):
                found[(ip, int(port))] = mark
        return found

    def save_bookmarks(self, bookmarks: Mapping[tuple[str, int], str]) -> None:
        """Remember the database's bookmarks (read at each round that reached it)."""
        if dict(bookmarks) == self.bookmarks():
            return  # the usual case: no file written, no directory made
        with self._locked():
            self._write_json("bookmarks.json", {"hosts": _host_keys(bookmarks)})

    def read_json(self, name: str) -> Any:
        """A small state file of the spool directory (None when absent or unreadable)."""
        return _read_json(self.directory / name)

    def write_json(self, name: str, value: object) -> None:
        with self._locked():
            self._write_json(name, value)

    def delete(self, name: str) -> None:
        with self._locked():
            self._unlink(self.directory / name)

    def status(self) -> SpoolStatus:
        entries = self.entries()
        counter = _read_json(self.directory / "dropped.json")
        counter = counter if isinstance(counter, dict) else {}
        try:
            unreadable = len(os.listdir(self.directory / "unreadable"))
        except OSError:
            unreadable = 0
        stamps = [e.started_at for e in entries if e.started_at is not None]
        return SpoolStatus(
            directory=self.directory,
            rounds=len(entries),
            bytes=sum(e.size for e in entries),
            max_bytes=self.max_bytes,
            oldest=min(stamps) if stamps else None,
            newest=max(stamps) if stamps else None,
            dropped=int(counter.get("dropped") or 0),
            last_dropped_at=parse_iso(counter.get("last_dropped_at")),
            unreadable=unreadable,
        )

    # -- internals ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the directory's flock: puts, removes and counters never interleave."""
        self._ensure_directory()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(
                f"cannot create the spool {self.directory}: {exc.strerror} "
                '(set <spool dir="..."/> to a directory fleetstat may write)'
            ) from exc
        self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        now = time.time()
        with contextlib.suppress(OSError), os.scandir(self.directory) as found:
            for item in found:
                if item.name.startswith(".") and item.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if now - item.stat().st_mtime > STALE_TEMP_SECONDS:
                            os.unlink(item.path)

    def _write(self, name: str, data: bytes) -> None:
        """``name`` with ``data``, whole or not at all: temp file, fsync, rename, fsync dir."""
        try:
            write_atomically(self.directory / name, data, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot write {name} in the spool {self.directory}: {exc}") from exc

    def _write_json(self, name: str, value: object) -> None:
        self._write(name, json.dumps(value, sort_keys=True).encode())

    def _unlink(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fsync_directory(self.directory)

    def _count_dropped(self, count: int) -> None:
        counter = _read_json(self.directory / "dropped.json")
        counter = counter if isinstance(counter, dict) else {}
        now = datetime.now(UTC)
        self._write_json(
            "dropped.json",
            {
                "dropped": int(counter.get("dropped") or 0) + count,
                "first_dropped_at": counter.get("first_dropped_at") or iso(now),
                "last_dropped_at": iso(now),
            },
        )

    def _note_bookmarks(self, round: RoundResult) -> None:
        """A spooled round's events move the hosts' bookmarks (read from its documents)."""
        newer = round_bookmarks(round)
        if newer:
            merged = {**self.bookmarks(), **newer}
            self._write_json("bookmarks.json", {"hosts": _host_keys(merged)})


def spool_status(config: Config) -> SpoolStatus:
    """The spool's status for ``config``, without the database (for ``/health``)."""
    return Spool.for_config(config).status()


# -- files -------------------------------------------------------------------------------


def _host_keys(bookmarks: Mapping[tuple[str, int], str]) -> dict[str, str]:
    return {f"{ip}:{port}": mark for (ip, port), mark in bookmarks.items()}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
