"""Practices are tenants: another practice's ids answer 404 and change nothing; without
login every Patienten route leads to /login; state changes need the CSRF token."""
import pytest
from sqlalchemy import select

from app.extensions import db
from app.patients.models import Appointment, Contact
from tests.support.fakes import VONAGE_NOWHERE
from tests.support.forms import NOTHING_SAVED, appointment_form, row_counts
from tests.support.html import Html
from tests.support.webapp import Auth


@pytest.fixture
def config_overrides():
    return dict(VONAGE_NOWHERE)


def snapshot(app):
    """Every row of every table: a request that is refused must leave all of it alone."""
    with app.app_context():
        return {table.name: sorted(tuple(map(repr, row)) for row in db.session.execute(select(table)).all())
                for table in db.metadata.sorted_tables}


@pytest.fixture
def two_practices(app, auth, make_practice):
    """Staff A logged in on `auth`; practice B with a contact, an appointment (e-mail + SMS)
    and a chat message. Returns (b_client, contact_id, appointment_id) of B."""
    _, email_a = make_practice(tariff="standard")
    _, email_b = make_practice(tariff="standard")
    b = Auth(app.test_client())
    assert b.login(email_b).status_code == 302
    response = b.post("/patienten/termine", data=appointment_form(
        first_name="Bernd", last_name="Beispiel", email="bernd@example.org", mobile="0151 23456789", send_sms="y"))
    assert response.status_code == 201
    with app.app_context():
        appointment = db.session.execute(select(Appointment)).scalar_one()
        ids = appointment.contact_id, appointment.id
    assert b.post(f"/chat/{ids[1]}/nachrichten", data={"text": "Guten Tag"}).status_code == 201
    assert auth.login(email_a).status_code == 302
    return (b, *ids)


FOREIGN_ROUTES = [
    ("get", "/patienten/kontakte/{contact}"),
    ("get", "/patienten/termine/{appointment}/zustellung"),
    ("post", "/patienten/termine/{appointment}/erneut-senden/email"),
    ("post", "/patienten/termine/{appointment}/erneut-senden/sms"),
    ("post", "/patienten/termine/{appointment}/erneut-senden/brieftaube"),
    ("get", "/patienten/termine/{appointment}/loeschen"),
    ("delete", "/patienten/termine/{appointment}"),
    ("post", "/patienten/termine/{appointment}/loeschen"),
    ("get", "/anruf/{appointment}"),
    ("post", "/anruf/{appointment}/starten"),
    ("get", "/chat/{appointment}"),
    ("get", "/chat/{appointment}/nachrichten"),
    ("post", "/chat/{appointment}/nachrichten"),
]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
@pytest.mark.parametrize("method, path", FOREIGN_ROUTES)
def test_other_practices_ids_are_404_and_untouched(app, auth, two_practices, method, path, htmx):
    b, contact_id, appointment_id = two_practices
    before = snapshot(app)
    url = path.format(contact=contact_id, appointment=appointment_id)
    if method == "delete":
        response = auth.delete(url, htmx=htmx)
    elif method == "post":
        response = auth.post(url, data={"text": "Hallo"}, htmx=htmx)
    else:
        response = auth.get(url, htmx=htmx)
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "Bernd" not in body and "bernd@example.org" not in body
    assert snapshot(app) == before
    # B still sees and can use its own appointment.
    assert b.get(f"/patienten/kontakte/{contact_id}").status_code == 200


def test_search_never_returns_other_practices_contacts(app, auth, two_practices):
    b, _, _ = two_practices
    for q in ("bernd", "Beispiel", "bernd@", "be"):
        for client, expected in ((auth, []), (b, ["bernd@example.org"])):
            response = client.get("/patienten/suche", query_string={"q": q})
            hits = [e["attrs"]["data-email"] for e in Html(response.get_data(as_text=True)).find_all("button")]
            assert hits == expected, (q, expected)


def test_list_shows_only_own_appointments(app, auth, two_practices):
    assert "Bernd" not in auth.get("/patienten", htmx=False).get_data(as_text=True)
    assert "Bernd" not in auth.get("/patienten/liste").get_data(as_text=True)


def test_other_practices_contact_id_in_the_form_is_not_used(app, auth, two_practices):
    b, contact_id, _ = two_practices
    before = snapshot(app)["contact"]
    response = auth.post("/patienten/termine", data=appointment_form(
        contact_id=str(contact_id), first_name="Anna", last_name="Andere", email="bernd@example.org"))
    assert response.status_code == 201
    assert set(before) <= set(snapshot(app)["contact"])
    with app.app_context():
        contacts = db.session.execute(select(Contact).order_by(Contact.id)).scalars().all()
        assert [(c.first_name, c.email) for c in contacts] == [("Bernd", "bernd@example.org"),
                                                               ("Anna", "bernd@example.org")]
        assert contacts[0].practice_id != contacts[1].practice_id


PATIENTEN_ROUTES = [
    ("get", "/"),
    ("get", "/patienten"),
    ("get", "/patienten/termin-erstellen"),
    ("get", "/patienten/liste"),
    ("get", "/patienten/suche?q=bernd"),
    ("get", "/patienten/kontakte/{contact}"),
    ("get", "/patienten/termine/{appointment}/zustellung"),
    ("get", "/patienten/termine/{appointment}/loeschen"),
    ("post", "/patienten/termine"),
    ("post", "/patienten/termine/{appointment}/erneut-senden/email"),
    ("post", "/patienten/termine/{appointment}/loeschen"),
    ("delete", "/patienten/termine/{appointment}"),
    ("get", "/anruf/{appointment}"),
    ("post", "/anruf/{appointment}/starten"),
    ("get", "/chat/{appointment}"),
]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
@pytest.mark.parametrize("method, path", PATIENTEN_ROUTES)
def test_without_login_everything_leads_to_login(app, two_practices, method, path, htmx):
    _, contact_id, appointment_id = two_practices
    anonymous = Auth(app.test_client())
    anonymous.csrf("/login")  # a valid token: the login check must be what stops it
    before = snapshot(app)
    url = path.format(contact=contact_id, appointment=appointment_id)
    if method == "delete":
        response = anonymous.delete(url, htmx=htmx)
    elif method == "post":
        response = anonymous.post(url, data=appointment_form(), htmx=htmx)
    else:
        response = anonymous.get(url, htmx=htmx)
    if htmx:
        # htmx gets the whole login page through HX-Redirect rather than a 302 it would swap in.
        assert response.status_code == 401
        assert response.headers["HX-Redirect"].startswith("/login")
    else:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    assert snapshot(app) == before


CSRF_MESSAGE = "Die Sitzung ist abgelaufen. Bitte laden Sie die Seite neu."


@pytest.mark.parametrize("token", [None, "", "falsch"], ids=["missing", "empty", "wrong"])
def test_creating_without_csrf_token_is_refused(app, auth, make_practice, token):
    _, email = make_practice()
    auth.login(email)
    headers = {"HX-Request": "true"}
    if token is not None:
        headers["X-CSRFToken"] = token
    response = auth.client.post("/patienten/termine", data=appointment_form(), headers=headers)
    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert row_counts(app) == NOTHING_SAVED
    # The same request with the token goes through: the token was what was missing.
    assert auth.post("/patienten/termine", data=appointment_form()).status_code == 201


@pytest.mark.parametrize("method, path", [
    ("delete", "/patienten/termine/{appointment}"),
    ("post", "/patienten/termine/{appointment}/loeschen"),
    ("post", "/patienten/termine/{appointment}/erneut-senden/email"),
    ("post", "/anruf/{appointment}/starten"),
    ("post", "/chat/{appointment}/nachrichten"),
])
def test_state_changes_without_csrf_token_are_refused(app, auth, make_practice, method, path):
    _, email = make_practice()
    auth.login(email)
    assert auth.post("/patienten/termine", data=appointment_form()).status_code == 201
    with app.app_context():
        appointment_id = db.session.execute(select(Appointment.id)).scalar_one()
    before = snapshot(app)
    url = path.format(appointment=appointment_id)
    response = getattr(auth.client, method)(url, data={"text": "Hallo"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert snapshot(app) == before
