"""``keep-connections`` and ``max-connection-age``: the config, the default per
command, and the open-files limit checked at start."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleetstat.app import connection_pool
from fleetstat.config import Config, load_config
from fleetstat.errors import ConfigError

CLIENTS = """
  <client ip="10.0.0.1" username="u" password="x"/>
  <client ip="10.0.0.2" username="u" password="x" keep-connections="off"/>
  <client ip="10.0.0.3" username="u" password="x" keep-connections="2h"/>
"""


def load(tmp_path: Path, defaults: str, clients: str = CLIENTS) -> Config:
    path = tmp_path / "fleetstat.xml"
    path.write_text(f"<fleetstat>\n  {defaults}\n{clients}</fleetstat>\n", encoding="utf-8")
    path.chmod(0o600)
    return load_config(path)


def test_unset_keep_is_the_commands_default_and_each_client_may_differ(tmp_path: Path) -> None:
    config = load(tmp_path, "<defaults/>")
    assert config.defaults.keep_connections is None
    assert config.defaults.max_connection_age == 24 * 3600
    assert [c.keep_connections for c in config.clients] == [None, 0.0, 7200.0]

    pool = connection_pool(config)  # what watch and serve use
    assert pool is not None
    assert [pool.keep_for(c) for c in config.clients] == [600.0, 0.0, 7200.0]
    assert pool.max_age == 24 * 3600


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10m", 600.0), ("90", 90.0), ("off", 0.0), ("false", 0.0), ("0", 0.0), ("on", 600.0)],
)
def test_keep_connections_values(tmp_path: Path, value: str, seconds: float) -> None:
    config = load(tmp_path, f'<defaults keep-connections="{value}" max-connection-age="6h"/>')
    assert config.defaults.keep_connections == seconds
    assert config.defaults.max_connection_age == 6 * 3600


def test_keep_connections_off_everywhere_keeps_no_pool(tmp_path: Path) -> None:
    clients = '  <client ip="10.0.0.1" username="u" password="x"/>\n'
    config = load(tmp_path, '<defaults keep-connections="off"/>', clients)
    assert connection_pool(config) is None
    # ...unless a client asks for it
    clients += '  <client ip="10.0.0.2" username="u" password="x" keep-connections="5m"/>\n'
    config = load(tmp_path, '<defaults keep-connections="off"/>', clients)
    pool = connection_pool(config)
    assert pool is not None
    assert [pool.keep_for(c) for c in config.clients] == [0.0, 300.0]


@pytest.mark.parametrize(
    ("defaults", "message", "fix"),
    [
        ('keep-connections="soon"', "neither a duration nor off", '"10m"'),
        ('max-connection-age="0"', "is zero", "greater than zero"),
        ('max-connection-age="old"', "not a duration", "4h"),
        ('keep-connection="10m"', "unknown attribute keep-connection=", "keep-connections="),
    ],
)
def test_bad_values_name_the_line_and_a_fix(
    tmp_path: Path, defaults: str, message: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"<defaults {defaults}/>")
    [issue] = caught.value.issues
    assert issue.line == 2
    assert message in issue.message
    assert issue.fix is not None and fix in issue.fix


def test_a_client_keep_value_is_checked_too(tmp_path: Path) -> None:
    clients = '  <client ip="10.0.0.1" username="u" password="x" keep-connections="-1m"/>\n'
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "<defaults/>", clients)
    [issue] = caught.value.issues
    assert "<client> keep-connections" in issue.message


FD_CHECK = textwrap.dedent(
    """
    import resource, sys
    from fleetstat.errors import FleetstatError
    from fleetstat.transport.pool import ensure_fd_limit
    soft, hard = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        print(ensure_fd_limit(int(sys.argv[3]), 100))
    except FleetstatError as exc:
        print("error:", exc)
    print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    """
)


def fd_check(soft: int, hard: int, hosts: int) -> list[str]:
    """ensure_fd_limit in a child whose limits are (soft, hard): what it printed."""
    out = subprocess.run(
        [sys.executable, "-c", FD_CHECK, str(soft), str(hard), str(hosts)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().splitlines()


def test_the_open_files_limit_is_raised_to_the_hard_limit_for_the_fleet() -> None:
    assert fd_check(512, 4096, 1000) == ["4096", "4096"]


def test_a_fleet_too_big_for_the_hard_limit_is_refused_with_what_to_change() -> None:
    error, soft = fd_check(512, 1024, 5000)
    assert error.startswith("error: keeping 5000 SSH connections open needs about 5356 file")
    assert "1024 (ulimit -Hn)" in error
    assert "LimitNOFILE=" in error and 'keep-connections="off"' in error
    assert soft == "512"  # left as it was


def test_a_soft_limit_that_suffices_is_left_alone() -> None:
    assert fd_check(2048, 4096, 100) == ["2048", "2048"]


def test_watch_refuses_to_start_when_the_fleet_needs_more_files_than_allowed(
    tmp_path: Path,
) -> None:
    """The check runs as ``watch`` starts, before any round: one clear line, exit 1."""
    clients = "".join(
        f'  <client ip="10.0.{i // 250}.{i % 250 + 1}" username="u" password="x"/>\n'
        for i in range(300)
    )
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f'<fleetstat>\n  <database url="sqlite:///{tmp_path / "f.db"}"/>\n'
        f'  <defaults concurrency="50"/>\n{clients}</fleetstat>\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    fleetstat = Path(sys.executable).parent / "fleetstat"
    done = subprocess.run(
        ["sh", "-c", 'ulimit -n 400 && ulimit -Hn 400 && exec "$0" watch -c "$1" --every 1m',
         str(fleetstat), str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "keeping 300 SSH connections open needs about 606 file descriptors" in done.stderr
    assert "400 (ulimit -Hn)" in done.stderr
    assert "event=round_start" not in done.stderr
