"""Every way a user can get a command wrong ends in one clear line and an exit code:
2 for bad usage (click's own errors and ``UsageError``) and config errors, 1 for a
runtime failure; never a traceback. A real ``fleetstat`` process each time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleetstat.cli import app

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
CONFIG = """<fleetstat>
  <database url="sqlite:///{db}"/>
  <defaults known-hosts="{known_hosts}"/>
  <client ip="127.0.0.1" port="9" name="web-01" username="u" key="{key}"/>
</fleetstat>
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEETSTAT, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "fleetstat.xml"
    key = tmp_path / "id_ed25519"
    key.write_text("not used: nothing is collected\n")
    path.write_text(
        CONFIG.format(db=tmp_path / "f.db", known_hosts=tmp_path / "known_hosts", key=key)
    )
    return path


def _commands() -> list[str]:
    names: list[str] = []
    for name, command in app.commands.items():
        subcommands = getattr(command, "commands", None)
        names += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    return names


# One bad argument per command, each a mistake a user makes, with a word the message
# must contain. A new command adds its line here (the test below insists).
BAD: dict[str, tuple[list[str], str]] = {
    "check-config": ([], "give the config file"),
    "collect": (["--quiet=yes"], "--quiet"),
    "keygen": (["--output"], "--output"),
    "probe": ([], "--output"),
    "open-envelope": (["line.txt", "--challenge", "AAAAAAAAAAAAAAAAAAAAAA"], "--key"),
    "alerts": (["-c", "{config}", "--pending", "yes"], "yes"),
    "watch": (["-c", "{config}", "--every", "0"], "--every"),
    "report": (["-c", "{config}", "--host", "nope"], "nope"),
    "history": (["web-01", "-c", "{config}", "--since", "0"], "--since"),
    "prune": (["-c", "{config}", "--db"], "--db"),
    "demo": (["--hosts", "0"], "--hosts"),
    "db upgrade": ([], "--config"),
    "mail flush": (["-c", "{config}", "--due-only=1"], "--due-only"),
    "mail list": (["-c", "{config}", "--limit", "0"], "--limit"),
    "serve": (["-c", "{config}", "--listen", "web:99999"], "--listen"),
    "user add": (["two words", "-c", "{config}"], "bad user name"),
    "user remove": ([], "NAME"),
    "user list": (["-c", "{config}", "--db"], "--db"),
    "token create": (["-c", "{config}"], "--name"),
    "token list": (["-c", "{config}", "--db"], "--db"),
    "token revoke": (["-c", "{config}"], "--name"),
    "spool replay": (["-c", "{config}", "--db"], "--db"),
    "spool status": (["-c", "{config}", "--json=yes"], "--json"),
    "worker": (["-c", "{config}", "--zone", "dc 2"], "zone"),
    "cluster status": (["-c", "{config}", "--since", "0"], "--since"),
}


def test_every_command_has_a_bad_argument_case() -> None:
    assert sorted(BAD) == sorted(_commands())


@pytest.mark.parametrize("command", _commands())
def test_a_bad_argument_exits_2_with_a_message_and_no_traceback(command: str, config: Path) -> None:
    args, word = BAD[command]
    done = run(*command.split(), *(arg.format(config=config) for arg in args))
    assert done.returncode == 2, done.stderr
    assert word in done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


@pytest.mark.parametrize("command", _commands())
def test_an_unknown_option_exits_2(command: str) -> None:
    done = run(*command.split(), "--no-such-option")
    assert done.returncode == 2
    assert "No such option '--no-such-option'" in done.stderr and "Traceback" not in done.stderr


def test_history_of_an_empty_window_is_a_usage_error(config: Path) -> None:
    done = run("history", "web-01", "-c", str(config), "--since", "0s")
    assert done.returncode == 2 and "Invalid value for '--since'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("damage", ["folder", "bad line", "not utf-8"])
def test_an_unusable_known_hosts_file_is_a_config_error_naming_it(
    config: Path, damage: str
) -> None:
    known_hosts = config.parent / "known_hosts"
    if damage == "folder":
        known_hosts.mkdir()
    elif damage == "bad line":
        known_hosts.write_text("garbage\n")
    else:
        known_hosts.write_bytes(b"\xff\xfe\x00garbage\n")
    done = run("collect", "-c", str(config))
    assert done.returncode == 2, done.stderr
    assert f"{known_hosts}: known_hosts file:" in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_demo_without_sshd_says_what_to_install(tmp_path: Path) -> None:
    """sshd hidden by a private mount namespace: /dev/null (not executable) bound over it."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    done = subprocess.run(
        ["unshare", "--map-root-user", "--mount", "sh", "-c",
         'mount --bind /dev/null "$1" && shift && exec "$@"', "-", sshd,
         FLEETSTAT, "demo", "--dir", str(tmp_path / "demo"), "--hosts", "1"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "sshd is not installed" in done.stderr and "scripts/setup" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bug_is_one_line_without_v_and_the_traceback_with_it(config: Path) -> None:
    """An exception outside fleetstat's tree is a bug: still no traceback unless -v."""
    script = (
        "import sys; from fleetstat import cli, present; sys.argv[0] = 'fleetstat'\n"
        "def broken(*a, **k): raise KeyError('boom')\n"
        "present.print_summary = broken\n"
        "import fleetstat.commands.collect as c; c.print_summary = broken\n"
        "sys.exit(cli.run())\n"
    )
    for verbose in ([], ["-v"]):
        done = subprocess.run(
            [sys.executable, "-c", script, *verbose, "collect", "-c", str(config)],
            capture_output=True, text=True, timeout=60, cwd=config.parent,
        )  # fmt: skip
        assert done.returncode == 1
        assert "internal error (a bug in fleetstat): KeyError: 'boom'" in done.stderr
        assert ("Traceback" in done.stderr) == bool(verbose)
