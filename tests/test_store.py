"""The store against real SQLite, PostgreSQL and MariaDB databases (``db_url``)."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alert_helpers import checked

from fleetstat.document import Document, HostInfo
from fleetstat.errors import StoreError
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.store import Store, headline
from fleetstat.store.schema import (
    TABLE_NAMES,
    attempts,
    host_latest,
    metadata,
    rounds,
    samples,
)

DOCUMENTS = Path(__file__).parent / "fixtures" / "documents"
T0 = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Client:
    """The fields of ``fleetstat.config.Client`` the store reads."""

    ip: str
    port: int = 22
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.ip

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


def linux_document(**changes: Any) -> dict[str, Any]:
    document = json.loads((DOCUMENTS / "linux.json").read_text(encoding="utf-8"))
    document.update(changes)
    return document


def ok(
    ip: str,
    document: dict[str, Any],
    *,
    port: int = 22,
    name: str | None = None,
    started_at: datetime = T0,
    duration: float = 0.75,
    retries: int = 0,
) -> HostResult:
    return HostResult(
        client=Client(ip, port, name),  # type: ignore[arg-type]
        status=Status.OK,
        started_at=started_at,
        duration_seconds=duration,
        document=checked(document),
        retries=retries,
    )


def failed(
    ip: str,
    status: Status,
    error: str,
    *,
    port: int = 22,
    stderr: str | None = None,
    name: str | None = None,
) -> HostResult:
    return HostResult(
        client=Client(ip, port, name),  # type: ignore[arg-type]
        status=status,
        started_at=T0,
        duration_seconds=10.0,
        error=error,
        stderr=stderr,
    )


def a_round(*results: HostResult, started_at: datetime = T0) -> RoundResult:
    return RoundResult(
        started_at=started_at, finished_at=started_at + timedelta(seconds=12.5), results=results
    )


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as store:
        store.ensure_schema()
        yield store


def one(store: Store, query: sa.Select[Any]) -> sa.Row[Any]:
    with store.engine.connect() as conn:
        return conn.execute(query).one()


# -- schema -----------------------------------------------------------------------


def test_upgrade_creates_every_table_once(db_url: str) -> None:
    with Store(db_url) as store:
        assert store.current_revision() is None
        assert store.ensure_schema() is True
        assert store.current_revision() == "0010"
        assert store.ensure_schema() is False
        store.upgrade()  # idempotent at head

        inspector = sa.inspect(store.engine)
        assert set(TABLE_NAMES) | {"alembic_version"} <= set(inspector.get_table_names())
        assert {t: store.count(t) for t in TABLE_NAMES} == dict.fromkeys(TABLE_NAMES, 0)

        def index_columns(table: str) -> set[tuple[str, ...]]:
            return {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}

        # 0002 widened it into a covering index for `fleetstat history`.
        assert any(
            cols[:3] == ("client_ip", "client_port", "received_at")
            for cols in index_columns("samples")
        )
        assert ("round_id",) in index_columns("samples")
        assert ("client_ip", "client_port", "started_at", "status") in index_columns("attempts")
        assert ("round_id",) in index_columns("attempts")
        assert ("sent_at", "next_attempt_at") in index_columns("mail_outbox")
        uniques = {
            tuple(uq["column_names"]) for uq in inspector.get_unique_constraints("security_events")
        }
        assert ("client_ip", "client_port", "event_key") in uniques


def test_migration_creates_what_schema_py_describes(store: Store) -> None:
    # The hand-written revision and the Core model must not drift apart.
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


# -- writes -------------------------------------------------------------------------


def test_record_round_stores_typed_rows(store: Store, db_backend: str) -> None:
    web = linux_document()
    db = linux_document(host={"hostname": "db-01", "os": "Rocky Linux 9.3", "kernel": "5.14.0"})
    db["memory"]["used_percent"] = 91.25
    db["disks"] = [{"mount": "/", "used_percent": 12.0}, {"mount": "/srv/pg", "used_percent": 97.5}]
    round_id = store.record_round(
        a_round(
            ok("10.0.0.1", web, name="web"),
            failed("10.0.0.2", Status.UNREACHABLE, "connection refused on port 22"),
            ok("10.0.0.3", db, port=2222, retries=2),
            failed("10.0.0.4", Status.AUTH_FAILED, "password rejected", stderr="denied"),
        )
    )

    assert [store.count(t) for t in ("rounds", "attempts", "samples")] == [1, 4, 2]
    head = one(store, sa.select(rounds))
    assert (head.id, head.hosts_total, head.hosts_ok, head.hosts_failed) == (round_id, 4, 2, 2)
    assert head.retries == 2
    assert head.duration_seconds == 12.5
    assert head.started_at == T0

    sample = one(store, sa.select(samples).where(samples.c.client_ip == "10.0.0.1"))
    assert sample.round_id == round_id
    assert sample.client_port == 22
    assert sample.collected_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert sample.received_at == T0 + timedelta(seconds=0.75)
    assert (sample.hostname, sample.os, sample.kernel) == (
        "web-01",
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0-18-amd64",
    )
    assert sample.memory_percent == 42.5
    assert sample.memory_total_bytes == 8321499136
    assert isinstance(sample.memory_total_bytes, int)
    assert sample.memory_available_bytes == 4785364992
    assert sample.memory_used_bytes == 3536134144
    assert sample.swap_total_bytes == 1073737728
    assert sample.swap_percent == 12.5
    assert sample.cpu_percent == 12.5
    assert sample.cpu_count == 2
    assert sample.cpu_interval_percent is None
    assert (sample.load1, sample.load5, sample.load15) == (0.31, 0.27, 0.22)
    assert sample.uptime_seconds == 212345.6
    assert sample.disk_max_percent == 79.0
    assert sample.disk_max_mount == "/var"
    assert sample.document == checked(web).as_json()

    other = one(store, sa.select(samples).where(samples.c.client_ip == "10.0.0.3"))
    assert (other.client_port, other.hostname, other.memory_percent) == (2222, "db-01", 91.25)
    assert (other.disk_max_percent, other.disk_max_mount) == (97.5, "/srv/pg")

    # Each sample points at its own host's attempt.
    for row in (sample, other):
        attempt = one(store, sa.select(attempts).where(attempts.c.id == row.attempt_id))
        assert (attempt.client_ip, attempt.client_port) == (row.client_ip, row.client_port)
        assert attempt.status == "ok"

    summary = store.round_summary(round_id)
    assert summary.round.id == round_id
    assert [(h.client_ip, h.status, h.memory_percent) for h in summary.hosts] == [
        ("10.0.0.1", "ok", 42.5),
        ("10.0.0.2", "unreachable", None),
        ("10.0.0.3", "ok", 91.25),
        ("10.0.0.4", "auth_failed", None),
    ]
    refused = summary.hosts[1]
    assert refused.error == "connection refused on port 22"
    assert refused.duration_seconds == 10.0
    assert summary.hosts[0].client_name == "web"
    assert summary.hosts[2].retries == 2
    denied = one(store, sa.select(attempts).where(attempts.c.client_ip == "10.0.0.4"))
    assert (denied.error, denied.stderr, denied.started_at) == ("password rejected", "denied", T0)


def test_a_round_is_known_by_its_uuid_and_stored_once(store: Store) -> None:
    """The spool's replay asks before writing; a second write of one round fails whole."""
    first = a_round(failed("10.0.0.9", Status.TIMEOUT, "timed out"))
    assert store.round_state(first.uuid) is None
    round_id = store.record_round(first)
    state = store.round_state(first.uuid)
    assert state is not None and (state.id, state.alerts_at) == (round_id, None)
    with pytest.raises(StoreError, match="cannot record the round"):
        store.record_round(first)
    assert (store.count("rounds"), store.count("attempts")) == (1, 1)
    replayed = a_round(failed("10.0.0.9", Status.TIMEOUT, "timed out"))
    store.record_round(replayed, replayed_at=T0 + timedelta(hours=1))
    row = one(store, sa.select(rounds).where(rounds.c.uuid == replayed.uuid))
    assert (row.replayed_at, row.started_at) == (T0 + timedelta(hours=1), T0)


def test_datetimes_come_back_aware_utc(store: Store, db_backend: str) -> None:
    # Given in UTC+02:00 with microseconds; stored as the same instant.
    local = datetime(2026, 11, 22, 12, 30, 15, 654321, tzinfo=timezone(timedelta(hours=2)))
    store.record_round(
        a_round(ok("10.0.0.1", linux_document(), started_at=local), started_at=local)
    )
    with store.engine.connect() as conn:
        if db_backend == "postgresql":
            # timestamptz comes back in the session's zone: prove it is normalised.
            conn.exec_driver_sql("SET TIME ZONE 'Asia/Kolkata'")
        started = conn.execute(sa.select(rounds.c.started_at)).scalar_one()
        attempt_started = conn.execute(sa.select(attempts.c.started_at)).scalar_one()
    for value in (started, attempt_started):
        assert value == local
        assert value.tzinfo is UTC
        assert value.microsecond == 654321
        assert value.hour == 10


def test_naive_datetime_is_refused(store: Store) -> None:
    naive = datetime(2026, 11, 22, 10, 0)
    with pytest.raises(StoreError, match="naive datetime"):
        store.record_round(a_round(started_at=naive))
    assert store.count("rounds") == 0


def test_five_hundred_hosts_in_one_call(store: Store) -> None:
    results = []
    for i in range(500):
        ip = f"10.1.{i // 250}.{i % 250}"
        if i % 10 == 9:
            results.append(failed(ip, Status.TIMEOUT, "no answer within 60 s", port=22 + i % 3))
        else:
            document = linux_document(host={"hostname": f"host-{i:03d}"})
            document["memory"] = dict(document["memory"], used_percent=i / 10)
            results.append(ok(ip, document, port=22 + i % 3))

    inserts: list[str] = []

    def count_inserts(conn: Any, clause: Any, *args: Any) -> None:
        if isinstance(clause, sa.Insert):
            inserts.append(clause.table.name)

    sa.event.listen(store.engine, "before_execute", count_inserts)
    try:
        round_id = store.record_round(a_round(*results))
    finally:
        sa.event.remove(store.engine, "before_execute", count_inserts)

    # One INSERT per table: attempts and samples each go as one executemany.
    # samples_hourly (revision 0010): one INSERT ... SELECT upsert for the whole round.
    # host_latest (issue 5): one upsert for hosts with a sample, one for those without.
    assert inserts == [
        "rounds", "attempts", "samples", "samples_hourly", "host_latest", "host_latest"
    ]  # fmt: skip
    assert [store.count(t) for t in ("rounds", "attempts", "samples")] == [1, 500, 450]
    summary = store.round_summary(round_id)
    assert (summary.round.hosts_ok, summary.round.hosts_failed) == (450, 50)
    assert sum(h.status == "timeout" for h in summary.hosts) == 50

    with store.engine.connect() as conn:
        mislinked = conn.execute(
            sa.select(sa.func.count())
            .select_from(samples.join(attempts, samples.c.attempt_id == attempts.c.id))
            .where(
                sa.or_(
                    samples.c.client_ip != attempts.c.client_ip,
                    samples.c.client_port != attempts.c.client_port,
                )
            )
        ).scalar_one()
        host_123 = conn.execute(
            sa.select(samples.c.hostname, samples.c.memory_percent, samples.c.client_port).where(
                samples.c.client_ip == "10.1.0.123"
            )
        ).one()
    assert mislinked == 0
    assert tuple(host_123) == ("host-123", 12.3, 22)


def test_missing_families_are_null(store: Store) -> None:
    document = {
        "schema": 1,
        "probe_version": "0.1.0",
        "collected_at": "2026-11-22T10:00:00+01:00",
        "platform": "linux",
        "host": {"hostname": "bare-01", "os": None},
        "memory": None,
        "swap": None,
        "load": None,
        "disks": None,
        "errors": {"memory": "PermissionError: /proc/meminfo", "disks": "OSError: ..."},
    }
    store.record_round(a_round(ok("10.0.0.9", document)))
    row = one(store, sa.select(samples))
    assert row.hostname == "bare-01"
    assert row.collected_at == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    for column in (
        "os",
        "kernel",
        "cpu_percent",
        "cpu_count",
        "memory_total_bytes",
        "memory_percent",
        "swap_percent",
        "load1",
        "load15",
        "uptime_seconds",
        "disk_max_percent",
        "disk_max_mount",
    ):
        assert getattr(row, column) is None, column
    assert row.document == checked(document).as_json()
    assert row.document["memory"] is None and "server_notes" not in row.document


def test_non_finite_numbers_do_not_sink_the_round(store: Store) -> None:
    document = linux_document()
    document["cpu"]["used_percent"] = math.nan
    document["load"]["avg1"] = math.inf
    round_id = store.record_round(
        a_round(ok("10.0.0.1", document), ok("10.0.0.2", linux_document()))
    )
    assert store.count("samples") == 2
    row = one(store, sa.select(samples).where(samples.c.client_ip == "10.0.0.1"))
    assert (row.round_id, row.cpu_percent, row.load1) == (round_id, None, None)
    assert row.document["cpu"]["used_percent"] is None
    assert row.memory_percent == 42.5


def test_a_prepared_sample_holds_its_document_as_text_only() -> None:
    """The rows of a whole round are prepared at once: each keeps the JSON text the
    engine sends, not the dict it was made from (units.Serialized)."""
    from fleetstat.store.roundwrite import _prepare
    from fleetstat.units import Serialized, strict_json

    document = linux_document()
    document["load"]["avg1"] = math.inf
    rows = _prepare(ok("10.0.0.1", document))
    assert rows.sample is not None
    stored = rows.sample["document"]
    assert type(stored) is Serialized and not isinstance(stored, dict)
    assert not hasattr(stored, "__dict__")  # the text and nothing else
    assert strict_json(stored) is stored.text
    assert json.loads(stored.text) == json.loads(strict_json(checked(document).as_json()))
    assert json.loads(stored.text)["load"]["avg1"] is None
    with pytest.raises(TypeError):  # nothing serialises it as something else
        json.dumps(stored)


def test_large_document_fits(store: Store) -> None:
    # The largest documents are a Windows host's with <events max> events of long
    # summaries: ~6 MB here (MySQL's TEXT would stop at 64 KiB).
    document = linux_document()
    event = {"source": "windows", "summary": "x" * 4000, "data": {"Message": "y" * 2000}}
    events = [dict(event, event_key=f"windows:{i}") for i in range(1000)]
    document["security_events"] = {"source": "windows", "events": events}
    store.record_round(a_round(ok("10.0.0.1", document)))
    stored = one(store, sa.select(samples.c.document)).document
    assert len(stored["security_events"]["events"]) == 1000
    assert stored == checked(document).as_json()


def test_unicode_round_trips(store: Store) -> None:
    document = linux_document(host={"hostname": "сервер-01", "os": "Ubuntu 24.04 «noble»"})
    document["disks"][1]["mount"] = "/mnt/données"
    round_id = store.record_round(
        a_round(
            ok("10.0.0.1", document, name="Bürorechner ☃"),
            failed("10.0.0.2", Status.PROBE_ERROR, "Zeitüberschreitung 🕒", stderr="ошибка 🐍"),
        )
    )
    sample = one(store, sa.select(samples))
    assert (sample.hostname, sample.os, sample.disk_max_mount) == (
        "сервер-01",
        "Ubuntu 24.04 «noble»",
        "/mnt/données",
    )
    assert sample.document == checked(document).as_json()
    assert sample.document["host"]["hostname"] == "сервер-01"
    hosts = store.round_summary(round_id).hosts
    assert hosts[0].client_name == "Bürorechner ☃"
    assert hosts[1].error == "Zeitüberschreitung 🕒"
    failure = one(store, sa.select(attempts.c.stderr).where(attempts.c.client_ip == "10.0.0.2"))
    assert failure.stderr == "ошибка 🐍"


def test_empty_round(store: Store) -> None:
    round_id = store.record_round(a_round())
    assert store.round_summary(round_id).hosts == []
    assert store.count("attempts") == 0


# -- reads --------------------------------------------------------------------------


def test_latest_samples_are_per_host(store: Store) -> None:
    first = store.record_round(
        a_round(ok("10.0.0.1", linux_document()), ok("10.0.0.2", linux_document()))
    )
    later = T0 + timedelta(minutes=5)
    newer = linux_document()
    newer["memory"]["used_percent"] = 55.0
    second = store.record_round(
        a_round(
            ok("10.0.0.1", newer, started_at=later),
            failed("10.0.0.2", Status.TIMEOUT, "no answer"),
            ok("10.0.0.1", linux_document(), port=2200, started_at=later),
            started_at=later,
        )
    )
    latest = store.latest_samples()
    assert [(r.client_ip, r.client_port, r.round_id) for r in latest] == [
        ("10.0.0.1", 22, second),
        ("10.0.0.1", 2200, second),
        ("10.0.0.2", 22, first),
    ]
    assert latest[0].memory_percent == 55.0


def test_unknown_round_and_table(store: Store) -> None:
    with pytest.raises(StoreError, match="no round 999"):
        store.round_summary(999)
    with pytest.raises(ValueError, match="unknown table"):
        store.count("users; DROP TABLE rounds")


# -- errors (no database needed) ----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://fleet:s3cr%40t-pw@127.0.0.1:1/fleetstat",
        "mysql+pymysql://fleet:s3cr%40t-pw@127.0.0.1:1/fleetstat",
    ],
)
def test_unreachable_server_is_a_store_error_without_the_password(url: str) -> None:
    with Store(url) as store, pytest.raises(StoreError) as caught:
        store.ensure_schema()
    message = str(caught.value)
    assert "s3cr" not in message
    assert "***" in message
    assert "127.0.0.1:1" in message
    assert "cannot upgrade the schema" in message


def test_bad_urls_are_store_errors() -> None:
    with pytest.raises(StoreError, match="invalid database URL") as caught:
        Store("not a url at all :: secret")
    assert "secret" not in str(caught.value)
    with pytest.raises(StoreError, match="nosuchdb"):
        Store("nosuchdb://user:secret@host/db")


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}") as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        store.ensure_schema()
        # Foreign keys are enforced: an attempt of a round that does not exist.
        orphan = sa.insert(attempts).values(
            round_id=42,
            client_ip="x",
            client_port=22,
            status="ok",
            duration_seconds=0.0,
            started_at=T0,
            retries=0,
        )
        with (
            pytest.raises(StoreError, match="FOREIGN KEY"),
            store.errors("insert"),
            store.engine.begin() as conn,
        ):
            conn.execute(orphan)
    assert (tmp_path / "a" / "b" / "x.db").exists()


def test_a_round_the_database_cannot_take_leaves_nothing(tmp_path: Path) -> None:
    # One transaction: when the database refuses even a host's failed attempt, it is
    # the database that fails, and nothing of the round is kept.
    with Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        store.ensure_schema()
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER full BEFORE INSERT ON attempts BEGIN "
                "SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        with pytest.raises(StoreError, match="disk is full"):
            store.record_round(
                a_round(ok("10.0.0.2", linux_document()), failed("10.0.0.1", Status.TIMEOUT, "t"))
            )
        assert [store.count(t) for t in ("rounds", "attempts", "samples")] == [0, 0, 0]


def past_the_boundary(ip: str, document: Document) -> HostResult:
    """An ok result whose document did not come through fleetstat.document (a bug's)."""
    return replace(ok(ip, linux_document()), document=document)


def test_a_host_whose_rows_cannot_be_built_fails_alone(store: Store) -> None:
    bad = past_the_boundary("10.0.0.1", Document(schema=1, extra={"x": object()}))
    written = store.write_round(a_round(ok("10.0.0.2", linux_document()), bad))
    assert [store.count(t) for t in ("rounds", "attempts", "samples")] == [1, 2, 1]
    (stored,) = store.latest_samples()
    assert stored.client_ip == "10.0.0.2"
    failed_host = written.round.results[1]
    assert failed_host.status is Status.BAD_PAYLOAD and failed_host.document is None
    attempt = one(store, sa.select(attempts).where(attempts.c.client_ip == "10.0.0.1"))
    assert attempt.status == "bad_payload"
    assert attempt.error == (
        "10.0.0.1:22: storing failed: TypeError: Object of type object is not JSON serializable"
    )
    head = one(store, sa.select(rounds))
    assert (head.hosts_ok, head.hosts_failed) == (1, 1)


# Text every backend refuses (an unpaired surrogate encodes to nothing), and a NUL,
# which only PostgreSQL refuses (SQLite and MariaDB store it).
REFUSED = {"sqlite": ["lone\ud800"], "mariadb": ["lone\ud800"]}


def test_a_value_the_database_refuses_costs_only_its_host(
    store: Store, db_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch is refused; each host is then written alone, and only the one fails."""
    for hostname in REFUSED.get(db_backend, ["lone\ud800", "nul\x00"]):
        refused_alone(store, hostname, caplog)


def refused_alone(store: Store, hostname: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    bad = past_the_boundary(
        "10.0.0.2", replace(checked(linux_document()), host=HostInfo(hostname=hostname))
    )
    round_id = store.record_round(
        a_round(ok("10.0.0.1", linux_document()), bad, ok("10.0.0.3", linux_document()))
    )
    assert sorted(row.client_ip for row in store.latest_samples()) == ["10.0.0.1", "10.0.0.3"]
    hosts = {row.client_ip: row for row in store.round_summary(round_id).hosts}
    assert [hosts[ip].status for ip in sorted(hosts)] == ["ok", "bad_payload", "ok"], hostname
    assert hosts["10.0.0.2"].error.startswith(
        "10.0.0.2:22: storing failed: the database refused this host's rows: "
    )
    with store.engine.connect() as conn:
        latest = {r.client_ip: r for r in conn.execute(sa.select(host_latest))}
        head = conn.execute(sa.select(rounds).where(rounds.c.id == round_id)).one()
    assert latest["10.0.0.2"].last_status == "bad_payload"
    assert latest["10.0.0.2"].sample_id is None
    assert latest["10.0.0.1"].sample_id is not None
    assert (head.hosts_ok, head.hosts_failed) == (2, 1)
    assert "writing host by host" in caplog.text
    assert "host 10.0.0.2 (10.0.0.2:22): storing failed" in caplog.text


# -- headline (pure) ----------------------------------------------------------------


def test_headline_of_the_fixture() -> None:
    values = headline(checked(linux_document()))
    assert values["memory_percent"] == 42.5
    assert values["disk_max_percent"] == 79.0
    assert values["disk_max_mount"] == "/var"
    assert values["collected_at"] == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "change, column, expected",
    [
        ({"memory": {"used_percent": True}}, "memory_percent", None),
        ({"memory": {"used_percent": "42"}}, "memory_percent", None),
        ({"memory": {"total_bytes": 1024.0}}, "memory_total_bytes", 1024),
        ({"memory": {"total_bytes": 2**70}}, "memory_total_bytes", None),
        ({"memory": None}, "memory_percent", None),
        ({"disks": [{"mount": "/a"}, {"mount": "/b", "used_percent": 3}]}, "disk_max_mount", "/b"),
        ({"disks": None}, "disk_max_percent", None),
        ({"host": {"hostname": "h" * 300}}, "hostname", "h" * 254 + "…"),
        ({"collected_at": "yesterday"}, "collected_at", None),
        (
            {"collected_at": "2026-11-22T10:00:00"},
            "collected_at",
            datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        ),
        ({"uptime_seconds": math.nan}, "uptime_seconds", None),
    ],
)
def test_headline_tolerates_odd_documents(
    change: dict[str, Any], column: str, expected: object
) -> None:
    document = copy.deepcopy(linux_document())
    document.update(change)
    assert headline(checked(document))[column] == expected


def test_headline_of_an_empty_document_is_all_null() -> None:
    assert set(headline(Document(schema=1)).values()) == {None}
