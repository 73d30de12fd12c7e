"""Jump host bookkeeping (transport/jumps.py) and jump= syntax, without a network:
one connection per bastion however many hosts, logins through it throttled,
a failed or lost bastion named once per host and never retried per host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetstat.config import Client, JumpHop, load_config
from fleetstat.config.sshconfig import parse_jump
from fleetstat.config.validate import Invalid
from fleetstat.errors import ConfigError, TransportError
from fleetstat.model import Status
from fleetstat.transport import jumps
from fleetstat.transport.jumps import LOGINS_PER_BASTION, Bastions

OUTER = JumpHop(host="10.0.0.1", port=22, username="ops", spec="bastion")
INNER = JumpHop(host="10.1.0.1", port=2222, username="ops", spec="inner")


class FakeConn:
    def __init__(self, name: str, tunnel: FakeConn | None) -> None:
        self.name, self.tunnel, self.closed = name, tunnel, False

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


class Hops:
    """A stand-in for ssh.py's hop login: records every login it makes."""

    def __init__(self, fail: bool = False) -> None:
        self.logins: list[tuple[str, str | None]] = []
        self.fail = fail

    async def __call__(self, client: Client, hop: JumpHop, tunnel: object) -> FakeConn:
        await asyncio.sleep(0.01)
        self.logins.append((hop.spec, getattr(tunnel, "name", None)))
        if self.fail:
            raise TransportError(Status.UNREACHABLE, f"connection refused by {hop.address}")
        return FakeConn(hop.spec, tunnel)  # type: ignore[arg-type]


def _clients(count: int, jump: tuple[JumpHop, ...]) -> list[Client]:
    return [Client(ip=f"10.9.0.{i + 1}", username="ops", jump=jump) for i in range(count)]


def test_one_login_per_bastion_however_many_hosts_and_one_per_hop() -> None:
    async def main() -> tuple[list[object], Hops]:
        bastions, hops = Bastions(), Hops()
        clients = _clients(50, (OUTER,)) + _clients(20, (OUTER, INNER))
        conns = await asyncio.gather(*(bastions.get(c, hops) for c in clients))
        await bastions.close()
        return list(conns), hops

    conns, hops = asyncio.run(main())
    assert sorted(hops.logins, key=str) == [("bastion", None), ("inner", "bastion")]
    assert len({id(conn) for conn in conns}) == 2
    assert all(conn.closed for conn in conns)  # type: ignore[attr-defined]


def test_logins_through_one_bastion_are_at_most_ten_at_once() -> None:
    async def main() -> int:
        bastions, tunnel = Bastions(), FakeConn("bastion", None)
        busy = most = 0

        async def login() -> None:
            nonlocal busy, most
            async with bastions.slot(tunnel):  # type: ignore[arg-type]
                busy += 1
                most = max(most, busy)
                await asyncio.sleep(0.01)
                busy -= 1

        await asyncio.gather(*(login() for _ in range(60)))
        return most

    assert asyncio.run(main()) == LOGINS_PER_BASTION == 10


def test_a_bastion_that_fails_is_tried_once_and_named_for_every_host() -> None:
    async def main() -> tuple[list[object], Hops]:
        bastions, hops = Bastions(), Hops(fail=True)
        results = await asyncio.gather(
            *(bastions.get(c, hops) for c in _clients(30, (OUTER,))), return_exceptions=True
        )
        return list(results), hops

    results, hops = asyncio.run(main())
    assert hops.logins == [("bastion", None)]
    for error in results:
        assert isinstance(error, TransportError) and error.status is Status.UNREACHABLE
        assert str(error).startswith("via jump host bastion: connection refused")


def test_a_lost_bastion_stays_lost_in_its_round_and_is_connected_again_in_the_next() -> None:
    async def main() -> tuple[TransportError | None, Hops, bool]:
        bastions, hops = Bastions(), Hops()
        first, second = _clients(2, (OUTER,))
        conn = await bastions.get(first, hops)
        conn.close()  # type: ignore[union-attr]
        assert bastions.lost(first) is not None  # a host in flight sees its channel go
        try:
            await bastions.get(second, hops)
        except TransportError as exc:
            lost: TransportError | None = exc
        else:
            lost = None
        bastions.drop_lost()  # the next round
        again = await bastions.get(second, hops)
        return lost, hops, again is not conn

    lost, hops, fresh = asyncio.run(main())
    assert lost is not None and lost.status is Status.UNREACHABLE
    assert "lost jump host bastion (10.0.0.1:22) in this round" in str(lost)
    assert len(hops.logins) == 2 and fresh


@pytest.mark.parametrize(
    ("text", "hops"),
    [
        ("bastion", [(None, "bastion", None)]),
        ("ops@10.0.0.1:2222,inner", [("ops", "10.0.0.1", 2222), (None, "inner", None)]),
        ("ssh://ops@[fd00::1]:2200", [("ops", "fd00::1", 2200)]),
    ],
)
def test_jump_syntax(text: str, hops: list[tuple[str | None, str, int | None]]) -> None:
    assert [(h.user, h.host, h.port) for h in parse_jump(text)] == hops


@pytest.mark.parametrize("text", ["", "a,,b", "ops@host:99999", "ops@bad_host", "[fd00::1"])
def test_bad_jump_syntax(text: str) -> None:
    with pytest.raises(Invalid):
        parse_jump(text)


def test_a_bad_jump_is_a_config_error_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.xml"
    path.write_text(
        '<fleetstat>\n<client ip="10.0.0.5" username="u" key="/dev/null"\n'
        '        jump="ops@gw:0"/>\n</fleetstat>\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "jump host 'ops@gw:0'" in str(caught.value)
    assert f"{path}:3" in str(caught.value)


def test_a_bastion_closed_before_anyone_saw_it_is_connected_again() -> None:
    """Lost between rounds, noticed only as the round runs: not this round's loss."""

    async def main() -> tuple[Hops, bool]:
        bastions, hops = Bastions(), Hops()
        first, second = _clients(2, (OUTER,))
        conn = await bastions.get(first, hops)
        conn.close()  # type: ignore[union-attr]
        again = await bastions.get(second, hops)
        return hops, again is not conn

    hops, fresh = asyncio.run(main())
    assert hops.logins == [("bastion", None), ("bastion", None)] and fresh


def test_a_failed_bastion_is_tried_again_after_a_while_without_a_new_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A keeper with no rounds (a cluster worker's pool) must not keep a bastion
    that was down once down for ever."""
    monkeypatch.setattr(jumps, "DOWN_SECONDS", 0.2)

    async def main() -> Hops:
        bastions, hops = Bastions(), Hops(fail=True)
        (client,) = _clients(1, (OUTER,))
        for pause in (0.0, 0.0, 0.3):
            await asyncio.sleep(pause)
            with pytest.raises(TransportError):
                await bastions.get(client, hops)
        return hops

    assert asyncio.run(main()).logins == [("bastion", None), ("bastion", None)]
