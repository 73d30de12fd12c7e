"""Logins with the options built in the event loop (transport/directconnect.py),
against the real sshd of the fleet."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

import asyncssh
import pytest
from fleet_fixtures import key_login_options

from fleetstat.simfleet import SimFleet
from fleetstat.transport import directconnect


def test_the_installed_asyncssh_fits() -> None:
    assert directconnect.FITS is True


def test_an_asyncssh_without_the_pieces_is_called_as_it_is() -> None:
    assert directconnect.fits(types.ModuleType("empty")) is False

    async def _connect(options: Any, config: Any) -> None: ...  # another signature

    other = types.ModuleType("other")
    other._connect = _connect  # type: ignore[attr-defined]
    other.SSHClientConnection = type("C", (), {})  # type: ignore[attr-defined]
    other.SSHClientConnectionOptions = type("O", (), {})  # type: ignore[attr-defined]
    assert directconnect.fits(other) is False


def _login(sim_fleet: SimFleet) -> tuple[int | None, set[str]]:
    """One real key login and command through :func:`directconnect.connect`: the exit
    status and the threads that built asyncssh's options."""
    builders: set[str] = set()
    original = asyncssh.SSHClientConnectionOptions.prepare

    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        builders.add(threading.current_thread().name)
        return original(self, *args, **kwargs)

    async def login() -> int | None:
        options = key_login_options(sim_fleet)
        host = sim_fleet.hosts[0].address
        conn = await directconnect.connect(host, sim_fleet.port, options=options)
        async with conn:
            return (await conn.run("exit 3")).exit_status

    asyncssh.SSHClientConnectionOptions.prepare = watched  # type: ignore[method-assign]
    try:
        return asyncio.run(login()), builders
    finally:
        asyncssh.SSHClientConnectionOptions.prepare = original  # type: ignore[method-assign]


@pytest.mark.sshd
def test_a_login_builds_its_options_in_the_loop_and_runs_a_command(sim_fleet: SimFleet) -> None:
    status, builders = _login(sim_fleet)
    assert status == 3
    assert builders == {threading.current_thread().name}  # no executor thread


@pytest.mark.sshd
def test_the_connect_timeout_bounds_a_host_that_never_answers(sim_fleet: SimFleet) -> None:
    async def silent() -> None:
        accepted: list[asyncio.StreamWriter] = []  # closed by the test: it accepted them

        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                await directconnect.connect(
                    "127.0.0.1", port, options=key_login_options(sim_fleet), connect_timeout=0.5
                )
        finally:
            server.close()
            for writer in accepted:
                writer.close()
                await writer.wait_closed()
            await server.wait_closed()
        assert len(accepted) == 1

    asyncio.run(silent())
