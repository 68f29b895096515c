"""`flask backup` and `flask restore` on SQLite (online backup API) and PostgreSQL
(pg_dump/pg_restore), through the CLI as an operator runs them: back up, change the
data, restore, and the data is back; rotation keeps the newest; refusals say why."""
import os
import shutil
import sqlite3
import stat

import pytest

from app.extensions import db
from tests.support.webapp import sqlite_only


@pytest.fixture
def backup_dir(tmp_path):
    return tmp_path / "backups"


@pytest.fixture
def config_overrides(backup_dir):
    return {"BACKUP_DIR": str(backup_dir), "BACKUP_KEEP": 3}


@pytest.fixture(autouse=True)
def _pg_tools(database_url):
    if database_url.startswith("postgresql") and not shutil.which("pg_dump"):
        reason = "PostgreSQL backups need pg_dump and pg_restore (apt-get install postgresql-client)"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (REQUIRE_POSTGRES=1)")
        pytest.skip(reason)


def practices(app):
    from app.auth.models import Practice

    with app.app_context():
        names = sorted(db.session.execute(db.select(Practice.name)).scalars())
        db.session.remove()
        return names


def cli(runner, *args, answer=None):
    return runner.invoke(args=list(args), input=answer)


def test_backup_change_restore_brings_the_data_back(app, runner, make_practice, backup_dir):
    make_practice(name="Praxis Vorher")
    made = cli(runner, "backup")
    assert made.exit_code == 0, made.output
    (path,) = backup_dir.iterdir()
    assert path.name.startswith("sprechzimmer-") and path.suffix in (".sqlite3", ".pgdump")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # patient data: the service user's only
    assert str(path) in made.output

    # Changes after the backup: one practice renamed, one added.
    from app.auth.models import Practice

    with app.app_context():
        db.session.execute(db.update(Practice).values(name="Praxis Geändert"))
        db.session.commit()
        db.session.remove()
    make_practice(name="Praxis Danach")
    assert practices(app) == ["Praxis Danach", "Praxis Geändert"]

    restored = cli(runner, "restore", str(path), "--yes")
    assert restored.exit_code == 0, restored.output
    assert practices(app) == ["Praxis Vorher"]
    # The app goes on working on the restored data (login data included).
    make_practice(name="Praxis Neu")
    assert practices(app) == ["Praxis Neu", "Praxis Vorher"]


def test_restore_latest_asks_first(app, runner, make_practice, backup_dir):
    make_practice(name="Praxis Eins")
    assert cli(runner, "backup").exit_code == 0
    make_practice(name="Praxis Zwei")
    refused = cli(runner, "restore", "--latest", answer="n\n")
    assert refused.exit_code != 0 and "Replace all data" in refused.output
    assert practices(app) == ["Praxis Eins", "Praxis Zwei"]
    confirmed = cli(runner, "restore", "--latest", answer="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert practices(app) == ["Praxis Eins"]


def test_rotation_keeps_the_newest(app, runner, make_practice, backup_dir):
    make_practice()
    for _ in range(5):
        assert cli(runner, "backup").exit_code == 0
    kept = sorted(p.name for p in backup_dir.iterdir())
    assert len(kept) == 3  # BACKUP_KEEP
    more = cli(runner, "backup", "--keep", "2")
    assert more.exit_code == 0
    assert "removed old backup" in more.output
    now = sorted(p.name for p in backup_dir.iterdir())
    assert len(now) == 2 and now[0] == kept[-1]  # the newest survived, the oldest went
    # Files that are not backups are never touched by the rotation.
    (backup_dir / "notiz.txt").write_text("bitte behalten")
    assert cli(runner, "backup", "--keep", "1").exit_code == 0
    assert (backup_dir / "notiz.txt").exists()


def test_restore_refusals(app, runner, tmp_path, database_url):
    missing = cli(runner, "restore", str(tmp_path / "gibt-es-nicht.sqlite3"), "--yes")
    assert missing.exit_code != 0 and "no such backup" in missing.output
    wrong_kind = tmp_path / "sprechzimmer-20260101-000000-000000.txt"
    wrong_kind.write_text("x")
    assert "is not a" in cli(runner, "restore", str(wrong_kind), "--yes").output
    assert "either a backup file or --latest" in cli(runner, "restore").output
    assert "no backups in" in cli(runner, "restore", "--latest", "--yes").output
    if database_url.startswith("sqlite"):
        damaged = tmp_path / "sprechzimmer-20260101-000000-000000.sqlite3"
        damaged.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
        result = cli(runner, "restore", str(damaged), "--yes")
        assert result.exit_code != 0 and "Error" in result.output


@sqlite_only
def test_sqlite_backup_is_a_consistent_database_while_the_app_writes(app, runner, make_practice, backup_dir,
                                                                     database_url):
    make_practice(name="Praxis Offen")
    # A reader holding the database open (as gunicorn does) does not stop the backup.
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM practice").fetchone()
    try:
        assert cli(runner, "backup").exit_code == 0
    finally:
        holder.rollback()
        holder.close()
    (path,) = backup_dir.iterdir()
    copy = sqlite3.connect(path)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT name FROM practice").fetchall() == [("Praxis Offen",)]
    copy.close()
