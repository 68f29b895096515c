"""instance/ and what lies in it (the SQLite database, the outbox's e-mails with patients'
links, the development secrets, backups) are the service user's alone (issue 12)."""
import os
import stat

import pytest
from flask_mail import Message

from app import create_app
from app.extensions import db
from tests.support.webapp import make_config


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    # What a login shell and ./run have: files 0644 and folders 0755 unless the app says otherwise.
    old = os.umask(0o022)
    yield
    os.umask(old)


def private_app(tmp_path, **overrides):
    instance = tmp_path / "instance"
    config = make_config(tmp_path, f"sqlite:///{instance / 'sprechzimmer.db'}", INSTANCE_DIR=str(instance),
                         SECRET_KEY=None, OUTBOX_DIR=str(instance / "outbox"),
                         BACKUP_DIR=str(instance / "backups"), **overrides)
    return create_app(config), instance


def test_a_new_instance_is_private(tmp_path, umask_022):
    app, instance = private_app(tmp_path)
    with app.app_context():
        db.create_all()
        db.session.execute(db.text("CREATE TABLE scratch (x INTEGER)"))
        db.session.commit()
        from app.invitations import email

        email.deliver(Message("Einladung", recipients=["p@example.org"], body="Link"), 7)
        db.session.remove()
        db.engine.dispose()
    assert mode(instance) == 0o700
    assert mode(instance / "secret_key") == 0o600
    assert mode(instance / "sprechzimmer.db") == 0o600
    wal = instance / "sprechzimmer.db-wal"
    assert not wal.exists() or mode(wal) == 0o600
    assert mode(instance / "outbox") == 0o700
    assert mode(instance / "outbox" / "message-7.eml") == 0o600
    result = app.test_cli_runner().invoke(args=["backup"])
    assert result.exit_code == 0, result.output
    assert mode(instance / "backups") == 0o700
    (backup,) = (instance / "backups").iterdir()
    assert mode(backup) == 0o600


def test_an_existing_instance_loses_what_others_could_read(tmp_path, umask_022):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    os.chmod(instance, 0o755)
    database = instance / "sprechzimmer.db"
    database.write_bytes(b"")
    os.chmod(database, 0o644)
    (instance / "backups").mkdir()
    os.chmod(instance / "backups", 0o755)
    app, _ = private_app(tmp_path)
    # The group stays (deploy/install.sh: 0750 for the service's own group); others lose all.
    assert mode(instance) == 0o750
    assert mode(database) == 0o600
    assert app.test_cli_runner().invoke(args=["backup"]).exit_code == 0
    assert mode(instance / "backups") == 0o700
