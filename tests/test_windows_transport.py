"""The Windows command building, for cmd.exe and PowerShell as the default shell."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetstat.config import Client
from fleetstat.errors import TransportError
from fleetstat.model import Status
from fleetstat.transport import posix, ssh, windows
from fleetstat.transport.hostkeys import KnownHosts

ARGV = [
    "--recipient", "-abc_DEF", "--challenge", "AAAA",
    "--since", '{"source": "windows", "record_id": 12}',
    "--top", "5", "--events", "500",
]  # fmt: skip


def decoded(command: str) -> str:
    match = re.search(r"-EncodedCommand ([A-Za-z0-9+/=]+)", command)
    assert match, command
    return base64.b64decode(match.group(1)).decode("utf-16-le")


@pytest.mark.parametrize("shell", ["cmd", "powershell"])
def test_command_line_is_safe_for_the_shell(shell: windows.Shell) -> None:
    command = windows.probe_command(ARGV, shell=shell, run_timeout=60)
    assert command.startswith(
        "powershell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "
    )
    body = command.split("-EncodedCommand ", 1)[1]
    if shell == "cmd":
        # cmd.exe: nothing it would interpret (& | < > ^ % " ( )), and its own exit code
        assert re.fullmatch(r"[A-Za-z0-9+/=]+", body), body[-40:]
    else:
        # PowerShell returns 0/1 for a native command unless told to pass its code on
        encoded, tail = body.split(";", 1)
        assert re.fullmatch(r"[A-Za-z0-9+/=]+", encoded)
        assert tail == " exit $LASTEXITCODE"
    assert decoded(command) == windows.probe_script(ARGV, run_timeout=60)


def test_the_recipient_comb_is_left_out_on_windows() -> None:
    """An optimisation only, and 5,000 of cmd.exe's 8,191 characters once encoded."""
    table = "Q" * 1920
    with_comb = [*ARGV[:4], "--recipient-comb", table, *ARGV[4:]]
    assert windows.posix_only_dropped(with_comb) == ARGV
    assert windows.posix_only_dropped([*ARGV, f"--recipient-comb={table}"]) == ARGV
    command = windows.probe_command(with_comb, shell="cmd", run_timeout=60)
    assert command == windows.probe_command(ARGV, shell="cmd", run_timeout=60)
    assert len(command) < 8191


def test_script_uses_a_private_temp_dir_and_always_cleans_up() -> None:
    script = windows.probe_script(ARGV, run_timeout=60)
    assert "$d = Join-Path $env:TEMP ('fleetstat-' + [guid]::NewGuid().ToString('N'))" in script
    assert "SetAccessRuleProtection($true, $false)" in script  # no inherited access
    assert "GetCurrent().User" in script and "'FullControl'" in script
    # the whole run sits in try, the removal in its finally, before the exit
    try_at = script.index("try { $code = @(Invoke-FleetstatProbe $d)[-1] }")
    finally_at = script.index("finally { Remove-Item -LiteralPath $d -Recurse -Force")
    assert try_at < finally_at < script.index("exit $code")
    assert "[Console]::OpenStandardInput()" in script and "CopyTo($out)" in script


def test_script_tries_py_3_then_python_and_rejects_store_stubs() -> None:
    script = windows.probe_script(ARGV, run_timeout=60)
    assert script.index("exe = 'py'; pre = @('-3')") < script.index("exe = 'python'; pre = @()")
    assert "if ($cmd.Source -like '*\\WindowsApps\\*') { continue }" in script
    assert "sys.version_info < (3, 6)" in script
    assert f"return {posix.EXIT_NO_PYTHON}" in script
    assert "WindowsApps do not count" in script


def test_exit_codes_are_the_posix_ones_so_classification_is_shared() -> None:
    script = windows.probe_script(ARGV, run_timeout=7.5)
    assert f"return {posix.EXIT_NO_TEMP_DIR}" in script
    assert f"return {posix.EXIT_UPLOAD_FAILED}" in script
    assert f"return {posix.EXIT_TIMEOUT}" in script
    assert "WaitForExit(7500)" in script
    assert "__" not in script.replace("$_", "")  # every marker replaced


def test_arguments_are_quoted_for_powershell_and_for_python() -> None:
    weird = ["--since", '{"a": "it\'s $(x) %PATH% `b`"}', "two words", "\u2019curly", ""]
    script = windows.probe_script(weird, run_timeout=60)
    line = re.search(r"\+ ' ' \+ (.*)\n", script)
    assert line is not None
    literal = line.group(1)
    # one PowerShell single-quoted literal: only quotes doubled, $ and ` left alone
    assert literal.startswith("'") and literal.endswith("'")
    inner = literal[1:-1]
    assert "''" in inner and "\u2019\u2019" in inner
    unquoted = inner.replace("''", "'").replace("\u2019\u2019", "\u2019")
    # the MS C runtime's quoting, which python.exe parses back into argv
    assert unquoted == windows.windows_command_line(weird)
    assert windows_argv(unquoted) == weird


def windows_argv(line: str) -> list[str]:
    """CommandLineToArgvW / MS C runtime parsing (the rules list2cmdline targets)."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    have = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            n = 0
            while i < len(line) and line[i] == "\\":
                n += 1
                i += 1
            if i < len(line) and line[i] == '"':
                current.append("\\" * (n // 2))
                if n % 2:
                    current.append('"')
                    i += 1
            else:
                current.append("\\" * n)
            have = True
            continue
        if ch == '"':
            in_quotes = not in_quotes
            have = True
        elif ch in " \t" and not in_quotes:
            if have:
                args.append("".join(current))
                current, have = [], False
        else:
            current.append(ch)
            have = True
        i += 1
    if have:
        args.append("".join(current))
    return args


def test_shell_detection_and_server_version() -> None:
    assert windows.shell_from_detection("Windows_NT\r\n") == "cmd"
    assert windows.shell_from_detection("%OS%\r\n") == "powershell"
    assert windows.is_windows_server("SSH-2.0-OpenSSH_for_Windows_8.1")
    assert windows.is_windows_server("OpenSSH_for_Windows_9.5")
    assert not windows.is_windows_server("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    assert not windows.is_windows_server(None)


# --- the choice in ssh.run_probe ------------------------------------------------------


class FakeStream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


@dataclass
class FakeProcess:
    stdout: FakeStream
    stderr: FakeStream

    def close(self) -> None:
        pass


class FakeConn:
    def __init__(self, version: str, shell_output: str = "Windows_NT\r\n") -> None:
        self.version = version
        self.shell_output = shell_output
        self.ran: list[str] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.version if name == "server_version" else default

    async def create_process(self, command: str, **_options: Any) -> FakeProcess:
        self.ran.append(command)
        return FakeProcess(FakeStream(self.shell_output.encode()), FakeStream(b""))


def settings() -> ssh.TransportSettings:
    return ssh.TransportSettings(
        known_hosts=KnownHosts(Path("/nonexistent"), "off"), run_timeout=30
    )


def choose(conn: FakeConn, os_name: str = "auto") -> str:
    client = Client(ip="192.0.2.1", username="u", password="p", os=os_name)  # type: ignore[arg-type]
    command, on_windows = asyncio.run(ssh._probe_command(conn, client, ARGV, settings()))  # type: ignore[arg-type]
    # The Windows variant of the probe goes with the PowerShell command, only with it.
    assert on_windows == ("powershell" in command.lower())
    return command


def test_posix_hosts_keep_the_one_channel_command() -> None:
    conn = FakeConn("SSH-2.0-OpenSSH_9.2p1 Debian-2")
    assert choose(conn) == posix.probe_command(ARGV, run_timeout=30)
    assert conn.ran == []  # no detection round trip


def test_windows_by_version_string_and_shell_detection() -> None:
    conn = FakeConn("SSH-2.0-OpenSSH_for_Windows_8.1")
    assert choose(conn) == windows.probe_command(ARGV, shell="cmd", run_timeout=30)
    assert conn.ran == [windows.DETECT_COMMAND]
    ps = FakeConn("SSH-2.0-OpenSSH_for_Windows_9.5", shell_output="%OS%\r\n")
    assert choose(ps).endswith("; exit $LASTEXITCODE")


def test_windows_by_config_even_behind_another_version_string() -> None:
    conn = FakeConn("SSH-2.0-OpenSSH_9.5")
    assert choose(conn, "windows").startswith("powershell.exe ")
    assert choose(FakeConn("SSH-2.0-OpenSSH_for_Windows_8.1"), "linux").startswith("exec /bin/sh")


# --- a host that says it is Windows and never stops answering the detection ----------

ENDLESS_BYTES = 64 * 1024 * 1024


class _AnyLogin(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return True


async def _endless_detection(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """Win32-OpenSSH's version string, then 64 MiB for ``echo %OS%``."""
    with contextlib.suppress(OSError, asyncssh.Error):
        if process.command == windows.DETECT_COMMAND:
            chunk = b"Windows_NT" * 6554
            for _ in range(ENDLESS_BYTES // len(chunk)):
                process.stdout.write(chunk)
                await process.stdout.drain()
        process.exit(0)


def test_the_shell_detection_is_read_within_its_bound_on_a_real_ssh_server(
    tmp_path: Path,
) -> None:
    """asyncssh's ``run`` kept everything a host printed for the detection: 64 MiB
    here. It is read like the probe's output now, and a host that overflows it is
    a ``bad_payload``, not the central machine's memory."""

    async def scenario() -> tuple[TransportError, int]:
        server = await asyncssh.create_server(
            _AnyLogin, "127.0.0.1", 0, server_host_keys=[asyncssh.generate_private_key(
                "ssh-ed25519")], process_factory=_endless_detection, encoding=None,
            server_version="OpenSSH_for_Windows_8.1",
        )  # fmt: skip
        port = server.sockets[0].getsockname()[1]
        client = Client(ip="127.0.0.1", port=port, username="u", password="p")
        known = KnownHosts(tmp_path / "known_hosts", "accept-new")
        settings = ssh.TransportSettings(known_hosts=known, connect_timeout=20, run_timeout=30)
        tracemalloc.start()
        try:
            with pytest.raises(TransportError) as caught:
                await ssh.run_probe(client, b"not a probe", ARGV, settings)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            server.close()
            await server.wait_closed()
        return caught.value, peak

    error, peak = asyncio.run(scenario())
    assert error.status is Status.BAD_PAYLOAD, error
    assert f"more than {ssh.DETECT_BYTES} bytes for 'echo %OS%'" in str(error)
    # Both ends of the connection are in this process: still far below 64 MiB.
    assert peak < 4 * 1024 * 1024, peak
