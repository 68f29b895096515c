"""Issue 11, appointments change: Bearbeiten (same link, update e-mail over real SMTP
whose .ics replaces the invitation's entry), the double-booking check, and the
practice's Einstellungen (Praxisadmin only)."""
from datetime import timedelta

import pytest
from icalendar import Calendar

from app.auth.models import DOCTOR, MFA, Practice
from app.auth.services import add_staff
from app.extensions import db
from app.patients.models import Appointment
from app.timeutil import to_local, utcnow
from app.tokens import hash_token
from tests.support.forms import appointment_form, created_ids, future_slot, row_counts
from tests.support.html import Html
from tests.support.outbox import deliver, link_in, outbox, outbox_token, text_of
from tests.support.webapp import PASSWORD, logged_in

PRACTICE = "Praxis am Markt"
CHANGED = "Der Termin wurde geändert. Der Teilnehmer wird informiert; sein Link bleibt gültig."
DOUBLE = "Diese Person hat zu dieser Zeit schon einen Termin"


@pytest.fixture
def config_overrides(smtp_port):
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port}


@pytest.fixture
def staff(make_practice, auth):
    practice_id, email = make_practice(name=PRACTICE, tariff="basis")
    assert auth.login(email).status_code == 302
    return practice_id


@pytest.fixture
def invited(staff, make_appointment):
    """(appointment_id, contact_id) of Erika's appointment, three days ahead at 10:00, 20 min."""
    return created_ids(make_appointment())


def edit_data(**overrides):
    """The edit form as the panel fills it (prefix e<id>-), with `overrides`."""
    data = appointment_form(**overrides)
    data.pop("consent")
    return data


def post_edit(auth, appointment_id, **overrides):
    data = {f"e{appointment_id}-{k}": v for k, v in edit_data(**overrides).items()}
    return auth.post(f"/patienten/termine/{appointment_id}/bearbeiten", data=data)


def calendar_of(message):
    (attachment,) = list(message.iter_attachments())
    calendar = Calendar.from_ical(attachment.get_content())
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def stored(app, appointment_id):
    with app.app_context():
        a = db.session.get(Appointment, appointment_id)
        return (a.starts_at, a.duration_minutes, a.contact.email, a.contact.mobile, a.token_hash,
                a.ics_sequence)


def test_edit_keeps_the_link_and_the_update_replaces_the_calendar_entry(app, smtp, auth, invited):
    appointment_id, contact_id = invited
    assert deliver(app) == 1
    (invitation,) = smtp.wait_for(1)
    link, _ = link_in(text_of(invitation))
    _, original = calendar_of(invitation)
    token_hash = stored(app, appointment_id)[4]

    form = auth.get(f"/patienten/termine/{appointment_id}/bearbeiten").get_data(as_text=True)
    assert 'value="10:00"' in form and 'value="erika@example.org"' in form

    day, _ = future_slot(days=4)
    response = post_edit(auth, appointment_id, date=day, time="11:15", duration="45")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "appointments-changed"
    body = response.get_data(as_text=True)
    assert CHANGED in body and "um 11:15 Uhr" in body

    assert deliver(app) == 1
    update = smtp.wait_for(2)[1]
    assert update["To"] == "erika@example.org"
    assert update["Subject"] == f"Termin geändert: Videosprechstunde bei {PRACTICE}"
    text = text_of(update)
    assert "11:15 Uhr" in text and "Voraussichtliche Dauer: 45 Minuten" in text
    assert link_in(text)[0] == link  # the same link
    calendar, event = calendar_of(update)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == str(original["UID"])
    assert int(event["SEQUENCE"]) == int(original["SEQUENCE"]) + 1
    starts_at = stored(app, appointment_id)[0]
    assert event.decoded("DTSTART").replace(tzinfo=None) == starts_at
    assert event.decoded("DTEND").replace(tzinfo=None) == starts_at + timedelta(minutes=45)
    assert str(event["URL"]) == link
    assert stored(app, appointment_id)[4:] == (token_hash, 1)
    # The link still opens the waiting room.
    assert app.test_client().get(link_in(text)[1]).status_code == 302

    # A second change: the sequence goes on.
    assert post_edit(auth, appointment_id, date=day, time="12:00", duration="45").status_code == 200
    deliver(app)
    _, event = calendar_of(smtp.wait_for(3)[2])
    assert int(event["SEQUENCE"]) == int(original["SEQUENCE"]) + 2


def test_edit_without_a_change_sends_nothing(app, auth, invited):
    appointment_id, _ = invited
    response = post_edit(auth, appointment_id)
    assert response.status_code == 200
    assert "Es wurde nichts geändert." in response.get_data(as_text=True)
    assert [m.kind for m in outbox(app)] == ["invitation"]


def test_a_new_address_gets_the_update(app, smtp, auth, invited):
    appointment_id, _ = invited
    assert deliver(app) == 1  # the invitation went to the old address
    assert post_edit(auth, appointment_id, email="erika.neu@example.org", first_name="Erika Maria").status_code == 200
    update = [m for m in outbox(app) if m.kind == "update"]
    assert len(update) == 1
    assert deliver(app) == 1
    mails = smtp.wait_for(2)
    assert {m["To"] for m in mails} == {"erika@example.org", "erika.neu@example.org"}
    assert "Guten Tag Erika Maria Mustermann" in text_of(smtp.mails_to("erika.neu@example.org")[0])


@pytest.mark.parametrize("overrides, field, message", [
    ({"date": "2020-01-01"}, "time", "Der Termin muss in der Zukunft liegen."),
    ({"duration": "0"}, "duration", "Bitte geben Sie eine Dauer zwischen 5 und 180 Minuten an."),
    ({"duration": "1000"}, "duration", "Bitte geben Sie eine Dauer zwischen 5 und 180 Minuten an."),
    ({"email": "erika@"}, "email", "Bitte geben Sie eine gültige E-Mail-Adresse ein, z. B. name@beispiel.de."),
    ({"mobile": "12345"}, "mobile", "Bitte geben Sie eine gültige Mobilnummer ein, z. B. 0151 23456789."),
    ({"last_name": ""}, "last_name", "Bitte geben Sie den Nachnamen ein."),
])
def test_bad_input_is_refused_beside_the_field_and_changes_nothing(app, auth, invited, overrides, field, message):
    appointment_id, _ = invited
    before, counts = stored(app, appointment_id), row_counts(app)
    response = post_edit(auth, appointment_id, **overrides)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert f'id="e{appointment_id}-{field}-error">{message}' in body
    assert stored(app, appointment_id) == before
    assert row_counts(app) == counts


def test_another_practices_appointment_is_not_found(app, invited, make_practice):
    appointment_id, _ = invited
    _, other_email = make_practice()
    other = logged_in(app, other_email)
    before = stored(app, appointment_id)
    assert other.get(f"/patienten/termine/{appointment_id}/bearbeiten").status_code == 404
    assert post_edit(other, appointment_id, time="15:00").status_code == 404
    assert stored(app, appointment_id) == before


# --- double booking --------------------------------------------------------------------

def test_double_booking_on_create_is_refused_or_confirmed(app, auth, invited):
    response = auth.post("/patienten/termine", data=appointment_form(time="10:10"))
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert DOUBLE in body and 'id="time-error"' in body
    assert "Trotzdem anlegen" in body
    assert row_counts(app)["Appointment"] == 1
    # Another person at the same time, or the same one right after: fine.
    assert auth.post("/patienten/termine", data=appointment_form(email="max@example.org")).status_code == 201
    assert auth.post("/patienten/termine", data=appointment_form(time="10:20")).status_code == 201
    # Explicitly confirmed.
    confirmed = auth.post("/patienten/termine", data=appointment_form(time="10:10", confirm_overlap="y"))
    assert confirmed.status_code == 201
    assert row_counts(app)["Appointment"] == 4


def test_double_booking_by_mobile_number(app, auth, make_practice):
    _, email = make_practice(tariff="basis")
    auth.login(email)
    assert auth.post("/patienten/termine", data=appointment_form(mobile="0151 23456789")).status_code == 201
    response = auth.post("/patienten/termine", data=appointment_form(email="other@example.org", mobile="+4915123456789"))
    assert response.status_code == 409


def test_double_booking_on_edit(app, auth, invited, make_appointment):
    appointment_id, _ = invited
    other_id, _ = created_ids(make_appointment(time="14:00"))
    before = stored(app, other_id)
    response = post_edit(auth, other_id, time="10:05")
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert DOUBLE in body and "Trotzdem speichern" in body
    assert stored(app, other_id) == before
    # Its own time is no clash with itself.
    assert post_edit(auth, appointment_id, time="09:55").status_code == 200
    assert post_edit(auth, other_id, time="10:05", confirm_overlap="y").status_code == 200


# --- Einstellungen -----------------------------------------------------------------------

@pytest.fixture
def team(app, make_practice):
    practice_id, admin_email = make_practice(tariff="standard", name=PRACTICE)
    with app.app_context():
        practice = db.session.get(Practice, practice_id)
        add_staff(practice, "arzt@team.example", "Dr. Arzt", PASSWORD, DOCTOR)
        add_staff(practice, "mfa@team.example", "Mia MFA", PASSWORD, MFA)
    return practice_id, admin_email


def settings_of(app, practice_id):
    with app.app_context():
        p = db.session.get(Practice, practice_id)
        return p.remind_day_before, p.remind_shortly_before, p.phone


@pytest.mark.parametrize("who", ["arzt@team.example", "mfa@team.example"])
def test_only_the_admin_may_change_the_settings(app, team, who):
    practice_id, _ = team
    staff = logged_in(app, who)
    assert staff.get("/einstellungen", htmx=False).status_code == 403
    response = staff.post("/einstellungen", data={"phone": "030 1234567"}, htmx=False)
    assert response.status_code == 403
    assert settings_of(app, practice_id) == (True, True, None)
    assert "/einstellungen" not in staff.get("/patienten", htmx=False).get_data(as_text=True)


def test_admin_changes_the_settings_and_the_phone_reaches_the_invitation(app, smtp, team):
    practice_id, admin_email = team
    admin = logged_in(app, admin_email)
    page = admin.get("/einstellungen", htmx=False)
    assert page.status_code == 200 and 'checked' in page.get_data(as_text=True)
    bad = admin.post("/einstellungen", data={"phone": "12", "remind_day_before": "y"})
    assert bad.status_code == 422
    assert "Bitte geben Sie eine gültige Telefonnummer ein" in bad.get_data(as_text=True)
    assert settings_of(app, practice_id) == (True, True, None)

    ok = admin.post("/einstellungen", data={"phone": "030 1234567", "remind_day_before": "y"})
    assert ok.status_code == 200
    assert "Die Einstellungen wurden gespeichert." in ok.get_data(as_text=True)
    assert settings_of(app, practice_id) == (True, False, "+49 30 1234567")

    assert admin.post("/patienten/termine", data=appointment_form()).status_code == 201
    deliver(app)
    (invitation,) = smtp.wait_for(1)
    assert "Bei Problemen erreichen Sie die Praxis telefonisch unter +49 30 1234567." in text_of(invitation)


PHONE_INVALID = "Bitte geben Sie eine gültige Telefonnummer ein, z. B. 030 1234567."


@pytest.mark.parametrize("phone", [
    "12",
    "030 123456789012345678901234567",  # longer than 30
    "<script>alert(1)</script>",
    "030\u202e1234567",  # right-to-left override
    "030 1234567\x00",
    "+49 30 1234567 ; DROP TABLE practice",
    "telefon",
    "0" * 5000,
], ids=["too-short", "too-long", "markup", "bidi", "nul", "injection", "letters", "huge"])
def test_hostile_phone_numbers_are_refused_beside_the_field_and_nothing_is_saved(app, team, phone):
    practice_id, admin_email = team
    admin = logged_in(app, admin_email)
    response = admin.post("/einstellungen", data={"phone": phone, "remind_shortly_before": "y"})
    assert response.status_code == 422
    form = Html(response.get_data(as_text=True))
    (field,) = form.find_all("input", name="phone")
    assert field["attrs"]["aria-invalid"] == "true"
    assert form.text(field["attrs"]["aria-describedby"]) == PHONE_INVALID
    # Nothing half-saved: the reminder switch that came with it stays as it was.
    assert settings_of(app, practice_id) == (True, True, None)


def test_settings_without_csrf_are_refused(app, team):
    practice_id, admin_email = team
    admin = logged_in(app, admin_email)
    response = admin.client.post("/einstellungen", data={"phone": "030 1234567"})
    assert response.status_code == 400
    assert settings_of(app, practice_id) == (True, True, None)


# --- Erneut senden asks first; Datum starts at today ------------------------------------

RESEND_WARNING = ("Die Einladung mit einem neuen Link erneut senden? Der bisherige Link wird damit ungültig; "
                  "wer ihn schon geöffnet hat, muss den neuen verwenden.")


def test_resend_asks_first_and_says_the_old_link_dies(app, auth, invited):
    appointment_id, contact_id = invited
    panel = Html(auth.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True))
    (button,) = [b for b in panel.find_all("button") if "Erneut senden" in b["text"]]
    assert button["attrs"]["hx-confirm"] == RESEND_WARNING
    # What it says is what happens: the old link stops working.
    token_hash = stored(app, appointment_id)[4]
    assert auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/email").status_code == 200
    new_hash = stored(app, appointment_id)[4]
    assert new_hash != token_hash
    # An update afterwards carries the new link, not the dead one.
    assert post_edit(auth, appointment_id, time="17:00").status_code == 200
    (update,) = [m for m in outbox(app) if m.kind == "update"]
    with app.app_context():
        assert hash_token(outbox_token(update)) == new_hash


def test_the_form_starts_at_today_in_the_practice_zone(app, make_practice, auth):
    _, email = make_practice(timezone="Pacific/Kiritimati")  # UTC+14: often a day ahead
    auth.login(email)
    html = Html(auth.get("/patienten/termin-erstellen").get_data(as_text=True))
    assert html.value("date") == to_local(utcnow(), "Pacific/Kiritimati").date().isoformat()


def test_further_participants_hear_of_the_change_and_keep_their_link(app, smtp, make_practice, auth, make_appointment):
    _, email = make_practice(tariff="premium", name=PRACTICE)
    auth.login(email)
    appointment_id, _ = created_ids(make_appointment())
    person = {"first_name": "Jonas", "last_name": "Dolmetscher", "email": "jonas@example.org", "mobile": "",
              "consent": "y"}
    added = auth.post(f"/patienten/termine/{appointment_id}/teilnehmer",
                      data={f"a{appointment_id}-{k}": v for k, v in person.items()})
    assert added.status_code == 201
    deliver(app)
    link = smtp.link(smtp.mails_to("jonas@example.org", "Einladung")[0])

    assert post_edit(auth, appointment_id, time="16:45").status_code == 200
    assert sorted((m.kind, m.participant_id is None) for m in outbox(app) if m.kind == "update") == [
        ("update", False), ("update", True)]
    deliver(app)
    (update,) = smtp.mails_to("jonas@example.org", "Termin geändert")
    text = text_of(update)
    assert "Guten Tag Jonas Dolmetscher" in text and "um 16:45 Uhr" in text
    assert "Bitte verwenden Sie den persönlichen Link aus Ihrer Einladung; er bleibt gültig." in text
    _, event = calendar_of(update)
    assert int(event["SEQUENCE"]) == 1 and "URL" not in event
    assert app.test_client().get(link.replace("http://localhost", "")).status_code == 302
