"""``app.collect_once``: the store opens in a thread while the round starts.

The transport is a fake runner here (the real one is covered by the sshd tests);
the store is real SQLite, and a PostgreSQL URL nothing listens on for the failure.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fleetstat import app, collector, envelope
from fleetstat.config import Client, load_config
from fleetstat.model import Status
from fleetstat.store import Store
from fleetstat.transport import ProbeRun


def config_for(tmp_path: Path, db_url: str) -> Any:
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="{db_url}"/>
  <key path="{tmp_path / "server.key"}"/>
  <client ip="192.0.2.10" username="u" password="p" mail="ops@example.com"/>
  <client ip="192.0.2.11" username="u" password="p" mail="ops@example.com"/>
</fleetstat>""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_config(path)


def document() -> dict[str, Any]:
    return {
        "schema": 1,
        "collected_at": "2026-12-01T08:00:00Z",
        "platform": "linux",
        "host": {"hostname": "web"},
        "memory": {"total_bytes": 100, "used_bytes": 40, "used_percent": 40.0},
        "errors": {},
    }


def sealed(argv: Sequence[str]) -> bytes:
    key_b64 = argv[list(argv).index("--recipient") + 1]
    challenge = envelope.b64url_decode(argv[list(argv).index("--challenge") + 1])
    plain = zlib.compress(json.dumps(document()).encode())
    return (envelope.seal_line(plain, envelope.b64url_decode(key_b64), challenge) + "\n").encode()


def test_the_round_runs_while_the_store_opens_and_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first host's probe runs before the store is open: the store's thread is
    held until a host has been reached, and the round is still stored whole."""
    reached = threading.Event()
    real_open = app._open_for_round

    def open_after_a_host(config: Any, url: str | None, *args: Any) -> Any:
        assert reached.wait(30), "no host was reached while the store was opening"
        return real_open(config, url, *args)

    async def runner(client: Client, probe: bytes, argv: Sequence[str], settings: Any) -> ProbeRun:
        reached.set()
        return ProbeRun(sealed(argv), b"", 0)

    monkeypatch.setattr(app, "_open_for_round", open_after_a_host)
    monkeypatch.setattr(app, "collect_round", partial(collector.collect_round, runner=runner))
    db_url = f"sqlite:///{tmp_path / 'fleetstat.db'}"
    outcome = app.collect_once(config_for(tmp_path, db_url))

    assert [r.status for r in outcome.round.results] == [Status.OK, Status.OK]
    with Store(db_url) as store:
        assert store.count("samples") == 2
        assert [h.status for h in store.round_summary(outcome.round_id).hosts] == ["ok", "ok"]


def test_a_store_that_cannot_open_keeps_the_round_in_the_spool_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing collected is lost: with the database away the round runs to the end
    and is spooled; the next round that reaches a database writes it first."""

    async def runner(client: Client, probe: bytes, argv: Sequence[str], settings: Any) -> ProbeRun:
        return ProbeRun(sealed(argv), b"", 0)

    monkeypatch.setattr(app, "collect_round", partial(collector.collect_round, runner=runner))
    config = config_for(tmp_path, "postgresql://postgres@127.0.0.1:1/test")  # nothing listens
    outcome = app.collect_once(config)
    assert outcome.round_id is None and outcome.spooled is not None
    assert "connection failed" in (outcome.database_error or "")
    assert [r.status for r in outcome.round.results] == [Status.OK, Status.OK]
    assert outcome.spooled.path is not None and outcome.spooled.path.exists()

    db_url = f"sqlite:///{tmp_path / 'fleetstat.db'}"
    later = app.collect_once(config, database_url=db_url)
    assert later.replayed is not None and (later.replayed.written, later.replayed.left) == (1, 0)
    assert not outcome.spooled.path.exists()
    with Store(db_url) as store:
        assert (store.count("rounds"), store.count("samples")) == (2, 4)
        first = store.round_state(outcome.round.uuid)
        assert first is not None and first.id < (later.round_id or 0)
