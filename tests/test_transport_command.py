"""The POSIX remote command, run by a real /bin/sh without SSH in between."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fleetstat.transport import posix


def as_zipapp(source: bytes) -> bytes:
    """``source`` as the probe zipapp the remote command expects: run by
    ``fleetstat_probe.__main__.main()`` after ``fleetstat_probe.zipload.install()``."""
    main = f"def main():\n    exec(compile({source!r}, 'probe', 'exec'), {{}})\n    return 0\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fleetstat_probe/__init__.py", "")
        archive.writestr("fleetstat_probe/zipload.py", "def install():\n    return False\n")
        archive.writestr("fleetstat_probe/__main__.py", main)
    return buffer.getvalue()


def run_remote(
    tmp_path: Path,
    payload: bytes,
    argv: list[str],
    run_timeout: float = 5,
    env=None,
    interpreter: str | None = None,
    shell: str = "/bin/sh",
):
    """Run the remote command on ``payload`` (Python source, packed as a zipapp)."""
    payload = as_zipapp(payload) if payload else payload
    command = posix.probe_command(argv, run_timeout=run_timeout, interpreter=interpreter)
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    return subprocess.run(
        [shell, "-c", command],
        input=payload,
        capture_output=True,
        env={**base, **(env or {})},
        timeout=30,
    )


def test_script_has_no_characters_that_break_outer_quoting() -> None:
    command = posix.probe_command(["--x"], run_timeout=60)
    inner = command.split("'")[1]
    assert "\\" not in inner
    assert "!" not in inner.replace("!\n", "")


def test_arguments_are_passed_verbatim_and_quoted(tmp_path: Path) -> None:
    payload = b"import sys, json; print(json.dumps(sys.argv[1:]))\n"
    weird = ["a b", "$(touch /tmp/pwned)", "it's", '"q"', "--x=;rm -rf /"]
    done = run_remote(tmp_path, payload, weird)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == (
        '["a b", "$(touch /tmp/pwned)", "it\'s", "\\"q\\"", "--x=;rm -rf /"]'
    )


def test_the_upload_is_private_and_gone_before_the_probe_runs(tmp_path: Path) -> None:
    """The probe runs from an open descriptor of a file that, like its private
    directory under TMPDIR, was removed before the upload was even read."""
    payload = (
        b"import os, stat, sys\n"
        b"archive = sys.path[0]\n"
        b"target = os.readlink(archive)\n"
        b"print(archive, oct(stat.S_IMODE(os.stat(archive).st_mode)), target)\n"
    )
    done = run_remote(tmp_path, payload, [])
    assert done.returncode == 0, done.stderr
    archive, mode, target, deleted = done.stdout.decode().split()
    assert archive.startswith("/proc/self/fd/")
    assert mode == "0o600"
    assert deleted == "(deleted)"
    folder = Path(target).parent
    assert folder.parent == tmp_path and len(folder.name) == len("fleetstat.") + 24
    assert list(tmp_path.iterdir()) == []


def test_probe_failure_keeps_exit_code_and_leaves_nothing(tmp_path: Path) -> None:
    done = run_remote(tmp_path, b"import sys; sys.exit(7)\n", [])
    assert done.returncode == 7
    assert list(tmp_path.iterdir()) == []


def test_hung_probe_is_killed_at_the_run_timeout(tmp_path: Path) -> None:
    done = run_remote(tmp_path, b"import time\ntime.sleep(60)\n", [], run_timeout=1)
    # The shells exec'd python3, so it is python3 that the alarm ended (over SSH
    # this is exit signal "ALRM", which the transport reports as EXIT_ALARM).
    assert done.returncode == -signal.SIGALRM
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_upload_is_ended_by_the_alarm_and_leaves_nothing(tmp_path: Path) -> None:
    """The deadline holds while stdin is still being read: nothing is on disk then."""
    command = posix.probe_command([], run_timeout=1)
    with subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path)},
    ) as proc:
        assert proc.stdin is not None
        proc.stdin.write(b"PK")  # the start of a zip, then nothing and no EOF
        proc.stdin.flush()
        assert proc.wait(timeout=30) == -signal.SIGALRM
        proc.stdin.close()
    assert list(tmp_path.iterdir()) == []


def test_no_python_is_reported_with_its_own_code(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "sh").symlink_to("/bin/sh")  # nothing else: no python3, no python
    work = tmp_path / "tmp"
    work.mkdir()
    done = run_remote(work, b"", [], env={"PATH": str(tools), "TMPDIR": str(work)})
    assert done.returncode == posix.EXIT_NO_PYTHON
    assert b"no python3" in done.stderr
    assert list(work.iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/bin/dash"), reason="needs dash")
def test_runs_under_dash_as_well(tmp_path: Path) -> None:
    command = posix.probe_command(["ok"], run_timeout=5)
    done = subprocess.run(
        ["/bin/dash", "-c", command],
        input=as_zipapp(b"import sys; print(sys.argv[1])\n"),
        capture_output=True,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path)},
    )
    assert done.stdout == b"ok\n"


WEIRD = ["a b", "$(touch /tmp/pwned)", "it's", '"q"', "--x=;rm -rf /", "-c"]


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_python3_started_directly_runs_the_same_bootstrap(tmp_path: Path, shell: str) -> None:
    """A kept connection's form: the login shell execs python3 itself; the
    arguments arrive verbatim and nothing is left behind, as with the script."""
    payload = b"import sys, json; print(json.dumps(sys.argv[1:]))\n"
    done = run_remote(tmp_path, payload, WEIRD, interpreter=posix.DIRECT, shell=shell)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == WEIRD
    assert list(tmp_path.iterdir()) == []
    command = posix.probe_command(WEIRD, run_timeout=5, interpreter=posix.DIRECT)
    assert command.startswith("exec python3 -I -S -c ") and "/bin/sh" not in command


def test_no_python3_for_the_direct_form_is_told_from_a_failing_probe(tmp_path: Path) -> None:
    """With only ``python`` on PATH the direct form never starts: that is
    interpreter_missing (the script then runs); a probe's own failure is not."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python").symlink_to(sys.executable)  # python, no python3
    work = tmp_path / "tmp"
    work.mkdir()
    env = {"PATH": str(tools), "TMPDIR": str(work)}
    direct = run_remote(work, b"print('ran')\n", [], env=env, interpreter=posix.DIRECT)
    assert direct.returncode == 127 and direct.stdout == b""
    assert posix.interpreter_missing(direct.returncode, direct.stdout, direct.stderr)
    script = run_remote(work, b"print('ran')\n", [], env=env)
    assert (script.returncode, script.stdout) == (0, b"ran\n"), script.stderr
    failed = run_remote(work, b"import sys; sys.exit(7)\n", [], interpreter="python", env=env)
    assert failed.returncode == 7
    assert not posix.interpreter_missing(failed.returncode, failed.stdout, failed.stderr)
    assert not posix.interpreter_missing(127, b"FLEETSTAT/1 x\n", b"")
    assert posix.interpreter_missing(1, b"", b"python3: Command not found.\n")  # csh
    assert list(work.iterdir()) == []


def test_every_preferred_cipher_is_one_asyncssh_knows() -> None:
    from asyncssh.encryption import get_encryption_algs

    from fleetstat.transport.ssh import ENCRYPTION_ALGS

    known = {alg.decode() for alg in get_encryption_algs()}
    assert set(ENCRYPTION_ALGS) <= known
    assert ENCRYPTION_ALGS[0].startswith("aes128-gcm")  # the cheap AEAD first (see ssh.py)


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [
        (posix.EXIT_ALARM, "timeout", "run timeout"),
        (posix.EXIT_TIMEOUT, "timeout", "run timeout"),
        (posix.EXIT_KILLED, "probe_error", "SIGKILL"),
        (posix.EXIT_NO_PYTHON, "no_python", "python3"),
        (posix.EXIT_UPLOAD_FAILED, "probe_error", "cannot write the probe"),
    ],
)
def test_exit_codes_are_classified(code: int, status: str, words: str) -> None:
    from fleetstat.errors import TransportError
    from fleetstat.transport.ssh import ProbeRun, raise_for_exit

    settings = type("S", (), {"run_timeout": 60.0})()
    with pytest.raises(TransportError) as caught:
        raise_for_exit(ProbeRun(b"", b"", code), "10.0.0.5:22", settings)  # type: ignore[arg-type]
    assert caught.value.status.value == status
    assert words in str(caught.value)
