"""A person's data on request (issue 12, DSGVO Art. 15, 17, 20): "Daten exportieren" gives
everything stored about a contact as JSON; "Kontakt löschen" erases the contact with all
its appointments, guests, consents, chat and delivery rows, and nothing of anybody else. Only
accounts that conduct consultations (Praxisadmin, Arzt) may; another practice gets 404.
On SQLite and PostgreSQL."""
import json

from sqlalchemy import func, select

from app.auth import audit
from app.auth.models import MFA, Practice
from app.auth.services import add_staff
from app.chat.models import ChatMessage
from app.extensions import db
from app.invitations.models import OutboxMessage
from app.patients.models import Appointment, Contact, Participant, VisitorConsent
from tests.support.forms import appointment_form, created_ids
from tests.support.outbox import invitation_token, opened_link
from tests.support.webapp import PASSWORD, csrf_token, logged_in

GUEST = {"first_name": "Gerd", "last_name": "Gast", "email": "gerd@example.org", "mobile": "", "consent": "y"}


def count(app, model, **where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def setup_people(app, make_practice, auth):
    practice_id, email = make_practice("premium")
    auth.login(email)
    first, erika = created_ids(auth.post("/patienten/termine", data=appointment_form()))
    second, _ = created_ids(auth.post("/patienten/termine", data=appointment_form(time="15:00")))
    other, max_ = created_ids(auth.post("/patienten/termine", data=appointment_form(
        first_name="Max", last_name="Muster", email="max@example.org")))
    # Erika consented on the device check and withdrew; Max consented; so did the guest.
    erika_browser = opened_link(app, invitation_token(app, appointment_id=first))
    withdrawn = erika_browser.post("/sprechstunde/einwilligung-widerrufen",
                                   data={"csrf_token": csrf_token(erika_browser, "/sprechstunde")})
    assert withdrawn.status_code == 303
    opened_link(app, invitation_token(app, appointment_id=other))
    assert auth.post(f"/patienten/termine/{first}/teilnehmer",
                     data={f"a{first}-{k}": v for k, v in GUEST.items()}).status_code == 201
    with app.app_context():
        guest_id = db.session.scalar(select(Participant.id))
    opened_link(app, invitation_token(app, participant_id=guest_id))
    for appointment_id, text in ((first, "Bitte Befund mitbringen"), (other, "Für Max")):
        assert auth.post(f"/chat/{appointment_id}/nachrichten", data={"text": text}).status_code == 201
    return practice_id, {"first": first, "second": second, "other": other, "erika": erika, "max": max_}


def test_the_export_holds_the_persons_data_and_nobody_elses(app, make_practice, auth):
    practice_id, ids = setup_people(app, make_practice, auth)
    response = auth.get(f"/patienten/kontakte/{ids['erika']}/daten.json", htmx=False)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="kontakt-{ids["erika"]}.json"'
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert data["contact"] == {"first_name": "Erika", "last_name": "Mustermann", "email": "erika@example.org",
                               "mobile": None, "language": "de", "created_at": data["contact"]["created_at"]}
    assert [a["id"] for a in data["appointments"]] == [ids["first"], ids["second"]]
    assert data["appointments"][0]["further_participants"] == 1
    assert data["appointments"][0]["consent_text"]
    assert [m["text"] for m in data["chat"]] == ["Bitte Befund mitbringen"]
    assert {m["kind"] for m in data["messages_sent"]} == {"invitation"}
    # Her own consent on the device check, with its withdrawal; not the guest's, not Max's.
    (consent,) = data["consents"]
    assert consent["appointment_id"] == ids["first"] and consent["wording_version"] == 1
    assert consent["given_at"] <= consent["withdrawn_at"]
    text = response.get_data(as_text=True)
    for someone_else in ("Max", "max@example.org", "Gerd", "gerd@example.org", "Für Max"):
        assert someone_else not in text
    with app.app_context():
        assert audit.entries(practice_id)[0].action == "contact.export"


def test_erasing_takes_everything_of_the_person_and_nothing_else(app, make_practice, auth):
    practice_id, ids = setup_people(app, make_practice, auth)
    kinds = (Contact, Appointment, Participant, ChatMessage, VisitorConsent)
    before = {model: count(app, model) for model in kinds}
    assert before == {Contact: 2, Appointment: 3, Participant: 1, ChatMessage: 2, VisitorConsent: 3}
    outbox_before = count(app, OutboxMessage)

    # Asking first changes nothing.
    confirm = auth.get(f"/patienten/kontakte/{ids['erika']}/loeschen")
    assert confirm.status_code == 200 and "Ja, Kontakt löschen" in confirm.get_data(as_text=True)
    assert count(app, Contact) == 2

    response = auth.post(f"/patienten/kontakte/{ids['erika']}/loeschen")
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "appointments-changed"
    assert {model: count(app, model) for model in kinds} == {
        Contact: 1, Appointment: 1, Participant: 0, ChatMessage: 1, VisitorConsent: 1}
    assert count(app, VisitorConsent, appointment_id=ids["other"]) == 1
    assert count(app, OutboxMessage, appointment_id=ids["other"]) == 1
    # No cancellation went out: the person asked for their data to be gone.
    assert count(app, OutboxMessage) == outbox_before - 3
    assert auth.get(f"/patienten/kontakte/{ids['erika']}", htmx=False).status_code == 404
    with app.app_context():
        assert audit.entries(practice_id)[0].action == "contact.erase"
        assert db.session.get(Contact, ids["max"]) is not None


def test_an_mfa_and_another_practice_may_not(app, make_practice, auth):
    practice_id, ids = setup_people(app, make_practice, auth)
    with app.app_context():
        add_staff(db.session.get(Practice, practice_id), "mfa@rights.example", "Mia MFA", PASSWORD, MFA)
    mfa = logged_in(app, "mfa@rights.example")
    _, other_email = make_practice()
    stranger = logged_in(app, other_email)
    for client, status in ((mfa, 403), (stranger, 404)):
        assert client.get(f"/patienten/kontakte/{ids['erika']}/daten.json", htmx=False).status_code == status
        assert client.get(f"/patienten/kontakte/{ids['erika']}/loeschen").status_code == status
        assert client.post(f"/patienten/kontakte/{ids['erika']}/loeschen").status_code == status
    assert count(app, Contact) == 2
    assert "Kontakt löschen" not in mfa.get(f"/patienten/kontakte/{ids['erika']}", htmx=False).get_data(as_text=True)
