"""No GET changes state (issue 12): any page of any site can make a browser send a GET
(a link, an <img>, a prefetch), so a GET that logs out, marks read or takes over would be
a cross-site action. Every GET route of the app is requested as an anonymous visitor, a
logged-in staff member and a patient, and the database must be the same afterwards. A
new route is in this sweep by itself."""
import pytest

from app.auth.models import LoginSession
from app.extensions import db
from app.patients.models import Contact
from tests.support.outbox import invitation_token, opened_link
from tests.support.webapp import csrf_token

# Only the e-mail's own link changes something by GET: redeeming it is what a click in
# the e-mail must do (for a logged-in staff browser it asks first, see below).
REDEEMS = "consultation.join"


def snapshot(app):
    """Every row of every table; a login session's last-seen time is the request itself,
    and the audit log keeps that a patient's data was looked at (test_audit.py): recording
    a view changes nothing anybody can act on."""
    with app.app_context():
        rows = {}
        for table in db.metadata.sorted_tables:
            if table.name == "audit_entry":
                continue
            columns = [c for c in table.columns if not (table.name == LoginSession.__tablename__
                                                        and c.name == "last_seen_at")]
            rows[table.name] = sorted(tuple(map(str, row)) for row in db.session.execute(db.select(*columns)))
        db.session.remove()
        return rows


def get_urls(app, values):
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        args = {}
        for name in rule.arguments:
            converter = type(rule._converters[name]).__name__
            args[name] = values.get(name, values["int"] if converter == "IntegerConverter" else "x")
        urls.append((rule.endpoint, rule.build(args, append_unknown=False)[1]))
    return sorted(urls)


@pytest.fixture
def scene(app, make_call):
    call = make_call("premium")
    token = invitation_token(app, appointment_id=call.id)  # the patient's (a guest's comes later)
    call.add_guest()
    # Unread chat in both directions, so that a GET that marks read would show.
    for client, path in ((call.patient_client, "/sprechstunde/chat/nachrichten"),
                         (call.staff_client, f"/chat/{call.id}/nachrichten")):
        token_page = "/sprechstunde" if path.startswith("/sprechstunde") else "/patienten"
        assert client.post(path, data={"text": "Hallo"}, headers={"X-CSRFToken": csrf_token(client, token_page),
                                                                   "HX-Request": "true"}).status_code == 201
    with app.app_context():
        contact_id = db.session.execute(db.select(Contact.id)).scalars().first()
    call.patient_token = token
    values = {"appointment_id": call.id, "contact_id": contact_id, "token": token,
              "participant_id": call.guest_ids[0], "int": call.id}
    return call, get_urls(app, values)


def test_every_get_route_leaves_the_database_as_it_was(app, scene):
    call, urls = scene
    assert len(urls) > 10
    browsers = {"anonymous": app.test_client(), "staff": call.staff_client, "patient": call.patient_client}
    changed = []
    for who, client in browsers.items():
        for endpoint, url in urls:
            if endpoint == REDEEMS and who != "staff":
                continue
            before = snapshot(app)
            for htmx in (False, True):
                client.get(url, headers={"HX-Request": "true"} if htmx else {})
            if snapshot(app) != before:
                changed.append((who, url))
    assert changed == []
    # And nobody was logged out or cut off on the way.
    assert call.staff_client.get("/patienten").status_code == 200
    assert call.patient_client.get("/sprechstunde").status_code == 200


def test_a_patient_link_in_a_staff_browser_asks_first(app, scene):
    call, _ = scene
    token = call.patient_token
    page = call.staff_client.get(f"/j/{token}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Als Patient fortfahren / abmelden" in text and f'action="/j/{token}"' in text
    # Still logged in; the patient's own device was not taken over.
    assert call.staff_client.get("/patienten").status_code == 200
    assert call.patient_client.get("/sprechstunde").status_code == 200
    # Without the CSRF token (a foreign site's form) the POST does nothing either.
    assert call.staff_client.post(f"/j/{token}").status_code == 400
    assert call.staff_client.get("/patienten").status_code == 200
    # The button: logged out here, and this browser is the patient now.
    response = call.staff_client.post(f"/j/{token}", data={"csrf_token": csrf_token(call.staff_client, f"/j/{token}")})
    assert response.status_code == 303 and response.headers["Location"] == "/sprechstunde/geraetetest"
    assert call.staff_client.get("/patienten").status_code == 302
    assert call.staff_client.get("/sprechstunde").status_code == 200
    assert call.patient_client.get("/sprechstunde").status_code == 403  # taken over


def test_a_link_opened_by_an_anonymous_browser_redeems_it(app, scene):
    call, _ = scene
    client = opened_link(app, call.patient_token)
    assert client.get("/sprechstunde").status_code == 200
