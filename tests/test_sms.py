"""SMS invitations through the vonage SDK over HTTPS to the local Vonage stand-in,
and the server's refusal where SMS is not part of the tariff or not set up."""
import re

import pytest

from app.extensions import db
from app.invitations.models import OutboxMessage
from app.patients.models import Appointment, Contact
from tests.support.forms import appointment_form, created_ids
from tests.support.outbox import deliver, link_in, make_due, outbox

MOBILE, TO = "0151 23456789", "4915123456789"
UNAVAILABLE = "Der SMS-Versand ist auf diesem Server nicht eingerichtet (Vonage-Zugangsdaten fehlen)."
NOT_IN_TARIFF = "SMS-Einladungen sind in den Tarifen Standard und Premium enthalten."


@pytest.fixture
def config_overrides(smtp_port, vonage):
    return {
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port,
        "VONAGE_API_KEY": vonage.api_key, "VONAGE_API_SECRET": vonage.api_secret,
        "VONAGE_REST_HOST": vonage.rest_host, "VONAGE_SMS_FROM": "PraxisAmSee",
    }


@pytest.fixture
def login(make_practice, auth):
    def factory(tariff="standard"):
        _, email = make_practice(tariff=tariff, name="Praxis am See")
        assert auth.login(email).status_code == 302

    return factory


@pytest.fixture
def invite_by_sms(login, make_appointment):
    login()
    form = appointment_form(mobile=MOBILE, send_sms="y")
    response = make_appointment(**form)
    appointment_id, _ = created_ids(response)
    return appointment_id, form


def sms_checkbox(page):
    return re.search(r'<input[^>]*name="send_sms"[^>]*>', page).group(0)


def sms_row(app):
    (row,) = outbox(app, channel="sms")
    return row


def test_sms_invitation_reaches_vonage(app, smtp, vonage, invite_by_sms, auth):
    appointment_id, form = invite_by_sms
    assert sorted(m.channel for m in outbox(app)) == ["email", "sms"]
    assert deliver(app) == 2

    (sms,) = vonage.delivered
    assert sms["to"] == TO  # E.164 without "+", as the API wants it
    assert sms["from"] == "PraxisAmSee"
    assert sms["type"] == "unicode"
    day = "{2}.{1}.{0}".format(*form["date"].split("-"))
    assert sms["text"].startswith(f"Praxis am See: Videosprechstunde am {day} um {form['time']} Uhr. Ihr Link: ")
    (request,) = vonage.requests
    assert (request["api_key"], request["api_secret"]) == ("k", "s")

    link, path = link_in(sms["text"])
    assert link in smtp.wait_for(1)[0].get_body(preferencelist=("plain",)).get_content()  # one link per appointment
    assert app.test_client().get(path).status_code == 302
    row = sms_row(app)
    assert (row.status, row.attempts, row.payload) == ("sent", 1, None)

    done = auth.get(f"/patienten/termine/{appointment_id}/zustellung")
    assert done.status_code == 286
    body = done.get_data(as_text=True)
    assert "Einladungs-SMS wurde versendet." in body
    assert "Einladungs-E-Mail wurde versendet." in body


@pytest.mark.parametrize("status, error", [
    ("3", "vonage status 3"),  # invalid params
    ("7", "vonage status 7"),  # number barred
    ("4", "vonage status 4"),  # invalid credentials
])
def test_provider_refusal_fails_for_good(app, smtp, vonage, invite_by_sms, auth, status, error):
    appointment_id, _ = invite_by_sms
    vonage.status = status
    deliver(app)
    row = sms_row(app)
    assert (row.status, row.permanent, row.last_error, row.payload) == ("failed", True, error, None)

    vonage.status = "0"
    make_due(app)
    assert deliver(app) == 0
    assert vonage.delivered == []
    body = auth.get(f"/patienten/termine/{appointment_id}/zustellung").get_data(as_text=True)
    assert "Einladungs-SMS konnte nicht zugestellt werden. Bitte prüfen Sie die Adresse bzw. Nummer." in body


def test_changed_credentials_are_used(app, smtp, vonage, invite_by_sms, make_appointment):
    deliver(app)
    app.config["VONAGE_API_SECRET"] = "falsch"  # the stand-in checks what the SDK sends
    make_appointment(**appointment_form(email="max@example.org", mobile="0151 11111111", send_sms="y"))
    deliver(app)
    first, second = outbox(app, channel="sms")
    assert first.status == "sent"
    assert (second.status, second.last_error) == ("failed", "vonage status 4")
    assert vonage.requests[-1]["api_secret"] == "falsch"


def _throttled(vonage):
    vonage.status = "1"


def _server_error(vonage):
    vonage.http_status = 500


def _down(vonage):
    vonage.stop()


def _recover(vonage):
    vonage.status, vonage.http_status = "0", 200
    if vonage._httpd is None:
        vonage.start()


@pytest.mark.parametrize("break_it, error", [
    (_throttled, "vonage status 1"),
    (_server_error, "vonage http ServerError"),
    (_down, "vonage unreachable: ConnectionError"),
])
def test_temporary_trouble_is_retried_until_sent(app, smtp, vonage, invite_by_sms, break_it, error):
    break_it(vonage)
    deliver(app)
    row = sms_row(app)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, error)
    assert row.payload
    assert vonage.delivered == []

    _recover(vonage)
    make_due(app)
    assert deliver(app) == 1
    row = sms_row(app)
    assert (row.status, row.attempts, row.payload) == ("sent", 2, None)
    (sms,) = vonage.delivered
    assert sms["to"] == TO


def test_resend_by_sms_sends_a_fresh_link(app, smtp, vonage, invite_by_sms, auth):
    appointment_id, _ = invite_by_sms
    deliver(app)
    _, old_path = link_in(vonage.delivered[0]["text"])

    assert auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/sms").status_code == 200
    assert deliver(app) == 1
    _, new_path = link_in(vonage.delivered[1]["text"])
    assert app.test_client().get(old_path).status_code == 404
    assert app.test_client().get(new_path).status_code == 302


def test_waiting_sms_takes_the_link_of_an_email_resend(app, smtp, vonage, invite_by_sms, auth):
    appointment_id, _ = invite_by_sms
    vonage.status = "1"
    deliver(app)
    assert sms_row(app).status == "pending"

    auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/email")
    vonage.status = "0"
    make_due(app)
    deliver(app)
    _, sms_path = link_in(vonage.delivered[0]["text"])
    _, mail_path = link_in(smtp.wait_for(2)[1].get_body(preferencelist=("plain",)).get_content())
    assert sms_path == mail_path
    assert app.test_client().get(sms_path).status_code == 302


def _nothing_saved(app):
    with app.app_context():
        for model in (Contact, Appointment, OutboxMessage):
            assert db.session.execute(db.select(db.func.count()).select_from(model)).scalar() == 0


def test_basis_practice_is_refused_sms_by_the_server(app, login, auth):
    login("basis")
    page = auth.get("/patienten/termin-erstellen").get_data(as_text=True)
    assert NOT_IN_TARIFF in page
    assert "disabled" in sms_checkbox(page)

    response = auth.post("/patienten/termine", data=appointment_form(mobile=MOBILE, send_sms="y"))
    assert response.status_code == 403
    body = response.get_data(as_text=True)
    assert f'<p class="error" id="send_sms-error">{NOT_IN_TARIFF}</p>' in body
    assert 'value="erika@example.org"' in body  # the user's input stays in the fields
    _nothing_saved(app)


def test_without_vonage_credentials_sms_is_not_offered(app, login, auth):
    app.config["VONAGE_API_KEY"] = app.config["VONAGE_API_SECRET"] = None
    login("premium")
    page = auth.get("/patienten/termin-erstellen").get_data(as_text=True)
    assert f'<p class="hint" id="sms-unavailable">{UNAVAILABLE}</p>' in page
    assert "disabled" in sms_checkbox(page)

    forged = auth.post("/patienten/termine", data=appointment_form(mobile=MOBILE, send_sms="y"))
    assert forged.status_code == 422
    assert f'<p class="error" id="send_sms-error">{UNAVAILABLE}</p>' in forged.get_data(as_text=True)
    _nothing_saved(app)


def test_sms_offered_with_tariff_and_credentials(app, login, auth):
    login("standard")
    page = auth.get("/patienten/termin-erstellen").get_data(as_text=True)
    assert 'id="sms-unavailable"' not in page
    assert "disabled" not in sms_checkbox(page)


def test_an_english_patient_gets_the_sms_in_english(app, smtp, vonage, login, make_appointment):
    login()
    form = appointment_form(mobile=MOBILE, send_sms="y", language="en")
    make_appointment(**form)
    assert deliver(app) == 2
    (sms,) = vonage.delivered
    day = "{2}/{1}/{0}".format(*form["date"].split("-"))
    assert sms["text"].startswith(f"Praxis am See: video consultation on {day} at {form['time']}. Your link: ")
    link_in(sms["text"])
