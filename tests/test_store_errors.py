"""The store's one error boundary: every SQL caller's failure is a StoreError that
names the database with its password masked, and only store/errors.py catches
SQLAlchemy's exceptions."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleetstat.alerts import active_alerts
from fleetstat.config import Retention
from fleetstat.errors import StoreError
from fleetstat.mail import flush_outbox, outbox_backlog
from fleetstat.store import Store, accounts, outbox
from fleetstat.store.errors import sql_errors
from fleetstat.store.events import read_bookmarks
from fleetstat.store.reports import HostRef, host_history, host_states
from fleetstat.store.retention import prune

SRC = Path(__file__).resolve().parents[1] / "src" / "fleetstat"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
HOST = HostRef("10.0.0.5", 22, "web-01", frozenset())
# Nothing listens on port 1: every statement fails at connect, as with a server down.
DOWN = "postgresql+psycopg://fleet:s3cr%40t-pw@127.0.0.1:1/fleetstat"

CALLERS: dict[str, Callable[[Store], Any]] = {
    "store.ensure_schema": lambda s: s.ensure_schema(),
    "store.previous_cpu": lambda s: s.previous_cpu(),
    "events.read_bookmarks": lambda s: read_bookmarks(s, [("10.0.0.5", 22)]),
    "reports.host_states": lambda s: host_states(s, [HOST], now=NOW),
    "reports.host_history": lambda s: host_history(s, HOST, datetime(2026, 11, 1, tzinfo=UTC)),
    "retention.prune": lambda s: prune(s, Retention(samples=86400.0), now=NOW),
    "outbox.due": lambda s: outbox.due(s, NOW, everything=True, limit=10),
    "outbox.mark_failed": lambda s: outbox.mark_failed(s, [1], "relay down", NOW),
    "mail.outbox_backlog": lambda s: outbox_backlog(s, NOW),
    "mail.flush_outbox": lambda s: flush_outbox(s, None, NOW),  # type: ignore[arg-type]
    "alerts.active_alerts": lambda s: active_alerts(s),
    "accounts.list_users": lambda s: accounts.list_users(s),
}


@pytest.mark.parametrize("caller", list(CALLERS))
def test_every_sql_caller_fails_with_a_store_error_without_the_password(caller: str) -> None:
    with Store(DOWN) as store, pytest.raises(StoreError) as caught:
        CALLERS[caller](store)
    message = str(caught.value)
    assert message.startswith("database postgresql+psycopg://fleet:***@127.0.0.1:1/fleetstat: ")
    assert "cannot " in message and "s3cr" not in message


def test_the_driver_message_is_kept_on_one_line_without_the_password() -> None:
    url = sa.make_url("mysql+pymysql://fleet:hunter2@db.example/fleetstat")
    driver = Exception("Access denied\n  for 'fleet' with hunter2 (using password: YES)")
    with pytest.raises(StoreError) as caught, sql_errors(url, "read the round"):
        raise sa.exc.OperationalError("SELECT secret FROM documents", {"p": "x" * 9000}, driver)
    assert str(caught.value) == (
        "database mysql+pymysql://fleet:***@db.example/fleetstat: cannot read the round: "
        "Access denied for 'fleet' with *** (using password: YES)"
    )
    assert caught.value.__cause__ is not None  # the original stays for -v tracebacks


def test_other_errors_pass_through_untouched() -> None:
    with pytest.raises(KeyError), sql_errors(sa.make_url("sqlite://"), "x"):
        raise KeyError("not the database's")


def test_only_the_boundary_catches_sqlalchemy_errors() -> None:
    """A second translation would drift from the first (it did: three copies, one masked)."""
    pattern = re.compile(r"except\b[^:\n]*(SQLAlchemyError|DBAPIError|sa\.exc|sqlalchemy\.exc)")
    catching = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert catching == ["store/errors.py"]


def test_a_sqlite_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="cannot create the folder or file"):
        Store(f"sqlite:///{blocker / 'db' / 'fleetstat.db'}")
