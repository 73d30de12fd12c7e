"""The round's scheduling, deadlines and classification, against a fake transport."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleetstat import envelope
from fleetstat.collector import RoundPlan, collect_round, find_envelope_line, top_when
from fleetstat.config import Client, Config, load_config
from fleetstat.errors import EnvelopeError, TransportError
from fleetstat.model import Status
from fleetstat.transport import KnownHosts, ProbeRun, TransportSettings

DOC = {"schema": 1, "memory": {"used_percent": 41.0}, "cpu": {"used_percent": 3.0}}


def make_config(tmp_path: Path, n: int) -> Config:
    clients = "\n".join(
        f'<client ip="10.9.0.{i + 1}" username="u" password="p" mail="a@example.com"/>'
        for i in range(n)
    )
    path = tmp_path / "c.xml"
    path.write_text(f"<fleetstat>{clients}</fleetstat>")
    path.chmod(0o600)
    return load_config(path)


def plan(tmp_path: Path, *, concurrency: int = 10, run_timeout: float = 1.0) -> RoundPlan:
    settings = TransportSettings(
        known_hosts=KnownHosts(tmp_path / "kh", "strict"),
        connect_timeout=0.2,
        run_timeout=run_timeout,
    )
    return RoundPlan(b"probe", X25519PrivateKey.generate(), settings, concurrency)


def challenge_of(argv: Sequence[str]) -> bytes:
    return envelope.b64url_decode(argv[list(argv).index("--challenge") + 1])


def sealed_for(p: RoundPlan, argv: Sequence[str], doc: dict | None = None) -> bytes:
    plain = zlib.compress(json.dumps(doc or DOC).encode())
    line = envelope.seal_line(plain, p.private_key.public_key(), challenge_of(argv))
    return (line + "\n").encode()


async def test_every_host_gets_one_result_in_config_order(tmp_path: Path) -> None:
    config = make_config(tmp_path, 6)
    p = plan(tmp_path)

    async def runner(client: Client, probe: bytes, argv: Sequence[str], settings) -> ProbeRun:
        last = int(client.ip.rsplit(".", 1)[1])
        if last == 2:
            raise TransportError(Status.AUTH_FAILED, "no")
        if last == 3:
            return ProbeRun(b"garbage\n", b"", 0)
        if last == 4:
            await asyncio.sleep(30)  # hangs past the host deadline
        if last == 5:
            raise RuntimeError("bug in a library")
        return ProbeRun(sealed_for(p, argv), b"", 0, retries=1 if last == 6 else 0)

    p = plan(tmp_path, run_timeout=0.1)
    result = await collect_round(config, p, runner=runner)
    statuses = [r.status for r in result.results]
    assert [r.client.ip for r in result.results] == [c.ip for c in config.clients]
    assert statuses == [
        Status.OK,
        Status.AUTH_FAILED,
        Status.BAD_PAYLOAD,
        Status.TIMEOUT,
        Status.PROBE_ERROR,
        Status.OK,
    ]
    document = result.results[0].document
    assert document is not None and document.memory is not None and document.cpu is not None
    assert (document.memory.used_percent, document.cpu.used_percent) == (41.0, 3.0)
    assert "bug in a library" in (result.results[4].error or "")
    assert result.retries == 1
    assert result.ok_count == 2


async def test_concurrency_is_bounded(tmp_path: Path) -> None:
    config = make_config(tmp_path, 20)
    p = plan(tmp_path, concurrency=3)
    running = 0
    peak = 0

    async def runner(client, probe, argv, settings) -> ProbeRun:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return ProbeRun(sealed_for(p, argv), b"", 0)

    result = await collect_round(config, p, runner=runner)
    assert result.ok_count == 20
    assert peak == 3


async def test_replayed_payload_from_another_round_is_rejected(tmp_path: Path) -> None:
    config = make_config(tmp_path, 2)
    p = plan(tmp_path)
    captured: list[bytes] = []

    async def runner(client, probe, argv, settings) -> ProbeRun:
        if not captured:
            captured.append(sealed_for(p, argv))
        return ProbeRun(captured[0], b"", 0)  # the second host replays the first's output

    result = await collect_round(config, p, runner=runner)
    assert [r.status for r in result.results] == [Status.OK, Status.BAD_PAYLOAD]


def test_envelope_line_found_after_shell_noise() -> None:
    out = b"Welcome to host\nFLEETSTAT/1 abc\n"
    assert find_envelope_line(out) == "FLEETSTAT/1 abc"
    with pytest.raises(EnvelopeError, match="not a FLEETSTAT/1 line"):
        find_envelope_line(b"hello\n")


# --- --top-when: the process table only at an alert's limit ------------------------------


def client_with(tmp_path: Path, alerts: str) -> Client:
    path = tmp_path / "one.xml"
    path.write_text(
        f'<fleetstat><client ip="10.9.0.1" username="u" password="p">{alerts}</client></fleetstat>'
    )
    path.chmod(0o600)
    return load_config(path).clients[0]


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ("", "none"),
        ('<alert type="disk" limit="90%"/><alert type="unreachable"/>', "none"),
        ('<alert type="memory" limit="50%"/><alert type="cpu" limit="20%"/>', "cpu=20,memory=50"),
        # clear keeps a firing alert firing down to it: its mails need the lists too
        ('<alert type="cpu" limit="90%" clear="70%" window="interval"/>', "cpu=70"),
        ('<alert type="load" limit="1.5" clear="1.25"/><alert type="swap" limit="33.3%"/>',
         "load=1.25,swap=33.3"),
        ('<alert type="memory" limit="33.3333333%"/>', "memory=33.3333333"),
        ('<alert type="cpu-core" limit="95%"/><alert type="cpu" limit="50%"/>',
         "cpu=50,cpu-core=95"),
        ('<alert type="memory" limit="90%" scope="cgroup"/><alert type="memory" limit="50%"/>',
         "cgroup-memory=90,memory=50"),
    ],
)  # fmt: skip
def test_top_when_is_the_lowest_level_of_each_rule_type(
    tmp_path: Path, alerts: str, expected: str
) -> None:
    assert top_when(client_with(tmp_path, alerts)) == expected


@pytest.mark.parametrize(
    ("policy", "top", "expected"),
    [("alerts", 5, ["--top-when", "cpu=20"]), ("always", 5, []), ("alerts", 0, [])],
)
async def test_the_round_passes_top_when_by_policy(
    tmp_path: Path, policy: str, top: int, expected: list[str]
) -> None:
    client = client_with(tmp_path, '<alert type="cpu" limit="20%"/>')
    base = plan(tmp_path)
    p = RoundPlan(base.probe, base.private_key, base.settings, 1, top, policy)
    seen: list[list[str]] = []

    async def runner(client: Client, probe: bytes, argv: Sequence[str], settings) -> ProbeRun:
        seen.append(list(argv))
        return ProbeRun(sealed_for(p, argv), b"", 0)

    config = load_config(tmp_path / "one.xml")
    result = await collect_round(config, p, runner=runner, clients=[client])
    assert result.results[0].status == Status.OK
    [argv] = seen
    assert argv[argv.index("--top") + 1] == str(top)
    tail = argv[argv.index("--top-when") : argv.index("--top-when") + 2] if expected else []
    assert tail == expected
    assert ("--top-when" in argv) == bool(expected)
