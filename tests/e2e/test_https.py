"""HTTPS through a real reverse proxy (issue 14): Caddy from Debian with `tls internal`
and a plain `reverse_proxy` to gunicorn as ./run starts it, in production mode. Chromium
logs in, invites, the patient's link is https, the waiting room's socket is wss through
Caddy, the call connects; a state change without token or from another origin is refused.

Without /usr/bin/caddy this module skips with the reason; CI sets REQUIRE_CADDY=1.
"""

import pytest
from playwright.sync_api import expect

from tests.e2e.steps import einladen, login, open_form, patient_waits, start_call
from tests.support.chromium import checked_pages
from tests.support.deploy import Caddy
from tests.support.forms import appointment_form, future_slot
from tests.support.machine import need_caddy
from tests.support.page_media import remote_video_plays
from tests.support.ports import free_port
from tests.support.stack import running_stack

# What a practice's IT service writes: TLS from Caddy, everything else passed on as is.
# What a practice's IT service writes: TLS from Caddy, everything else passed on as is.
PLAIN_SITE = """localhost:{https_port} {{
	tls internal
	reverse_proxy 127.0.0.1:{web_port}
}}
"""
SESSION_EXPIRED = "Die Sitzung ist abgelaufen. Bitte laden Sie die Seite neu."


@pytest.fixture(scope="module")
def https_stack(smtp, tmp_path_factory):
    need_caddy()
    tmp = tmp_path_factory.mktemp("https")
    web_port = free_port()
    caddy = Caddy(tmp, web_port, site=PLAIN_SITE).start()
    try:
        # Production: Secure cookies, secrets required; the proxy on 127.0.0.1 is trusted
        # by default (FORWARDED_ALLOW_IPS), as gunicorn trusts it.
        with running_stack(smtp, tmp, web_port, caddy.base_url, SPRECHZIMMER_ENV="production") as server:
            server.caddy = caddy
            yield server
    finally:
        caddy.stop()


@pytest.fixture(scope="module")
def tls_browser(playwright, https_stack):
    browser = https_stack.caddy.browser(playwright)
    yield browser
    browser.close()


@pytest.fixture
def tls_pages(tls_browser, https_stack):
    yield from checked_pages(tls_browser, https_stack.base_url, own=("localhost",), has_touch=False)


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
