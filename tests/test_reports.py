"""``fleetstat report`` and ``history`` on known data, on SQLite, PostgreSQL and MariaDB.

Acceptance 3: the JSON of both commands, through the CLI, with every value
asserted. The data is written the way rounds write it (fill_interval_cpu, then
record_round, then the alerts), relative to now because the CLI's windows are.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_helpers import client, failed, ok, round_of, rule
from click.testing import CliRunner

from fleetstat.alerts import evaluate_round
from fleetstat.cli import app
from fleetstat.metrics import fill_interval_cpu
from fleetstat.model import RoundResult, Status
from fleetstat.present import sparkline
from fleetstat.store import Store
from fleetstat.store.reports import HostRef, host_history

BOOT = "2026-11-01T00:00:00Z"
WEB = client(rule("memory", 55), ip="10.0.0.5", name="web-01")
DB = client(ip="10.0.0.6", name="db-01")
NEW = client(ip="10.0.0.7", name="new-01")


def cpu(short: float, total: float, busy: float) -> dict[str, float]:
    return {"count": 2, "used_percent": short, "total_seconds": total, "busy_seconds": busy}


def web(at: datetime, short: float, total: float, busy: float, memory: float, n: int) -> Any:
    return ok(
        WEB,
        at,
        cpu=cpu(short, total, busy),
        boot_time=BOOT,
        memory={"used_percent": memory},
        swap={"used_percent": float(n)},
        disks=[
            {"mount": "/", "used_percent": 69.0 + n, "total_bytes": 1, "used_bytes": 1},
            {"mount": "/boot", "used_percent": 20.0, "total_bytes": 1, "used_bytes": 1},
        ],
        load={"avg1": 0.5 * n, "avg5": 0.25, "avg15": 0.125},
        uptime_seconds=3600.0 * n,
    )


def write(store: Store, rounds: list[RoundResult]) -> None:
    for one in rounds:
        one = fill_interval_cpu(one, store.previous_cpu())
        store.record_round(one)
        evaluate_round(store, one, now=one.finished_at)


@pytest.fixture
def fleet(tmp_path: Path, db_url: str) -> tuple[Path, datetime]:
    """The known data; returns the config path and T, the first recent round's start."""
    now = datetime.now(UTC).replace(microsecond=0)
    # 75 s past a whole hour from now: mid-bucket for a 2h window of 48 buckets (150 s).
    t = now - timedelta(hours=1) + timedelta(seconds=75)
    minute = timedelta(minutes=1)
    rounds = [
        # Ten days ago, outside a 7-day window; booted differently (no interval next).
        round_of(ok(WEB, t - timedelta(days=10), cpu=cpu(99.0, 10.0, 1.0),
                    boot_time="2026-01-01T00:00:00Z", memory={"used_percent": 99.0})),
        round_of(web(t, 10.0, 1000.0, 100.0, 40.0, 1),
                 ok(DB, t, cpu=cpu(5.0, 50.0, 5.0), memory={"used_percent": 30.0})),
        round_of(failed(WEB, t + 5 * minute)),
        round_of(web(t + 10 * minute, 20.0, 2200.0, 460.0, 50.0, 2),  # interval 30 %
                 failed(DB, t + 10 * minute)),
        round_of(web(t + 20 * minute, 60.0, 3400.0, 1060.0, 60.0, 3),  # interval 50 %
                 failed(DB, t + 20 * minute, Status.AUTH_FAILED)),
    ]  # fmt: skip
    with Store(db_url) as store:
        store.upgrade()
        write(store, rounds)
    path = tmp_path / "fleetstat.xml"
    clients = "\n".join(
        f'<client ip="{c.ip}" username="u" password="p" mail="ops@example.com" name="{c.name}">'
        + "".join(f'<alert type="{r.type}" limit="{r.limit:g}%"/>' for r in c.alerts)
        + "</client>"
        for c in (WEB, DB, NEW)
    )
    path.write_text(
        f'<fleetstat><database url="{db_url}"/><key path="{tmp_path}/k"/>{clients}</fleetstat>'
    )
    path.chmod(0o600)
    return path, t


def cli(*args: str) -> str:
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, done.output
    return done.stdout


def test_report_json(fleet: tuple[Path, datetime]) -> None:
    config, t = fleet
    before = datetime.now(UTC)
    rows = json.loads(cli("report", "-c", str(config), "--json"))
    after = datetime.now(UTC)
    assert [r["host"] for r in rows] == ["web-01", "db-01", "new-01"]
    web_row, db_row, new_row = rows

    sample_at = t + timedelta(minutes=20, seconds=1)  # started_at + duration (1 s)
    age = web_row.pop("sample_age_seconds")
    assert (before - sample_at).total_seconds() - 1 <= age <= (after - sample_at).total_seconds()
    assert web_row == {
        "host": "web-01",
        "ip": "10.0.0.5",
        "port": 22,
        "status": "ok",
        "last_attempt_at": (t + timedelta(minutes=20)).isoformat(),
        "error": None,
        "sample_at": sample_at.isoformat(),
        "hostname": "web-01",
        "cpu_percent": 60.0,
        "cpu_interval_percent": 50.0,
        "memory_percent": 60.0,
        "swap_percent": 3.0,
        "disk_max_percent": 72.0,
        "disk_max_mount": "/",
        "load1": 1.5,
        "load5": 0.25,
        "load15": 0.125,
        "uptime_seconds": 10800.0,
        "alerts": ["memory"],
    }
    assert db_row["status"] == "auth_failed"
    assert db_row["error"] == "auth_failed after 5s"
    assert db_row["last_attempt_at"] == (t + timedelta(minutes=20)).isoformat()
    assert db_row["sample_at"] == (t + timedelta(seconds=1)).isoformat()
    assert (db_row["cpu_percent"], db_row["memory_percent"]) == (5.0, 30.0)
    assert db_row["cpu_interval_percent"] is None  # its first and only sample
    assert db_row["alerts"] == []
    assert new_row["status"] == "never"
    assert new_row["sample_at"] is None and new_row["sample_age_seconds"] is None
    assert new_row["cpu_percent"] is None


def test_report_filters_and_csv(fleet: tuple[Path, datetime]) -> None:
    config, _ = fleet
    failing = json.loads(cli("report", "-c", str(config), "--json", "--failing"))
    assert [r["host"] for r in failing] == ["db-01", "new-01"]
    one = json.loads(cli("report", "-c", str(config), "--json", "--host", "10.0.0.5"))
    assert [r["host"] for r in one] == ["web-01"]
    table = list(csv.DictReader(io.StringIO(cli("report", "-c", str(config), "--csv"))))
    assert [r["host"] for r in table] == ["web-01", "db-01", "new-01"]
    assert table[0]["memory_percent"] == "60.0" and table[0]["alerts"] == "memory"
    text = cli("report", "-c", str(config))
    assert "web-01" in text and "auth_failed" in text and "never" in text
    done = CliRunner().invoke(app, ["report", "-c", str(config), "--host", "nope"])
    assert done.exit_code == 2 and "nope" in done.output  # a usage error


def test_history_json(fleet: tuple[Path, datetime]) -> None:
    config, t = fleet
    found = json.loads(cli("history", "web-01", "-c", str(config), "--since", "7d", "--json"))
    series = found.pop("series")
    since = datetime.fromisoformat(found.pop("since"))
    until = datetime.fromisoformat(found.pop("until"))
    assert timedelta(days=7) == until - since
    assert found == {
        "host": "web-01",
        "ip": "10.0.0.5",
        "port": 22,
        "samples": 3,  # the one from ten days ago is outside the window
        "first_sample_at": (t + timedelta(seconds=1)).isoformat(),
        "last_sample_at": (t + timedelta(minutes=20, seconds=1)).isoformat(),
        "attempts": 4,
        "failed_attempts": 1,
        "cpu": {"min": 10.0, "avg": 30.0, "max": 60.0},
        "cpu_interval": {"min": 30.0, "avg": 40.0, "max": 50.0},
        "memory": {"min": 40.0, "avg": 50.0, "max": 60.0},
        "swap": {"min": 1.0, "avg": 2.0, "max": 3.0},
        "disk": {"min": 70.0, "avg": 71.0, "max": 72.0},
        "load": {"min": 0.5, "avg": 1.0, "max": 1.5},
    }
    assert series["bucket_seconds"] == 7 * 86400 // 48
    assert len(series["cpu"]) == 48

    # A 2-hour window of 48 buckets of 150 s: T sits 3,675 s after its start.
    two_hours = json.loads(cli("history", "10.0.0.5", "-c", str(config), "--since", "2h",
                               "--json"))["series"]  # fmt: skip
    assert two_hours["bucket_seconds"] == 150
    cpu_points = {i: v for i, v in enumerate(two_hours["cpu"]) if v is not None}
    memory_points = {i: v for i, v in enumerate(two_hours["memory"]) if v is not None}
    # CPU plots the interval figure where known, else the short window (first sample).
    assert cpu_points == {24: 10.0, 28: 30.0, 32: 50.0}
    assert memory_points == {24: 40.0, 28: 50.0, 32: 60.0}

    text = cli("history", "web-01", "-c", str(config), "--since", "2h")
    assert "3 sample(s), 1 failed of 4 attempt(s)" in text
    assert sparkline([10.0, 30.0, 50.0]) in text.replace(" ", "")


def test_history_of_a_host_without_samples(db_url: str) -> None:
    with Store(db_url) as store:
        store.upgrade()
        now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        found = host_history(store, HostRef("10.9.9.9", 22, "x"), now - timedelta(days=1), now)
    assert (found.samples, found.attempts, found.failed_attempts) == (0, 0, 0)
    assert found.first_sample_at is None
    assert found.stats["cpu"].avg is None
    assert found.cpu_series == [None] * 48


def test_sparkline_scale() -> None:
    assert sparkline([0.0, 12.5, 50.0, 99.9, 100.0, None, 150.0]) == "▁▂▅██ █"


def test_upgrade_from_0001_fills_host_latest(db_url: str) -> None:
    """A database with rounds from before 0002 gets host_latest for its hosts."""
    import sqlalchemy as sa
    from alembic import command

    from fleetstat.store import migrate
    from fleetstat.store.schema import attempts, host_latest, rounds, samples

    t = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    with Store(db_url) as store:
        with store.engine.begin() as conn:
            command.upgrade(migrate.alembic_config(conn), "0001")
        with store.engine.begin() as conn:
            for n, status in enumerate(["ok", "ok", "timeout"]):
                at = t + timedelta(minutes=5 * n)
                round_id = conn.execute(
                    sa.insert(rounds).values(
                        started_at=at,
                        finished_at=at,
                        hosts_total=1,
                        hosts_ok=int(status == "ok"),
                        hosts_failed=0,
                        retries=0,
                        duration_seconds=1.0,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                attempt_id = conn.execute(
                    sa.insert(attempts).values(
                        round_id=round_id,
                        client_ip="10.0.0.5",
                        client_port=22,
                        status=status,
                        started_at=at,
                        duration_seconds=1.0,
                        retries=0,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                if status == "ok":
                    conn.execute(
                        sa.insert(samples).values(
                            round_id=round_id,
                            attempt_id=attempt_id,
                            client_ip="10.0.0.5",
                            client_port=22,
                            received_at=at,
                            document={},
                        )
                    )
        assert store.ensure_schema() is True
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(host_latest)).one()
            newest_sample = conn.execute(sa.select(sa.func.max(samples.c.id))).scalar()
    assert (row.client_ip, row.client_port, row.last_status) == ("10.0.0.5", 22, "timeout")
    assert row.last_attempt_at == t + timedelta(minutes=10)
    assert row.sample_id == newest_sample
    assert row.sample_received_at == t + timedelta(minutes=5)
    assert row.cpu_total_seconds is None  # the first interval after the upgrade is null
