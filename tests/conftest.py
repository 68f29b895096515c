"""Fixtures in the style of flaskr: app, client, auth, and factories returning callables.

The `app` fixture runs each test on SQLite and, where a server is reachable, on
PostgreSQL. Without a server those runs skip with the reason; CI sets
REQUIRE_POSTGRES=1 so that a missing server fails instead.
"""
import os
import re
from datetime import timedelta

import pytest

from app import create_app
from app.extensions import db as _db
from app.timeutil import to_local, utcnow
from config import TestConfig

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/sprechzimmer_test")
PASSWORD = "richtig-geheim-1"


def _postgres_available():
    import psycopg

    base = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    dbname = base.rsplit("/", 1)[1]
    admin = base.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no server here
        return f"PostgreSQL not reachable at {PG_URL.split('@')[-1]}: {type(exc).__name__}"


_pg_reason = None
_pg_checked = False


def postgres_skip_reason():
    global _pg_reason, _pg_checked
    if not _pg_checked:
        _pg_reason = _postgres_available()
        _pg_checked = True
    return _pg_reason


def _require(flag):
    return os.environ.get(flag) == "1"


def make_config(tmp_path, database_url, **overrides):
    class Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        OUTBOX_DIR = str(tmp_path / "outbox")

    for key, value in overrides.items():
        setattr(Config, key, value)
    return Config


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    reason = postgres_skip_reason()
    if reason:
        if _require("REQUIRE_POSTGRES"):
            pytest.fail(reason + " (REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def config_overrides():
    """Override in a test module to change settings, e.g. mail server or Vonage."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, config_overrides):
    app = create_app(make_config(tmp_path, database_url, **config_overrides))
    with app.app_context():
        _db.drop_all()
        _db.create_all()
    yield app
    with app.app_context():
        _db.session.remove()
        _db.drop_all()
        _db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class Auth:
    """Logs a staff member in and sends state changes with the CSRF token, as HTMX does."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def csrf(self, path="/login"):
        response = self.client.get(path)
        self.token = CSRF_RE.search(response.get_data(as_text=True)).group(1)
        return self.token

    def login(self, email, password=PASSWORD):
        token = self.csrf("/login")
        response = self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        if response.status_code == 302:
            self.csrf("/patienten")
        return response

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.token})

    def post(self, path, data=None, htmx=True, **kwargs):
        headers = {"X-CSRFToken": self.token}
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(path, data=data or {}, headers=headers, **kwargs)

    def delete(self, path, htmx=True):
        headers = {"X-CSRFToken": self.token}
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.delete(path, headers=headers)

    def get(self, path, htmx=True, **kwargs):
        return self.client.get(path, headers={"HX-Request": "true"} if htmx else {}, **kwargs)


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def make_practice(app):
    """make_practice(tariff="premium", email=...) -> (practice_id, staff_email)."""
    from app.auth.services import create_practice

    counter = {"n": 0}

    def factory(tariff="premium", email=None, name=None, timezone="Europe/Berlin"):
        counter["n"] += 1
        email = email or f"staff{counter['n']}@praxis{counter['n']}.example"
        with app.app_context():
            practice, staff = create_practice(name or f"Praxis {counter['n']}", tariff, email,
                                              f"Dr. Test {counter['n']}", PASSWORD, timezone)
            return practice.id, email

    return factory


def future_slot(days=3, hour=10, minute=0, tz="Europe/Berlin"):
    """(date, time) strings in the practice's zone, `days` ahead."""
    local = to_local(utcnow() + timedelta(days=days), tz)
    return local.strftime("%Y-%m-%d"), f"{hour:02d}:{minute:02d}"


def appointment_form(**overrides):
    day, time = future_slot()
    data = {
        "first_name": "Erika",
        "last_name": "Mustermann",
        "email": "erika@example.org",
        "mobile": "",
        "date": day,
        "time": time,
        "duration": "20",
        "consent": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def make_appointment(auth):
    """make_appointment(**form_overrides) -> the HTMX response of Einladen (logged-in staff)."""

    def factory(**overrides):
        response = auth.post("/patienten/termine", data=appointment_form(**overrides))
        assert response.status_code == 201, response.get_data(as_text=True)
        return response

    return factory
