"""A round as a spool file's bytes and back: gzip'd JSON, never a pickle.

The file holds what storing and evaluating the round needs: its uuid and times
and, per host, the result with its document as the document boundary left it
(``Document.as_json()``: the probe's shape, sanitised, with ``server_notes``).
An operator reads one with ``zcat``; a later fleetstat reads it too. Read back,
each document goes through the same boundary again (``fleetstat.document.check``):
a spool file is a file on disk, and a checked document passes unchanged.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fleetstat.config import Client
from fleetstat.errors import DocumentError
from fleetstat.model import HostResult, RoundResult, Status

if TYPE_CHECKING:
    from fleetstat.document import Document

FORMAT = "fleetstat-spool/1"
PREFIX = "round-"
SUFFIX = ".json.gz"
_STAMP = "%Y%m%dT%H%M%S.%fZ"


def file_name(round: RoundResult) -> str:
    """``round-<start, UTC>-<uuid>.json.gz``: names sort in the order rounds ran."""
    return f"{PREFIX}{round.started_at.astimezone(UTC).strftime(_STAMP)}-{round.uuid}{SUFFIX}"


def started_at_of(name: str) -> datetime | None:
    """The round's start from its file name; None for a name we did not write."""
    try:
        stamp = datetime.strptime(name[len(PREFIX) : len(PREFIX) + 23], _STAMP)
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC)


def encode_round(round: RoundResult, reason: str) -> bytes:
    """A round as gzip'd JSON (``reason``: why the database did not take it)."""
    body = {
        "format": FORMAT,
        "uuid": round.uuid,
        "started_at": iso(round.started_at),
        "finished_at": iso(round.finished_at),
        "spooled_at": iso(datetime.now(UTC)),
        "reason": reason,
        "not_started": round.not_started,
        "results": [_encode_result(result) for result in round.results],
    }
    # NaN and Infinity that a document may hold are kept as Python writes them
    # (the store turns them into null); mtime=0: the bytes depend on the round only.
    return gzip.compress(json.dumps(body, ensure_ascii=False).encode("utf-8"), 6, mtime=0)


def _encode_result(result: HostResult) -> dict[str, Any]:
    client = result.client
    return {
        "client": {"ip": client.ip, "port": client.port, "name": client.name},
        "status": result.status.value,
        "started_at": iso(result.started_at),
        "duration_seconds": result.duration_seconds,
        "error": result.error,
        "document": result.document.as_json() if result.document is not None else None,
        "retries": result.retries,
        "stderr": result.stderr,
    }


def decode_round(data: bytes, clients: Mapping[tuple[str, int], Client]) -> RoundResult:
    """The :class:`RoundResult` in a spool file's bytes; ValueError when it holds none.

    A host still in the config gets today's client (its name, addresses and
    rules: the alerts evaluated on replay are today's); a host taken out of the
    config since keeps its address and name, and no rules.
    """
    try:
        raw = json.loads(gzip.decompress(data))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        results = tuple(_decode_result(item, clients) for item in raw["results"])
        return RoundResult(
            started_at=need_time(raw["started_at"]),
            finished_at=need_time(raw["finished_at"]),
            results=results,
            not_started=int(raw.get("not_started") or 0),
            uuid=str(raw["uuid"]),
        )
    except (EOFError, OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


def _decode_result(item: Any, clients: Mapping[tuple[str, int], Client]) -> HostResult:
    spec = item["client"]
    key = (str(spec["ip"]), int(spec["port"]))
    client = clients.get(key) or Client(ip=key[0], port=key[1], name=spec.get("name"))
    started_at = need_time(item["started_at"])
    duration = float(item["duration_seconds"])
    raw = item.get("document")
    checked_at = started_at + timedelta(seconds=duration)
    return HostResult(
        client=client,
        status=Status(item["status"]),
        started_at=started_at,
        duration_seconds=duration,
        error=item.get("error"),
        document=_document(raw, checked_at) if isinstance(raw, dict) else None,
        retries=int(item.get("retries") or 0),
        stderr=item.get("stderr"),
    )


def _document(raw: dict[str, Any], checked_at: datetime) -> Document:
    """A stored ``Document.as_json()`` checked back into the :class:`Document` it was.

    Its notes come back from ``server_notes``; the interval CPU, which the server
    computes, is left out (the replay computes it again from the store).
    """
    from fleetstat.document import Limits, check

    notes = raw.pop("server_notes", None)
    cpu = raw.get("cpu")
    if isinstance(cpu, dict):
        cpu.pop("interval_percent", None)
    family = raw.get("security_events")
    events = family.get("events") if isinstance(family, dict) else None
    limits = Limits(events=len(events) if isinstance(events, list) else 0)
    try:
        document = check(raw, limits, now=checked_at)
    except DocumentError as exc:
        raise ValueError(f"a document that no longer passes the boundary: {exc}") from exc
    if isinstance(notes, list):
        document = replace(document, notes=(*map(str, notes), *document.notes))
    return document


def round_bookmarks(round: RoundResult) -> dict[tuple[str, int], str]:
    """``--since`` per host after the events in this round's documents (the last one),
    as the store would derive it once the round is stored."""
    from fleetstat.store.events import bookmark_of

    found = {}
    for result in round.results:
        family = result.document.security_events if result.ok and result.document else None
        for event in reversed(family.events if family is not None else ()):
            mark = bookmark_of(event.source or "", event.record_id, event.data)
            if mark is not None:
                key = (result.client.ip, result.client.port)
                found[key] = json.dumps(mark, separators=(",", ":"))
                break
    return found


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def need_time(text: Any) -> datetime:
    moment = parse_iso(text)
    if moment is None:
        raise ValueError(f"not a time: {text!r}")
    return moment
