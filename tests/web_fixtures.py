"""A fleet with history for the dashboard's tests, written the way rounds write it.

``write_history`` records rounds through the store's own write path (the
document boundary, ``fill_interval_cpu``, ``record_round``, the alerts), one
every ``step`` from ``days`` ago up to now, for the given clients, with CPU and
memory that move with the time of day so the charts have a shape.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from alert_helpers import ok, round_of
from serve_fixtures import PASSWORD, Served

from fleetstat.alerts import evaluate_round
from fleetstat.config import Client
from fleetstat.metrics import fill_interval_cpu
from fleetstat.store import Store

BOOT = "2026-01-01T00:00:00Z"


def figures(client_index: int, at: datetime) -> dict[str, float]:
    hour = at.hour + at.minute / 60
    wave = (1 + math.sin(hour / 24 * 2 * math.pi + client_index)) / 2  # 0..1 over a day
    return {
        "cpu": round(5 + 60 * wave, 1),
        "memory": round(30 + 20 * wave + client_index, 1),
        "swap": round(2 + 3 * wave, 1),
        "disk": round(40 + 0.0001 * at.timestamp() % 10, 1),
        "load": round(0.2 + 1.5 * wave, 2),
    }


def write_history(
    store: Store,
    clients: Sequence[Client],
    *,
    spans: Sequence[tuple[timedelta, timedelta]],
    now: datetime | None = None,
) -> int:
    """Rounds for ``clients``: for each (how far back, step) in ``spans``, one round per
    step from that far back until a minute ago, all spans merged in time. The count."""
    now = now or datetime.now(UTC)
    found: set[datetime] = set()
    for back, step in spans:
        at = now - back
        while at < now - timedelta(minutes=1):
            found.add(at)
            at += step
    moments = sorted(found)
    for at in moments:
        results = []
        for index, client in enumerate(clients):
            f = figures(index, at)
            results.append(
                ok(
                    client,
                    at,
                    cpu={"count": 2, "used_percent": f["cpu"]},
                    boot_time=BOOT,
                    memory={"used_percent": f["memory"]},
                    swap={"used_percent": f["swap"]},
                    disks=[
                        {
                            "mount": "/",
                            "used_percent": f["disk"],
                            "total_bytes": 10 << 30,
                            "used_bytes": 4 << 30,
                            "free_bytes": 6 << 30,
                        },
                    ],
                    load={"avg1": f["load"], "avg5": 0.25, "avg15": 0.125},
                )
            )
        one = fill_interval_cpu(round_of(*results), store.previous_cpu())
        store.record_round(one)
        evaluate_round(store, one, now=one.finished_at)
    return len(moments)


def history_config(folder: Path, url: str, clients: Sequence[Client]) -> Path:
    """A config for ``clients`` (the first with a memory rule it breaks, never logged
    in to: ``serve --no-watch``) and six hours of their history in ``url``."""
    lines = "\n".join(
        f'  <client ip="{c.ip}" username="monitor" password="not-used-here" name="{c.name}">'
        + ('<alert type="memory" limit="1%"/>' if index == 0 else "")
        + "</client>"
        for index, c in enumerate(clients)
    )
    config = folder / "fleetstat.xml"
    config.write_text(
        f'<fleetstat>\n  <database url="{url}"/>\n'
        f'  <key path="{folder / "server.key"}"/>\n{lines}\n</fleetstat>\n'
    )
    config.chmod(0o600)
    with Store(url) as store:
        store.upgrade()
        write_history(store, clients, spans=[(timedelta(hours=6), timedelta(hours=1))])
    return config


@contextlib.contextmanager
def dashboard_session(served: Served) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the dashboard as alice (its session cookie)."""
    with served.client(follow_redirects=False) as browser:
        form = browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text[:500]
        login = {"username": "alice", "password": PASSWORD, "csrf": csrf.group(1), "next": "/"}
        assert browser.post("/login", data=login).status_code == 303
        yield browser
