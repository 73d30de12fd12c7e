"""Migrations are Alembic's: found, ordered and applied by its API; the one shortcut
(an up-to-date database is recognised without importing Alembic) holds only while
the scripts follow the naming convention checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from fleetstat.errors import StoreError
from fleetstat.store import Store, migrate


def test_the_newest_file_is_alembics_only_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_heads() == [migrate.head_revision()], (
        "one head, the highest NNNN_*.py: chain a new revision onto the current head"
    )


def test_each_script_is_named_after_its_revision_and_chained_onto_the_one_before() -> None:
    """The convention is_current() relies on: NNNN_<what>.py holds revision "NNNN" and
    its down_revision is the number before (or None for the first)."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = sorted(script.walk_revisions(), key=lambda rev: rev.revision)
    files = sorted((migrate.MIGRATIONS / "versions").glob("*.py"))
    assert [Path(rev.path).name for rev in revisions] == [path.name for path in files]
    previous = None
    for rev in revisions:
        number = Path(rev.path).name[:4]
        assert rev.revision == number, f"{rev.path}: revision must be {number!r}"
        assert rev.down_revision == previous, f"{rev.path}: down_revision must be {previous!r}"
        previous = rev.revision


def test_the_revision_read_without_alembic_is_alembics(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'rev.db'}") as store:
        for upgraded in (False, True):
            with store.engine.connect() as conn:
                expected = MigrationContext.configure(conn).get_current_revision()
                assert migrate.current_revision(conn) == expected
                assert migrate.is_current(conn) is upgraded
            store.ensure_schema()


def test_an_up_to_date_database_starts_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'current.db'}"
    with Store(url) as store:
        assert store.ensure_schema() is True
    check = (
        "import sys\n"
        "from fleetstat.store import Store\n"
        f"with Store({url!r}) as store:\n"
        "    assert store.ensure_schema() is False\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_revision_from_a_newer_fleetstat_is_refused_before_any_change(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'newer.db'}") as store:
        store.ensure_schema()
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        for step in (store.ensure_schema, store.upgrade):
            with pytest.raises(StoreError, match="'9999', which this fleetstat does not know"):
                step()
        assert store.current_revision() == "9999"
