"""The command a Windows host runs (Win32-OpenSSH, cmd.exe or PowerShell as default shell).

The same contract as ``posix.py``: a private temp dir, the probe written from the
channel's stdin, run with a deadline, the dir removed whatever happened, and the
same exit codes for the same failures (119 no Python, 120 no temp dir, 121
upload failed, 124 run timeout), so ``ssh.raise_for_exit`` classifies both.

The work is one Windows PowerShell 5.1 script (present on every Windows that
ships OpenSSH: Server 2019+, Windows 10 1809+) given to ``powershell.exe`` as
``-EncodedCommand`` (base64 of UTF-16LE). That is one exec channel with the
probe on stdin for both default shells, and no quoting problem: the command
line holds only ``[A-Za-z0-9+/=]`` and fixed words, which cmd.exe and
PowerShell both pass through untouched. What differs per shell:

- cmd.exe returns the exit code of its last command as is;
- PowerShell as the default shell returns 0 or 1 (the last command's success)
  unless told ``exit $LASTEXITCODE``, which would hide no_python and timeouts.

Inside the script, the probe's arguments are one PowerShell single-quoted
literal holding a command line quoted by the MS C runtime's rules (what
``python.exe`` parses): Windows PowerShell 5.1 does not escape embedded double
quotes when it builds a native command line, which would break ``--since``
JSON, so the process is started with ``ProcessStartInfo.Arguments`` instead.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Sequence
from typing import Literal

from fleetstat.transport import posix

Shell = Literal["cmd", "powershell"]

# The App Execution Alias stubs that open the Microsoft Store instead of running
# Python live in %LOCALAPPDATA%\Microsoft\WindowsApps; they are never a Python.
STORE_STUB_DIR = "\\WindowsApps\\"

# `echo %OS%` prints "Windows_NT" in cmd.exe and "%OS%" in PowerShell: one cheap
# exec request on the already open connection tells the default shell.
DETECT_COMMAND = "echo %OS%"

_SCRIPT = r"""function Invoke-FleetstatProbe($d) {
  try {
    $acl = New-Object System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    $me = [System.Security.Principal.WindowsIdentity]::GetCurrent().User
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule(
      $me, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
    $acl.AddAccessRule($rule)
    $null = [System.IO.Directory]::CreateDirectory($d, $acl)
  } catch { [Console]::Error.WriteLine("fleetstat: cannot create $d : $_"); return __NO_TEMP__ }
  $f = Join-Path $d 'probe.pyz'
  try {
    $in = [Console]::OpenStandardInput()
    $out = [System.IO.File]::Create($f)
    try { $in.CopyTo($out) } finally { $out.Close() }
  } catch { [Console]::Error.WriteLine("fleetstat: cannot write the probe: $_"); return __UPLOAD__ }
  $py = $null; $pre = @()
  foreach ($c in @(@{exe = 'py'; pre = @('-3')}, @{exe = 'python'; pre = @()})) {
    foreach ($cmd in @(Get-Command $c.exe -CommandType Application -ErrorAction SilentlyContinue)) {
      if ($cmd.Source -like '*__STUB__*') { continue }
      $pv = $c.pre
      & $cmd.Source @pv -c 'import sys; sys.exit(sys.version_info < (3, 6))' 2>$null | Out-Null
      if ($LASTEXITCODE -eq 0) { $py = $cmd.Source; $pre = $c.pre; break }
    }
    if ($py) { break }
  }
  if (-not $py) {
    [Console]::Error.WriteLine('fleetstat: no Python 3.6+ (py -3 or python) on PATH; ' +
      'the Microsoft Store stubs in WindowsApps do not count')
    return __NO_PYTHON__
  }
  $si = New-Object System.Diagnostics.ProcessStartInfo
  $si.FileName = $py
  $si.Arguments = (($pre + @('-I', '-S', ('"' + $f + '"'))) -join ' ') + ' ' + '__ARGS__'
  $si.UseShellExecute = $false
  $p = [System.Diagnostics.Process]::Start($si)
  if ($p.WaitForExit(__RUN_MS__)) { return $p.ExitCode }
  $p.Kill()
  [Console]::Error.WriteLine('fleetstat: probe stopped after the run timeout')
  return __TIMEOUT__
}
$code = 1
$d = Join-Path $env:TEMP ('fleetstat-' + [guid]::NewGuid().ToString('N'))
try { $code = @(Invoke-FleetstatProbe $d)[-1] }
finally { Remove-Item -LiteralPath $d -Recurse -Force -ErrorAction SilentlyContinue }
exit $code
"""


def powershell_literal(text: str) -> str:
    """``text`` as a PowerShell single-quoted string: only ``'`` is special (doubled).

    PowerShell also treats the typographic quotes U+2018..U+201B as single
    quotes, so those are doubled too.
    """
    for quote in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        text = text.replace(quote, quote * 2)
    return f"'{text}'"


def windows_command_line(argv: Sequence[str]) -> str:
    """``argv`` quoted for the MS C runtime's parser (what python.exe uses)."""
    return subprocess.list2cmdline(list(argv))


def probe_script(argv: Sequence[str], *, run_timeout: float) -> str:
    """The PowerShell script: temp dir, upload from stdin, interpreter, run, clean up."""
    run_ms = max(1000, int(run_timeout * 1000))
    args = powershell_literal(windows_command_line(argv))
    values = {
        "__NO_TEMP__": str(posix.EXIT_NO_TEMP_DIR),
        "__UPLOAD__": str(posix.EXIT_UPLOAD_FAILED),
        "__NO_PYTHON__": str(posix.EXIT_NO_PYTHON),
        "__TIMEOUT__": str(posix.EXIT_TIMEOUT),
        "__RUN_MS__": str(run_ms),
        "__STUB__": STORE_STUB_DIR,
    }
    script = _SCRIPT
    for marker, value in values.items():
        script = script.replace(marker, value)
    # Last, so that nothing in the (quoted) arguments is taken for a marker.
    return script.replace("'__ARGS__'", args)


def encode_script(script: str) -> str:
    """``-EncodedCommand``'s argument: base64 of the UTF-16LE script."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def probe_command(argv: Sequence[str], *, shell: Shell, run_timeout: float) -> str:
    """The exec request for a Windows host whose default shell is ``shell``.

    The probe arrives on stdin; the caller must send EOF after it.
    """
    encoded = encode_script(probe_script(posix_only_dropped(argv), run_timeout=run_timeout))
    command = (
        "powershell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass "
        f"-EncodedCommand {encoded}"
    )
    if shell == "powershell":
        return command + "; exit $LASTEXITCODE"
    return command


# Probe options left out on Windows. ``--recipient-comb`` (1,920 characters, an
# optimisation only) would take some 5,100 of cmd.exe's 8,191 once the script is
# UTF-16 and base64 for -EncodedCommand.
POSIX_ONLY_OPTIONS = ("--recipient-comb",)


def posix_only_dropped(argv: Sequence[str]) -> list[str]:
    """``argv`` without the :data:`POSIX_ONLY_OPTIONS` and their values."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in POSIX_ONLY_OPTIONS:
            skip = True
        elif word.partition("=")[0] not in POSIX_ONLY_OPTIONS:
            out.append(word)
    return out


def shell_from_detection(output: str) -> Shell:
    """The default shell from what :data:`DETECT_COMMAND` printed."""
    return "cmd" if output.strip() == "Windows_NT" else "powershell"


def is_windows_server(server_version: str | None) -> bool:
    """True for Win32-OpenSSH's identification string (``SSH-2.0-OpenSSH_for_Windows_8.1``)."""
    return "windows" in (server_version or "").lower()
