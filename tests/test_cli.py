"""The ``fleetstat`` command as a user runs it: a real process, real files."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleetstat.cli import app
from fleetstat.probe_bundle import build_probe

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "config"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETSTAT, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_keygen_writes_a_private_key_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    done = run("keygen", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    key = tmp_path / "fleetstat.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = (tmp_path / "fleetstat.key.pub").read_text().strip()
    assert public in done.stdout
    before = key.read_bytes()

    again = run("keygen", cwd=tmp_path)
    assert again.returncode != 0
    assert "--force" in again.stderr
    assert key.read_bytes() == before

    forced = run("keygen", "--force", str(key))
    assert forced.returncode == 0
    assert key.read_bytes() != before


def test_probe_output_is_the_uploaded_zipapp_and_runs(tmp_path: Path) -> None:
    out = tmp_path / "probe.pyz"
    done = run("probe", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == build_probe()
    usage = subprocess.run(
        [sys.executable, "-I", "-S", str(out), "--help"], capture_output=True, text=True
    )
    assert "--recipient" in usage.stdout + usage.stderr


def test_the_console_script_flushes_everything_before_its_fast_exit() -> None:
    """main() leaves with os._exit (no interpreter teardown): what a command wrote
    must still arrive whole, through a pipe, with the command's exit code."""
    normal_exit = "import sys; from fleetstat.cli import app; sys.argv[0] = 'fleetstat'; app()"
    expected = subprocess.run(
        [sys.executable, "-c", normal_exit, "--help"], capture_output=True, text=True
    ).stdout
    assert len(expected) > 1000
    done = run("--help")
    assert (done.returncode, done.stdout) == (0, expected)
    # A reader that stops early: a clean exit code, no traceback.
    pipe = subprocess.run(
        f"{FLEETSTAT} --help | head -c 10", shell=True, capture_output=True, text=True
    )
    assert pipe.returncode == 0 and len(pipe.stdout) == 10
    assert "Traceback" not in pipe.stderr


def test_check_config_accepts_the_assignment_example() -> None:
    done = run("check-config", str(FIXTURES / "assignment.xml"))
    assert done.returncode == 0, done.stderr
    assert "1 client(s), 2 alert rule(s)" in done.stdout


def test_check_config_reports_every_issue_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(
        "<fleetstat>\n"
        '  <client ip="10.0.0.1" port="70000" username="u" password="p" mail="x@example.com"/>\n'
        '  <client ip="10.0.0.2" username="u" mail="not-an-address"/>\n'
        "</fleetstat>\n"
    )
    done = run("check-config", str(bad))
    assert done.returncode == 2
    assert f"{bad}:2" in done.stderr  # the port
    assert f"{bad}:3" in done.stderr  # the mail address and the missing credential


def test_the_assignments_literal_example_names_the_typographic_quotes() -> None:
    done = run("check-config", str(FIXTURES / "assignment_literal.xml"))
    assert done.returncode == 2
    assert re.search(r"assignment_literal\.xml:\d+: .*typographic", done.stderr)


def _commands() -> list[str]:
    names: list[str] = []
    for name, command in app.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            names += [f"{name} {sub}" for sub in subcommands]
        else:
            names.append(name)
    return names


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_an_example_and_is_in_the_readme(command: str) -> None:
    done = run(*command.split(), "--help")
    assert done.returncode == 0
    assert "Example" in done.stdout, f"fleetstat {command} --help shows no example"
    readme = (ROOT / "README.md").read_text()
    assert f"fleetstat {command}" in readme, f"README does not mention fleetstat {command}"
