"""The patient's and guests' own consent before any media (issue 12): the notice and
the form on the device check, the waiting room and the call socket refused without
it, one consent per person (not per device), and its withdrawal ending the call for
that person. Real sockets on the live server, every socket test once per hub kind."""
import re

from app.auth.audit import AuditEntry
from app.extensions import db
from app.auth.models import Practice
from app.patients import board, consent
from app.patients.models import Appointment, VisitorConsent
from tests.support.outbox import invitation_token, opened_link
from tests.support.webapp import CONSENT_PATH, csrf_token, give_consent

NO_CONSENT = 4002
WITHDRAW = "/sprechstunde/einwilligung-widerrufen"
HEADING = "Datenschutzhinweise zur Videosprechstunde"
BUTTON = "Einverstanden, weiter zur Technikprüfung"
TICK = "Bitte setzen Sie das Häkchen, wenn Sie einverstanden sind."


def consents(app, appointment_id):
    with app.app_context():
        return db.session.execute(db.select(VisitorConsent).filter_by(appointment_id=appointment_id)
                                  .order_by(VisitorConsent.id)).scalars().all()


def fresh_patient(call):
    """Another browser of the patient that opened the link and agreed to nothing itself."""
    return opened_link(call.app, invitation_token(call.app, appointment_id=call.id), consent=False)


def withdraw(client):
    response = client.post(WITHDRAW, data={"csrf_token": csrf_token(client, "/sprechstunde")})
    assert response.status_code == 303 and response.headers["Location"] == WITHDRAW
    return client.get(WITHDRAW)


# -- the form ---------------------------------------------------------------------------

def test_the_device_check_asks_for_consent_first_and_loads_no_media_script(make_call):
    call = make_call(consent=False)
    patient = call.patient_client
    page = patient.get(CONSENT_PATH)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert HEADING in text and BUTTON in text
    assert 'href="/datenschutz"' in text  # the operator's full Datenschutzerklärung
    assert re.search(r'<form method="post" action="/sprechstunde/geraetetest"', text)
    assert 'name="csrf_token"' in text
    # No script that could ask for the camera or the microphone, no device check yet.
    assert "device-check.js" not in text and "call/main.js" not in text
    assert 'id="device-check"' not in text

    assert give_consent(patient).headers["Location"] == CONSENT_PATH
    after = patient.get(CONSENT_PATH).get_data(as_text=True)
    assert "device-check.js" in after and 'data-consent="given"' in after and BUTTON not in after


def test_the_notice_is_english_when_the_ui_is(make_call):
    call = make_call(consent=False)
    patient = call.patient_client
    text = patient.get(CONSENT_PATH, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Data protection notice for the video consultation" in text
    assert "I agree, continue to the device check" in text
    assert HEADING not in text


def test_an_unticked_box_is_refused_beside_it_and_nothing_is_stored(app, make_call):
    call = make_call(consent=False)
    patient = call.patient_client
    response = patient.post(CONSENT_PATH, data={"csrf_token": csrf_token(patient, CONSENT_PATH)})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert TICK in text
    assert re.search(r'<input[^>]*aria-describedby="consent-error"[^>]*name="consent"', text)
    assert 'id="consent-error"' in text
    assert consents(app, call.id) == []
    # Without the CSRF token nothing happens either.
    assert patient.post(CONSENT_PATH, data={"consent": "y"}).status_code == 400
    assert consents(app, call.id) == []
    assert patient.get("/sprechstunde").status_code == 302


def test_the_consent_is_stored_with_time_wording_and_who(app, make_call):
    call = make_call("premium", guests=1)  # opened_link: both have consented
    rows = consents(app, call.id)
    assert [(r.participant_id, r.wording, r.withdrawn_at) for r in rows] == [
        (None, consent.WORDING, None), (call.guest_ids[0], consent.WORDING, None)]
    assert all(r.given_at is not None for r in rows)
    # Ticking again (a second tab) keeps the first row.
    give_consent(call.patient_client)
    assert len(consents(app, call.id)) == 2
    with app.app_context():
        actions = db.session.execute(db.select(AuditEntry.action, AuditEntry.actor_type)
                                     .filter_by(object_id=call.id, action="consent.give")).all()
    assert sorted(actions) == [("consent.give", "guest"), ("consent.give", "patient")]


def test_a_consent_to_an_older_wording_no_longer_counts(app, make_call, monkeypatch):
    call = make_call()
    assert call.patient_client.get("/sprechstunde").status_code == 200
    monkeypatch.setattr(consent, "WORDING", consent.WORDING + 1)
    response = call.patient_client.get("/sprechstunde")
    assert response.status_code == 302 and response.headers["Location"] == CONSENT_PATH


# -- enforced on the server -------------------------------------------------------------

def test_without_consent_the_waiting_room_sends_back_and_the_socket_refuses(make_call, live):
    call = make_call(consent=False)
    patient = call.patient_client
    response = patient.get("/sprechstunde")
    assert response.status_code == 302 and response.headers["Location"] == CONSENT_PATH
    assert live.connect("/ws/sprechstunde", patient).closed_with() == NO_CONSENT
    give_consent(patient)
    assert patient.get("/sprechstunde").status_code == 200
    assert live.connect("/ws/sprechstunde", patient).take("welcome")["role"] == "patient"


def test_a_guest_without_consent_is_refused_too(make_call, live):
    call = make_call("premium", consent=False)
    _, guest = call.add_guest(consent=False)
    assert guest.get("/sprechstunde").headers["Location"] == CONSENT_PATH
    assert live.connect("/ws/sprechstunde", guest).closed_with() == NO_CONSENT
    # The guest's consent is not the patient's, nor the other way round.
    give_consent(guest)
    assert live.connect("/ws/sprechstunde", call.patient_client).closed_with() == NO_CONSENT
    assert live.connect("/ws/sprechstunde", guest).take("welcome")["role"] == "guest"


def test_the_consent_is_the_persons_not_the_devices(make_call, live):
    call = make_call(consent=False)
    # A patient who never consented: a new device must.
    tablet = fresh_patient(call)
    assert live.connect("/ws/sprechstunde", tablet).closed_with() == NO_CONSENT
    give_consent(tablet)
    # Once the person consented, a device that takes the link over needs no consent of its own.
    phone = fresh_patient(call)
    assert phone.get("/sprechstunde").status_code == 200
    assert live.connect("/ws/sprechstunde", phone).take("welcome")["role"] == "patient"


# -- withdrawal -------------------------------------------------------------------------

def test_the_waiting_room_offers_the_withdrawal_with_a_confirmation(make_call):
    call = make_call()
    text = call.patient_client.get("/sprechstunde").get_data(as_text=True)
    assert "Einwilligung widerrufen" in text and "Ja, Einwilligung widerrufen" in text
    assert re.search(r'<details class="consent-withdraw"[^>]*>\s*<summary', text)
    assert f'action="{WITHDRAW}"' in text
    # The confirmation also as a page; a GET changes nothing.
    page = call.patient_client.get(WITHDRAW)
    assert page.status_code == 200 and "Einwilligung widerrufen?" in page.get_data(as_text=True)
    assert consents(call.app, call.id)[0].withdrawn_at is None
    assert call.patient_client.post(WITHDRAW).status_code == 400  # no CSRF token
    assert consents(call.app, call.id)[0].withdrawn_at is None


def test_the_patients_withdrawal_ends_the_call_and_closes_the_pages(app, make_call, live):
    call = make_call()
    staff, patient = call.accepted()
    other_tab = call.patient()

    page = withdraw(call.patient_client)

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Sie haben Ihre Einwilligung widerrufen." in text and "wurde informiert" in text
    assert staff.take("consent-withdrawn") == {"type": "consent-withdrawn", "key": "patient"}
    assert staff.take("call-state", state="ended")
    assert patient.closed_with() == NO_CONSENT
    assert other_tab.closed_with() == NO_CONSENT
    (row,) = consents(app, call.id)
    assert row.withdrawn_at is not None
    # Out until the patient consents again, through the same link.
    assert live.connect("/ws/sprechstunde", call.patient_client).closed_with() == NO_CONSENT
    assert call.patient_client.get("/sprechstunde").headers["Location"] == CONSENT_PATH
    give_consent(call.patient_client)
    assert [r.withdrawn_at is None for r in consents(app, call.id)] == [False, True]
    again = call.patient()
    staff.send({"type": "ring"})
    again.expect("call-state", state="ringing")


def test_a_guests_withdrawal_ends_only_its_own_participation(app, make_call, live):
    call = make_call("premium", guests=1)
    staff, patient = call.accepted()
    guest = call.guest()
    guest_key = guest.key

    withdraw(call.guest_clients[call.guest_ids[0]])

    assert guest.closed_with() == NO_CONSENT
    assert staff.take("consent-withdrawn") == {"type": "consent-withdrawn", "key": guest_key}
    # The patient's call goes on, and the patient's consent is untouched.
    call.settle(staff, patient)
    assert live.connect("/ws/sprechstunde", call.patient_client).take("welcome")["state"] == "accepted"
    rows = {r.participant_id: r.withdrawn_at for r in consents(app, call.id)}
    assert rows[None] is None and rows[call.guest_ids[0]] is not None


def test_staff_see_the_withdrawal_on_the_board_and_in_the_panel(app, make_call):
    call = make_call()
    with app.app_context():
        contact_id = db.session.get(Appointment, call.id).contact_id
    panel_url = f"/patienten/kontakte/{contact_id}"
    panel = call.staff_client.get(panel_url).get_data(as_text=True)
    assert "Einwilligung zur Videosprechstunde" in panel and "erteilt am" in panel
    withdraw(call.patient_client)
    panel = call.staff_client.get(panel_url).get_data(as_text=True)
    assert re.search(r'class="consent-state consent-withdrawn" data-who="patient">\s*Erika Mustermann:\s*'
                     r'Einwilligung widerrufen am', panel)
    with app.app_context():
        appointment = db.session.get(Appointment, call.id)
        practice = db.session.get(Practice, appointment.practice_id)
        (line,) = board.lines(practice, now=appointment.starts_at)
        assert line.consent_withdrawn
        give_consent(call.patient_client)
        (line,) = board.lines(practice, now=appointment.starts_at)
        assert not line.consent_withdrawn
