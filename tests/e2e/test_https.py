"""HTTPS through a real reverse proxy (issue 14): Caddy from Debian with `tls internal`
and a plain `reverse_proxy` to gunicorn as ./run starts it, in production mode. Chromium
logs in, invites, the patient's link is https, the waiting room's socket is wss through
Caddy, the call connects; a state change without token or from another origin is refused.

Without /usr/bin/caddy this module skips with the reason; CI sets REQUIRE_CADDY=1.
"""
import base64
import hashlib
import os
import subprocess
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import einladen, login, open_form, patient_waits, start_call
from tests.support.chromium import check_watch, launch, new_page
from tests.support.forms import appointment_form, future_slot
from tests.support.machine import CADDY, need_caddy
from tests.support.page_media import remote_video_plays
from tests.support.ports import free_port
from tests.support.stack import UP_TIMEOUT, running_stack

# What a practice's IT service writes: TLS from Caddy, everything else passed on as is.
CADDYFILE = """{{
	admin off
	skip_install_trust
	auto_https disable_redirects
	http_port {http_port}
	https_port {https_port}
	storage file_system {storage}
}}
localhost:{https_port} {{
	tls internal
	reverse_proxy 127.0.0.1:{web_port}
}}
"""
SESSION_EXPIRED = "Die Sitzung ist abgelaufen. Bitte laden Sie die Seite neu."


@pytest.fixture(scope="module")
def https_stack(smtp, tmp_path_factory):
    need_caddy()
    tmp = tmp_path_factory.mktemp("https")
    web_port, https_port = free_port(), free_port()
    (tmp / "Caddyfile").write_text(CADDYFILE.format(http_port=free_port(), https_port=https_port,
                                                    web_port=web_port, storage=tmp / "caddy"))
    base_url = f"https://localhost:{https_port}"
    env = {**os.environ, "HOME": str(tmp), "XDG_DATA_HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)}
    log = open(tmp / "caddy.log", "wb")
    caddy = subprocess.Popen([CADDY, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"],
                             env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        # Production: Secure cookies, secrets required; the proxy on 127.0.0.1 is trusted
        # by default (FORWARDED_ALLOW_IPS), as gunicorn trusts it.
        with running_stack(smtp, tmp, web_port, base_url, SPRECHZIMMER_ENV="production") as server:
            server.intermediate = _wait_for_ca(tmp / "caddy", caddy, tmp / "caddy.log")
            yield server
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)


def _wait_for_ca(storage, caddy, log):
    path = storage / "pki" / "authorities" / "local" / "intermediate.crt"
    deadline = time.monotonic() + UP_TIMEOUT
    while not (path.exists() and (storage / "certificates").exists()):
        if caddy.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Caddy did not come up:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return path


@pytest.fixture(scope="module")
def tls_browser(playwright, https_stack):
    """Chromium that trusts certificates issued by this Caddy's CA, and only those: the
    CA's key is pinned (--ignore-certificate-errors-spki-list), no certificate check is
    switched off."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(https_stack.intermediate.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    browser = launch(playwright, f"--ignore-certificate-errors-spki-list={pin}")
    yield browser
    browser.close()


@pytest.fixture
def tls_pages(tls_browser, https_stack):
    contexts = []

    def open_page():
        context, page = new_page(tls_browser, https_stack.base_url, has_touch=False)
        contexts.append((context, page))
        return page

    yield open_page
    for context, page in contexts:
        context.close()
        # The page's own origin is localhost here, not 127.0.0.1.
        foreign = [host for host in page.watch.foreign_hosts() if host != "localhost"]
        assert not foreign, f"requests left the machine: {foreign}"
        page.watch.requests = []
        check_watch(page.watch)


def test_login_invite_and_call_through_caddy(tls_pages, https_stack, smtp):
    staff, patient = tls_pages(), tls_pages()
    login(staff, https_stack.practices["premium"]["email"])
    session = next(c for c in staff.context.cookies() if c["name"] == "session")
    assert session["secure"] and session["httpOnly"]

    # Einladen through the form, as the practice does it.
    open_form(staff)
    day, _ = future_slot(days=2)
    made = einladen(staff, first_name="Hanna", last_name="Https", email="hanna.https@example.org", date=day,
                    time="09:15", duration="15")
    assert made.status == 201
    link = smtp.invitation_link("hanna.https@example.org")
    assert link.startswith(https_stack.base_url + "/j/"), link

    # The patient's link, the waiting room's wss socket and the call, all through Caddy.
    patient_waits(patient, link)
    sockets = [url for url in patient.watch.requests if url.startswith("wss://")]
    assert sockets and all(url.startswith(f"wss://localhost:{https_stack.base_url.rsplit(':', 1)[1]}/")
                           for url in sockets), sockets
    start_call(staff, patient, "Hanna Https")
    for page in (staff, patient):
        remote_video_plays(page)
    staff.get_by_role("button", name="Auflegen").click()
    expect(patient.get_by_role("heading", name="Die Videosprechstunde ist beendet.")).to_be_visible()


def test_csrf_refusals_hold_behind_caddy(tls_pages, https_stack, playwright):
    staff = tls_pages()
    login(staff, https_stack.practices["standard"]["email"])
    staff.goto("/patienten")
    token = staff.locator('meta[name="csrf-token"]').get_attribute("content")
    url = https_stack.base_url + "/patienten/termine"
    own = {"Origin": https_stack.base_url, "HX-Request": "true"}
    form = appointment_form(first_name="Eva", last_name="Fremd", email="eva.fremd@example.org")

    # Forged requests carry the staff member's cookies and token but headers no browser
    # page of ours would send: a client like curl (its TLS check is not the point here).
    forger = playwright.request.new_context(ignore_https_errors=True, storage_state=staff.context.storage_state())
    try:
        refusals = {
            "no token": forger.post(url, form=form, headers=own),
            "other origin": forger.post(url, form=form, headers={
                **own, "X-CSRFToken": token, "Origin": "https://angreifer.example"}),
            "other site's referrer": forger.post(url, form=form, headers={
                "HX-Request": "true", "X-CSRFToken": token, "Referer": "https://angreifer.example/seite"}),
            "no origin at all": forger.post(url, form=form, headers={"HX-Request": "true", "X-CSRFToken": token}),
        }
        for case, response in refusals.items():
            assert response.status == 400, (case, response.status)
            assert SESSION_EXPIRED in response.text(), case
        staff.reload()
        expect(staff.locator("#patient-list").get_by_text("Eva Fremd")).to_have_count(0)

        # The same request with the app's own origin goes through: the refusals were
        # about origin and token, nothing else.
        made = forger.post(url, form=form, headers={**own, "X-CSRFToken": token})
        assert made.status == 201, made.text()
        assert made.headers["referrer-policy"] == "same-origin"
    finally:
        forger.dispose()
    staff.reload()
    expect(staff.locator("#patient-list").get_by_text("Eva Fremd")).to_have_count(1)
