"""Application factory."""
import logging
import os
import secrets
import stat
import sys
from pathlib import Path

from flask import Flask, request, session
from flask.logging import default_handler
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from jinja2 import BytecodeCache
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

import logfmt
from app.extensions import babel, csrf, db, hub, limiter, login_manager, mail, migrate, sock
from app.hub import HubUnavailable
from config import BASE_DIR, RETENTION_MAX_DAYS, Config


def _select_locale():
    """The user's explicit choice (the language switch) first; before any, the browser's
    language: English where it asks for English before German, German for everything else."""
    if not request:
        return "de"
    lang = session.get("lang")
    if lang in ("de", "en"):
        return lang
    return "en" if request.accept_languages.best_match(("de", "en")) == "en" else "de"


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


class _CompiledTemplates(BytecodeCache):
    """Compiled templates shared by every app of this process. A server builds one app,
    so this changes nothing there; the test suite builds one per test, and compiling
    the templates again for each was the largest part of a short test's time. Jinja
    checks each entry against the template's source, so an edited template is compiled
    anew."""

    def __init__(self):
        self.compiled = {}

    def load_bytecode(self, bucket):
        code = self.compiled.get(bucket.key)
        if code is not None and code[0] == bucket.checksum:
            bucket.code = code[1]

    def dump_bytecode(self, bucket):
        self.compiled[bucket.key] = (bucket.checksum, bucket.code)


_compiled_templates = _CompiledTemplates()


def create_app(config_class=Config):
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=str(getattr(config_class, "INSTANCE_DIR", BASE_DIR / "instance")),
    )
    app.jinja_options = {**app.jinja_options, "bytecode_cache": _compiled_templates}
    app.config.from_object(config_class)
    # url_for(..., _external=True) outside a request builds the patients' links' scheme.
    https = app.config["PUBLIC_BASE_URL"].startswith("https:")
    app.config["PREFERRED_URL_SCHEME"] = "https" if https else "http"
    _private_dir(app.instance_path)
    _check_secret_key(app)
    _check_ice_policy(app)
    _check_retention(app)
    _private_database_file(app.config["SQLALCHEMY_DATABASE_URI"])
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
    from app import auth, chat, consultation, legal, patients, web
    from app.auth.cli import practice_cli
    from app.invitations.cli import outbox_cli
    from app.ops import cli as ops_cli

    _check_operator(app, legal.operator.missing(app.config))
    app.register_blueprint(legal.bp)
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
    app.cli.add_command(ops_cli.retention_cli)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return web.error_page(400, _("Die Sitzung ist abgelaufen. Bitte laden Sie die Seite neu."))

    @app.errorhandler(HubUnavailable)
    def hub_unavailable(exc):
        # Redis (HUB_URL) is away for a moment: a page that needs the hub says so.
        response = web.error_page(503, _("Der Gesprächsdienst ist gerade nicht erreichbar. "
                                         "Bitte versuchen Sie es in einigen Sekunden erneut."))
        return response[0], 503, {"Retry-After": "5"}

    return app


def _check_secret_key(app):
    if app.config.get("SECRET_KEY"):
        return
    if app.config["ENV_NAME"] == "production":
        sys.exit("SECRET_KEY is not set: a production start needs a long random SECRET_KEY "
                 "(e.g. python -c 'import secrets; print(secrets.token_hex(32))').")
    # Development: a key kept in the instance folder, so sessions survive restarts.
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(secrets.token_hex(32))
    app.config["SECRET_KEY"] = path.read_text().strip()


def _check_operator(app, gaps):
    if gaps and app.config["ENV_NAME"] == "production":
        sys.exit(f"{', '.join(gaps)} not set: a production start needs the operator's data for the "
                 "Impressum and the Datenschutzerklärung (README, \"Configuration\").")


def _check_retention(app):
    days = app.config["RETENTION_DAYS"]
    if not 1 <= days <= RETENTION_MAX_DAYS:
        sys.exit(f"RETENTION_DAYS={days}: appointments must be deleted between 1 and "
                 f"{RETENTION_MAX_DAYS} days after they took place (KBV Anlage 31b: at most "
                 "three months).")


def _private_dir(path):
    """instance/ holds the SQLite database, the outbox's e-mails (patients' links) and
    the development secrets: created 0700. One that exists loses what others may
    read, but keeps its group (deploy/install.sh gives the state folder 0750 to the
    service's own group)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o007:
        os.chmod(path, mode & ~0o007)


def _private_database_file(uri):
    """The SQLite file is created 0600 before SQLite creates it with the umask's 0644;
    SQLite gives its -wal and -shm files the database file's mode. An existing file
    readable by others is made private."""
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database)
    if path.parent.is_dir():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & ~0o077)


ICE_TRANSPORT_POLICIES = ("all", "relay")


def _check_ice_policy(app):
    # A typo ("relais", "turn") must not quietly give the patients' addresses away.
    policy = app.config.get("ICE_TRANSPORT_POLICY")
    if policy not in ICE_TRANSPORT_POLICIES:
        sys.exit(f"ICE_TRANSPORT_POLICY={policy!r} is not valid: use 'all' (direct connections "
                 "first) or 'relay' (TURN only, hides the addresses; needs TURN_URLS and "
                 "TURN_SECRET).")
    if policy == "relay" and not (app.config.get("TURN_URLS") and app.config.get("TURN_SECRET")):
        logging.getLogger(__name__).error(
            "ICE_TRANSPORT_POLICY=relay without TURN_URLS and TURN_SECRET: no call can connect")


def _configure_logging(app):
    # One handler on the root logger for the app, the outbox and the libraries.
    app.logger.removeHandler(default_handler)
    logfmt.configure()
    # Werkzeug's access log would print patient link tokens (/j/<token>).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
