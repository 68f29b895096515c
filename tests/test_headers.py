"""Security headers through Flask-Talisman (issue 12): HSTS in production on every https
response, a Permissions-Policy that allows only what the call uses, the CSP without
inline code, and no framing."""
import pytest
from werkzeug.exceptions import InternalServerError

from app import create_app
from app.web import PERMISSIONS_POLICY
from tests.support.webapp import make_config, sqlite_only

HSTS = "max-age=31536000"


def policy(header):
    return dict(part.strip().split("=", 1) for part in header.split(","))


@pytest.fixture
def production(tmp_path):
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'prod.db'}", ENV_NAME="production",
                         SESSION_COOKIE_SECURE=True, PUBLIC_BASE_URL="https://praxis.example")
    app = create_app(config)

    @app.route("/kaputt")
    def broken():
        raise InternalServerError()

    @app.route("/wirklich-kaputt")
    def really_broken():
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    with app.app_context():
        from app.extensions import db

        db.create_all()
    return app


REQUESTS = [
    ("GET", "/login", 200),
    ("GET", "/patienten", 302),
    ("GET", "/gibt-es-nicht", 404),
    ("GET", "/static/js/app.js", 200),
    ("POST", "/login", 400),  # no CSRF token
    ("GET", "/logout", 405),
    ("GET", "/j/" + "A" * 43, 404),
    ("GET", "/kaputt", 500),
    ("GET", "/wirklich-kaputt", 500),
]


@pytest.mark.parametrize("method, path, status", REQUESTS)
def test_hsts_on_every_https_response_in_production(production, method, path, status):
    client = production.test_client()
    response = client.open(path, method=method, base_url="https://praxis.example")
    assert response.status_code == status
    assert response.headers["Strict-Transport-Security"] == HSTS
    # Caddy forwards https as X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS).
    proxied = production.test_client().open(path, method=method, base_url="http://praxis.example",
                                             headers={"X-Forwarded-Proto": "https"})
    assert proxied.headers["Strict-Transport-Security"] == HSTS


@sqlite_only
def test_no_hsts_outside_production(client):
    assert "Strict-Transport-Security" not in client.get("/login", base_url="https://localhost").headers


@sqlite_only
@pytest.mark.parametrize("path", ["/login", "/gibt-es-nicht", "/static/js/app.js", "/sprechstunde"])
def test_permissions_policy_allows_only_what_the_call_uses(client, path):
    features = policy(client.get(path).headers["Permissions-Policy"])
    allowed = {name for name, value in features.items() if value != "()"}
    assert allowed == {"camera", "microphone", "display-capture", "autoplay", "fullscreen", "picture-in-picture"}
    assert all(features[name] == "(self)" for name in allowed)
    for off in ("geolocation", "payment", "usb", "serial", "hid", "midi", "browsing-topics", "screen-wake-lock"):
        assert features[off] == "()"
    assert features == PERMISSIONS_POLICY


@sqlite_only
def test_csp_frames_and_referrer(client):
    headers = client.get("/login").headers
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert csp["media-src"] == "'self' blob:"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


@sqlite_only
def test_development_cookie_is_not_forced_secure(client):
    # Talisman's default would mark it Secure, and http://localhost would lose every login.
    cookie = client.get("/login").headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "Secure" not in cookie
