"""What the README and docs/ tell people to type works as shown (issue 13).

Every ``fleetstat ...`` command in their shell blocks and inline code parses with
the real command line: the command exists, every option exists and takes the
value shown. The first steps of the README run for real, and its full config
example loads. The repository stands alone: nothing points into ../shared.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from fleetstat.cli import app
from fleetstat.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "contrib" / "README.md"]
FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")


def shell_lines(text: str) -> list[str]:
    """Lines of fenced shell blocks, with backslash continuations joined."""
    lines, block, joined = [], None, ""
    for line in text.splitlines():
        fence = re.match(r"\s*```(\w*)", line)
        if fence:
            block = None if block is not None else fence.group(1)
            continue
        if block not in ("sh", "bash", "console"):
            continue
        joined += line.rstrip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            lines.append(joined)
            joined = ""
    return lines


def commands(path: Path) -> list[tuple[str, bool]]:
    """``(command, complete)``: a shell block's line is typed as it is; inline code
    may name a command without its arguments (`fleetstat history`)."""
    text = path.read_text(encoding="utf-8")
    found = []
    for line in shell_lines(text):
        line = re.sub(r"\s+#.*$", "", line).strip()  # a comment after the command
        line = line.removeprefix(".venv/bin/")
        if line.startswith("fleetstat "):
            found.append((line, True))
    found += [(span, False) for span in re.findall(r"`(fleetstat [a-z][^`]*)`", text)]
    return found


def variants(command: str) -> list[list[str]]:
    """``[--json|--csv]`` and ``[--host NAME]``: once without the optional parts,
    and once with each alternative of every one."""
    optional = re.findall(r"\[([^\[\]]+)\]", command)
    bare = re.sub(r"\s*\[[^\[\]]+\]", "", command)
    out = [shlex.split(bare)]
    for part in optional:
        for alternative in part.split("|"):
            out.append(shlex.split(f"{bare} {alternative}"))
    return out


def parse(argv: list[str], complete: bool) -> None:
    """Resolve the command through click's groups and parse its arguments for real;
    for a mention (not ``complete``), only that its options exist."""
    assert argv[0] == "fleetstat"
    command: click.Command = app
    words = argv[1:]
    while isinstance(command, click.Group):
        name, words = words[0], words[1:]
        found = command.get_command(click.Context(command), name)
        if found is None:
            raise click.UsageError(f"no command {name!r}")
        command = found
    if complete:
        with command.make_context(command.name or "", list(words)):
            return
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for word in words:
        if word.startswith("-") and word.split("=", 1)[0] not in known:
            raise click.NoSuchOption(word)


ALL = sorted({(path.relative_to(ROOT).as_posix(), *c) for path in DOCS for c in commands(path)})


def test_the_docs_show_commands() -> None:
    assert len(ALL) > 30  # the extraction works: a regex change must not empty this test


@pytest.mark.parametrize(("where", "command", "complete"), ALL)
def test_every_command_shown_parses(where: str, command: str, complete: bool) -> None:
    for argv in variants(command):
        try:
            parse(argv, complete)
        except click.ClickException as exc:
            pytest.fail(f"{where}: `{' '.join(argv)}`: {exc.format_message()}")


def test_nothing_points_outside_the_repository() -> None:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text, path
        assert "DESIGN.md" not in text, path


def test_the_first_steps_run(tmp_path: Path) -> None:
    """keygen, check-config (the README's full config example), probe, db upgrade."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [FLEETSTAT, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    full = re.search(r"```xml\n(<fleetstat>\n  <database.*?</fleetstat>)\n```", readme, re.S)
    assert full is not None, "the README's full config example"
    config = tmp_path / "fleetstat.xml"
    config.write_text(full.group(1), encoding="utf-8")
    config.chmod(0o600)
    loaded = load_config(config, env={})
    assert loaded.clients and loaded.smtp is not None

    run("keygen", str(tmp_path / "etc" / "fleetstat.key"))
    checked = run("check-config", "-c", str(config))
    assert f"{config}: ok" in checked.stdout
    run("probe", "--output", "probe.pyz")
    assert (tmp_path / "probe.pyz").stat().st_size > 10_000
    run("db", "upgrade", "-c", str(config))
    assert (tmp_path / "fleetstat.db").exists()


def test_open_envelope_runs_the_probe_here_and_opens_a_line_by_hand(tmp_path: Path) -> None:
    """The README's fix for bad_payload and probe_error, as docs/probe.md shows it."""

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [FLEETSTAT, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        assert (done.returncode == 0) == ok, (args, done.stdout, done.stderr)
        return done

    here = json.loads(run("open-envelope").stdout)
    assert here["schema"] == 1 and here["memory"]["total_bytes"] > 0

    run("keygen", "fleetstat.key")
    run("probe", "--output", "probe.pyz")
    challenge = "AAAAAAAAAAAAAAAAAAAAAA"  # 16 zero bytes, as docs/probe.md shows
    public = (tmp_path / "fleetstat.key.pub").read_text().strip()
    by_hand = subprocess.run(
        [sys.executable, "probe.pyz", "--recipient", public, "--challenge", challenge],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=True,
    )  # fmt: skip
    (tmp_path / "line.txt").write_text(by_hand.stdout)
    opened = run("open-envelope", "--key", "fleetstat.key", "--challenge", challenge, "line.txt")
    assert json.loads(opened.stdout)["host"]["hostname"]
    wrong = run("open-envelope", "--key", "fleetstat.key", "--challenge", "A" * 21 + "Q",
                "line.txt", ok=False)  # fmt: skip
    assert wrong.returncode == 1 and "--challenge" in wrong.stderr
