"""Secrets and database URLs as an operator meets them in the first week (issue 13).

Real processes (the ``fleetstat`` command), real SQLite, PostgreSQL and MariaDB,
a real SMTP server (aiosmtpd) and the real sshd of the simulated fleet.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fleet_fixtures import fleet_config
from smtp_fixtures import SmtpServer

from fleetstat.cli import app
from fleetstat.simfleet import SimFleet

FLEETSTAT = str(Path(sys.executable).parent / "fleetstat")
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``fleetstat ARGS`` as a process of its own (the commands that log in)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FS_TEST_")}
    return subprocess.run(
        [FLEETSTAT, *args], capture_output=True, text=True, timeout=120, env=environ | (env or {})
    )


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """``fleetstat ARGS`` in this process (quicker), the FS_TEST_ variables as given."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FS_TEST_")}
    return CliRunner().invoke(app, list(args), env=unset | (env or {}))


def lines_naming(text: str, word: str) -> int:
    return sum(1 for line in text.splitlines() if word in line)


def a_client(tmp_path: Path) -> str:
    """A client with a key file (its content is not read before a login)."""
    key = tmp_path / "id_ed25519"
    key.write_text("not read by these commands\n")
    return f'<client ip="10.0.0.1" username="u" key="{key}"/>'


def write_config(tmp_path: Path, body: str, *, mode: int = 0o600) -> Path:
    path = tmp_path / "fleetstat.xml"
    path.write_text(f"<fleetstat>\n{body}\n</fleetstat>\n", encoding="utf-8")
    path.chmod(mode)
    return path


EIGHT_CLIENTS = "\n".join(
    f'  <client ip="10.0.0.{i}" username="monitor" password-env="FS_TEST_FLEET_PW" '
    f'name="web-{i:02d}" mail="ops@example.com"/>'
    for i in range(1, 9)
)


def test_read_commands_need_no_ssh_secret_and_a_round_names_it_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config = write_config(
        tmp_path,
        f"""  <database url="sqlite:///fleetstat.db"/>
  {smtp_server.xml()}
  <retention samples="30d"/>
{EIGHT_CLIENTS}""",
    )
    c = str(config)
    for args in (
        ["db", "upgrade", "-c", c],
        ["report", "-c", c],
        ["history", "web-01", "-c", c],
        ["alerts", "-c", c],
        ["prune", "-c", c],
        ["mail", "flush", "-c", c],
    ):
        done = invoke(*args)
        assert done.exit_code == 0, (args, done.output)
        assert "FS_TEST_FLEET_PW" not in done.output, args

    checked = invoke("check-config", c)
    assert checked.exit_code == 0, checked.output
    assert lines_naming(checked.stderr, "FS_TEST_FLEET_PW") == 1

    collect = run("collect", "-c", c)
    assert collect.returncode == 2, collect.stdout + collect.stderr
    assert lines_naming(collect.stderr, "FS_TEST_FLEET_PW") == 1
    assert "8 client(s): web-01, web-02, web-03 and 5 more" in collect.stderr
    assert "export FS_TEST_FLEET_PW=" in collect.stderr

    watch = run("watch", "-c", c, "--every", "1h")
    assert watch.returncode == 2 and lines_naming(watch.stderr, "FS_TEST_FLEET_PW") == 1


@pytest.mark.parametrize("db_backend", ["postgresql", "mariadb"])
def test_db_accepts_the_urls_people_write(tmp_path: Path, db_url: str, db_backend: str) -> None:
    """``--db`` and ``<database url>`` take the same forms: the plain scheme gets
    fleetstat's driver (PyMySQL, psycopg 3), ``postgres://`` too."""
    rest = db_url.split("://", 1)[1]
    forms = ["postgres", "postgresql"] if db_backend == "postgresql" else ["mysql", "mariadb"]
    config = write_config(tmp_path, a_client(tmp_path))
    done = invoke("db", "upgrade", "--db", f"{forms[0]}://{rest}")
    assert done.exit_code == 0, done.output
    done = invoke("report", "-c", str(config), "--db", f"{forms[1]}://{rest}", "--json")
    assert done.exit_code == 0, done.output
    as_config = write_config(
        tmp_path, f'<database url="{forms[1]}://{rest}"/>\n{a_client(tmp_path)}'
    )
    done = invoke("report", "-c", str(as_config))
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_database_password_env_and_every_password_masked(
    tmp_path: Path, db_url: str, db_backend: str
) -> None:
    """PostgreSQL here trusts loopback, so any password logs in: what is checked is
    that the variable's value is used, and never shown."""
    url = sa.make_url(db_url)
    assert url.password is None, "the test server's admin URL has a password of its own"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    config = write_config(
        tmp_path,
        f'<database url="{plain}" password-env="FS_TEST_DB_PW"/>\n{a_client(tmp_path)}',
    )
    secret = "s3cret-db-pw"
    with_pw = {"FS_TEST_DB_PW": secret}
    upgraded = run("db", "upgrade", "-c", str(config), env=with_pw)
    assert upgraded.returncode == 0, upgraded.stderr
    assert ":***@" in upgraded.stdout and secret not in upgraded.stdout + upgraded.stderr
    checked = run("check-config", str(config), env=with_pw)
    assert checked.returncode == 0 and ":***@" in checked.stdout
    assert secret not in checked.stdout + checked.stderr
    assert run("report", "-c", str(config), env=with_pw).returncode == 0

    missing = run("report", "-c", str(config))
    assert missing.returncode == 2
    assert lines_naming(missing.stderr, "FS_TEST_DB_PW") == 1 and "<database>" in missing.stderr

    # A literal password in the URL: masked by check-config, and a warning while
    # others can read the file.
    literal = url.set(drivername="postgresql", password=secret).render_as_string(
        hide_password=False
    )
    readable = write_config(
        tmp_path,
        f'<database url="{literal}"/>\n{a_client(tmp_path)}',
        mode=0o644,
    )
    checked = run("check-config", str(readable))
    assert checked.returncode == 0, checked.stderr
    assert secret not in checked.stdout + checked.stderr
    assert "plaintext password" in checked.stderr and "chmod 600" in checked.stderr


@pytest.mark.parametrize(
    "url",
    ["postgresql://fs:s3cret@db:port/fleet", "mysql+mysqldb://fs:s3cret@db/fleet", "s3cret"],
)
def test_a_malformed_db_url_is_a_usage_error_that_does_not_echo_it(
    tmp_path: Path, url: str
) -> None:
    config = write_config(tmp_path, a_client(tmp_path))
    for args in (["report", "-c", str(config), "--db", url], ["db", "upgrade", "--db", url]):
        done = invoke(*args)
        assert done.exit_code == 2, done.output
        assert "--db" in done.output and "s3cret" not in done.output


def test_files_fleetstat_creates_are_its_users_alone(tmp_path: Path) -> None:
    database = tmp_path / "new" / "fleetstat.db"
    done = run("db", "upgrade", "--db", f"sqlite:///{database}")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for extra in database.parent.glob("fleetstat.db-*"):  # WAL and shared memory
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra

    key = tmp_path / "etc" / "fleetstat" / "fleetstat.key"
    done = run("keygen", str(key))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    unit = (ROOT / "contrib" / "fleetstat.service").read_text()
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    assert "\nUMask=0077\n" in service


@pytest.mark.sshd
def test_collect_warns_when_the_server_key_is_readable_by_others(
    tmp_path: Path, sim_fleet: SimFleet
) -> None:
    config = fleet_config(tmp_path, sim_fleet, [0])
    assert run("keygen", str(config.key_path)).returncode == 0
    private = run("collect", "-c", str(config.path))
    assert private.returncode == 0, private.stderr
    assert "accessible by other users" not in private.stderr
    config.key_path.chmod(0o644)
    readable = run("collect", "-c", str(config.path))
    assert readable.returncode == 0, readable.stderr
    assert "accessible by other users (mode 0644)" in readable.stderr
    assert f"chmod 600 {config.key_path}" in readable.stderr
