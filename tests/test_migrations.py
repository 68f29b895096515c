"""`flask db upgrade` on an empty database builds exactly the schema the models describe.

Run as a subprocess, the way an operator runs it: Alembic's env.py reconfigures logging
(fileConfig), which must not leak into the test process.
"""
import os
import subprocess
import sys

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

# Every model registered on the metadata.
import app.auth.models
import app.chat.models
import app.invitations.models
import app.patients.models  # noqa: F401
from app.extensions import db
from config import BASE_DIR
from tests.support.machine import PG_URL, need_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """The URL of a database with no tables; a PostgreSQL one of its own, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    need_postgres()
    # Not the shared test database: tests running meanwhile create and drop tables there.
    name = f"sprechzimmer_migrations_{os.getpid()}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_db(database_url, tmp_path, *args):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(BASE_DIR),
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "migrations-test",
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    result = subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=str(BASE_DIR), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def schema_differences(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, db.metadata), set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_builds_the_models_schema(empty_database, tmp_path):
    flask_db(empty_database, tmp_path, "upgrade")
    differences, tables = schema_differences(empty_database)
    assert differences == []
    assert tables == set(db.metadata.tables) | {"alembic_version"}


def test_downgrade_to_base_and_up_again(empty_database, tmp_path):
    flask_db(empty_database, tmp_path, "upgrade")
    flask_db(empty_database, tmp_path, "downgrade", "base")
    assert schema_differences(empty_database)[1] == {"alembic_version"}
    flask_db(empty_database, tmp_path, "upgrade")
    assert schema_differences(empty_database)[0] == []


def test_comparison_sees_a_missing_column(empty_database, tmp_path):
    """The check above can fail: a column the migrations lack shows up as a difference."""
    flask_db(empty_database, tmp_path, "upgrade")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE contact DROP COLUMN search_name")
    finally:
        engine.dispose()
    differences, _ = schema_differences(empty_database)
    assert [(d[0], d[3].name) for d in differences] == [("add_column", "search_name")]
