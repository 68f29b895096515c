"""One patient device at a time per link (issue 12), with real sockets on the live
server: a second browser that opens the link takes over, the first is told and cut off
(socket, pages, chat), the practice sees that the device changed, and a running call
does not go on to a device nobody sees. The session cookie shows no appointment."""
import base64
import json
import zlib

from app.extensions import db
from app.patients.models import Appointment, LinkDevice
from tests.support.outbox import invitation_token, opened_link
from tests.support.webapp import csrf_token

TAKEN_OVER = "Der Link wurde auf einem anderen Gerät geöffnet."
CHAT = "/sprechstunde/chat/nachrichten"


def readable_session(client):
    value = client.get_cookie("session").value
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(zlib.decompress(raw) if value.startswith(".") else raw)


def second_device(call, participant_id=None):
    """Another browser opens the same link (from the same e-mail). It gives no consent of
    its own: the person's consent from the first device holds (tests/test_consent.py)."""
    return opened_link(call.app, invitation_token(call.app, appointment_id=None if participant_id else call.id,
                                                  participant_id=participant_id), consent=False)


def test_a_second_device_takes_the_link_over(make_call, live):
    call = make_call()
    staff, first = call.both()
    first_client = call.patient_client
    chat_token = csrf_token(first_client, "/sprechstunde")

    phone = second_device(call)

    assert first.expect("taken-over") == {"type": "taken-over"}
    assert first.closed_with() == 4001
    assert staff.expect("device-changed") == {"type": "device-changed", "key": "patient"}
    # The new device is the patient now.
    second = live.connect("/ws/sprechstunde", phone)
    assert second.take("welcome")["role"] == "patient"
    staff.send({"type": "ring"})
    second.expect("call-state", state="ringing")
    # The first one stays out: socket, pages, chat.
    assert live.connect("/ws/sprechstunde", first_client).closed_with() == 4001
    for path in ("/sprechstunde", "/sprechstunde/geraetetest"):
        response = first_client.get(path)
        assert response.status_code == 403
        assert TAKEN_OVER in response.get_data(as_text=True)
    assert first_client.get(CHAT).status_code == 404
    sent = first_client.post(CHAT, data={"text": "Hallo?"}, headers={"X-CSRFToken": chat_token, "HX-Request": "true"})
    assert sent.status_code == 404


def test_a_running_call_ends_when_another_device_takes_over(make_call, live):
    call = make_call()
    staff, first = call.accepted()
    phone = second_device(call)
    first.expect("taken-over")
    assert first.closed_with() == 4001
    staff.expect("device-changed", key="patient")
    # No media to a device nobody sees: the call is over; the practice calls again.
    staff.expect("call-state", state="ended")
    second = live.connect("/ws/sprechstunde", phone)
    second.take("welcome")
    staff.send({"type": "ring"})
    second.expect("call-state", state="ringing")
    second.send({"type": "accept"})
    staff.expect("call-state", state="accepted")


def test_the_first_device_can_take_it_back_by_opening_the_link_again(make_call, live):
    call = make_call()
    staff = call.staff()
    phone = second_device(call)
    on_phone = live.connect("/ws/sprechstunde", phone)
    on_phone.take("welcome")
    staff.forget("device-changed")
    assert call.patient_client.get(f"/j/{invitation_token(call.app, appointment_id=call.id)}").status_code == 302
    assert on_phone.expect("taken-over")
    assert on_phone.closed_with() == 4001
    assert call.patient().welcome["role"] == "patient"


def test_opening_the_link_again_on_the_same_device_takes_nothing_over(make_call, live):
    call = make_call()
    staff, patient = call.both()
    token = invitation_token(call.app, appointment_id=call.id)
    assert call.patient_client.get(f"/j/{token}").status_code == 302
    # The same page's socket lives on: a round trip passes, and no notice came.
    staff.send({"type": "restart-ice"})
    patient.expect("restart-ice")
    patient.send({"type": "restart-ice"})
    staff.expect("restart-ice")
    assert staff.backlog == [] or all(m["type"] != "device-changed" for m in staff.backlog)
    with call.app.app_context():
        assert db.session.execute(db.select(db.func.count(LinkDevice.id))).scalar() == 1


def test_a_guests_link_on_a_second_device(make_call, live):
    call = make_call("premium", guests=1)
    staff, patient = call.both()
    guest = call.guest()
    pid = call.guest_ids[0]
    tablet = second_device(call, participant_id=pid)
    assert guest.expect("taken-over") == {"type": "taken-over"}
    assert guest.closed_with() == 4001
    assert staff.expect("device-changed") == {"type": "device-changed", "key": f"guest-{pid}"}
    again = live.connect("/ws/sprechstunde", tablet)
    assert again.take("welcome")["key"] == f"guest-{pid}"
    # The patient's own link is untouched.
    staff.send({"type": "restart-ice"})
    assert patient.expect("restart-ice") == {"type": "restart-ice"}


def test_the_patient_cookie_shows_no_appointment_and_no_link(app, make_call):
    call = make_call()
    data = readable_session(call.patient_client)
    # "_fresh" is Flask-Login's flag (False) from any page that asks who is logged in, such
    # as the consent page every patient now sees; it names nobody.
    assert set(data) <= {"visitor", "csrf_token", "lang", "_fresh"}
    assert data.get("_fresh", False) is False
    with app.app_context():
        appointment = db.session.get(Appointment, call.id)
        shown = json.dumps(data)
        assert appointment.token_hash not in shown
        assert invitation_token(app, appointment_id=call.id) not in shown
        # The secret is not the link's: only its hash is stored, beside nothing that leads back.
        device = db.session.execute(db.select(LinkDevice)).scalar_one()
        assert data["visitor"] not in (device.token_hash, device.link_hash)
