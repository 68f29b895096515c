"""The signalling websockets against the running app: real TCP connections, real
sessions; every test once per hub kind (in-process and Redis, see ``live``)."""
import base64
import hashlib
import hmac
import json

import pytest

from app import create_app
from tests.support.calls import relays
from tests.support.webapp import make_config


def ring_and_wait(staff, patient):
    staff.send({"type": "ring"})
    staff.expect("call-state", state="ringing")
    patient.expect("call-state", state="ringing")


# -- who may connect ---------------------------------------------------------------------

def test_welcome_tells_role_state_features_and_presence(make_call):
    call = make_call("premium")
    staff = call.staff()
    assert staff.welcome == {"type": "welcome", "role": "staff", "key": "staff", "iceServers": [],
                             "iceTransportPolicy": "all", "state": "idle", "features": {"screen_sharing": True}, "peer_online": False,
                             "group": True, "maxParticipants": 5, "relay": False, "e2ee": "required",
                             "heartbeat": {"interval": 10.0, "timeout": 30.0}}
    patient = call.patient()
    assert patient.welcome["role"] == "patient"
    assert patient.welcome["key"] == "patient"
    assert patient.welcome["peer_online"] is True
    staff.expect("presence", peer_online=True)
    patient.close()
    staff.expect("presence", peer_online=False)


def test_staff_socket_without_login_is_closed(make_call, app, live):
    call = make_call()
    anonymous = live.connect(f"/ws/anruf/{call.id}", app.test_client())
    assert anonymous.closed_with() == 1008


def test_patient_socket_without_session_is_closed(app, live):
    assert live.connect("/ws/sprechstunde", app.test_client()).closed_with() == 1008


def test_staff_cannot_open_another_practices_call(make_call, live):
    ours, theirs = make_call(), make_call()
    intruder = live.connect(f"/ws/anruf/{theirs.id}", ours.staff_client)
    assert intruder.closed_with() == 1008
    # The own practice's call still opens with the same login.
    assert ours.staff().welcome["role"] == "staff"


def test_foreign_origin_is_closed(make_call, live):
    call = make_call()
    ws = live.connect(f"/ws/anruf/{call.id}", call.staff_client, origin="https://evil.example")
    assert ws.closed_with() == 1008


def test_patient_of_one_appointment_cannot_reach_another(make_call):
    a, b = make_call(), make_call()
    staff_a, patient_a = a.both()
    staff_b, patient_b = b.both()
    patient_a.send({"type": "media-state", "camera": False, "mic": True, "screen": False})
    staff_a.expect("media-state", camera=False)
    patient_b.send({"type": "media-state", "camera": True, "mic": False, "screen": False})
    # B's staff gets B's message first: A's, handled before it, never came here.
    assert staff_b.expect("media-state") == {"type": "media-state", "camera": True, "mic": False,
                                             "screen": False, "from": "patient"}


def test_media_state_says_a_refused_camera_and_audio_only(make_call):
    staff, patient = make_call().both()
    patient.send({"type": "media-state", "camera": False, "mic": True, "screen": False, "cameraBlocked": True})
    assert staff.expect("media-state")["cameraBlocked"] is True
    staff.send({"type": "media-state", "camera": False, "mic": True, "screen": False, "audioOnly": True})
    assert patient.expect("media-state")["audioOnly"] is True


def test_resent_link_ends_the_old_patient_session(make_call, live):
    call = make_call()
    old_patient = call.patient_client
    assert call.staff_auth.post(f"/patienten/termine/{call.id}/erneut-senden/email").status_code == 200
    assert live.connect("/ws/sprechstunde", old_patient).closed_with() == 1008


# -- bad input closes that socket and nothing else ---------------------------------------

@pytest.mark.parametrize("raw, code", [
    ("{not json", 1003),
    ("[1, 2]", 1003),
    ('{"kind": "ring"}', 1003),
    ('{"type": "launch-missiles"}', 1003),
    ('{"type": "ring"}', 1003),  # a staff message from the patient
    ('{"type": "accept", "extra": 1}', 1003),
    ('{"type": "media-state", "camera": "yes", "mic": true, "screen": false}', 1003),
    ('{"type": "media-state", "camera": false, "mic": true, "screen": false, "cameraBlocked": 1}', 1003),
    ('{"type": "media-state", "camera": false, "mic": true, "screen": false, "blocked": true}', 1003),
    ('{"type": "signal", "description": {"type": "bogus", "sdp": ""}}', 1003),
    ('{"type": "signal", "candidate": {"candidate": 5}}', 1003),
    (json.dumps({"type": "signal", "description": {"type": "offer", "sdp": "x" * (64 * 1024)}}), 1009),
    (b"\x00\x01", 1003),
    # Deep nesting: json.loads raised RecursionError (1006 and a traceback), not a 1003.
    ("[" * 30000 + "]" * 30000, 1003),
    ('{"type": "signal", "candidate": ' + '{"a": ' * 8000 + "1" + "}" * 8001, 1003),
])
def test_bad_message_closes_only_that_socket(make_call, raw, code):
    call = make_call()
    staff, patient = call.both()
    patient.send(raw)
    assert patient.closed_with() == code
    staff.expect("presence", peer_online=False)
    # The staff socket lives on, and the patient can come back.
    again = call.patient()
    staff.expect("presence", peer_online=True)
    staff.send({"type": "restart-ice"})
    assert again.expect("restart-ice") == {"type": "restart-ice"}


def test_rate_limit_closes_the_flooding_socket(make_call):
    call = make_call()
    staff, patient = call.both()
    flag = {"type": "media-state", "camera": True, "mic": True, "screen": False}
    for _ in range(200):
        try:
            patient.send(flag)
        except OSError:
            break  # already closed by the server
    error = patient.expect("error")
    assert error["code"] == "rate"
    assert patient.closed_with() == 1008
    staff.expect("presence", peer_online=False)
    staff.send({"type": "ring"})
    staff.expect("call-state", state="offline")


# -- ringing ---------------------------------------------------------------------------------

def test_ring_and_accept(make_call):
    call = make_call()
    staff, patient = call.both()
    ring_and_wait(staff, patient)
    patient.send({"type": "accept"})
    staff.expect("call-state", state="accepted")
    patient.expect("call-state", state="accepted")
    # A page that comes later (a reload) learns the state in its welcome.
    assert call.staff().welcome["state"] == "accepted"
    patient.send({"type": "hangup"})
    staff.expect("call-state", state="ended")


def test_ring_and_decline(make_call):
    call = make_call()
    staff, patient = call.both()
    ring_and_wait(staff, patient)
    patient.send({"type": "decline"})
    staff.expect("call-state", state="declined")
    # Accepting a call that no longer rings is refused; the socket stays.
    patient.send({"type": "accept"})
    assert patient.expect("error")["code"] == "invalid"
    patient.expect("call-state", state="declined")


def test_cancel_stops_the_ringing(make_call):
    call = make_call()
    staff, patient = call.both()
    ring_and_wait(staff, patient)
    staff.send({"type": "cancel"})
    patient.expect("call-state", state="idle")


@pytest.mark.parametrize("config_overrides", [{"RING_TIMEOUT_SECONDS": 0.3}])
def test_unanswered_ring_times_out(make_call):
    call = make_call()
    staff, patient = call.both()
    ring_and_wait(staff, patient)
    staff.expect("call-state", state="timeout")
    patient.expect("call-state", state="timeout")


def test_ring_while_patient_is_offline(make_call):
    call = make_call()
    staff = call.staff()
    staff.send({"type": "ring"})
    staff.expect("call-state", state="offline")
    patient = call.patient()
    assert patient.welcome["state"] == "offline"
    staff.expect("presence", peer_online=True)
    ring_and_wait(staff, patient)


def test_anruf_starten_rings_before_the_call_page_opens(make_call):
    call = make_call()
    patient = call.patient()
    response = call.staff_auth.post(f"/anruf/{call.id}/starten", htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/anruf/{call.id}"
    patient.expect("call-state", state="ringing")
    assert call.staff().welcome["state"] == "ringing"
    page = call.staff_client.get(f"/anruf/{call.id}")
    assert page.status_code == 200


def test_anruf_starten_needs_csrf_and_own_practice(make_call):
    ours, theirs = make_call(), make_call()
    assert ours.staff_client.post(f"/anruf/{ours.id}/starten").status_code == 400
    assert ours.staff_auth.post(f"/anruf/{theirs.id}/starten").status_code == 404


# -- relaying ----------------------------------------------------------------------------

def test_signals_are_relayed_both_ways(make_call):
    call = make_call()
    staff, patient = call.both()
    ring_and_wait(staff, patient)
    patient.send({"type": "accept"})
    relays(staff, patient, {"type": "signal", "description": {"type": "offer", "sdp": "v=0\r\n"}})
    relays(patient, staff, {"type": "signal", "description": {"type": "answer", "sdp": "v=0\r\n"}})
    relays(patient, staff, {"type": "signal", "candidate": {
        "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0,
        "usernameFragment": "ab"}})
    relays(staff, patient, {"type": "signal", "candidate": None})
    staff.send({"type": "screenshot-request"})
    patient.expect("screenshot-request")
    patient.send({"type": "screenshot-consent", "granted": True})
    staff.expect("screenshot-consent", granted=True)


@pytest.mark.parametrize("tariff, allowed", [("basis", False), ("standard", False), ("premium", True)])
def test_screen_sharing_follows_the_tariff(make_call, tariff, allowed):
    call = make_call(tariff)
    staff, patient = call.both()
    assert staff.welcome["features"] == {"screen_sharing": allowed}
    staff.send({"type": "screen-share", "active": True})
    if allowed:
        staff.expect("screen-share-ok")
        assert patient.expect("screen-share") == {"type": "screen-share", "active": True, "from": "staff"}
    else:
        error = staff.expect("error")
        assert error["code"] == "tariff"
        assert "Premium" in error["message"]
        # Not relayed: the patient's next message is the one sent after it.
        staff.send({"type": "restart-ice"})
        assert patient.next_but_presence() == {"type": "restart-ice"}


# -- deletion ----------------------------------------------------------------------------

def test_deleting_the_appointment_tells_and_closes_its_sockets(make_call, live):
    call = make_call()
    staff, patient = call.both()
    assert call.staff_auth.delete(f"/patienten/termine/{call.id}").status_code == 200
    patient.expect("appointment-deleted")
    assert patient.closed_with() == 1000
    staff.expect("appointment-deleted")
    assert staff.closed_with() == 1000
    assert live.connect("/ws/sprechstunde", call.patient_client).closed_with() == 1008
    assert live.connect(f"/ws/anruf/{call.id}", call.staff_client).closed_with() == 1008


# -- ICE servers -------------------------------------------------------------------------

@pytest.mark.parametrize("config_overrides", [{
    "ICE_STUN_URLS": "stun:127.0.0.1:3478",
    "TURN_URLS": "turn:127.0.0.1:3478?transport=udp, turn:127.0.0.1:3478?transport=tcp",
    "TURN_SECRET": "geheim", "TURN_TTL_SECONDS": 600,
}])
def test_turn_credentials_are_coturn_shared_secret_and_per_call(make_call):
    call = make_call()
    stun, turn = call.patient().welcome["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]
    expiry, appointment = turn["username"].split(":")
    assert int(appointment) == call.id
    expected = base64.b64encode(hmac.new(b"geheim", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected
    assert call.patient().welcome["iceTransportPolicy"] == "all"


@pytest.mark.parametrize("config_overrides", [{
    "TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "TURN_SECRET": "geheim", "ICE_TRANSPORT_POLICY": "relay",
}])
def test_relay_policy_reaches_every_page_of_the_call(make_call):
    call = make_call("premium", guests=1)
    for page in (call.staff(), call.patient(), call.guest()):
        assert page.welcome["iceTransportPolicy"] == "relay"
        assert [server["urls"] for server in page.welcome["iceServers"]] == [["turn:127.0.0.1:3478?transport=udp"]]


@pytest.mark.parametrize("policy", ["relais", "", "RELAY-ONLY", "none"])
def test_an_unknown_ice_policy_stops_the_start(tmp_path, policy):
    with pytest.raises(SystemExit) as stopped:
        create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", ICE_TRANSPORT_POLICY=policy))
    assert "ICE_TRANSPORT_POLICY" in str(stopped.value) and "'all'" in str(stopped.value)


def test_patient_pages_render_with_their_socket(make_call):
    call = make_call()
    for path in ("/sprechstunde/geraetetest", "/sprechstunde"):
        response = call.patient_client.get(path)
        assert response.status_code == 200, path
    assert call.staff_client.get(f"/anruf/{call.id}").status_code == 200
