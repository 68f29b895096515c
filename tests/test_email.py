"""The invitation e-mail over real SMTP (aiosmtpd on loopback): what the patient reads,
the link that opens the waiting room, the calendar entry, and what the staff see
while and after it is delivered."""
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from app.extensions import db
from app.patients.models import Appointment
from tests.support.forms import appointment_form, created_ids, future_slot, row_counts
from tests.support.outbox import deliver, link_in, outbox, text_of
from tests.support.webapp import Auth, give_consent

# Not the server's or Babel's default zone: times must follow the practice's zone.
TZ = "America/New_York"
PRACTICE = "Praxis Dr. Sommer"


@pytest.fixture
def config_overrides(smtp_port):
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port}


@pytest.fixture
def staff(make_practice, auth):
    _, email = make_practice(name=PRACTICE, timezone=TZ, tariff="basis")
    assert auth.login(email).status_code == 302


@pytest.fixture
def invite(staff, make_appointment):
    """Einladen for Erika Mustermann, five days ahead at 10:30 practice time, 45 minutes."""
    day, _ = future_slot(days=5, tz=TZ)

    def factory(**overrides):
        response = make_appointment(**{"date": day, "time": "10:30", "duration": "45", **overrides})
        return created_ids(response)

    factory.day = date.fromisoformat(day)
    return factory


def the_email(app, smtp):
    assert deliver(app) == 1
    (message,) = smtp.wait_for(1)
    return message


def test_invitation_email_reaches_the_patient_in_german(app, smtp, invite):
    invite()
    message = the_email(app, smtp)

    assert smtp.envelopes[0][1] == ["erika@example.org"]
    assert message["To"] == "erika@example.org"
    assert message["Subject"] == f"Einladung zur Videosprechstunde bei {PRACTICE}"
    when = f"{invite.day.strftime('%d.%m.%Y')} um 10:30 Uhr"
    text, html = text_of(message), text_of(message, "html")
    link, _ = link_in(text)
    for body in (text, html):
        assert "Guten Tag Erika Mustermann" in body
        assert PRACTICE in body
        assert "lädt Sie zu einer Videosprechstunde ein" in body
        assert when in body
        assert "Voraussichtliche Dauer: 45 Minuten" in body
        assert link in body
        # The operator's legal pages (issue 12), from OPERATOR_NAME and PUBLIC_BASE_URL.
        assert app.config["OPERATOR_NAME"] in body
        assert "http://localhost/impressum" in body and "http://localhost/datenschutz" in body
    assert f'href="{link}"' in html


def test_link_in_the_email_opens_the_waiting_room(app, smtp, invite):
    invite()
    _, path = link_in(text_of(the_email(app, smtp)))

    patient = app.test_client()  # the patient's own browser, not the staff session
    response = patient.get(path)
    assert response.status_code == 302
    # Into the patient's pages: the device check first, then the waiting room.
    assert response.headers["Location"].startswith("/sprechstunde")
    assert patient.get(response.headers["Location"]).status_code == 200
    # The patient's own consent comes before the waiting room (issue 12).
    assert patient.get("/sprechstunde").status_code == 302
    give_consent(patient)
    page = patient.get("/sprechstunde")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert PRACTICE in body
    assert invite.day.strftime("%d.%m.%Y") in body


def test_calendar_attachment_matches_the_appointment(app, smtp, invite):
    appointment_id, _ = invite()
    message = the_email(app, smtp)
    link, _ = link_in(text_of(message))

    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "termin.ics"
    calendar = Calendar.from_ical(attachment.get_content())
    assert str(calendar["METHOD"]) == "PUBLISH"
    (event,) = calendar.walk("VEVENT")

    expected = datetime.combine(invite.day, time(10, 30), ZoneInfo(TZ))
    assert event.decoded("DTSTART") == expected
    assert event.decoded("DTEND") == expected + timedelta(minutes=45)
    with app.app_context():
        stored = db.session.get(Appointment, appointment_id).starts_at
    assert event.decoded("DTSTART") == stored.replace(tzinfo=timezone.utc)
    assert str(event["URL"]) == link
    assert str(event["LOCATION"]) == link
    assert link in str(event["DESCRIPTION"])
    assert str(event["SUMMARY"]) == f"Videosprechstunde bei {PRACTICE}"


def test_delivery_watch_polls_until_sent_then_toasts(app, smtp, invite, auth):
    appointment_id, _ = invite()
    url = f"/patienten/termine/{appointment_id}/zustellung"

    waiting = auth.get(url)
    assert waiting.status_code == 200
    body = waiting.get_data(as_text=True)
    assert f'hx-get="{url}?n=1"' in body
    assert "wird gesendet" in body
    assert "toast-" not in body

    the_email(app, smtp)
    done = auth.get(url + "?n=1")
    assert done.status_code == 286  # htmx stops polling
    assert done.headers["HX-Trigger"] == "deliveries-changed"
    body = done.get_data(as_text=True)
    assert "toast-success" in body
    assert "Einladungs-E-Mail wurde versendet." in body
    assert "hx-get" not in body


def test_refused_address_shows_error_toast_and_failed_in_panel(app, smtp, invite, auth):
    appointment_id, contact_id = invite()
    smtp.rcpt_reply = "550 5.1.1 Mailbox unavailable"
    assert deliver(app) == 1

    done = auth.get(f"/patienten/termine/{appointment_id}/zustellung?n=3")
    assert done.status_code == 286
    body = done.get_data(as_text=True)
    assert "toast-error" in body
    assert "Einladungs-E-Mail konnte nicht zugestellt werden. Bitte prüfen Sie die Adresse bzw. Nummer." in body

    panel = auth.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True)
    assert 'data-channel="email" data-status="failed"' in panel
    assert "fehlgeschlagen" in panel
    assert smtp.messages == []


def test_watch_stops_with_warning_while_a_retry_waits(app, smtp, invite, auth):
    appointment_id, contact_id = invite()
    smtp.data_reply = "451 4.3.0 Try again later"
    assert deliver(app) == 1

    done = auth.get(f"/patienten/termine/{appointment_id}/zustellung?n=2")
    assert done.status_code == 286
    body = done.get_data(as_text=True)
    assert "toast-warning" in body
    assert "Einladungs-E-Mail konnte noch nicht zugestellt werden; es wird automatisch erneut versucht." in body
    panel = auth.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True)
    assert "noch nicht zugestellt, wird erneut versucht" in panel


def test_watch_gives_up_polling_after_its_limit(app, invite, auth):
    from app.patients.routes import MAX_DELIVERY_POLLS

    appointment_id, _ = invite()
    response = auth.get(f"/patienten/termine/{appointment_id}/zustellung?n={MAX_DELIVERY_POLLS}")
    assert response.status_code == 286
    assert "es wird automatisch erneut versucht" in response.get_data(as_text=True)
    assert outbox(app)[0].status == "pending"


def test_watch_of_another_practice_is_not_found(app, invite, make_practice):
    appointment_id, _ = invite()
    _, other_email = make_practice()
    other = Auth(app.test_client())
    other.login(other_email)
    assert other.get(f"/patienten/termine/{appointment_id}/zustellung").status_code == 404


# -- in English, for patients who do not read German (issue 11) ---------------------------

def test_an_english_patient_gets_every_message_in_english(app, smtp, invite, auth):
    appointment_id, _ = invite(language="en")
    message = the_email(app, smtp)
    assert message["Subject"] == f"Invitation to a video consultation with {PRACTICE}"
    when = f"{invite.day.strftime('%A')}, {invite.day.day} {invite.day.strftime('%B %Y')} at 10:30"
    text, html = text_of(message), text_of(message, "html")
    link, _ = link_in(text)
    for body in (text, html):
        assert "Dear Erika Mustermann" in body and "invites you to a video consultation" in body
        assert when in body and "Expected duration: 45 minutes" in body and link in body
        assert "Guten Tag" not in body and "Videosprechstunde bei" not in body
    assert '<html lang="en">' in html
    (attachment,) = list(message.iter_attachments())
    event = Calendar.from_ical(attachment.get_content()).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == f"Video consultation with {PRACTICE}"
    # The link opens the pages in English too, in a browser that asks for German.
    patient = app.test_client()
    opened = patient.get(link_in(text)[1], headers={"Accept-Language": "de-DE,de"})
    page = patient.get(opened.headers["Location"], headers={"Accept-Language": "de-DE,de"})
    assert '<html lang="en"' in page.get_data(as_text=True)

    # The change and the cancellation follow the person's language too.
    form = auth.client.get(f"/patienten/termine/{appointment_id}/bearbeiten").get_data(as_text=True)
    assert '<option selected value="en">English</option>' in form
    response = auth.post(f"/patienten/termine/{appointment_id}/bearbeiten", data={
        f"e{appointment_id}-{k}": v for k, v in {
            "first_name": "Erika", "last_name": "Mustermann", "email": "erika@example.org",
            "mobile": "", "language": "en", "date": invite.day.isoformat(), "time": "11:00",
            "duration": "45"}.items()})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert deliver(app) == 1
    update = smtp.wait_for(2)[1]
    assert update["Subject"] == f"Appointment changed: video consultation with {PRACTICE}"
    assert "has changed your video consultation appointment" in text_of(update)
    assert auth.post(f"/patienten/termine/{appointment_id}/loeschen").status_code == 200
    assert deliver(app) == 1
    cancellation = smtp.wait_for(3)[2]
    assert cancellation["Subject"] == f"Appointment cancelled: video consultation with {PRACTICE}"
    assert "has been cancelled" in text_of(cancellation) and "at 11:00" in text_of(cancellation)


def test_a_language_nobody_offered_is_refused_beside_the_field(app, auth, staff):
    before = row_counts(app)
    response = auth.post("/patienten/termine", data=appointment_form(language="fr"))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="language-error"' in html and "Bitte wählen Sie Deutsch oder Englisch." in html
    assert row_counts(app) == before
