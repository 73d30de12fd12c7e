"""The probe's limits as tests (STYLE habit 8), and the zipapp run for real.

- every probe file imports only the standard library (and its own modules);
- vermin finds nothing newer than Python 3.6;
- the zipapp is deterministic and small;
- the built zipapp, run as the transport runs it (``python3 -I -S probe.pyz``)
  with this interpreter and with Python 3.6, prints one sealed line that the
  server opens, and nothing of the plaintext.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import fleetstat
import fleetstat.probe
from fleetstat import comb, envelope, probe_bundle
from fleetstat.probe import __main__ as probe_main
from fleetstat.probe import common
from fleetstat.transport import posix
from fleetstat.transport.posix import bootstrap

PROBE_DIR = Path(fleetstat.probe.__file__).parent
PROBE_FILES = sorted(PROBE_DIR.glob("*.py"))
PROBE_MODULES = {p.stem for p in PROBE_FILES}
# Third-party modules the probe may use when the host happens to have them
# (DESIGN.md: cryptography, with the pure-Python path as the fallback). Only
# inside a try block, so their absence is never an error.
OPTIONAL_MODULES = {"cryptography", "_sha2"}  # _sha2: the stdlib's SHA-2 from Python 3.12
# Sources (~45 KB deflated) plus the same modules as .pyc for the server's Python
# (probe_bundle.bytecode), which spare same-version hosts ~10 ms of compiling.
SIZE_LIMIT = 160 * 1024
PY36_CANDIDATES = ["/root/.pyenv/versions/3.6.15/bin/python3.6", shutil.which("python3.6")]
PY36 = next((p for p in PY36_CANDIDATES if p and os.access(p, os.X_OK)), None)
LINE_RE = re.compile(rb"\AFLEETSTAT/1 [A-Za-z0-9_-]+\n\Z")


# --- standard library only -------------------------------------------------------


def _imports(tree: ast.AST) -> list[tuple[str, int, bool, int]]:
    """(module, level, inside a try body, line) for every import in ``tree``."""
    found: list[tuple[str, int, bool, int]] = []

    def visit(node: ast.AST, in_try: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0, in_try, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and not node.module:  # from . import a, b
                found.extend((alias.name, node.level, in_try, node.lineno) for alias in node.names)
            else:
                found.append((node.module or "", node.level, in_try, node.lineno))
        if isinstance(node, ast.Try):
            for child in node.body:
                visit(child, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, in_try)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, in_try)

    visit(tree, False)
    return found


@pytest.mark.parametrize("path", PROBE_FILES, ids=lambda p: p.name)
def test_probe_imports_only_stdlib_and_itself(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for module, level, in_try, line in _imports(tree):
        top = module.split(".")[0]
        where = f"{path.name}:{line}"
        if level:
            assert level == 1, f"{where}: relative import leaves the probe package"
            assert top in PROBE_MODULES, f"{where}: .{module} is not a probe module"
        elif top in OPTIONAL_MODULES:
            assert in_try, f"{where}: optional {module} imported outside a try block"
        else:
            assert top != "fleetstat", f"{where}: the probe must not import fleetstat"
            assert top in sys.stdlib_module_names, f"{where}: {module} is not standard library"


def test_import_walker_sees_what_it_should() -> None:
    tree = ast.parse(
        "import os, json.decoder\nfrom . import linux\nfrom .x import y\n"
        "try:\n    import cryptography\nexcept ImportError:\n    pass\n"
    )
    assert _imports(tree) == [
        ("os", 0, False, 1),
        ("json.decoder", 0, False, 1),
        ("linux", 1, False, 2),
        ("x", 1, False, 3),
        ("cryptography", 0, True, 5),
    ]


# --- oldest Python ---------------------------------------------------------------


def _vermin_minimum(target: Path) -> tuple[tuple[int, int] | None, str]:
    """vermin's 'Minimum required versions' for Python 3, and its whole output."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from vermin import main; sys.exit(main())",
            "-t=3.6-",
            "--no-tips",
            "--violations",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    match = re.search(r"Minimum required versions:.*?\b3\.(\d+)", output)
    return ((3, int(match.group(1))) if match else None), output


def test_vermin_says_python_36_is_enough() -> None:
    minimum, output = _vermin_minimum(PROBE_DIR)
    assert minimum is not None, output
    assert minimum <= (3, 6), output
    assert "Target versions not met" not in output, output


def test_vermin_check_would_catch_37(tmp_path: Path) -> None:
    sample = tmp_path / "newer.py"
    sample.write_text("import contextvars\n")
    minimum, output = _vermin_minimum(sample)
    assert minimum == (3, 7), output


# --- the zipapp ------------------------------------------------------------------


def test_zipapp_is_deterministic_and_small() -> None:
    probe_bundle.build_probe.cache_clear()
    probe_bundle.probe_digest.cache_clear()
    first = probe_bundle.build_probe()
    probe_bundle.build_probe.cache_clear()
    second = probe_bundle.build_probe()
    assert first == second
    assert probe_bundle.build_probe() is second  # cached
    assert len(first) < SIZE_LIMIT, f"probe.pyz is {len(first)} bytes"
    assert len(probe_bundle.probe_digest()) == 64


def test_zipapp_layout() -> None:
    archive = zipfile.ZipFile(io.BytesIO(probe_bundle.build_probe()))
    names = archive.namelist()
    assert names == sorted(names)
    assert names[0] == "__main__.py"
    sources = {n for n in names[1:] if n.endswith(".py")}
    assert sources == {f"fleetstat_probe/{p.name}" for p in PROBE_FILES}
    tag = sys.implementation.cache_tag
    compiled = {n for n in names[1:] if not n.endswith(".py")}
    # zipimport loads these two itself and wants the legacy name; zipload's
    # finder serves the rest by cache tag.
    zipimport_loaded = ("__init__.py", "zipload.py")
    assert compiled == {
        f"fleetstat_probe/{p.stem}.pyc"
        if p.name in zipimport_loaded
        else f"fleetstat_probe/{p.stem}.{tag}.pyc"
        for p in PROBE_FILES
    }
    for info in archive.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_DEFLATED
    main = archive.read("__main__.py").decode()
    assert "from fleetstat_probe.__main__ import main" in main
    assert archive.read("fleetstat_probe/linux.py") == (PROBE_DIR / "linux.py").read_bytes()


def test_each_kind_of_host_gets_only_its_platforms_modules() -> None:
    """A round's two variants: everything but the other platform's modules, as
    deterministic as the full archive and smaller than it."""

    def sources(data: bytes) -> set[str]:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        return {n.split("/")[-1].split(".")[0] for n in names if n.startswith("fleetstat_probe/")}

    full = sources(probe_bundle.build_probe())
    for variant, other in (("posix", "windows"), ("windows", "linux")):
        data = probe_bundle.build_probe(variant)
        assert data == probe_bundle._build(
            {
                name: source
                for name, source in probe_bundle.probe_sources().items()
                if name not in probe_bundle.PLATFORM_ONLY[variant]
            }
        )
        left_out = {name[:-3] for name in probe_bundle.PLATFORM_ONLY[variant]}
        assert sources(data) == full - left_out
        assert left_out and all(name.startswith(other) for name in left_out)
        assert len(data) < len(probe_bundle.build_probe())
    # Every module is in one variant at least, and the shared ones in both.
    assert (
        sources(probe_bundle.build_probe("posix")) | sources(probe_bundle.build_probe("windows"))
        == full
    )
    assert {"common", "seal", "registry", "events", "procfs"} <= sources(
        probe_bundle.build_probe("windows")
    ) & sources(probe_bundle.build_probe("posix"))


def test_a_probe_without_its_platforms_modules_says_what_to_set(tmp_path: Path) -> None:
    """The Windows variant on this Linux machine stands for a Windows host that was
    sent the POSIX one: no crash, the common collectors, and the fix in errors."""
    path = tmp_path / "windows.pyz"
    path.write_bytes(probe_bundle.build_probe("windows"))
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    proc = subprocess.run(
        [
            sys.executable, "-I", "-S", str(path),
            "--recipient", envelope.public_key_b64(key.public_key()),
            "--challenge", envelope.b64url_encode(challenge),
            "--cpu-window", "0.1",
        ],
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    doc = envelope.decode_document(envelope.open_line(proc.stdout, key, challenge))
    assert "no collectors for platform 'linux' in this probe" in doc["errors"]["platform"]
    assert 'set os="windows"' in doc["errors"]["platform"]
    assert doc["memory"] is None and doc["host"]["python"].startswith("3.")


def test_probe_version_matches_package() -> None:
    assert fleetstat.__version__ == common.PROBE_VERSION


# --- running it ------------------------------------------------------------------


# This interpreter, and the probe's oldest (when this machine has one).
PYTHONS = [
    pytest.param(sys.executable, id="current"),
    pytest.param(
        PY36,
        id="python3.6",
        marks=pytest.mark.skipif(PY36 is None, reason="no python3.6 on this machine"),
    ),
]


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "probe.pyz"
    path.write_bytes(probe_bundle.build_probe())
    return path


@pytest.mark.parametrize("python", PYTHONS)
def test_zipapp_runs_and_opens(python: str, probe_file: Path) -> None:
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    proc = subprocess.run(
        [
            python,
            "-I",
            "-S",
            str(probe_file),
            "--recipient",
            envelope.public_key_b64(key.public_key()),
            "--challenge",
            envelope.b64url_encode(challenge),
            "--cpu-window",
            "0.1",
        ],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    assert LINE_RE.match(proc.stdout), proc.stdout[:200]  # one line, nothing else

    plaintext = envelope.open_line(proc.stdout, key, challenge)
    doc = envelope.decode_document(plaintext)
    assert doc["errors"] == {}
    assert doc["schema"] == 1
    assert doc["memory"]["total_bytes"] > 0
    assert doc["cpu"]["count"] >= 1 and doc["cpu"]["used_percent"] is not None
    assert doc["uptime_seconds"] > 0
    assert any(d["mount"] == "/" for d in doc["disks"])
    assert doc["host"]["python"].startswith("3.6." if python == PY36 else "3.")

    # Nothing of the plaintext on stdout: no JSON text, no document values,
    # not even the compressed document merely base64-encoded.
    for secret in ("total_bytes", "available_bytes", doc["host"]["os"], "collected_at"):
        assert secret.encode() not in proc.stdout
    hostname = doc["host"]["hostname"]
    if len(hostname) >= 6:  # shorter ones occur in random base64 by chance
        assert hostname.encode() not in proc.stdout
    assert envelope.b64url_encode(plaintext)[8:48].encode() not in proc.stdout


@pytest.mark.parametrize("python", PYTHONS)
def test_remote_script_needs_only_python(python: str, tmp_path: Path) -> None:
    """The whole POSIX remote command, the real probe on stdin, on a PATH that holds
    nothing but ``python3``: the bootstrap makes the private temp dir, writes the
    upload, keeps the deadline and leaves nothing (no mktemp, cat, timeout or rm)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(python)
    work = tmp_path / "tmp"
    work.mkdir()
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    argv = ["--recipient", envelope.public_key_b64(key.public_key())]
    argv += ["--challenge", envelope.b64url_encode(challenge), "--cpu-window", "0"]
    done = subprocess.run(
        ["/bin/sh", "-c", posix.probe_command(argv, run_timeout=60)],
        input=probe_bundle.build_probe(),
        capture_output=True,
        env={"PATH": str(tools), "TMPDIR": str(work)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    doc = envelope.decode_document(envelope.open_line(done.stdout, key, challenge))
    assert doc["errors"] == {}
    assert doc["host"]["python"].startswith("3.6." if python == PY36 else "3.")
    assert list(work.iterdir()) == []


def test_vermin_says_the_bootstrap_runs_on_python_36(tmp_path: Path) -> None:
    source = tmp_path / "bootstrap.py"
    source.write_text(posix.bootstrap(60))
    minimum, output = _vermin_minimum(source)
    assert minimum is not None and minimum <= (3, 6), output
    assert "Target versions not met" not in output, output


# --- the entry point in-process ------------------------------------------------------


def _args(recipient: bytes = b"\x09" * 32, challenge: bytes = b"\x07" * 16) -> list[str]:
    return [
        "--recipient",
        envelope.b64url_encode(recipient),
        "--challenge",
        envelope.b64url_encode(challenge),
        "--cpu-window",
        "0",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipient", "AAAA", "--challenge", "A" * 22], "--recipient must be 32 bytes, got 3"),
        (["--recipient", "A" * 43, "--challenge", "AAAA"], "--challenge must be 16 bytes, got 3"),
        (["--recipient", "A" * 43, "--challenge", "A*" * 11], "--challenge is not base64url"),
        ([*_args(), "--since", "{not json"], "--since is not valid JSON"),
        ([*_args(), "--top", "-1"], "--top must be between 0 and 100"),
        ([*_args(), "--cpu-window", "60"], "--cpu-window must be between 0 and 10 seconds"),
        ([*_args(), "--cpu-window", "nan"], "--cpu-window must be between 0 and 10 seconds"),
        ([*_args(), "--top", "five"], "--top must be a number, got 'five'"),
        ([*_args(), "--verbose"], "unrecognized argument '--verbose'"),
        ([*_args(), "--top"], "--top needs a value"),
        ([*_args(), "--top-when", "disk=90"], "--top-when takes NAME=LIMIT,..."),
        ([*_args(), "--top-when", "cpu"], "--top-when takes NAME=LIMIT,..."),
        ([*_args(), "--top-when", "cpu=lots"], "--top-when cpu= must be a number"),
        (
            [*_args(), "--top-when", "core=95"],
            "NAME one of cgroup-memory, cpu, cpu-core, load, memory, swap",
        ),
        ([*_args(), "--top-when", "memory=-1"], "--top-when memory= must be at least 0"),
        (["--challenge", "A" * 22], "--recipient is required"),
        ([*_args(), "--recipient-comb", "AAAA"], "--recipient-comb must be 1440 bytes, got 3"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert probe_main.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


def test_missing_argument_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe_main.main(["--recipient", "A" * 43]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--challenge" in err and "usage:" in err


def test_help_goes_to_stdout_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe_main.main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage:") and "--cpu-window" in out and err == ""


def test_equals_form_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["=".join(pair) for pair in zip(_args()[::2], _args()[1::2], strict=True)]
    assert argv[0].startswith("--recipient=")
    assert probe_main.main(argv) == 0
    assert capsys.readouterr().out.startswith("FLEETSTAT/1 ")


def test_values_starting_with_a_dash_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    # 0xfb.. encodes as "-..." in base64url: 1 key or challenge in 64 looks like this.
    key = X25519PrivateKey.generate()
    challenge = b"\xfb" + os.urandom(15)
    argv = _args(challenge=challenge)
    argv[1] = envelope.public_key_b64(key.public_key())
    assert argv[3].startswith("-")
    assert probe_main.main(argv) == 0
    out, _err = capsys.readouterr()
    doc = envelope.decode_document(envelope.open_line(out, key, challenge))
    assert doc["schema"] == 1


@pytest.mark.parametrize(
    ("top_when", "reason"),
    [
        ("memory=0", "memory "),  # any host has used some memory: read
        ("cpu=101,swap=101", "below cpu 101, swap 101"),
        ("none", "no cpu, cpu-core, load, memory or swap limit for this host"),
    ],
)
def test_top_when_decides_whether_the_process_table_is_read(
    top_when: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    argv = _args(challenge=challenge)
    argv[1] = envelope.public_key_b64(key.public_key())
    assert probe_main.main([*argv, "--top-when", top_when]) == 0
    doc = envelope.decode_document(envelope.open_line(capsys.readouterr().out, key, challenge))
    processes = doc["processes"]
    assert processes["reason"].startswith(reason)
    if reason.startswith("memory"):
        assert processes["top_memory"]  # the test run itself has resident memory
    else:
        assert processes["top_cpu"] is None and processes["top_memory"] is None
    assert doc["collectors"]["processes"]["ok"] is True


def test_the_recipient_comb_is_taken_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    argv = _args(challenge=challenge)
    argv[1] = envelope.public_key_b64(key.public_key())
    table = envelope.b64url_encode(comb.recipient_comb(envelope.public_key_bytes(key)))
    assert probe_main.main([*argv, "--recipient-comb", table]) == 0
    out, err = capsys.readouterr()
    assert envelope.decode_document(envelope.open_line(out, key, challenge))["schema"] == 1
    assert err == ""  # taken: a table that does not fit is reported on stderr


def test_main_prints_one_opened_line(capsys: pytest.CaptureFixture[str]) -> None:
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    argv = _args(challenge=challenge)
    argv[1] = envelope.public_key_b64(key.public_key())
    assert probe_main.main([*argv, "--top", "2", "--since", '{"journal": "c1"}']) == 0
    out, _err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("FLEETSTAT/1 ")
    doc = envelope.decode_document(envelope.open_line(out, key, challenge))
    assert len(doc["processes"]["top_memory"]) <= 2
    assert doc["security_events"] is None


def test_sealing_failure_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetstat.probe import seal

    def broken(plaintext: bytes, recipient: bytes, challenge: bytes, **options: object) -> bytes:
        raise RuntimeError("no entropy")

    monkeypatch.setattr(seal, "seal", broken)
    assert probe_main.main(_args()) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "sealing failed: RuntimeError: no entropy" in err


def test_encode_document_is_compact_zlib_json() -> None:
    import json
    import zlib

    doc = {"schema": 1, "host": {"hostname": "h\u00e9"}}
    raw = zlib.decompress(probe_main.encode_document(doc))
    assert raw == b'{"schema":1,"host":{"hostname":"h\\u00e9"}}'
    assert json.loads(raw) == doc


def test_bytecode_is_the_source_compiled() -> None:
    """Each .pyc holds exactly its source compiled by this Python (optimize=2: no
    docstrings), behind a PEP 552 unchecked-hash header carrying the source's hash."""
    import ast
    import importlib.util
    import marshal

    archive = zipfile.ZipFile(io.BytesIO(probe_bundle.build_probe()))
    for name in archive.namelist():
        if not name.endswith(".pyc"):
            continue
        data = archive.read(name)
        source = archive.read(name.split(".")[0] + ".py")
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert data[4:8] == (1).to_bytes(4, "little")
        assert data[8:16] == importlib.util.source_hash(source)
        expected = compile(
            source, name.split(".")[0] + ".py", "exec", dont_inherit=True, optimize=2
        )
        assert marshal.loads(data[16:]) == expected
        docstring = ast.get_docstring(ast.parse(source), clean=False)
        assert docstring is None or docstring not in expected.co_consts


def test_probe_runs_from_bytecode_on_the_same_python(probe_file: Path) -> None:
    """zipload serves the .pyc on a same-version Python and never compiles those modules."""
    script = (
        "import sys, builtins;sys.path.insert(0, sys.argv[1]);"
        "from fleetstat_probe.zipload import install;install();"
        "calls = [];real = builtins.compile;"
        "builtins.compile = lambda *a, **k: calls.append(a[1]) or real(*a, **k);"
        "from fleetstat_probe import registry, seal, linux;print(len(calls))"
    )
    assert _run_with_archive(script, probe_file) == "0"


def _run_with_archive(script: str, archive: Path) -> str:
    """stdout of ``python -I -S -c script archive`` (this Python), which must exit 0."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(archive)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


_LOADER_PROBE = (
    "import sys;sys.path.insert(0, sys.argv[1]);"
    "import fleetstat_probe.zipload as z;print(z.__file__.rsplit('/', 1)[1])"
)


def test_zipimport_loads_its_two_modules_from_bytecode(probe_file: Path) -> None:
    assert _run_with_archive(_LOADER_PROBE, probe_file) == "zipload.pyc"


def test_foreign_bytecode_falls_back_to_the_source(tmp_path: Path) -> None:
    """Another Python's magic number (any host not on the server's minor version)
    makes zipimport and zipload use the sources, and the probe still runs."""
    original = zipfile.ZipFile(io.BytesIO(probe_bundle.build_probe()))
    foreign = tmp_path / "probe.pyz"
    with zipfile.ZipFile(foreign, "w", zipfile.ZIP_DEFLATED) as out:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.endswith(".pyc"):
                data = b"\x00\x00\r\n" + data[4:]  # a magic no Python uses
            out.writestr(info, data)
    assert _run_with_archive(_LOADER_PROBE, foreign) == "zipload.py"
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    args = ["--recipient", envelope.public_key_b64(key.public_key())]
    args += ["--challenge", envelope.b64url_encode(challenge), "--cpu-window", "0"]
    # As the transport runs it: the archive on stdin, uploaded by the bootstrap
    # through a private temp dir it removes at once.
    workdir = tmp_path / "tmp"
    workdir.mkdir()
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", bootstrap(60), *args],
        input=foreign.read_bytes(),
        capture_output=True,
        env={"TMPDIR": str(workdir)},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr.decode()
    doc = envelope.decode_document(envelope.open_line(run.stdout, key, challenge))
    assert doc["errors"] == {}
    assert list(workdir.iterdir()) == []
