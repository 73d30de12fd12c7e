"""Output for people is inert (issue 12): host text as text, never markup or escapes.

The tables are rendered by a real rich console that believes it writes to a
colour terminal; what a host wrote must come out as visible text, never as a
control sequence the terminal obeys or as rich markup (a stray ``[/]`` used to
crash the table). CSV cells never start a formula; JSON is strict.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from rich.console import Console

from fleetstat import present, simhostile
from fleetstat.alerts import AlertView
from fleetstat.cli import app
from fleetstat.config import Client
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.store import Store
from fleetstat.store.outbox import OutboxEntry
from fleetstat.store.reports import HostState
from fleetstat.store.schema import attempts, rounds, samples

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
HOSTILE = simhostile.NASTY + " ".join(simhostile.MARKUP) + simhostile.FORMULAS[0]


def rendered(renderable: Any) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      width=400, legacy_windows=False)  # fmt: skip
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def assert_inert(output: str) -> None:
    for sequence in ("\x1b]", "\x1b[2J", "\x1b[H", "\x9b", "\x07", "\x00", "\x1b[5m", "\r"):
        assert sequence not in output, repr(sequence)
    assert "[link=https://evil.example/]click[/link]" in output  # shown as text
    assert "[blink]BLINK[/blink] [/] [bold red]x" in output
    assert "\u241b]0;PWNED-TITLE\u2407" in output  # the escape, visible


def test_the_collect_table_shows_a_hostile_error_as_text() -> None:
    client = Client(ip="10.0.0.9", username="u", name="evil" + simhostile.MARKUP[2])
    failed = HostResult(client, Status.PROBE_ERROR, NOW, 1.0, error=HOSTILE)
    output = rendered(present.summary_table(RoundResult(NOW, NOW, (failed,))))
    assert_inert(output)
    assert "evil[/]" in output


def test_the_report_alerts_and_mail_tables_show_hostile_text_as_text() -> None:
    state = HostState(
        name="web", client_ip="10.0.0.9", client_port=22, status="ok", last_attempt_at=NOW,
        error=HOSTILE, sample_at=NOW, sample_age_seconds=1.0, disk_max_percent=99.0,
        disk_max_mount=HOSTILE, alerts=("disk:" + simhostile.MARKUP[2],),
    )  # fmt: skip
    assert_inert(rendered(present.report_table([state])))
    view = AlertView(HOSTILE, "10.0.0.9", 22, "disk:/" + HOSTILE, "disk", "firing", 99.0,
                     90.0, NOW, NOW, NOW)  # fmt: skip
    assert_inert(rendered(present.alerts_table([view])))
    entry = OutboxEntry(1, NOW, "alert", "10.0.0.9", 22, ("a@example.com",), HOSTILE, 3,
                        HOSTILE, None, None, NOW)  # fmt: skip
    assert_inert(rendered(present.mail_table([entry])))


def test_lines_and_errors_are_text(capsys: pytest.CaptureFixture[str]) -> None:
    present.out.cache_clear()
    present.err.cache_clear()
    try:
        present.say(HOSTILE)
        present.error_line(HOSTILE)
        captured = capsys.readouterr()
    finally:
        present.out.cache_clear()
        present.err.cache_clear()
    for output in (captured.out, captured.err):
        assert "\x1b]" not in output and "\x9b" not in output and "\x07" not in output
        assert "[blink]BLINK[/blink]" in output


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("https://evil.example/","x")', '\'=HYPERLINK("https://evil.example/","x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1", "'\u240d=1"),
        ("web-01", "web-01"),
        ("a=b", "a=b"),
        (12.5, 12.5),
        (None, None),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, cell: object) -> None:
    assert present.csv_cell(value) == cell


def test_json_output_is_strict() -> None:
    text = present.strict_json({"a": math.inf, "b": [math.nan, -math.inf, 1.5], "c": "\x1b[2J"})
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": "\x1b[2J"}
    assert "\x1b" not in text  # escaped as \\u001b: inert on a terminal


def test_history_json_stays_json_over_rows_from_before_the_boundary(tmp_path: Path) -> None:
    """Rows an older fleetstat stored unchecked (1e308: the average overflows)."""
    db = tmp_path / "fleetstat.db"
    config = tmp_path / "fleetstat.xml"
    config.write_text(
        f"""<fleetstat><database url="sqlite:///{db}"/>
  <client ip="10.0.0.9" username="u" password="p" name="old"/></fleetstat>"""
    )
    config.chmod(0o600)
    now = datetime.now(UTC)
    with Store(f"sqlite:///{db}") as store:
        store.ensure_schema()
        with store.engine.begin() as conn:
            head = {"hosts_total": 2, "hosts_ok": 2, "hosts_failed": 0, "retries": 0}
            round_row = sa.insert(rounds).values(
                started_at=now, finished_at=now, duration_seconds=1.0, **head
            )
            round_id = conn.execute(round_row).inserted_primary_key[0]  # type: ignore[index]
            for minutes in (1, 2):
                at = now - timedelta(minutes=minutes)
                host = {"round_id": round_id, "client_ip": "10.0.0.9", "client_port": 22}
                attempt_row = sa.insert(attempts).values(
                    status="ok", started_at=at, duration_seconds=1.0, retries=0, **host
                )
                attempt = conn.execute(attempt_row).inserted_primary_key[0]  # type: ignore[index]
                huge = {"cpu_percent": 1e308, "memory_percent": 1e308, "load1": 1e308}
                conn.execute(
                    sa.insert(samples).values(
                        attempt_id=attempt, received_at=at, document={}, **host, **huge
                    )
                )
    result = CliRunner().invoke(app, ["history", "old", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output, parse_constant=lambda name: pytest.fail(name))
    assert found["samples"] == 2
    assert found["cpu"]["avg"] is None  # inf in SQL, null in JSON
