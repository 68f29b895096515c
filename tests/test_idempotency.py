"""One-time keys (issue 9): a repeated Einladen, Teilnehmer hinzufügen or Erneut senden
with the key its form carried answers with the first result and creates nothing again,
also when both requests arrive at once; a new form gets a new key."""
import re
import threading

import pytest

from app.extensions import db
from app.patients.models import Participant
from tests.support.forms import appointment_form, created_ids, row_counts
from tests.support.outbox import outbox

KEY_RE = re.compile(r'name="(?:a\d+-)?submit_key"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="(?:a\d+-)?submit_key"')


def key_in(html):
    match = KEY_RE.search(html)
    assert match, "the form carries no submit key"
    return match.group(1) or match.group(2)


@pytest.fixture
def staff(make_practice, auth):
    _, email = make_practice(tariff="premium")
    assert auth.login(email).status_code == 302
    return auth


def form_key(auth):
    return key_in(auth.get("/patienten/termin-erstellen").get_data(as_text=True))


def test_every_form_gets_its_own_key(staff):
    assert form_key(staff) != form_key(staff)


def test_einladen_twice_with_one_key_makes_one_appointment(app, staff):
    data = appointment_form(submit_key=form_key(staff))
    first = staff.post("/patienten/termine", data=data)
    again = staff.post("/patienten/termine", data=data)
    assert first.status_code == again.status_code == 201
    assert created_ids(first) == created_ids(again)
    assert row_counts(app) == {"Contact": 1, "Appointment": 1, "OutboxMessage": 1}


def test_another_key_is_another_appointment(app, staff):
    # The same person at the same time twice: confirmed, as the double-booking check asks.
    for _ in range(2):
        data = appointment_form(submit_key=form_key(staff), confirm_overlap="y")
        assert staff.post("/patienten/termine", data=data).status_code == 201
    assert row_counts(app)["Appointment"] == 2


@pytest.mark.parametrize("key", ["", "kurz", "x" * 65, "<script>alert(1)</script>xxxxxxxxx"])
def test_a_missing_or_malformed_key_only_turns_the_guard_off(app, staff, key):
    data = appointment_form(submit_key=key, confirm_overlap="y")  # past the double-booking check
    assert staff.post("/patienten/termine", data=data).status_code == 201
    assert staff.post("/patienten/termine", data=data).status_code == 201
    assert row_counts(app)["Appointment"] == 2


def test_a_refused_form_keeps_its_key_and_saves_nothing(app, staff):
    key = form_key(staff)
    refused = staff.post("/patienten/termine", data=appointment_form(submit_key=key, email="kaputt"))
    assert refused.status_code == 422
    assert key_in(refused.get_data(as_text=True)) == key
    assert row_counts(app)["Appointment"] == 0
    assert staff.post("/patienten/termine", data=appointment_form(submit_key=key)).status_code == 201
    assert row_counts(app)["Appointment"] == 1


def test_both_at_once_make_one_appointment(app, staff):
    data = appointment_form(submit_key=form_key(staff))
    cookie = staff.client.get_cookie("session").value
    answers, start = [], threading.Barrier(2)

    def post():
        client = app.test_client()
        client.set_cookie("session", cookie)
        start.wait()
        answers.append(client.post("/patienten/termine", data=data,
                                   headers={"X-CSRFToken": staff.token, "HX-Request": "true"}))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201, 201]
    assert created_ids(answers[0]) == created_ids(answers[1])
    assert row_counts(app) == {"Contact": 1, "Appointment": 1, "OutboxMessage": 1}


def test_teilnehmer_hinzufuegen_twice_adds_one(app, staff):
    appointment_id, contact_id = created_ids(staff.post("/patienten/termine", data=appointment_form()))
    panel = staff.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True)
    prefix = f"a{appointment_id}-"
    assert f'name="{prefix}submit_key"' in panel
    data = {prefix + "first_name": "Jonas", prefix + "last_name": "Dolmetscher",
            prefix + "email": "jonas@example.org", prefix + "consent": "y",
            prefix + "submit_key": key_in(panel)}
    url = f"/patienten/termine/{appointment_id}/teilnehmer"
    assert staff.post(url, data=data).status_code == 201
    again = staff.post(url, data=data)
    assert again.status_code == 201
    assert "Jonas Dolmetscher" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Participant)) == 1
    assert len(outbox(app, kind="invitation")) == 2  # the patient's and Jonas's


def test_erneut_senden_twice_sends_once(app, staff):
    appointment_id, contact_id = created_ids(staff.post("/patienten/termine", data=appointment_form()))
    panel = staff.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True)
    keys = re.findall(r"hx-vals='\{&#34;submit_key&#34;: &#34;([A-Za-z0-9_-]+)&#34;\}'", panel) or \
        re.findall(r"hx-vals='\{\"submit_key\": \"([A-Za-z0-9_-]+)\"\}'", panel)
    assert keys, "the resend button carries no key"
    url = f"/patienten/termine/{appointment_id}/erneut-senden/email"

    def invitation_ids():
        return [row.id for row in outbox(app, kind="invitation")]

    first = invitation_ids()
    assert staff.post(url, data={"submit_key": keys[0]}).status_code == 200
    resent = invitation_ids()
    assert resent != first  # a new message with the new link replaced the waiting one
    assert staff.post(url, data={"submit_key": keys[0]}).status_code == 200
    assert invitation_ids() == resent
    assert staff.post(url, data={"submit_key": keys[1 % len(keys)] + "x"}).status_code == 200
    assert invitation_ids() != resent
