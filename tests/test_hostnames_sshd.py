"""Clients given by DNS name (``ip="localhost"``) against the real sshd fixture.

Every path that handles an address takes a name: an unknown or changed host
key on a named client is ``host_key_mismatch`` with the fix line, not an
internal ValueError from an IP-address parser.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fleet_fixtures import fleet_config

from fleetstat.app import collect_once
from fleetstat.config import Config
from fleetstat.model import HostResult, Status
from fleetstat.simfleet import SimFleet

pytestmark = pytest.mark.sshd


def _named_config(tmp_path: Path, fleet: SimFleet, known: Path, policy: str = "strict") -> Config:
    client = (
        f'<client ip="localhost" port="{fleet.port}" username="{fleet.user}" '
        f'key="{fleet.client_key}" name="by-name"/>'
    )
    return fleet_config(
        tmp_path, fleet, [], extra_clients=client, host_keys=policy, known_hosts=known
    )


def _one(config: Config) -> HostResult:
    (result,) = collect_once(config).round.results
    return result


def _fleet_key(fleet: SimFleet) -> str:
    kind, blob = fleet.host_key.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def test_a_named_host_with_an_unknown_key_is_host_key_mismatch_with_the_keyscan_line(
    tmp_path: Path, sim_fleet: SimFleet, caplog: pytest.LogCaptureFixture
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    result = _one(_named_config(tmp_path, sim_fleet, known))
    assert result.status is Status.HOST_KEY_MISMATCH, result.error
    assert f"ssh-keyscan -p {sim_fleet.port} localhost >> {known}" in (result.error or "")
    assert "internal error" not in (result.error or "")
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


def test_a_named_host_whose_key_changed_is_host_key_mismatch_with_the_remove_line(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[localhost]:{sim_fleet.port} {kind} {blob}\n")
    result = _one(_named_config(tmp_path, sim_fleet, known))
    assert result.status is Status.HOST_KEY_MISMATCH, result.error
    error = result.error or ""
    assert "does not match" in error
    assert f"ssh-keygen -R '[localhost]:{sim_fleet.port}' -f {known}" in error


def test_a_named_host_with_its_key_known_or_accepted_is_ok(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[localhost]:{sim_fleet.port} {_fleet_key(sim_fleet)}\n")
    result = _one(_named_config(tmp_path, sim_fleet, known))
    assert result.status is Status.OK, result.error

    first_use = tmp_path / "first_use_known_hosts"
    result = _one(_named_config(tmp_path, sim_fleet, first_use, policy="accept-new"))
    assert result.status is Status.OK, result.error
    assert first_use.read_text().split() == [
        f"[localhost]:{sim_fleet.port}",
        *_fleet_key(sim_fleet).split(),
    ]
