"""A command that reads never creates or migrates a database (issue 13).

Real SQLite, PostgreSQL and MariaDB; the commands run in this process (click's
runner) against each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from smtp_fixtures import SmtpServer

from fleetstat.cli import app
from fleetstat.store import Store


def config_for(tmp_path: Path, smtp: SmtpServer) -> Path:
    key = tmp_path / "id_ed25519"
    key.write_text("not read by these commands\n")
    path = tmp_path / "fleetstat.xml"
    path.write_text(
        f'<fleetstat>{smtp.xml()}<retention samples="30d"/>'
        f'<client ip="10.0.0.1" username="u" key="{key}" name="web-01"/></fleetstat>'
    )
    path.chmod(0o600)
    return path


def test_reads_of_a_missing_or_empty_database_create_nothing(
    tmp_path: Path, db_url: str, db_backend: str, smtp_server: SmtpServer
) -> None:
    config = str(config_for(tmp_path, smtp_server))
    runner = CliRunner()
    for args in (
        ["report"],
        ["report", "--json"],
        ["history", "web-01"],
        ["alerts"],
        ["prune"],
        ["mail", "flush"],
    ):
        done = runner.invoke(app, [*args, "-c", config, "--db", db_url])
        assert done.exit_code == 2, (args, done.output)
        assert "fleetstat db upgrade" in done.output, (args, done.output)
    if db_backend == "sqlite":
        database = Path(sa.make_url(db_url).database or "")
        assert not database.parent.exists(), "a read made the database's folder"
        assert "no database at" in done.output
    else:
        with Store(db_url) as store:
            assert sa.inspect(store.engine).get_table_names() == [], "a read made tables"
        assert "has no fleetstat tables yet" in done.output

    upgraded = runner.invoke(app, ["db", "upgrade", "--db", db_url])
    assert upgraded.exit_code == 0, upgraded.output
    done = runner.invoke(app, ["report", "-c", config, "--db", db_url, "--json"])
    assert done.exit_code == 0, done.output
    assert '"status": "never"' in done.output


def test_an_older_schema_is_not_upgraded_by_a_read(tmp_path: Path, smtp_server: SmtpServer) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Store(url) as store, store.engine.begin() as conn:
        store.upgrade()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    done = CliRunner().invoke(app, ["report", "-c", str(config_for(tmp_path, smtp_server)),
                                    "--db", url])  # fmt: skip
    assert done.exit_code == 2, done.output
    assert "is at schema revision 0001" in done.output and "db upgrade" in done.output
    with Store(url) as store:
        assert store.current_revision() == "0001"


@pytest.mark.parametrize("path", ["/no/such/dir/x.db"])
def test_report_on_a_path_that_is_not_there(tmp_path: Path, path: str) -> None:
    """The issue's own example: nothing is created, and the message says what to do."""
    key = tmp_path / "k"
    key.write_text("x")
    config = tmp_path / "c.xml"
    config.write_text(f'<fleetstat><client ip="10.0.0.1" username="u" key="{key}"/></fleetstat>')
    done = CliRunner().invoke(app, ["report", "-c", str(config), "--db", f"sqlite:///{path}"])
    assert done.exit_code == 2
    assert f"no database at {path}" in done.output
    assert not Path("/no").exists()
