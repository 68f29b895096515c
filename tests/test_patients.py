"""The Patienten tab over HTTP: contacts, search, the list, the panel, delivery, resend, delete."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.tokens import hash_token
from app.extensions import db
from app.invitations.models import FAILED, PENDING, SENT, OutboxMessage
from app.patients.models import Appointment, Contact, VisitorConsent
from app.timeutil import to_local, utcnow
from tests.support.fakes import VONAGE_NOWHERE
from tests.support.forms import appointment_form, future_slot, row_counts
from tests.support.html import Html, squash
from tests.support.outbox import opened_link, outbox_token
from tests.support.webapp import CSRF_RE, Auth


@pytest.fixture
def config_overrides():
    return dict(VONAGE_NOWHERE)


@pytest.fixture
def practice_a(auth, make_practice):
    """Staff of practice A logged in on `auth`; returns the practice id."""
    practice_id, email = make_practice()
    assert auth.login(email).status_code == 302
    return practice_id


@pytest.fixture
def other_staff(app, make_practice):
    """Staff of another practice, logged in on a client of their own."""

    def login(tariff="premium"):
        practice_id, email = make_practice(tariff=tariff)
        other = Auth(app.test_client())
        assert other.login(email).status_code == 302
        return practice_id, other

    return login


def create(auth, **overrides):
    response = auth.post("/patienten/termine", data=appointment_form(**overrides))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response


def only(app, model, **filters):
    with app.app_context():
        return db.session.execute(select(model).filter_by(**filters)).scalar_one()


def appointment_token(app, appointment_id):
    """The raw link token of an appointment, as the outbox holds it for the sender."""
    with app.app_context():
        message = db.session.execute(
            select(OutboxMessage).filter_by(appointment_id=appointment_id, kind="invitation", channel="email")
            .order_by(OutboxMessage.id.desc())).scalars().first()
        return outbox_token(message)


def insert_past_appointment(app, contact_id, days_ago=2, duration=20):
    from app.tokens import new_token

    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        now = utcnow()
        appointment = Appointment(practice_id=contact.practice_id, contact_id=contact.id,
                                  starts_at=(now - timedelta(days=days_ago)).replace(second=0, microsecond=0),
                                  duration_minutes=duration, token_hash=new_token()[1], consent_at=now,
                                  consent_text="Der Nutzer hat eingewilligt, SMS- und E-Mail-Nachrichten von mir zu erhalten")
        db.session.add(appointment)
        db.session.commit()
        return appointment.id, appointment.starts_at


def same_page(html, path):
    """The page without what differs by request: the CSRF token and the path (language switch)."""
    token = CSRF_RE.search(html)
    html = html.replace(token.group(1), "CSRF") if token else html
    return html.replace(path, "PATH")


def search_hits(auth, q):
    response = auth.get("/patienten/suche", query_string={"q": q})
    assert response.status_code == 200
    return [(e["attrs"]["data-first-name"], e["attrs"]["data-last-name"], e["attrs"]["data-email"])
            for e in Html(response.get_data(as_text=True)).find_all("button", class_="search-hit")]


def local_text(value, fmt="%d.%m.%Y, %H:%M"):
    return to_local(value, "Europe/Berlin").strftime(fmt)


# --- contacts -------------------------------------------------------------------------

def test_same_email_in_one_practice_is_one_contact(app, auth, practice_a):
    create(auth, email="erika@example.org", first_name="Erika", mobile="0151 23456789")
    day, _ = future_slot(days=5)
    create(auth, email="  ERIKA@Example.org", first_name="Erika Maria", date=day)
    contact = only(app, Contact)
    assert contact.email == "erika@example.org"
    # The latest form wins for the name; a mobile left empty keeps the known one.
    assert (contact.first_name, contact.mobile) == ("Erika Maria", "+4915123456789")
    with app.app_context():
        appointments = db.session.execute(select(Appointment)).scalars().all()
    assert len(appointments) == 2
    assert {a.contact_id for a in appointments} == {contact.id}
    assert len({a.token_hash for a in appointments}) == 2


def test_same_email_in_another_practice_is_a_separate_contact(app, auth, practice_a, other_staff):
    practice_b, other = other_staff()
    create(auth, email="erika@example.org")
    create(other, email="Erika@example.org", first_name="Eri")
    with app.app_context():
        contacts = db.session.execute(select(Contact).order_by(Contact.id)).scalars().all()
    assert [(c.practice_id, c.email, c.first_name) for c in contacts] == [
        (practice_a, "erika@example.org", "Erika"), (practice_b, "erika@example.org", "Eri")]


# --- search ---------------------------------------------------------------------------

@pytest.fixture
def contacts(auth, practice_a):
    for first, last, email in [("Erika", "Mustermann", "erika@example.org"),
                               ("Max", "Müller", "max.mueller@example.org"),
                               ("Anna", "Schmidt", "anna_s@example.org"),
                               ("Annabel", "Lee", "annaxs@example.org"),
                               ("Jörg", "Ölmann", "j.oelmann@example.net")]:
        create(auth, first_name=first, last_name=last, email=email)


ERIKA = ("Erika", "Mustermann", "erika@example.org")


@pytest.mark.parametrize("q, expected", [
    ("Eri", [ERIKA]),
    ("erika", [ERIKA]),
    ("ERIKA", [ERIKA]),
    ("muster", [ERIKA]),
    ("MUSTERMANN", [ERIKA]),
    ("erika muster", [ERIKA]),
    ("  erika   muster ", [ERIKA]),
    ("erika@", [ERIKA]),
    ("max.m", [("Max", "Müller", "max.mueller@example.org")]),
    ("MÜLL", [("Max", "Müller", "max.mueller@example.org")]),
    ("öl", [("Jörg", "Ölmann", "j.oelmann@example.net")]),
    ("anna", [("Annabel", "Lee", "annaxs@example.org"), ("Anna", "Schmidt", "anna_s@example.org")]),
    ("anna_", [("Anna", "Schmidt", "anna_s@example.org")]),  # "_" is no wildcard
    ("_r", []),
    ("%%", []),  # "%" is no wildcard
    ("%a", []),
    ("example", []),  # the e-mail is searched from its start
    ("mann", []),  # names from the start of a word
    ("e", []),  # fewer than two characters
    ("", []),
    ("er\x00ika", [ERIKA]),  # PostgreSQL refuses NUL in text; it is dropped
    ("x" * 500, []),
])
def test_contact_search(app, auth, contacts, q, expected):
    assert search_hits(auth, q) == expected


def test_search_hit_fills_the_form(app, auth, contacts):
    response = auth.get("/patienten/suche?q=erika")
    hit = Html(response.get_data(as_text=True)).find_all("button", class_="search-hit")[0]["attrs"]
    contact = only(app, Contact, email="erika@example.org")
    assert hit["data-id"] == str(contact.id)
    assert hit["data-mobile"] == ""


def test_search_without_hits_says_so_only_from_two_characters(app, auth, contacts):
    assert "Keine eingeladenen Personen gefunden." in auth.get("/patienten/suche?q=zz").get_data(as_text=True)
    assert "Keine eingeladenen Personen gefunden." not in auth.get("/patienten/suche?q=z").get_data(as_text=True)


def test_search_returns_at_most_ten(app, auth, practice_a):
    for i in range(12):
        create(auth, first_name="Test", last_name=f"Person {chr(65 + i)}", email=f"test{i}@example.org")
    hits = search_hits(auth, "test")
    assert len(hits) == 10
    assert [h[1] for h in hits] == [f"Person {chr(65 + i)}" for i in range(10)]


def test_search_only_finds_own_practice(app, auth, contacts, other_staff):
    _, other = other_staff()
    create(other, first_name="Erika", last_name="Beispiel", email="erika.b@example.org")
    assert search_hits(auth, "erika") == [ERIKA]
    assert search_hits(other, "erika") == [("Erika", "Beispiel", "erika.b@example.org")]


# --- the list ------------------------------------------------------------------------

def test_list_upcoming_soonest_first_and_past_apart(app, auth, practice_a):
    late_day, _ = future_slot(days=9)
    soon_day, _ = future_slot(days=2)
    create(auth, first_name="Spaet", last_name="Patient", email="spaet@example.org", date=late_day, time="16:45")
    create(auth, first_name="Frueh", last_name="Patient", email="frueh@example.org", date=soon_day, time="08:05")
    create(auth, first_name="Alt", last_name="Patient", email="alt@example.org")
    alt = only(app, Contact, email="alt@example.org")
    with app.app_context():
        db.session.execute(db.delete(Appointment).where(Appointment.contact_id == alt.id))
        db.session.commit()
    _, past_start = insert_past_appointment(app, alt.id, days_ago=3)

    page = Html(auth.get("/patienten", htmx=False).get_data(as_text=True))
    upcoming = page.find_all("ul", class_="patient-list")[0]
    rows = [squash(li["text"]) for li in page.elements if li["tag"] == "li" and "appointment-row-" in li["attrs"].get("id", "")]
    day = lambda d: "{}.{}.{}".format(*reversed(d.split("-")))  # noqa: E731
    assert rows == [f"Frueh Patient {day(soon_day)}, 08:05 · 20 Min.",
                    f"Spaet Patient {day(late_day)}, 16:45 · 20 Min."]
    assert "Alt Patient" not in upcoming["text"]
    past = page.find_all("details", class_="past")[0]
    assert squash(past["text"]).startswith("Vergangene Termine (1)")
    assert f"Alt Patient {local_text(past_start)}" in squash(past["text"])

    # The HTMX refresh (after "appointments-changed") is the same list.
    fragment = Html(auth.get("/patienten/liste").get_data(as_text=True))
    assert [squash(e["text"]) for e in fragment.find_all("span", class_="patient-name")] == [
        "Frueh Patient", "Spaet Patient", "Alt Patient"]


def test_list_is_empty_at_first(app, auth, practice_a):
    html = auth.get("/patienten", htmx=False).get_data(as_text=True)
    assert "Keine anstehenden Termine." in html
    assert "Vergangene Termine" not in html


# --- the panel, delivery, resend ------------------------------------------------------

def test_panel_shows_the_appointment_and_its_actions(app, auth, practice_a):
    day, _ = future_slot(days=4)
    create(auth, mobile="0151 23456789", send_sms="y", date=day, time="11:30")
    appointment = only(app, Appointment)
    insert_past_appointment(app, appointment.contact_id, days_ago=10)

    response = auth.get(f"/patienten/kontakte/{appointment.contact_id}")
    assert response.status_code == 200
    page = Html(response.get_data(as_text=True))
    panel = page.by_id(f"contact-{appointment.contact_id}")
    assert squash(panel["text"]).startswith("Erika Mustermann erika@example.org · +4915123456789")
    local_day = "{}.{}.{}".format(*reversed(day.split("-")))
    assert f"Termin am {local_day} um 11:30 Uhr" in page.text(f"appointment-{appointment.id}")
    assert "Voraussichtliche Dauer: 20 Minuten" in page.text(f"appointment-{appointment.id}")

    [call] = page.find_all("button", text="Anruf starten")
    assert call["parent"]["tag"] == "form"
    assert call["parent"]["attrs"]["action"] == f"/anruf/{appointment.id}/starten"
    [chat] = page.find_all("a", text="Chat")
    assert chat["attrs"]["href"] == f"/chat/{appointment.id}"
    [delete] = page.find_all("a", text="Termin löschen")
    assert delete["attrs"]["hx-get"] == f"/patienten/termine/{appointment.id}/loeschen"

    states = {e["attrs"]["data-channel"]: squash(e["text"]) for e in page.find_all("li", class_="delivery-state state-pending")}
    assert states == {"email": "E-Mail: wird gesendet … Erneut senden", "sms": "SMS: wird gesendet … Erneut senden"}
    assert "Vergangene Termine (1)" in squash(panel["text"])

    response = auth.post(f"/anruf/{appointment.id}/starten", htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/anruf/{appointment.id}"
    assert auth.get(f"/anruf/{appointment.id}", htmx=False).status_code == 200
    assert auth.get(f"/chat/{appointment.id}", htmx=False).status_code == 200


def test_panel_without_htmx_is_the_whole_page(app, auth, practice_a):
    create(auth)
    contact = only(app, Contact)
    html = auth.get(f"/patienten/kontakte/{contact.id}", htmx=False).get_data(as_text=True)
    page = Html(html)
    assert page.by_id(f"contact-{contact.id}")
    assert page.by_id("patients-heading")


@pytest.mark.parametrize("status, error, panel_text, toast", [
    (SENT, None, "E-Mail: versendet", "Einladungs-E-Mail wurde versendet."),
    (FAILED, "550 mailbox unavailable", "E-Mail: fehlgeschlagen – bitte Adresse bzw. Nummer prüfen",
     "Einladungs-E-Mail konnte nicht zugestellt werden. Bitte prüfen Sie die Adresse bzw. Nummer."),
    (PENDING, "451 try later", "E-Mail: noch nicht zugestellt, wird erneut versucht",
     "Einladungs-E-Mail konnte noch nicht zugestellt werden; es wird automatisch erneut versucht."),
])
def test_delivery_state_in_panel_and_toast(app, auth, practice_a, status, error, panel_text, toast):
    create(auth)
    appointment = only(app, Appointment)
    response = auth.get(f"/patienten/termine/{appointment.id}/zustellung?n=1")
    assert response.status_code == 200  # still sending: keep polling
    assert "hx-get" in Html(response.get_data(as_text=True)).by_id(f"delivery-{appointment.id}")["attrs"]

    with app.app_context():
        message = db.session.execute(select(OutboxMessage)).scalar_one()
        message.status, message.last_error = status, error
        db.session.commit()

    response = auth.get(f"/patienten/termine/{appointment.id}/zustellung?n=2")
    assert response.status_code == 286
    assert response.headers["HX-Trigger"] == "deliveries-changed"
    page = Html(response.get_data(as_text=True))
    assert "hx-get" not in page.by_id(f"delivery-{appointment.id}")["attrs"]
    assert [squash(e["text"]) for e in page.find_all("span", class_="toast-text")] == [toast]

    panel = Html(auth.get(f"/patienten/kontakte/{appointment.contact_id}").get_data(as_text=True))
    assert squash(panel.find_all("li", data_channel="email")[0]["text"]) == panel_text + " Erneut senden"


def test_delivery_polling_stops_after_the_limit(app, auth, practice_a):
    from app.patients.routes import MAX_DELIVERY_POLLS

    create(auth)
    appointment = only(app, Appointment)
    response = auth.get(f"/patienten/termine/{appointment.id}/zustellung?n={MAX_DELIVERY_POLLS}")
    assert response.status_code == 286


@pytest.mark.parametrize("first_status", [PENDING, SENT])
def test_resend_email_replaces_the_link(app, auth, practice_a, first_status):
    create(auth)
    appointment = only(app, Appointment)
    old_token = appointment_token(app, appointment.id)
    with app.app_context():
        db.session.execute(db.update(OutboxMessage).values(status=first_status))
        db.session.commit()
    response = auth.post(f"/patienten/termine/{appointment.id}/erneut-senden/email")
    assert response.status_code == 200
    page = Html(response.get_data(as_text=True))
    assert page.by_id(f"contact-{appointment.contact_id}")
    assert [squash(e["text"]) for e in page.find_all("span", class_="toast-text")] == [
        "Die Einladung wird erneut gesendet. Der bisherige Link ist damit ungültig."]
    new_token = appointment_token(app, appointment.id)
    assert new_token != old_token
    assert only(app, Appointment).token_hash == hash_token(new_token)
    with app.app_context():
        pending = db.session.execute(select(OutboxMessage).filter_by(status=PENDING)).scalars().all()
        assert [outbox_token(m) for m in pending] == [new_token]
    patient = app.test_client()
    assert patient.get(f"/j/{old_token}").status_code == 404
    assert patient.get(f"/j/{new_token}").status_code == 302


@pytest.mark.parametrize("tariff, mobile, status, message", [
    ("basis", "0151 23456789", 403, "SMS-Einladungen sind in den Tarifen Standard und Premium enthalten."),
    ("standard", "", 422, "Für die SMS-Einladung wird eine Mobilnummer benötigt."),
])
def test_resend_sms_refused(app, auth, make_practice, tariff, mobile, status, message):
    _, email = make_practice(tariff=tariff)
    auth.login(email)
    create(auth, mobile=mobile)
    appointment = only(app, Appointment)
    response = auth.post(f"/patienten/termine/{appointment.id}/erneut-senden/sms")
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert only(app, Appointment).token_hash == appointment.token_hash
    assert row_counts(app)["OutboxMessage"] == 1


def test_resend_sms_on_standard(app, auth, make_practice):
    _, email = make_practice(tariff="standard")
    auth.login(email)
    create(auth, mobile="0151 23456789")
    appointment = only(app, Appointment)
    assert auth.post(f"/patienten/termine/{appointment.id}/erneut-senden/sms").status_code == 200
    with app.app_context():
        assert db.session.execute(select(OutboxMessage.channel).order_by(OutboxMessage.id)).scalars().all() == [
            "email", "sms"]


def test_resend_unknown_channel_is_404(app, auth, practice_a):
    create(auth)
    appointment = only(app, Appointment)
    response = auth.post(f"/patienten/termine/{appointment.id}/erneut-senden/brieftaube")
    assert response.status_code == 404
    assert "Unbekannter Versandweg." in response.get_data(as_text=True)
    assert only(app, Appointment).token_hash == appointment.token_hash


# --- delete ---------------------------------------------------------------------------

def test_confirm_delete_fragment(app, auth, practice_a):
    create(auth)
    appointment = only(app, Appointment)
    response = auth.get(f"/patienten/termine/{appointment.id}/loeschen")
    assert response.status_code == 200
    page = Html(response.get_data(as_text=True))
    [form] = page.find_all("form", class_="confirm")
    assert form["attrs"]["hx-delete"].split("?")[0] == f"/patienten/termine/{appointment.id}"
    assert form["attrs"]["action"] == f"/patienten/termine/{appointment.id}/loeschen"
    assert form["attrs"]["hx-target"] == f"#contact-{appointment.contact_id}"
    assert squash(form["text"]).startswith("Termin wirklich löschen?")
    assert page.find_all("button", text="Ja, Termin löschen")
    assert page.value("csrf_token")
    assert row_counts(app)["Appointment"] == 1


@pytest.mark.parametrize("how", ["delete", "post"])
def test_delete_kills_the_link(app, auth, practice_a, how):
    create(auth)
    appointment = only(app, Appointment)
    token = appointment_token(app, appointment.id)
    patient = app.test_client()
    unknown = patient.get("/j/" + "A" * 43)
    malformed = patient.get("/j/kaputt")
    assert (unknown.status_code, malformed.status_code) == (404, 404)

    if how == "delete":
        response = auth.delete(f"/patienten/termine/{appointment.id}")
    else:
        response = auth.post(f"/patienten/termine/{appointment.id}/loeschen", htmx=False)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "appointments-changed"
    html = response.get_data(as_text=True)
    assert "Der Termin wurde gelöscht. Der Link ist ungültig und der Teilnehmer wird informiert." in html
    assert "Kein anstehender Termin." in html

    with app.app_context():
        assert db.session.get(Appointment, appointment.id) is None
        messages = db.session.execute(select(OutboxMessage)).scalars().all()
    # The invitation went with the appointment; the cancellation outlives it.
    assert [(m.kind, m.channel, m.appointment_id) for m in messages] == [("cancellation", "email", None)]
    assert row_counts(app)["Contact"] == 1

    gone = patient.get(f"/j/{token}")
    assert gone.status_code == 404
    expected = same_page(unknown.get_data(as_text=True), "/j/" + "A" * 43)
    assert same_page(gone.get_data(as_text=True), f"/j/{token}") == expected
    assert same_page(malformed.get_data(as_text=True), "/j/kaputt") == expected
    assert "Dieser Link ist nicht (mehr) gültig." in expected


def consent_rows(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(VisitorConsent))


def test_delete_ends_a_redeemed_patient_session(app, auth, practice_a):
    create(auth)
    appointment = only(app, Appointment)
    patient = opened_link(app, appointment_token(app, appointment.id))  # and consented
    assert patient.get("/sprechstunde").status_code == 200
    assert consent_rows(app) == 1
    auth.delete(f"/patienten/termine/{appointment.id}")
    assert patient.get("/sprechstunde").status_code == 404
    # The patient's consent went with the appointment.
    assert consent_rows(app) == 0


def test_deleting_twice_is_404(app, auth, practice_a):
    create(auth)
    appointment = only(app, Appointment)
    assert auth.delete(f"/patienten/termine/{appointment.id}").status_code == 200
    assert auth.delete(f"/patienten/termine/{appointment.id}").status_code == 404
    assert auth.get(f"/patienten/termine/{appointment.id}/loeschen").status_code == 404


@pytest.mark.parametrize("appointment_id", [0, 2**31, 10**20])
@pytest.mark.parametrize("method, path", [
    ("get", "/patienten/kontakte/{}"),
    ("get", "/patienten/termine/{}/zustellung"),
    ("get", "/patienten/termine/{}/loeschen"),
    ("post", "/patienten/termine/{}/erneut-senden/email"),
    ("delete", "/patienten/termine/{}"),
    ("get", "/anruf/{}"),
    ("get", "/chat/{}"),
])
def test_unknown_ids_are_404(app, auth, practice_a, method, path, appointment_id):
    create(auth)
    response = getattr(auth, method)(path.format(appointment_id))
    assert response.status_code == 404
    assert "Diese Seite gibt es nicht." in response.get_data(as_text=True)
