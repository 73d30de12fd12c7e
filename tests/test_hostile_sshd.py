"""Issue 12, acceptance 1 and 3: hostile hosts on the real sshd, and a real terminal.

Four healthy simulated hosts and one host of every ``simhostile`` class (each a
python3 that seals a hostile document for the round's ``--recipient`` and
``--challenge`` with the probe's own sealing code, or fails with escapes on
stderr, or prints garbage) in one round, into SQLite and into PostgreSQL, with a
real SMTP server. The healthy hosts are stored, alerted and mailed; every hostile
host is one classified row; then ``collect``, ``mail flush``, ``mail list``,
``report``, ``history`` and ``alerts`` run on a real terminal (under ``script``,
a pty) and none of the bytes a host sent reaches it as an escape sequence or as
rich markup; ``report --csv`` holds no formula and ``history --json`` is strict
JSON. No traceback anywhere.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shlex
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _server_database
from fleet_fixtures import HOSTILE, fleet_config
from smtp_fixtures import SmtpServer

from fleetstat import simhostile
from fleetstat.app import load_or_create_key
from fleetstat.collector import collect_round, limits_for, output_limit, plan_round
from fleetstat.model import Status
from fleetstat.probe_bundle import build_probe
from fleetstat.simfleet import SimFleet
from fleetstat.store import Store
from fleetstat.store.schema import alert_states, attempts, samples
from fleetstat.transport import KnownHosts, TransportSettings
from fleetstat.transport.ssh import RECV_WINDOW

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
HEALTHY = [0, 1, 2, 3]
# What a terminal would obey, as the hosts sent it (simhostile.ESCAPES) or as rich
# would write it had it read a host's markup ([blink], [link=...]).
FORBIDDEN = [
    "\x1b]",  # any OSC: window title, OSC 8 hyperlink (rich writes none here)
    "\x1b[2J",  # clear screen
    "\x1b[H",  # cursor home
    "\x9b",  # C1 CSI (the character; its byte is also part of other UTF-8 characters)
    "\x07",  # bell (ends an OSC)
    "\x1b[5m",  # blink: [blink] read as markup
    "\x00",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleetstat.db'}"
    else:
        yield from _server_database(request.param)


def hostile_clients(fleet: SimFleet) -> str:
    """One unnamed client per class: its hostname labels its mail; alerts and events on."""
    return "\n".join(
        f'<client ip="{fleet.hosts[i].address}" port="{fleet.port}" username="{fleet.user}" '
        f'key="{fleet.client_key}" mail="victim@example.com">'
        '<alert type="memory" limit="1%"/><alert type="unreachable"/>'
        '<events enabled="true" max="5"/></client>'
        for i in sorted(HOSTILE)
    )


def healthy_clients(fleet: SimFleet) -> str:
    return "\n".join(
        f'<client ip="{fleet.hosts[i].address}" port="{fleet.port}" username="{fleet.user}" '
        f'key="{fleet.client_key}" mail="owner{i}@example.com" name="healthy-{i}">'
        '<alert type="memory" limit="1%"/></client>'
        for i in HEALTHY
    )


def address_of(fleet: SimFleet, name: str) -> str:
    (index,) = [i for i, behaviour in HOSTILE.items() if behaviour == f"hostile:{name}"]
    return fleet.hosts[index].address


def on_a_terminal(*args: str) -> tuple[int, bytes]:
    """``fleetstat ARGS`` on a pseudo-terminal; its exit status and every byte it wrote."""
    command = shlex.join([FLEETSTAT, *args])
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="220", LINES="50")
    env.pop("NO_COLOR", None)
    done = subprocess.run(
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        capture_output=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def assert_inert(name: str, output: bytes) -> None:
    text = output.decode("utf-8")  # strict: what reached the terminal is valid UTF-8
    assert "Traceback" not in text, f"{name}:\n{text}"
    for sequence in FORBIDDEN:
        assert sequence not in text, f"{name} wrote {sequence!r}"


@pytest.mark.sshd
def test_hostile_hosts_on_sshd_cost_the_others_nothing_and_reach_no_terminal(
    tmp_path: Path, sim_fleet: SimFleet, smtp_server: SmtpServer, database: str
) -> None:
    config = fleet_config(
        tmp_path,
        sim_fleet,
        [],
        database_url=database,
        extra=smtp_server.xml(),
        extra_clients=healthy_clients(sim_fleet) + "\n" + hostile_clients(sim_fleet),
    )
    path = str(config.path)

    code, output = on_a_terminal("collect", "-c", path)
    assert code == 1, output.decode(errors="replace")  # the refused hosts failed
    assert_inert("collect", output)
    assert b"\x1b[1m" in output  # a terminal indeed: rich wrote its bold table header
    assert b"[link=https://evil.example/]click[/link]" in output  # shown, not obeyed
    assert b"[blink]BLINK[/blink]" in output

    healthy = {sim_fleet.hosts[i].address for i in HEALTHY}
    with Store(database) as store, store.engine.connect() as conn:
        statuses = {
            row.client_ip: row.status
            for row in conn.execute(sa.select(attempts.c.client_ip, attempts.c.status))
        }
        stored = set(conn.execute(sa.select(samples.c.client_ip)).scalars())
        firing = set(
            conn.execute(
                sa.select(alert_states.c.client_ip).where(alert_states.c.state == "firing")
            ).scalars()
        )
    assert healthy <= stored and healthy <= firing
    assert {statuses[ip] for ip in healthy} == {"ok"}
    mailed = {rcpt for caught in smtp_server.messages for rcpt in caught.rcpt_tos}
    assert {f"owner{i}@example.com" for i in HEALTHY} <= mailed
    for index, behaviour in HOSTILE.items():
        name = behaviour.partition(":")[2]
        status = statuses[sim_fleet.hosts[index].address]
        if name in simhostile.STORED:
            assert status == "ok", name
        else:
            expected = "probe_error" if name == "stderr" else "bad_payload"
            assert status == expected, name
    for caught in smtp_server.messages:
        assert caught.message["Bcc"] is None and caught.message["X-Injected"] is None
        assert "\n" not in caught.subject and "\x1b" not in caught.subject

    shown: dict[str, str] = {}
    for args in (
        ["mail", "flush", "-c", path],
        ["mail", "list", "--all", "-c", path],
        ["report", "-c", path],
        ["alerts", "-c", path],
        ["history", address_of(sim_fleet, "strings"), "-c", path],
        ["history", "healthy-0", "-c", path],
    ):
        code, output = on_a_terminal(*args)
        assert code == 0, (args, output.decode(errors="replace"))
        assert_inert(" ".join(args[:2]), output)
        shown[" ".join(args[:2])] = output.decode()
    # The strings host's escapes reached the screen as pictures: ␛]0;PWNED-TITLE␇.
    assert "PWNED-TITLE" in shown["mail list"] and "\u241b" in shown["mail list"]

    done = subprocess.run(
        [FLEETSTAT, "report", "--csv", "-c", path], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    for row in csv.reader(io.StringIO(done.stdout)):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell
            assert "\t" not in cell[:1] and "\r" not in cell

    for host in (address_of(sim_fleet, "numbers"), address_of(sim_fleet, "strings"), "healthy-0"):
        done = subprocess.run(
            [FLEETSTAT, "history", host, "--json", "-c", path],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


@pytest.mark.sshd
def test_an_endless_stdout_is_read_only_up_to_the_clients_limit(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    """A host that writes 64 MiB on stdout costs the central machine its client's
    limit (plus the channel's window), not the transport's 16 MiB ceiling."""
    endless = (
        f'<client ip="{address_of(sim_fleet, "endless")}" port="{sim_fleet.port}" os="linux" '
        f'username="{sim_fleet.user}" key="{sim_fleet.client_key}"/>'
    )
    config = fleet_config(tmp_path, sim_fleet, [], extra_clients=endless)
    (client,) = config.clients
    limit = output_limit(limits_for(client, config.defaults.top_processes))
    default = TransportSettings(KnownHosts(tmp_path / "none", "off")).max_output_bytes
    assert limit * 8 < default < simhostile.ENDLESS_BYTES  # the test tells the two apart
    plan = plan_round(config, load_or_create_key(config.key_path), build_probe())

    tracemalloc.start()
    try:
        result = asyncio.run(collect_round(config, plan))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    (host,) = result.results
    assert host.status is Status.BAD_PAYLOAD, host.error
    assert f"sent more than {limit} bytes on stdout" in (host.error or "")
    # What _drain kept, what asyncssh held within the channel's window, one read,
    # and the round's own allocations (1.2-1.4 MB in all here): far from 16 MiB.
    assert peak < limit + RECV_WINDOW + 2 * 1024 * 1024, peak
