"""Application factory."""
import logging
import os
import secrets
import sys

from flask import Flask, request, session
from flask.logging import default_handler
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import Engine

import logfmt
from app.extensions import babel, csrf, db, hub, limiter, login_manager, mail, migrate, sock
from config import BASE_DIR, Config


def _select_locale():
    lang = session.get("lang") if request else None
    return lang if lang in ("de", "en") else "de"


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    # WAL lets the sender write while the web app reads; foreign keys make
    # ON DELETE CASCADE real on SQLite.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def create_app(config_class=Config):
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=str(BASE_DIR / "instance"),
    )
    app.config.from_object(config_class)
    # url_for(..., _external=True) outside a request builds the patients' links' scheme.
    https = app.config["PUBLIC_BASE_URL"].startswith("https:")
    app.config["PREFERRED_URL_SCHEME"] = "https" if https else "http"
    _check_secret_key(app)
    os.makedirs(app.instance_path, exist_ok=True)
    _configure_logging(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    mail.init_app(app)
    sock.init_app(app)
    hub.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=_select_locale,
                   default_translation_directories=str(BASE_DIR / "translations"))

    # Only here (the one function-level import app/ allows, see tests/test_architecture.py):
    # importing app.extensions or a model must not load every domain. Importing them also
    # connects their receivers of app/events.py.
    from app import auth, chat, consultation, patients, web
    from app.auth.cli import practice_cli
    from app.invitations.cli import outbox_cli
    from app.ops import cli as ops_cli

    app.register_blueprint(auth.bp)
    app.register_blueprint(patients.bp)
    app.register_blueprint(consultation.bp)
    app.register_blueprint(chat.bp)
    web.init_app(app)
    app.cli.add_command(practice_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(ops_cli.doctor)
    app.cli.add_command(ops_cli.backup)
    app.cli.add_command(ops_cli.restore)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return web.error_page(400, _("Die Sitzung ist abgelaufen. Bitte laden Sie die Seite neu."))

    return app


def _check_secret_key(app):
    if app.config.get("SECRET_KEY"):
        return
    if app.config["ENV_NAME"] == "production":
        sys.exit("SECRET_KEY is not set: a production start needs a long random SECRET_KEY "
                 "(e.g. python -c 'import secrets; print(secrets.token_hex(32))').")
    # Development: a key kept in the instance folder, so sessions survive restarts.
    path = BASE_DIR / "instance" / "secret_key"
    os.makedirs(path.parent, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    app.config["SECRET_KEY"] = path.read_text().strip()


def _configure_logging(app):
    # One handler on the root logger for the app, the outbox and the libraries.
    app.logger.removeHandler(default_handler)
    logfmt.configure()
    # Werkzeug's access log would print patient link tokens (/j/<token>).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
