"""No NaN or infinity in any JSON that ``fleetstat serve`` sends, whatever the store holds.

The document boundary turns a host's NaN into null, but a store can still hold
one: rows written before the boundary existed, PostgreSQL's float8 (which takes
NaN and Infinity), SQLite's REAL (Infinity), an aggregate over them (AVG of an
Infinity is Infinity). Python's json writes them as the tokens ``NaN`` and
``Infinity``, which strict parsers (browsers' JSON.parse, Go, jq) refuse. Here
they are planted in the store behind a real ``fleetstat serve``, and every JSON
the API and the dashboard send is read with a parser that refuses them: each is
null instead. ``/metrics`` is Prometheus' text format, where NaN is a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alert_helpers import client, rule
from conftest import _server_database
from serve_fixtures import Served, add_user
from web_fixtures import dashboard_session, history_config

from fleetstat.store import Store
from fleetstat.store.schema import alert_states, attempts, rounds, samples, samples_hourly

WEB = client(rule("memory", 1), ip="10.0.0.5", name="web-01")
DB = client(ip="10.0.0.6", name="db-01")
INF = float("inf")
NAN = float("nan")


def strict(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN, Infinity and -Infinity are errors."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in JSON: {text[:300]}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleetstat.db'}"
    else:
        yield from _server_database(request.param)


def plant(url: str) -> None:
    """Non-finite figures in every float column the API reads, and in a stored document.

    SQLite stores NaN as NULL, so it gets infinities; PostgreSQL gets both. Only
    SQLite keeps a NaN inside the document (its JSON is text; JSONB refuses it).
    """
    nan = INF if url.startswith("sqlite") else NAN
    with Store(url) as store, store.engine.begin() as conn:
        web = (samples.c.client_ip == WEB.ip) & (samples.c.client_port == WEB.port)
        conn.execute(
            samples.update()
            .where(web)
            .values(cpu_percent=INF, cpu_interval_percent=-INF, memory_percent=nan,
                    swap_percent=INF, load1=nan, load5=INF, load15=-INF,
                    uptime_seconds=INF, disk_max_percent=nan)
        )  # fmt: skip
        # The same in the hourly aggregates (revision 0010) that long windows read.
        planted = {"cpu": INF, "cpu_interval": -INF, "memory": nan, "swap": INF, "load": nan,
                   "disk": nan}  # fmt: skip
        hours = samples_hourly.c
        conn.execute(
            samples_hourly.update()
            .where((hours.client_ip == WEB.ip) & (hours.client_port == WEB.port))
            .values(
                chart_cpu_sum=-INF,
                **{f"{name}_{part}": value for name, value in planted.items()
                   for part in ("sum", "min", "max")},
            )
        )  # fmt: skip
        conn.execute(alert_states.update().values(last_value=nan, limit_value=INF))
        conn.execute(rounds.update().values(duration_seconds=INF))
        conn.execute(attempts.update().values(duration_seconds=nan))
        if url.startswith("sqlite"):
            newest = sa.select(sa.func.max(samples.c.id)).where(web).scalar_subquery()
            text = conn.execute(sa.select(samples.c.document).where(samples.c.id == newest))
            document = text.scalar_one()
            document["memory"]["used_percent"] = NAN
            document["load"] = {"avg1": INF, "avg5": -INF, "avg15": NAN}
            document["processes"] = {
                "top_cpu": [{"pid": 1, "name": "init", "cpu_percent": NAN}],
                "top_memory": [{"pid": 2, "name": "big", "rss_bytes": 1, "cpu_percent": INF}],
            }
            raw = json.dumps(document)  # Python writes NaN and Infinity as tokens
            assert "NaN" in raw and "Infinity" in raw
            conn.execute(
                sa.text("UPDATE samples SET document = :raw WHERE id = :id"),
                {"raw": raw, "id": conn.execute(sa.select(newest)).scalar_one()},
            )


@pytest.fixture
def served(tmp_path: Path, database: str) -> Iterator[Served]:
    config = history_config(tmp_path, database, [WEB, DB])
    plant(database)
    add_user(config)
    server = Served(config, "--no-watch")
    try:
        yield server
    finally:
        server.kill()


def get_json(http: httpx.Client, path: str) -> Any:
    answer = http.get(path)
    assert answer.status_code == 200, (path, answer.text[:500])
    assert answer.headers["content-type"].startswith("application/json"), path
    return strict(answer.text)


def test_non_finite_figures_in_the_store_are_null_in_every_json(
    served: Served, database: str
) -> None:
    with served.client(served.login()) as http:
        page = get_json(http, "/api/v1/hosts")
        (web,) = [item for item in page["items"] if item["host"] == "web-01"]
        for key in ("cpu_percent", "cpu_interval_percent", "memory_percent", "swap_percent",
                    "load1", "load5", "load15", "uptime_seconds", "disk_max_percent"):  # fmt: skip
            assert web[key] is None, key
        failing = get_json(http, "/api/v1/hosts?failing=true")
        assert failing["items"] == []
        stored = get_json(http, "/api/v1/hosts/web-01")
        assert stored["document"]["memory"]["total_bytes"] > 0
        processes = get_json(http, "/api/v1/hosts/web-01/processes")
        stats = get_json(http, "/api/v1/hosts/web-01/stats?since=7h")
        assert stats["samples"] == 6
        assert stats["cpu"]["max"] is None and stats["load"]["max"] is None  # AVG(Infinity)
        assert all(value is None or value < 100 for value in stats["series"]["cpu"])
        alerts = get_json(http, "/api/v1/alerts")["items"]
        assert alerts and all(a["value"] is None and a["limit"] is None for a in alerts)
        (newest, *_) = get_json(http, "/api/v1/rounds")["items"]
        assert newest["duration_seconds"] is None
        get_json(http, "/api/v1/events")
        get_json(http, "/api/v1/health")
        get_json(http, "/api/v1/monitoring")
        get_json(http, "/openapi.json")
        metrics = http.get("/metrics")  # Prometheus' text format: NaN is a value there
        assert metrics.status_code == 200 and "fleetstat_host_up" in metrics.text
    if database.startswith("sqlite"):  # the document held NaN and infinities
        assert stored["document"]["memory"]["used_percent"] is None
        assert stored["document"]["load"] == {"avg1": None, "avg5": None, "avg15": None}
        assert processes["top_cpu"] == [
            {"pid": 1, "name": "init", "user": None, "cpu_percent": None, "rss_bytes": None}
        ]

    with dashboard_session(served) as browser:
        for window in ("6h", "24h"):
            host = browser.get(f"/hosts/web-01?window={window}")
            assert host.status_code == 200, host.text[:500]
            chart = re.search(
                r'<script type="application/json" id="chart-data">(.*?)</script>', host.text, re.S
            )
            assert chart, host.text[:2000]
            data = strict(chart.group(1))["data"]
            assert any(value is None for value in data["cpu"]), data["cpu"]
        get_json(browser, "/fleet/version")
