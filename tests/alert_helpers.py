"""Hosts, rules and results built directly, for alert and mail tests without SSH."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetstat.config import AlertRule, Client
from fleetstat.document import Document, Limits, check
from fleetstat.model import HostResult, RoundResult, Status

DOCUMENT = json.loads((Path(__file__).parent / "fixtures" / "documents" / "linux.json").read_text())
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ROUND = timedelta(minutes=5)


def rule(kind: str, limit: float | None = None, **options: Any) -> AlertRule:
    return AlertRule(type=kind, limit=limit, **options)  # type: ignore[arg-type]


def client(
    *rules: AlertRule,
    ip: str = "10.0.0.5",
    name: str | None = "web-01",
    mail: tuple[str, ...] = ("ops@example.com",),
    port: int = 22,
) -> Client:
    return Client(ip=ip, port=port, username="monitor", name=name, mail=mail, alerts=rules)


def document(**families: Any) -> dict[str, Any]:
    """The recorded Linux document with some families replaced (``cpu={"used_percent": 93}``)."""
    doc = copy.deepcopy(DOCUMENT)
    for key, value in families.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def checked(raw: dict[str, Any], events: int = 100_000) -> Document:
    """A raw document through the boundary, as the collector does (fleetstat.document)."""
    return check(raw, Limits(events=events), now=datetime.now(UTC))


def ok(host: Client, at: datetime = T0, **families: Any) -> HostResult:
    """An ok result; ``cpu={"interval_percent": 61}`` stands in for what the server computes."""
    raw = document(**families)
    interval = raw["cpu"].pop("interval_percent", None) if isinstance(raw["cpu"], dict) else None
    doc = checked(raw)
    if interval is not None and doc.cpu is not None:
        doc = replace(doc, cpu=replace(doc.cpu, interval_percent=interval))
    return HostResult(host, Status.OK, at, 1.0, document=doc)


def failed(host: Client, at: datetime = T0, status: Status = Status.TIMEOUT) -> HostResult:
    return HostResult(host, status, at, 5.0, error=f"{status.value} after 5s")


def round_of(*results: HostResult) -> RoundResult:
    start = min(r.started_at for r in results)
    return RoundResult(start, start + timedelta(seconds=6), tuple(results))
