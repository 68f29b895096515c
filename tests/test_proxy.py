"""HTTPS behind a reverse proxy (issue 14): the proxy's scheme and client address are
believed only from FORWARDED_ALLOW_IPS, and state changes must come from the app's own
origin on top of the CSRF token. The same through a real Caddy in tests/e2e/test_https.py."""
import pytest
from flask import url_for

from tests.support.webapp import CSRF_RE, PASSWORD

PROXY = {"REMOTE_ADDR": "127.0.0.1"}
STRANGER = {"REMOTE_ADDR": "203.0.113.9"}
HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
ORIGIN = "https://localhost"


@pytest.fixture
def config_overrides():
    return {"PUBLIC_BASE_URL": "https://video.praxis.example", "FORWARDED_ALLOW_IPS": "127.0.0.1,::1"}


def login_form(auth, email, **headers):
    token = auth.csrf("/login")
    return auth.client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                            headers=headers, environ_base=PROXY)


def test_login_through_https_proxy(auth, make_practice):
    _, email = make_practice()
    # What Chromium sends behind Caddy: the proxy's headers, Origin, and the Referer that
    # Referrer-Policy same-origin allows.
    response = login_form(auth, email, **HTTPS, Origin=ORIGIN, Referer=ORIGIN + "/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/patienten"


def test_referer_alone_is_enough(auth, make_practice):
    _, email = make_practice()
    assert login_form(auth, email, **HTTPS, Referer=ORIGIN + "/login").status_code == 302


def test_public_base_url_counts_when_the_proxy_rewrites_host(auth, make_practice):
    # A proxy that passes Host: 127.0.0.1:5000: the browser's origin is PUBLIC_BASE_URL's.
    _, email = make_practice()
    page = auth.client.get("/login", base_url="http://127.0.0.1:5000").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = auth.client.post("/login", base_url="http://127.0.0.1:5000",
                                data={"email": email, "password": PASSWORD, "csrf_token": token},
                                headers={**HTTPS, "Origin": "https://video.praxis.example"}, environ_base=PROXY)
    assert response.status_code == 302


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://localhost"},  # same host, other scheme
    {"Origin": "null"},  # what Chromium sends when the referrer policy hides the origin
    {"Referer": "https://evil.example/login"},
    {},  # over HTTPS, neither Origin nor Referer
], ids=["foreign", "scheme", "null", "foreign-referer", "none"])
def test_state_change_from_elsewhere_is_refused(auth, make_practice, client, headers):
    _, email = make_practice()
    response = login_form(auth, email, **HTTPS, **headers)
    assert response.status_code == 400
    assert "Die Sitzung ist abgelaufen" in response.get_data(as_text=True)
    assert client.get("/patienten", environ_base=PROXY, headers=HTTPS).status_code == 302


def test_foreign_origin_refused_over_http_too(auth, make_practice):
    _, email = make_practice()
    page = auth.client.get("/login", base_url="http://localhost").get_data(as_text=True)
    response = auth.client.post("/login", base_url="http://localhost", headers={"Origin": "http://evil.example"},
                                data={"email": email, "password": PASSWORD, "csrf_token": CSRF_RE.search(page).group(1)})
    assert response.status_code == 400


def test_untrusted_client_cannot_claim_https(auth, make_practice):
    # Plain HTTP from a client that is not the proxy stays plain HTTP, whatever it claims:
    # no Origin needed (as for any HTTP client), and its session cookie is not Secure-only.
    _, email = make_practice()
    page = auth.client.get("/login", base_url="http://localhost").get_data(as_text=True)
    response = auth.client.post("/login", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"},
                                environ_base=STRANGER,
                                data={"email": email, "password": PASSWORD, "csrf_token": CSRF_RE.search(page).group(1)})
    assert response.status_code == 302
    page = auth.client.get("/patienten", base_url="http://localhost").get_data(as_text=True)
    response = auth.client.post("/logout", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"},
                                environ_base=PROXY, data={"csrf_token": CSRF_RE.search(page).group(1)})
    # From the proxy the same header makes it HTTPS, where a missing Origin is refused.
    assert response.status_code == 400


def test_a_token_is_still_needed_from_the_own_origin(auth, make_practice, client):
    _, email = make_practice()
    response = client.post("/login", data={"email": email, "password": PASSWORD},
                           headers={**HTTPS, "Origin": ORIGIN}, environ_base=PROXY)
    assert response.status_code == 400


def test_forwarded_headers_ignored_from_others(auth, make_practice):
    make_practice()
    # Through the proxy each client address has its own login limit ...
    statuses = []
    for n in range(12):
        token = auth.csrf("/login")
        statuses.append(auth.client.post(
            "/login", data={"email": f"nobody{n}@example.org", "password": "x" * 12, "csrf_token": token},
            headers={"X-Forwarded-For": f"198.51.100.{n}", "Origin": ORIGIN}, environ_base=PROXY).status_code)
    assert statuses == [401] * 12
    # ... but a client that is not the proxy cannot pick its address.
    statuses = []
    for n in range(12):
        token = auth.csrf("/login")
        statuses.append(auth.client.post(
            "/login", data={"email": f"nobody{n}@example.org", "password": "x" * 12, "csrf_token": token},
            headers={"X-Forwarded-For": f"198.51.100.{n}", "Origin": ORIGIN},
            environ_base=STRANGER).status_code)
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429


@pytest.mark.parametrize("origin, allowed", [
    (None, True), ("https://video.praxis.example", True), ("https://localhost", True),
    ("https://evil.example", False), ("http://localhost", False), ("null", False)])
def test_websocket_origin_follows_the_same_rule(app, origin, allowed):
    from app.web import same_origin_socket

    with app.test_request_context("/ws", base_url="https://localhost", headers={"Origin": origin} if origin else {}):
        assert same_origin_socket() is allowed


def test_external_urls_use_the_public_scheme(app):
    with app.test_request_context("/"):
        assert url_for("auth.login", _external=True).startswith("https://")
