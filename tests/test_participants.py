"""Further participants of a Premium appointment over HTTP and real SMTP: adding them
(each gets an own link into the device check and waiting room), the seat limit counted
on the server, the tariff gate, tenancy, removal and deletion (link dead, told by e-mail)."""
import logging
import threading

import pytest

from app.extensions import db
from app.patients.models import Participant
from tests.support.forms import appointment_form, created_ids
from tests.support.html import Html, squash
from tests.support.outbox import deliver, invitation_token, link_in, make_due, opened_link, outbox, text_of
from tests.support.webapp import Auth, give_consent

PREFIX = "a{}-"
TARIFF_MESSAGE = "Weitere Teilnehmer einladen ist im Tarif Premium enthalten."
FULL_MESSAGE = ("Es können höchstens 5 Personen an einem Anruf teilnehmen: Sie, der Patient und 3 weitere. "
                "Entfernen Sie zuerst einen Teilnehmer.")


@pytest.fixture
def config_overrides(smtp_port):
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port}


def person(appointment_id, first="Jonas", last="Dolmetscher", email="Jonas@Example.org", **extra):
    data = {"first_name": first, "last_name": last, "email": email, "mobile": "", "consent": "y", **extra}
    return {PREFIX.format(appointment_id) + k: v for k, v in data.items() if v is not None}


def add_url(appointment_id):
    return f"/patienten/termine/{appointment_id}/teilnehmer"


@pytest.fixture
def premium(make_practice, auth, make_appointment):
    """A Premium practice's staff logged in, with one appointment for Erika; its id."""
    _, email = make_practice(tariff="premium")
    assert auth.login(email).status_code == 302
    appointment_id, _ = created_ids(make_appointment())
    return appointment_id


def participants(app, **filters):
    with app.app_context():
        return [(p.first_name, p.last_name, p.email, p.mobile, p.seat)
                for p in db.session.execute(db.select(Participant).filter_by(**filters)
                                            .order_by(Participant.id)).scalars()]


def deliver_all(app, smtp, count):
    assert deliver(app) == count
    return smtp.wait_for(count)


def test_panel_offers_the_form_on_premium(app, auth, premium):
    contact_id = _contact_id(app, premium)
    page = Html(auth.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True))
    section = page.by_id(f"appointment-{premium}-participants")
    assert "Teilnehmer hinzufügen" in section["text"]
    for name in ("first_name", "last_name", "email", "mobile", "send_sms", "consent"):
        assert page.find_all("input", name=PREFIX.format(premium) + name)


def _contact_id(app, appointment_id):
    from app.patients.models import Appointment

    with app.app_context():
        return db.session.get(Appointment, appointment_id).contact_id


def test_added_participant_gets_own_link_by_email(app, auth, premium, smtp):
    deliver_all(app, smtp, 1)  # the patient's invitation
    response = auth.post(add_url(premium), data=person(premium))
    assert response.status_code == 201, response.get_data(as_text=True)
    page = Html(response.get_data(as_text=True))
    assert "Jonas Dolmetscher" in page.by_id(f"appointment-{premium}-participants")["text"]
    assert participants(app) == [("Jonas", "Dolmetscher", "jonas@example.org", None, 1)]

    rows = outbox(app, kind="invitation")
    assert [(r.channel, r.participant_id is not None) for r in rows] == [("email", False), ("email", True)]

    assert deliver(app) == 1
    message = smtp.wait_for(2)[1]
    assert smtp.envelopes[1][1] == ["jonas@example.org"]
    text = text_of(message)
    assert "Guten Tag Jonas Dolmetscher" in text
    link, path = link_in(text)
    patient_link, _ = link_in(text_of(smtp.messages[0]))
    assert link != patient_link

    guest = app.test_client()
    response = guest.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/sprechstunde/geraetetest"
    assert guest.get("/sprechstunde/geraetetest").status_code == 200
    give_consent(guest)  # the guest's own, as the patient's (tests/test_consent.py)
    waiting = guest.get("/sprechstunde").get_data(as_text=True)
    assert "Ihre Praxis ruft Sie gleich an" in waiting
    # A guest chats as itself, from the time it was added (tests/test_chat.py has the rest).
    assert 'id="chat-empty"' in guest.get("/sprechstunde/chat/nachrichten").get_data(as_text=True)


def test_sms_on_request_too(app, auth, premium):
    app.config.update(VONAGE_API_KEY="k", VONAGE_API_SECRET="s", VONAGE_REST_HOST="127.0.0.1:9")
    response = auth.post(add_url(premium), data=person(premium, mobile="0151 23456789", send_sms="y"))
    assert response.status_code == 201
    assert participants(app)[0][3] == "+4915123456789"
    rows = [r for r in outbox(app, kind="invitation") if r.participant_id]
    assert sorted(r.channel for r in rows) == ["email", "sms"]


@pytest.mark.parametrize("field, value, message", [
    ("first_name", "", "Bitte geben Sie den Vornamen ein."),
    ("last_name", "<b>", "Bitte nur Buchstaben, Leerzeichen, Bindestrich und Apostroph."),
    ("last_name", "Dolmetscher\u202e", "Der Name enthält unsichtbare Steuerzeichen (z. B. eine Umkehr der Schreibrichtung). "
                                        "Bitte tippen Sie ihn neu ein."),
    ("first_name", "Jo\u200dnas", "Der Name enthält unsichtbare Steuerzeichen (z. B. eine Umkehr der Schreibrichtung). "
                                  "Bitte tippen Sie ihn neu ein."),
    ("email", "kein-at", "Bitte geben Sie eine gültige E-Mail-Adresse ein, z. B. name@beispiel.de."),
    ("mobile", "030 1234567", "Das ist keine Mobilnummer; SMS können nur an Mobilnummern gehen."),
    ("consent", None, "Ohne Einwilligung kann keine Einladung verschickt werden."),
])
def test_bad_input_answers_422_beside_the_field(app, auth, premium, field, value, message):
    before = outbox(app)
    response = auth.post(add_url(premium), data=person(premium, **{field: value}))
    assert response.status_code == 422
    page = Html(response.get_data(as_text=True))
    assert page.text(f"{PREFIX.format(premium)}{field}-error") == message
    assert page.error_ids() == {f"{PREFIX.format(premium)}{field}-error"}
    if value:
        assert page.value(PREFIX.format(premium) + field) == value
    assert participants(app) == []
    assert len(outbox(app)) == len(before)


def test_sixth_person_is_refused(app, auth, premium):
    for i in range(3):
        assert auth.post(add_url(premium), data=person(premium, first=f"P{'abc'[i]}")).status_code == 201
    response = auth.post(add_url(premium), data=person(premium, first="Sechster"))
    assert response.status_code == 409
    page = Html(response.get_data(as_text=True))
    assert page.text(f"appointment-{premium}-participant-error") == FULL_MESSAGE
    assert page.value(PREFIX.format(premium) + "first_name") == "Sechster"
    assert [p[0] for p in participants(app)] == ["Pa", "Pb", "Pc"]


def test_last_seat_taken_by_two_requests_at_once(app, auth, premium, client):
    for first in ("Pa", "Pb"):
        assert auth.post(add_url(premium), data=person(premium, first=first)).status_code == 201
    # A second browser of the same staff member.
    other = Auth(app.test_client())
    other.login(auth_email(app))
    barrier = threading.Barrier(2)
    statuses = []

    def add(who, first):
        barrier.wait()
        statuses.append(who.post(add_url(premium), data=person(premium, first=first)).status_code)

    threads = [threading.Thread(target=add, args=(who, f)) for who, f in ((auth, "Pc"), (other, "Pd"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 409]
    assert sorted(p[4] for p in participants(app)) == [1, 2, 3]


def auth_email(app):
    from app.auth.models import Staff

    with app.app_context():
        return db.session.execute(db.select(Staff.email)).scalars().first()


@pytest.mark.parametrize("tariff", ["basis", "standard"])
def test_basis_and_standard_refused(app, auth, make_practice, make_appointment, tariff):
    _, email = make_practice(tariff=tariff)
    assert auth.login(email).status_code == 302
    appointment_id, contact_id = created_ids(make_appointment())
    panel = auth.get(f"/patienten/kontakte/{contact_id}").get_data(as_text=True)
    assert "Teilnehmer hinzufügen" not in panel
    before = outbox(app)
    response = auth.post(add_url(appointment_id), data=person(appointment_id))
    assert response.status_code == 403
    assert TARIFF_MESSAGE in response.get_data(as_text=True)
    assert participants(app) == []
    assert len(outbox(app)) == len(before)


def test_other_practice_gets_404(app, auth, premium, make_practice):
    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    (participant_id,) = _participant_ids(app)
    _, email = make_practice(tariff="premium")
    intruder = Auth(app.test_client())
    assert intruder.login(email).status_code == 302
    assert intruder.post(add_url(premium), data=person(premium, first="Fremd")).status_code == 404
    assert intruder.delete(f"{add_url(premium)}/{participant_id}").status_code == 404
    assert intruder.post(f"{add_url(premium)}/{participant_id}/entfernen").status_code == 404
    # Own appointment id, but another appointment's participant.
    assert auth.delete(f"{add_url(premium)}/{participant_id + 1}").status_code == 404
    assert auth.delete(f"{add_url(premium)}/{2**40}").status_code == 404
    assert len(participants(app)) == 1


def _participant_ids(app):
    with app.app_context():
        return db.session.execute(db.select(Participant.id).order_by(Participant.id)).scalars().all()


def _guest_link(app, smtp, premium, auth, count):
    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    deliver_all(app, smtp, count)
    _, path = link_in(text_of(smtp.messages[count - 1]))
    guest = opened_link(app, path.rsplit("/", 1)[1])
    assert guest.get("/sprechstunde").status_code == 200
    return path, guest


def test_removed_participant_loses_link_and_is_told(app, auth, premium, smtp):
    path, guest = _guest_link(app, smtp, premium, auth, 2)
    (participant_id,) = _participant_ids(app)
    response = auth.delete(f"{add_url(premium)}/{participant_id}")
    assert response.status_code == 200
    assert "Jonas Dolmetscher" not in Html(response.get_data(as_text=True)).by_id(
        f"appointment-{premium}-participants")["text"]
    assert participants(app) == []
    assert guest.get("/sprechstunde").status_code == 404
    assert app.test_client().get(path).status_code == 404
    # The patient's link still works.
    patient = app.test_client()
    _, patient_path = link_in(text_of(smtp.messages[0]))
    assert patient.get(patient_path).status_code == 302

    assert deliver(app) == 1
    message = smtp.wait_for(3)[2]
    assert smtp.envelopes[2][1] == ["jonas@example.org"]
    assert message["Subject"].startswith("Einladung zurückgenommen")
    assert "wurde zurückgenommen" in text_of(message)


def test_deleted_appointment_kills_guest_links_and_tells_everyone(app, auth, premium, smtp):
    path, guest = _guest_link(app, smtp, premium, auth, 2)
    assert auth.delete(f"/patienten/termine/{premium}").status_code == 200
    assert participants(app) == []
    assert guest.get("/sprechstunde").status_code == 404
    assert app.test_client().get(path).status_code == 404
    assert deliver(app) == 2
    smtp.wait_for(4)
    recipients = sorted(e[1][0] for e in smtp.envelopes[2:4])
    assert recipients == ["erika@example.org", "jonas@example.org"]
    for message in smtp.messages[2:]:
        assert message["Subject"].startswith("Termin abgesagt")


def test_no_participant_data_in_logs(app, auth, premium, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    path, _ = _guest_link(app, smtp, premium, auth, 2)
    (participant_id,) = _participant_ids(app)
    assert auth.delete(f"{add_url(premium)}/{participant_id}").status_code == 200
    deliver(app)
    smtp.wait_for(3)
    token = path.rsplit("/", 1)[1]
    # The app's records; the SMTP stand-in ("mail.log") logs whole messages by design.
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail."))
    # What happened is logged, by id (logfmt.py: key=value pairs).
    assert f"participant removed appointment={premium} participant={participant_id}" in text
    for secret in ("Jonas", "Dolmetscher", "jonas@example.org", "Jonas@Example.org", token):
        assert secret not in text


def test_guest_socket_is_known_as_guest_and_leaves_the_call_alone(app, auth, premium, live):
    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    guest = opened_link(app, invitation_token(app, premium))
    staff_ws = live.connect(f"/ws/anruf/{premium}", auth.client)
    assert staff_ws.expect("welcome")["peer_online"] is False
    guest_ws = live.connect("/ws/sprechstunde", guest)
    welcome = guest_ws.expect("welcome")
    assert welcome["role"] == "guest"
    assert welcome["participant"]["name"] == "Jonas Dolmetscher"
    assert welcome["peer_online"] is True
    (participant_id,) = _participant_ids(app)
    assert welcome["key"] == f"guest-{participant_id}"
    # The staff page hears that its list of the call's people changed; no presence.
    assert staff_ws.recv() == {"type": "people"}
    # A guest's camera and microphone state reach the others, marked with its key.
    guest_ws.send({"type": "media-state", "camera": True, "mic": True, "screen": False})
    assert staff_ws.recv() == {"type": "media-state", "camera": True, "mic": True, "screen": False,
                               "from": f"guest-{participant_id}"}
    # A guest is not the patient: ringing finds nobody to ring, and no presence came first.
    staff_ws.send({"type": "ring"})
    assert staff_ws.recv() == {"type": "call-state", "state": "offline"}

    assert auth.delete(f"{add_url(premium)}/{participant_id}").status_code == 200
    assert guest_ws.expect("participant-removed")["participant_id"] == participant_id
    assert guest_ws.closed_with() == 1000


# --- resending a participant's invitation ----------------------------------------------

RESENT = "Die Einladung wird erneut gesendet. Der bisherige Link ist damit ungültig."
MOBILE, TO = "0151 23456789", "4915123456789"
NOT_IN_TARIFF = "SMS-Einladungen sind in den Tarifen Standard und Premium enthalten."
NO_MOBILE = "Für die SMS-Einladung wird eine Mobilnummer benötigt."
SMS_UNAVAILABLE = "Der SMS-Versand ist auf diesem Server nicht eingerichtet (Vonage-Zugangsdaten fehlen)."


def resend_url(appointment_id, participant_id, channel):
    return f"{add_url(appointment_id)}/{participant_id}/erneut-senden/{channel}"


def use_vonage(app, vonage):
    app.config.update(VONAGE_API_KEY=vonage.api_key, VONAGE_API_SECRET=vonage.api_secret,
                      VONAGE_REST_HOST=vonage.rest_host, VONAGE_SMS_FROM="PraxisAmSee")


def participant_state(app):
    """What a refused resend must leave alone: the participant's token and the outbox."""
    with app.app_context():
        hashes = db.session.execute(db.select(Participant.token_hash).order_by(Participant.id)).scalars().all()
    return hashes, [(m.id, m.channel, m.status, m.payload) for m in outbox(app)]


def toasts(response):
    return [squash(e["text"]) for e in Html(response.get_data(as_text=True)).find_all("span", class_="toast-text")]


def test_panel_offers_resend_per_channel_beside_each_participant(app, auth, premium, make_appointment):
    app.config.update(VONAGE_API_KEY="k", VONAGE_API_SECRET="s", VONAGE_REST_HOST="127.0.0.1:9")
    assert auth.post(add_url(premium), data=person(premium, mobile=MOBILE, send_sms="y")).status_code == 201
    (participant_id,) = _participant_ids(app)
    page = Html(auth.get(f"/patienten/kontakte/{_contact_id(app, premium)}").get_data(as_text=True))
    item = page.by_id(f"participant-{participant_id}")
    buttons = [e for e in page.find_all("button", text="Erneut senden") if _inside(e, item)]
    assert [(b["attrs"]["hx-post"], b["attrs"]["hx-target"], b["attrs"]["class"]) for b in buttons] == [
        (resend_url(premium, participant_id, channel), f"#appointment-{premium}-participants", "btn btn-small")
        for channel in ("email", "sms")]
    # Each button sits in its channel's state.
    assert [b["parent"]["attrs"]["data-channel"] for b in buttons] == ["email", "sms"]
    # The patient's own buttons stay as they were.
    assert [b["attrs"]["hx-post"] for b in page.find_all("button", text="Erneut senden") if not _inside(b, item)] == [
        f"/patienten/termine/{premium}/erneut-senden/email"]
    # The same states after Einladen (the delivery watch) carry no button.
    created = make_appointment(email="max@example.org", first_name="Max").get_data(as_text=True)
    assert "delivery-state" in created and "Erneut senden" not in created


def _inside(element, ancestor):
    while element is not None:
        if element is ancestor:
            return True
        element = element["parent"]
    return False


def test_resend_by_email_goes_over_smtp_with_a_new_link(app, auth, premium, smtp):
    old_path, guest = _guest_link(app, smtp, premium, auth, 2)
    (participant_id,) = _participant_ids(app)
    _, patient_path = link_in(text_of(smtp.messages[0]))

    response = auth.post(resend_url(premium, participant_id, "email"))
    assert response.status_code == 200, response.get_data(as_text=True)
    section = Html(response.get_data(as_text=True)).by_id(f"appointment-{premium}-participants")
    assert "Jonas Dolmetscher" in section["text"]
    assert toasts(response) == [RESENT]
    assert app.test_client().get(old_path).status_code == 404

    assert deliver(app) == 1
    message = smtp.wait_for(3)[2]
    assert smtp.envelopes[2][1] == ["jonas@example.org"]
    assert "Guten Tag Jonas Dolmetscher" in text_of(message)
    _, new_path = link_in(text_of(message))
    assert new_path != old_path
    newcomer = opened_link(app, new_path.rsplit("/", 1)[1])
    assert "Ihre Praxis ruft Sie gleich an" in newcomer.get("/sprechstunde").get_data(as_text=True)
    assert app.test_client().get(old_path).status_code == 404
    # The patient's link is not the participant's business.
    assert app.test_client().get(patient_path).status_code == 302
    rows = [(r.channel, r.status) for r in outbox(app, kind="invitation") if r.participant_id == participant_id]
    assert rows == [("email", "sent"), ("email", "sent")]


def test_stale_session_of_the_old_guest_link_no_longer_enters(app, auth, premium, smtp):
    _, guest = _guest_link(app, smtp, premium, auth, 2)
    (participant_id,) = _participant_ids(app)
    patient = opened_link(app, link_in(text_of(smtp.messages[0]))[1].rsplit("/", 1)[1])
    assert guest.get("/sprechstunde/geraetetest").status_code == 200

    assert auth.post(resend_url(premium, participant_id, "email")).status_code == 200
    assert guest.get("/sprechstunde/geraetetest").status_code == 404
    assert guest.get("/sprechstunde").status_code == 404
    assert patient.get("/sprechstunde").status_code == 200


def test_resend_by_sms_reaches_vonage_with_a_new_link(app, auth, premium, smtp, vonage):
    use_vonage(app, vonage)
    assert auth.post(add_url(premium), data=person(premium, mobile=MOBILE, send_sms="y")).status_code == 201
    (participant_id,) = _participant_ids(app)
    assert deliver(app) == 3  # the patient's e-mail, the participant's e-mail and SMS
    (first,) = vonage.delivered
    _, old_path = link_in(first["text"])
    guest = app.test_client()
    assert guest.get(old_path).status_code == 302

    response = auth.post(resend_url(premium, participant_id, "sms"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert toasts(response) == [RESENT]
    assert guest.get("/sprechstunde").status_code == 404
    assert deliver(app) == 1
    first, second = vonage.delivered
    assert (second["to"], second["from"]) == (TO, "PraxisAmSee")
    _, new_path = link_in(second["text"])
    assert new_path != old_path
    assert app.test_client().get(new_path).status_code == 302
    assert app.test_client().get(old_path).status_code == 404
    assert len(smtp.wait_for(2)) == 2  # no further e-mail
    rows = [(r.channel, r.status) for r in outbox(app, kind="invitation") if r.participant_id == participant_id]
    assert rows == [("email", "sent"), ("sms", "sent"), ("sms", "sent")]


def test_waiting_messages_go_out_with_the_new_link_only(app, auth, premium, smtp, vonage):
    use_vonage(app, vonage)
    deliver_all(app, smtp, 1)  # the patient's invitation
    assert auth.post(add_url(premium), data=person(premium, mobile=MOBILE, send_sms="y")).status_code == 201
    (participant_id,) = _participant_ids(app)
    smtp.data_reply, vonage.status = "451 4.3.0 Try again later", "1"
    assert deliver(app) == 2
    assert [r.status for r in outbox(app, participant_id=participant_id)] == ["pending", "pending"]

    assert auth.post(resend_url(premium, participant_id, "email")).status_code == 200
    smtp.data_reply, vonage.status = None, "0"
    make_due(app)
    assert deliver(app) == 2
    mails = smtp.wait_for(2)
    assert len(mails) == 2  # one e-mail for the participant: the waiting one was replaced
    assert smtp.envelopes[1][1] == ["jonas@example.org"]
    _, mail_path = link_in(text_of(mails[1]))
    (sms,) = vonage.delivered
    _, sms_path = link_in(sms["text"])
    assert sms_path == mail_path
    assert app.test_client().get(mail_path).status_code == 302
    assert [(r.channel, r.status) for r in outbox(app, participant_id=participant_id)] == [
        ("sms", "sent"), ("email", "sent")]


@pytest.mark.parametrize("tariff, mobile, sms_keys, status, message", [
    ("basis", MOBILE, True, 403, NOT_IN_TARIFF),
    ("premium", "", True, 422, NO_MOBILE),
    ("premium", MOBILE, False, 422, SMS_UNAVAILABLE),
], ids=["basis", "no-mobile", "no-vonage"])
def test_resend_by_sms_refused(app, auth, premium, tariff, mobile, sms_keys, status, message):
    from app.auth.models import Practice

    assert auth.post(add_url(premium), data=person(premium, mobile=mobile)).status_code == 201
    (participant_id,) = _participant_ids(app)
    if sms_keys:
        app.config.update(VONAGE_API_KEY="k", VONAGE_API_SECRET="s", VONAGE_REST_HOST="127.0.0.1:9")
    with app.app_context():
        # A practice that went down to Basis keeps the participants it had.
        db.session.execute(db.update(Practice).values(tariff=tariff))
        db.session.commit()
    before = participant_state(app)
    response = auth.post(resend_url(premium, participant_id, "sms"))
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert participant_state(app) == before


def test_resend_by_email_after_a_downgrade_is_refused(app, auth, premium):
    from app.auth.models import Practice

    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    (participant_id,) = _participant_ids(app)
    with app.app_context():
        db.session.execute(db.update(Practice).values(tariff="standard"))
        db.session.commit()
    before = participant_state(app)
    response = auth.post(resend_url(premium, participant_id, "email"))
    assert response.status_code == 403
    assert TARIFF_MESSAGE in response.get_data(as_text=True)
    assert participant_state(app) == before


def test_resend_on_an_unknown_channel_is_404(app, auth, premium):
    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    (participant_id,) = _participant_ids(app)
    before = participant_state(app)
    response = auth.post(resend_url(premium, participant_id, "brieftaube"))
    assert response.status_code == 404
    assert "Unbekannter Versandweg." in response.get_data(as_text=True)
    assert participant_state(app) == before


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
def test_resend_for_another_practice_is_404(app, auth, premium, make_practice, make_appointment, htmx):
    assert auth.post(add_url(premium), data=person(premium, mobile=MOBILE)).status_code == 201
    (participant_id,) = _participant_ids(app)
    # Own appointment id, but another appointment's participant.
    second, _ = created_ids(make_appointment(email="max@example.org", first_name="Max"))
    _, email = make_practice(tariff="premium")
    intruder = Auth(app.test_client())
    assert intruder.login(email).status_code == 302
    own, _ = created_ids(intruder.post("/patienten/termine", data=appointment_form(email="ina@example.org")))
    app.config.update(VONAGE_API_KEY="k", VONAGE_API_SECRET="s", VONAGE_REST_HOST="127.0.0.1:9")
    before = participant_state(app)
    for who, url in [(intruder, resend_url(premium, participant_id, "email")),
                     (intruder, resend_url(premium, participant_id, "sms")),
                     (intruder, resend_url(own, participant_id, "email")),
                     (auth, resend_url(second, participant_id, "email")),
                     (auth, resend_url(premium, participant_id + 1, "email")),
                     (auth, resend_url(premium, 2**40, "email"))]:
        response = who.post(url, htmx=htmx)
        assert response.status_code == 404, url
        body = response.get_data(as_text=True)
        assert "Jonas" not in body and "jonas@example.org" not in body
    assert participant_state(app) == before


def test_resend_without_csrf_token_is_refused(app, auth, premium):
    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    (participant_id,) = _participant_ids(app)
    before = participant_state(app)
    response = auth.client.post(resend_url(premium, participant_id, "email"), headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert participant_state(app) == before
    assert auth.post(resend_url(premium, participant_id, "email")).status_code == 200
    assert participant_state(app) != before


def test_an_english_guest_gets_english_messages_while_the_patient_keeps_german(app, auth, premium, smtp):
    deliver_all(app, smtp, 1)  # the patient's invitation, in German
    data = person(premium)
    data[PREFIX.format(premium) + "language"] = "en"
    assert auth.post(add_url(premium), data=data).status_code == 201
    assert deliver(app) == 1
    invitation = smtp.wait_for(2)[1]
    assert invitation["Subject"].startswith("Invitation to a video consultation with ")
    assert "Dear Jonas Dolmetscher" in text_of(invitation)
    (participant_id,) = _participant_ids(app)
    assert auth.delete(f"{add_url(premium)}/{participant_id}").status_code == 200
    assert deliver(app) == 1
    withdrawn = smtp.wait_for(3)[2]
    assert withdrawn["Subject"].startswith("Invitation withdrawn: video consultation with ")
    assert "has been withdrawn" in text_of(withdrawn)
    assert smtp.messages[0]["Subject"].startswith("Einladung zur Videosprechstunde")


# -- the role in the call (issue 11) -------------------------------------------------------

def test_the_role_shows_in_the_panel_and_the_record(app, auth, premium):
    response = auth.post(add_url(premium), data=person(premium, call_role="interpreter"))
    assert response.status_code == 201, response.get_data(as_text=True)
    section = Html(response.get_data(as_text=True)).by_id(f"appointment-{premium}-participants")
    assert "Jonas Dolmetscher (Dolmetscher/in)" in squash(section["text"])
    (participant_id,) = _participant_ids(app)
    with app.app_context():
        participant = db.session.get(Participant, participant_id)
        assert participant.call_role == "interpreter"
        appointment = participant.appointment
        appointment.call_started_at = appointment.call_ended_at = appointment.starts_at
        appointment.call_members = f"patient,guest-{participant_id}"
        db.session.commit()
    panel = auth.get(f"/patienten/kontakte/{_contact_id(app, premium)}").get_data(as_text=True)
    record = Html(panel).by_id(f"appointment-{premium}-record")
    assert "Patient, Dolmetscher/in" in squash(record["text"])


@pytest.mark.parametrize("field, value, message", [
    ("call_role", "chef", "Bitte wählen Sie eine der Rollen aus der Liste."),
    ("language", "fr", "Bitte wählen Sie Deutsch oder Englisch."),
])
def test_a_choice_not_offered_is_refused_beside_the_field(app, auth, premium, field, value, message):
    before = outbox(app)
    response = auth.post(add_url(premium), data=person(premium, **{field: value}))
    assert response.status_code == 422
    page = Html(response.get_data(as_text=True))
    assert page.text(f"{PREFIX.format(premium)}{field}-error") == message
    assert participants(app) == [] and len(outbox(app)) == len(before)


def test_a_guest_added_during_the_call_page_is_news_for_staff(app, auth, premium, live):
    # The staff call page lists them as waiting at once (its list fetches itself on "people").
    staff_ws = live.connect(f"/ws/anruf/{premium}", auth.client)
    staff_ws.expect("welcome")
    assert auth.post(add_url(premium), data=person(premium)).status_code == 201
    assert staff_ws.recv() == {"type": "people"}
