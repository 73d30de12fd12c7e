"""Rounds at fleet scale against a real OpenSSH sshd (issue 6, acceptance 3 and 4).

Each test starts its own simulated fleet: 200 hosts of which 10 hang, and 100 hosts
behind an sshd left at Debian's default ``MaxStartups 10:30:100``. Not timed: the
figures are the bench's job (bench/README.md); these prove the behaviour.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from fleet_fixtures import assert_nothing_left, fleet_config, start_fleet

from fleetstat.app import collect_once
from fleetstat.model import Status
from fleetstat.simfleet import SimFleet
from fleetstat.store import Store

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

HOSTS = 200
HANGING = {i for i in range(HOSTS) if i % 20 == 7}  # 10 hosts, spread over the fleet
# Generous: 100 probes at once share two cores with whatever else the machine runs
# (another copy of the suite). The hanging hosts' probes end by their own alarm
# after HANG_ALARM seconds (SimFleet.hang_alarms), so the round does not wait this out.
RUN_TIMEOUT = 60
HANG_ALARM = 5


@pytest.fixture
def hanging_fleet(tmp_path: Path) -> Iterator[SimFleet]:
    fleet = start_fleet(
        tmp_path / "fleet",
        count=HOSTS,
        behaviours={i: "hang" for i in HANGING},
        hang_alarms=dict.fromkeys(HANGING, HANG_ALARM),
    )
    yield fleet
    fleet.stop()


@pytest.fixture
def debian_startups_fleet(tmp_path: Path) -> Iterator[SimFleet]:
    fleet = start_fleet(tmp_path / "fleet", count=100, max_startups="10:30:100")
    yield fleet
    fleet.stop()


def test_200_hosts_with_10_hanging(tmp_path: Path, hanging_fleet: SimFleet) -> None:
    fleet = hanging_fleet
    config = fleet_config(
        tmp_path,
        fleet,
        list(range(HOSTS)),
        defaults=(
            f'<defaults concurrency="100" connect-timeout="30s" run-timeout="{RUN_TIMEOUT}s" '
            f'host-keys="strict" known-hosts="{fleet.known_hosts}"/>'
        ),
    )
    outcome = collect_once(config)

    by_status = Counter(r.status for r in outcome.round.results)
    failures = [r.error for r in outcome.round.results if not r.ok and r.status != Status.TIMEOUT]
    assert by_status == {Status.OK: HOSTS - len(HANGING), Status.TIMEOUT: len(HANGING)}, failures
    timed_out = {i for i, r in enumerate(outcome.round.results) if r.status == Status.TIMEOUT}
    assert timed_out == HANGING
    with Store(config.database_url) as store:
        assert store.count("samples") == HOSTS - len(HANGING)
        assert store.count("attempts") == HOSTS

    # Every host's temp dir is gone (the hanging ones have a TMPDIR each) and the
    # probe's alarm ended every hung probe: nothing runs as the fleet's user.
    assert_nothing_left(fleet)


def test_debian_maxstartups_is_absorbed_by_retries(
    tmp_path: Path, debian_startups_fleet: SimFleet
) -> None:
    fleet = debian_startups_fleet
    config = fleet_config(
        tmp_path,
        fleet,
        list(range(100)),
        defaults=(
            '<defaults concurrency="100" connect-timeout="30s" run-timeout="60s" '
            f'host-keys="strict" known-hosts="{fleet.known_hosts}"/>'
        ),
    )
    outcome = collect_once(config)

    errors = [r.error for r in outcome.round.results if not r.ok]
    assert outcome.round.ok_count == 100, errors[:5]
    # sshd refused the surplus of 100 simultaneous pre-auth connections (MaxStartups
    # 10:30:100 drops from the 11th on): those were retried, and counted.
    assert outcome.round.retries > 0
    with Store(config.database_url) as store:
        assert store.count("samples") == 100
    database = config.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT retries FROM rounds").fetchall() == [(outcome.round.retries,)]
