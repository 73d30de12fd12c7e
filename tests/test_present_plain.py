"""``collect``'s table written to a pipe or a file: laid out by fleetstat, as rich would.

rich's layout of a 500-host table costs 0.2-0.35 s of CPU; ``present.plain_table``
writes the same text in a few milliseconds. These tests hold it to rich's own
output, cell for cell, and to the rule that host text stays inert.
"""

from __future__ import annotations

import io
import random
import string
from datetime import UTC, datetime

import pytest
from rich.cells import cell_len
from rich.console import Console

from fleetstat import present, simhostile
from fleetstat.config import Client
from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.text import visible

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
# ASCII, wide and combining characters, an emoji, a soft hyphen (and now and
# then a tab, which rich expands: those tables are left to it).
ALPHABET = string.ascii_letters + "  -:/.()" + "日本語é\u0301ü\U0001f600\u00ad"


def rich_text(rows: list[tuple[str, ...]], width: int) -> str:
    """What rich writes to a file for the summary table of ``rows``."""
    table = present._table(list(present.SUMMARY_COLUMNS), flexible=("error",))
    for row in rows:
        present._row(
            table, *row[:2], present._styled(row[2], "red"), *row[3:6], present._cut(row[6], False)
        )
    console = Console(file=io.StringIO(), width=width, soft_wrap=True, color_system=None)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_plain_table_is_the_text_rich_writes_to_a_file() -> None:
    rnd = random.Random(20261202)

    def text(longest: int) -> str:
        chars = [rnd.choice(ALPHABET) for _ in range(rnd.randint(0, longest))]
        if chars and rnd.random() < 0.02:
            chars[0] = "\t"
        return visible("".join(chars))

    compared = 0
    for _ in range(400):
        width = rnd.choice([40, 60, 80, 100, 120, 160, 200])
        rows = [
            (
                text(rnd.choice([5, 20, 60])),
                f"10.0.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}:22",
                rnd.choice(["ok", "timeout", "host_key_mismatch"]),
                rnd.choice(["-", "5.0", "100.0"]),
                rnd.choice(["-", "12.3"]),
                rnd.choice(["-", "3d 4h", "5m"]),
                text(rnd.choice([0, 10, 80, 300])),
            )
            for _ in range(rnd.randint(0, 6))
        ]
        mine = present.plain_table(present.SUMMARY_COLUMNS, rows, width)
        if mine is None:  # a tab, or no room for the error's header: rich lays it out
            header = [name for name, _ in present.SUMMARY_COLUMNS]
            columns = zip(header, *rows, strict=True)
            fixed = sum(max(cell_len(cell) for cell in column) for column in columns)
            fixed -= max(cell_len(row[6]) for row in [header, *rows])
            tab = any("\t" in cell for row in rows for cell in row)
            assert tab or width - fixed - 2 * 6 - 1 < len("error")
            continue
        assert mine == rich_text(rows, width)
        compared += 1
    assert compared > 150  # most cases are laid out here, not handed back


def _round() -> RoundResult:
    ok = HostResult(Client(ip="10.0.0.1", username="u", name="web-01"), Status.OK, NOW, 1.0)
    evil = Client(ip="10.0.0.9", username="u", name="evil" + simhostile.MARKUP[2])
    error = simhostile.NASTY + " " + "x" * 300
    failed = HostResult(evil, Status.PROBE_ERROR, NOW, 1.0, error=error)
    return RoundResult(NOW, NOW, (ok, failed))


def test_collect_table_to_a_pipe_is_plain_inert_and_as_rich_lays_it_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    result = _round()
    present.print_summary(result)
    output = capsys.readouterr().out
    assert output == rich_text(present.summary_rows(result), present.PIPE_WIDTH)
    for sequence in ("\x1b", "\x9b", "\x07", "\x00", "\r"):
        assert sequence not in output
    assert "\u241b]0;PWNED-TITLE\u2407" in output  # the host's escape, shown
    assert "evil" + simhostile.MARKUP[2] in output  # markup as text
    lines = output.splitlines()
    assert [len(line) for line in lines] == [present.PIPE_WIDTH] * 4
    assert lines[3].endswith("\u2026 ")  # the long error cut at the width


def test_wide_and_narrow_tables_are_left_to_rich(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _round()
    monkeypatch.delenv("COLUMNS", raising=False)
    present.out.cache_clear()
    try:
        present.print_summary(result, wide=True)  # the error whole, on more lines
        wide = capsys.readouterr().out
        monkeypatch.setenv("COLUMNS", "50")  # no room for the error's header
        present.out.cache_clear()
        present.print_summary(result)
        narrow = capsys.readouterr().out
    finally:
        present.out.cache_clear()
    assert "x" * 300 in wide.replace("\n", "").replace(" ", "")
    assert "\u2026" not in wide.splitlines()[-1]
    rows = present.summary_rows(result)
    assert present.plain_table(present.SUMMARY_COLUMNS, rows, 50) is None
    assert narrow == rich_text(rows, 50)
