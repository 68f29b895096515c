"""What the server does with the key agreement of end-to-end encrypted group calls
(docs/encryption.md): it relays public keys, wrapped frame keys and receipts to the
other members, marked with the sender's key, checks their form and size, and never
needs to understand them. Real websockets against the live app, on both hub kinds."""
import base64

import pytest

PUB = base64.urlsafe_b64encode(b"\x04" + bytes(range(64))).rstrip(b"=").decode()
WRAPPED = base64.urlsafe_b64encode(bytes(range(100, 160))).rstrip(b"=").decode()


def test_public_keys_wrapped_keys_and_receipts_reach_every_other_member(make_call):
    call = make_call("premium", guests=2)
    staff, patient = call.both()
    first, second = call.guest(0), call.guest(1)
    first_key, second_key = (f"guest-{pid}" for pid in call.guest_ids)

    first.send({"type": "e2ee-hello", "pub": PUB})
    for page in (staff, patient, second):
        assert page.expect("e2ee-hello") == {"type": "e2ee-hello", "pub": PUB, "from": first_key}

    keys = {"staff": WRAPPED, "patient": WRAPPED, second_key: WRAPPED}
    first.send({"type": "e2ee-key", "kid": 2**40 + 7, "keys": keys})
    for page in (staff, patient, second):
        assert page.expect("e2ee-key") == {"type": "e2ee-key", "kid": 2**40 + 7, "keys": keys, "from": first_key}

    staff.send({"type": "e2ee-ack", "to": first_key, "kid": 2**40 + 7})
    for page in (patient, first, second):
        assert page.expect("e2ee-ack")["from"] == "staff"

    # A browser that cannot encrypt frames says so; the others warn or it is refused.
    patient.send({"type": "e2ee-hello", "pub": None})
    assert staff.expect("e2ee-hello") == {"type": "e2ee-hello", "pub": None, "from": "patient"}
    # (the guests hear it too; over Redis it may come after later messages of others)
    assert first.take("e2ee-hello", where=lambda m: m["from"] == "patient")["pub"] is None
    # The sender never hears its own message back (the guests share a channel).
    second.send({"type": "e2ee-ack", "to": "staff", "kid": 1})
    staff.expect("e2ee-ack")
    first.expect("e2ee-ack")
    first.send({"type": "ping"})
    assert first.first_of("pong", "e2ee-hello")["type"] == "pong"


def test_keys_stay_within_their_appointment(make_call):
    ours, theirs = make_call("premium"), make_call("premium")
    staff, patient = ours.both()
    other_staff, other_patient = theirs.both()
    patient.send({"type": "e2ee-hello", "pub": PUB})
    staff.expect("e2ee-hello")
    other_staff.send({"type": "ping"})
    assert other_staff.first_of("pong", "e2ee-hello")["type"] == "pong"


@pytest.mark.parametrize("message", [
    {"type": "e2ee-hello"},
    {"type": "e2ee-hello", "pub": PUB[:-1]},  # not a P-256 point's length
    {"type": "e2ee-hello", "pub": PUB[:-1] + "="},
    {"type": "e2ee-hello", "pub": 42},
    {"type": "e2ee-hello", "pub": PUB, "from": "staff"},  # the server says who sent it
    {"type": "e2ee-key", "kid": 1, "keys": {"staff": WRAPPED + "A"}},
    {"type": "e2ee-key", "kid": -1, "keys": {}},
    {"type": "e2ee-key", "kid": 2**48, "keys": {}},
    {"type": "e2ee-key", "kid": True, "keys": {}},
    {"type": "e2ee-key", "kid": 1, "keys": [WRAPPED]},
    {"type": "e2ee-key", "kid": 1, "keys": {"stranger": WRAPPED}},
    {"type": "e2ee-key", "kid": 1, "keys": {f"guest-{n}": WRAPPED for n in range(9)}},
    {"type": "e2ee-ack", "to": "guest-x", "kid": 1},
    {"type": "e2ee-ack", "to": "staff", "kid": "1"},
], ids=lambda m: str(sorted(m.items()))[:60])
def test_malformed_key_messages_close_the_socket_and_the_call_goes_on(make_call, message):
    call = make_call("premium")
    staff, patient = call.both()
    patient.send(message)
    assert patient.closed_with() == 1003
    staff.expect("presence", peer_online=False)
    # Staff's page is untouched, and the patient's page comes back.
    again = call.patient()
    staff.expect("presence", peer_online=True)
    again.send({"type": "e2ee-hello", "pub": PUB})
    assert staff.expect("e2ee-hello")["from"] == "patient"


def test_a_flood_of_rekeys_is_cut_by_the_rate_limit(make_call):
    call = make_call("premium")
    staff, patient = call.both()
    key = {"type": "e2ee-key", "kid": 1, "keys": {"staff": WRAPPED}}
    for _ in range(200):
        try:
            patient.send(key)
        except OSError:
            break  # already closed by the server
    assert patient.expect("error")["code"] == "rate"
    assert patient.closed_with() == 1008
    staff.expect("presence", peer_online=False)
    assert call.patient().welcome["type"] == "welcome"
