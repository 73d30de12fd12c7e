"""asyncssh's dropped log records cost nothing (transport/quietlog.py); kept ones are
written as before. Against the real sshd of the fleet."""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest
from asyncssh import logging as asyncssh_logging
from asyncssh import packet as asyncssh_packet
from fleet_fixtures import key_login_options

from fleetstat.simfleet import SimFleet
from fleetstat.transport import quietlog, ssh


def test_fleetstat_installs_it_once() -> None:
    assert ssh.QUIET_LOG is True
    log = asyncssh_logging.SSHLogger.log
    sent = asyncssh_packet.SSHPacketLogger.log_sent_packet
    assert getattr(log, "_fleetstat_quiet", False)
    assert quietlog.install() is True  # idempotent: nothing wrapped twice
    assert asyncssh_logging.SSHLogger.log is log
    assert asyncssh_packet.SSHPacketLogger.log_sent_packet is sent


def test_an_asyncssh_without_the_pieces_is_left_alone() -> None:
    empty = types.ModuleType("empty")
    assert quietlog.install(empty, empty) is False

    class Logger:
        def log(self) -> None: ...  # no _debug_level: not the asyncssh it knows

    class Packets:
        def log_sent_packet(self) -> None: ...

        def log_received_packet(self) -> None: ...

    fake_logging = types.ModuleType("fake_logging")
    fake_logging.SSHLogger = Logger  # type: ignore[attr-defined]
    fake_packet = types.ModuleType("fake_packet")
    fake_packet.SSHPacketLogger = Packets  # type: ignore[attr-defined]
    assert quietlog.install(fake_logging, fake_packet) is False
    assert not hasattr(Logger.log, "_fleetstat_quiet")


@pytest.fixture
def asyncssh_debug() -> Iterator[None]:
    """asyncssh's packet logging on (debug level 3, DEBUG), as ``-v`` and a user
    who wants the packets would set it; put back afterwards."""
    level = asyncssh_logging.SSHLogger._debug_level
    asyncssh.set_debug_level(3)
    try:
        yield
    finally:
        asyncssh_logging.SSHLogger._debug_level = level


def _login_records(
    sim_fleet: SimFleet,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    level: int,
) -> tuple[list[str], int]:
    """asyncssh's log records of one real key login and command at ``level``, and how
    many times asyncssh's own formatting ran for them (packet lines and log calls)."""
    caplog.clear()
    formatted = [0]
    spied = ((asyncssh_packet.SSHPacketLogger, "_log_packet"), (logging.LoggerAdapter, "log"))
    for cls, name in spied:
        original = getattr(cls, name)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            formatted[0] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, name, counted)
    options = key_login_options(sim_fleet)

    async def login() -> None:
        host = sim_fleet.hosts[0].address
        async with asyncssh.connect(host, sim_fleet.port, options=options) as conn:
            assert (await conn.run("exit 0")).exit_status == 0

    with caplog.at_level(level, logger="asyncssh"):
        asyncio.run(login())
    monkeypatch.undo()
    return [r.getMessage() for r in caplog.records if r.name.startswith("asyncssh")], formatted[0]


@pytest.mark.sshd
@pytest.mark.usefixtures("asyncssh_debug")
def test_packets_are_logged_when_asked_for_and_not_formatted_otherwise(
    sim_fleet: SimFleet, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged, formatted = _login_records(sim_fleet, caplog, monkeypatch, logging.DEBUG)
    sent = [m for m in logged if m.startswith("[conn=") and "Sent MSG_" in m]
    received = [m for m in logged if "Received MSG_" in m]
    assert sent and received, logged[:20]
    assert any("MSG_KEXINIT" in m for m in sent)
    assert any("Opening SSH connection" in m for m in logged)  # SSHLogger.log, at INFO
    assert formatted >= len(sent) + len(received)
    # Nothing written, nothing formatted: asyncssh alone formats every packet's line.
    quiet, formatted = _login_records(sim_fleet, caplog, monkeypatch, logging.WARNING)
    assert not any("MSG_" in m or "Opening SSH connection" in m for m in quiet), quiet[:5]
    assert formatted == 0
