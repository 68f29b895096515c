"""The web app under test in the style of flaskr: ``app``, ``client``, ``runner``, ``auth``,
and factories returning callables (``make_practice``, ``make_appointment``).

``app`` runs each test on SQLite and on PostgreSQL (``database_url``); a test that
takes ``hub_kind`` (directly, or through ``live``) gets its app with that hub.
"""
import re

import pytest

from app import create_app
from app.extensions import hub as app_hub
from app.extensions import db as _db
from config import TestConfig
from tests.support.forms import appointment_form
from tests.support.machine import PG_URL, need_postgres

PASSWORD = "richtig-geheim-1"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')

# Where the database plays no part in what a test checks: SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def make_config(tmp_path, database_url, **overrides):
    class Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        OUTBOX_DIR = str(tmp_path / "outbox")

    if database_url.startswith("postgresql"):
        # Each test creates and drops the schema: without this every commit waits for
        # the disk. What a test checks never depends on a commit surviving a power cut.
        Config.SQLALCHEMY_ENGINE_OPTIONS = {**TestConfig.SQLALCHEMY_ENGINE_OPTIONS,
                                            "connect_args": {"options": "-c synchronous_commit=off"}}

    for key, value in overrides.items():
        setattr(Config, key, value)
    return Config


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    need_postgres()
    return PG_URL


@pytest.fixture
def config_overrides():
    """Override in a test module to change settings, e.g. mail server or Vonage."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, config_overrides, request):
    hub = request.getfixturevalue("hub_config") if "hub_kind" in request.fixturenames else {}
    app = create_app(make_config(tmp_path, database_url, **hub, **config_overrides))
    with app.app_context():
        _db.drop_all()
        _db.create_all()
    yield app
    if hub:
        app_hub.close(app)
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


def csrf_token(client, path="/login"):
    """The CSRF token a page of the client's session carries."""
    return CSRF_RE.search(client.get(path).get_data(as_text=True)).group(1)


CONSENT_PATH = "/sprechstunde/geraetetest"


def give_consent(client):
    """The patient or guest of ``client`` (a browser that opened its link) ticks the
    consent on the device check and goes on, as every patient must before the waiting
    room and the call socket (issue 12). Returns the response (303 to the device check)."""
    response = client.post(CONSENT_PATH, data={"consent": "y",
                                               "csrf_token": csrf_token(client, CONSENT_PATH)})
    assert response.status_code == 303, response.status_code
    return response


class Auth:
    """Logs a staff member in and sends state changes with the CSRF token, as HTMX does."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def csrf(self, path="/login"):
        self.token = csrf_token(self.client, path)
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


def logged_in(app, email, password=PASSWORD):
    """A staff member's own browser session (own test client), logged in."""
    staff = Auth(app.test_client())
    assert staff.login(email, password).status_code == 302
    return staff


@pytest.fixture
def make_practice(app):
    """make_practice(tariff="premium", email=..., name=...) -> (practice_id, staff_email)."""
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


@pytest.fixture
def make_appointment(auth):
    """make_appointment(**form_overrides) -> the HTMX response of Einladen (logged-in staff)."""

    def factory(**overrides):
        response = auth.post("/patienten/termine", data=appointment_form(**overrides))
        assert response.status_code == 201, response.get_data(as_text=True)
        return response

    return factory
