"""Linux security events end to end: a real sshd's auth.log, two rounds, a real SMTP server.

The simulated host's sshd logs at INFO into its own /var/log/auth.log (SimFleet's
``auth_log``); the test makes failed password logins, and the next round's probe
reads them from that file, the store keeps each once across two rounds, and the
events mail reaches aiosmtpd.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
import sqlalchemy as sa
from fleet_fixtures import _unavailable
from smtp_fixtures import SmtpServer

from fleetstat.app import collect_once
from fleetstat.config import load_config
from fleetstat.model import Status
from fleetstat.simfleet import SimFleet, SimFleetError
from fleetstat.store import Store
from fleetstat.store.schema import security_events

pytestmark = pytest.mark.sshd


@pytest.fixture(scope="module")
def logging_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimFleet]:
    if os.geteuid() != 0:
        _unavailable("the simulated host's auth.log needs root (a private mount namespace)")
    fleet = SimFleet(tmp_path_factory.mktemp("events-fleet"), count=1, auth_log=True)
    try:
        fleet.start()
    except (SimFleetError, OSError) as exc:
        _unavailable(f"cannot start sshd: {exc}")
    yield fleet
    fleet.stop()


async def failed_login(fleet: SimFleet) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            fleet.hosts[0].address, fleet.port, username=fleet.user, password="wrong password",
            known_hosts=None, client_keys=None, agent_path=None, preferred_auth="password",
            config=(),
        )  # fmt: skip


def wait_for_lines(path: Path, text: str, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.read_text(encoding="utf-8").count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} x {text!r} not in {path}:\n{path.read_text()[-2000:]}")


def test_failed_logins_are_stored_once_and_mailed(
    tmp_path: Path, logging_fleet: SimFleet, smtp_server: SmtpServer
) -> None:
    fleet = logging_fleet
    host = fleet.hosts[0].address
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f"""<fleetstat>
  <database url="sqlite:///{tmp_path / "fleetstat.db"}"/>
  <key path="{tmp_path / "server.key"}"/>
  {smtp_server.xml()}
  <defaults connect-timeout="30s" run-timeout="30s" known-hosts="{fleet.known_hosts}"/>
  <client ip="{host}" port="{fleet.port}" username="{fleet.user}" key="{fleet.client_key}"
          mail="sec@example.com" name="web-sim">
    <events enabled="true" max="100"/>
  </client>
</fleetstat>
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    config = load_config(path)

    async def three_failures() -> None:
        for _ in range(3):
            await failed_login(fleet)

    asyncio.run(three_failures())
    wait_for_lines(fleet.auth_log_path, f"Failed password for {fleet.user} from 127.0.0.1", 3)

    first = collect_once(config)
    (result,) = first.round.results
    assert result.status is Status.OK, result.error
    assert result.document is not None
    family = result.document.security_events
    assert family is not None and family.source == "authlog", result.document.errors
    failed = [e for e in family.events if e.data and e.data["kind"] == "ssh_failed"]
    assert len(failed) == 3
    assert {e.account for e in failed} == {fleet.user}
    assert {e.source_address for e in failed} == {"127.0.0.1"}

    second = collect_once(config)  # the same events are not stored again
    assert second.round.results[0].status is Status.OK
    with Store(config.database_url) as store, store.engine.connect() as conn:
        rows = list(conn.execute(sa.select(security_events).order_by(security_events.c.id)))
    keys = [row.event_key for row in rows]
    assert len(keys) == len(set(keys))
    stored_failed = [row for row in rows if row.data["kind"] == "ssh_failed"]
    assert len(stored_failed) == 3
    assert {row.round_id for row in stored_failed} == {first.round_id}
    # the rounds' own key logins are events too: one per round, each stored once
    accepted = [row for row in rows if row.data["kind"] == "ssh_accepted"]
    assert [row.round_id for row in accepted] == [first.round_id, second.round_id]

    # the second round asked for what came after the newest stored event: only its own login
    document = second.round.results[0].document
    assert document is not None and document.security_events is not None
    assert [(e.data or {})["kind"] for e in document.security_events.events] == ["ssh_accepted"]

    mails = [m for m in smtp_server.messages if "security event" in m.subject]
    assert len(mails) == 2, [m.subject for m in smtp_server.messages]
    assert mails[0].rcpt_tos == ("sec@example.com",)
    assert mails[0].subject == "[fleetstat] 4 new security events on web-sim (127.1.0.2)"
    body = mails[0].body
    assert body.count(f"SSH login failed (password) for {fleet.user} from 127.0.0.1") == 3
    assert f"account {fleet.user}  from 127.0.0.1" in body
    assert "Source: syslog auth file." in body
    assert mails[1].subject == "[fleetstat] 1 new security event on web-sim (127.1.0.2)"
    assert "SSH login failed" not in mails[1].body
