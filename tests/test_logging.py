"""Log lines (logfmt.py): a few words, then ids as key=value; never a name, an e-mail
address, a phone number or a link token. Walked through a whole consultation: login,
Einladen, a further participant, both sockets, ring, chat, removal, delivery, deletion,
and the relay's rooms."""
import asyncio
import logging
import re

import pytest

import logfmt
from app.extensions import db
from app.invitations import crypto, sender
from app.invitations.models import OutboxMessage
from media_relay.config import RelayConfig
from media_relay.rooms import Relay
from tests.support.forms import appointment_form, created_appointment_id
from tests.support.outbox import opened_link
from tests.support.sockets import LiveServer

OURS = ("app", "sprechzimmer", "media_relay")
# What a line may name: ids, states, codes and counts.
KEYS = {
    "address", "announced", "appointment", "attempt", "attempts", "bind", "channel", "control",
    "error", "kind", "max_peers", "max_rooms", "message", "method", "participant", "path", "peer",
    "moved_from", "practice", "publications", "publisher", "reason", "relay", "request", "role", "room", "rooms", "seat",
    "sender", "slots", "staff", "state", "status", "udp", "ws",
}
PAIR = r"[a-z_]+=(?:'[^']*'|\"[^\"]*\"|\S+)"
LINE = re.compile(rf"^[^=]+?((?: {PAIR})*)$")

PATIENT = {"first_name": "Erika", "last_name": "Mustermann", "email": "erika@example.org",
           "mobile": "0151 23456789"}
GUEST = {"first_name": "Jonas", "last_name": "Dolmetscher", "email": "jonas@example.org",
         "mobile": "0160 98765432", "consent": "y"}
PERSONAL = ["Erika", "Mustermann", "erika@example.org", "15123456789", "23456789",
            "Jonas", "Dolmetscher", "jonas@example.org", "16098765432", "98765432"]


def test_one_format_for_web_app_and_relay():
    assert logfmt.FORMAT == "%(asctime)s %(levelname)s %(name)s %(message)s"
    record = logging.LogRecord("media_relay.rooms", logging.INFO, __file__, 1, "left", None, None)
    adapter = logfmt.IdLogger(logging.getLogger("x"), room="appointment-7", peer="guest-3")
    message, _ = adapter.process(record.getMessage(), {})
    assert message == "left room=appointment-7 peer=guest-3"


@pytest.fixture
def live(app):
    server = LiveServer(app)
    yield server
    server.stop()


def _links(app):
    """{participant id (None: the patient): link token} from the invitations in the outbox."""
    with app.app_context():
        return {m.participant_id: crypto.unseal(m.payload)["token"]
                for m in db.session.execute(db.select(OutboxMessage).filter_by(kind="invitation"))
                .scalars()}


def test_a_consultation_logs_ids_only(app, auth, make_practice, live, caplog):
    caplog.set_level(logging.DEBUG)
    _, staff_email = make_practice("premium")
    assert auth.login(staff_email).status_code == 302
    created = auth.post("/patienten/termine", data=appointment_form(**PATIENT))
    appointment_id = created_appointment_id(created)
    prefix = f"a{appointment_id}-"
    assert auth.post(f"/patienten/termine/{appointment_id}/teilnehmer",
                     data={prefix + k: v for k, v in GUEST.items()}).status_code == 201
    links = _links(app)
    (participant_id,) = [key for key in links if key is not None]
    patient, guest = opened_link(app, links[None]), opened_link(app, links[participant_id])
    staff_ws = live.connect(f"/ws/anruf/{appointment_id}", auth.client)
    patient_ws = live.connect("/ws/sprechstunde", patient)
    guest_ws = live.connect("/ws/sprechstunde", guest)
    for ws in (staff_ws, patient_ws, guest_ws):
        ws.expect("welcome")
    staff_ws.send({"type": "ring"})
    patient_ws.expect("call-state", state="ringing")
    patient_ws.send({"type": "accept"})
    staff_ws.expect("call-state", state="accepted")
    assert auth.post(f"/chat/{appointment_id}/nachrichten",
                     data={"text": "Guten Tag"}).status_code == 201
    patient_ws.expect("chat")
    patient_ws.send({"type": "launch"})  # a protocol error closes that socket
    assert patient_ws.closed_with() == 1003

    assert auth.delete(f"/patienten/termine/{appointment_id}/teilnehmer/{participant_id}").status_code == 200
    assert guest_ws.closed_with() == 1000
    with app.app_context():
        sender.deliver_due()
    assert auth.delete(f"/patienten/termine/{appointment_id}").status_code == 200
    assert staff_ws.closed_with() == 1000

    relay = Relay(RelayConfig(secret=b"x" * 16))
    relay.create_room(f"appointment-{appointment_id}", 3)
    asyncio.run(relay.close_room(f"appointment-{appointment_id}"))

    ours = [r for r in caplog.records if r.name.split(".")[0] in OURS]
    lines = [r.getMessage() + (r.exc_text or "") for r in ours]
    # Every step above left its line, by id.
    for expected in ("login staff=", f"participant added appointment={appointment_id}",
                     "connected ws=", f"call state appointment={appointment_id} state=accepted",
                     "chat message message=", "closing reason=protocol-error",
                     f"participant removed appointment={appointment_id} participant={participant_id}",
                     "closing reason=participant-removed", "outbox sent message=",
                     "closing reason=appointment-deleted", "room created room=", "room closed room="):
        assert any(expected in line for line in lines), expected
    secrets = PERSONAL + [staff_email, *links.values()]
    for record, line in zip(ours, lines, strict=True):
        leaked = [s for s in secrets if s.lower() in line.lower()]
        assert not leaked, f"{record.name}: {line}"
        shape = LINE.match(line)
        assert shape, f"{record.name}: not 'words key=value ...': {line}"
        keys = {pair.split("=", 1)[0] for pair in re.findall(PAIR, shape.group(1))}
        assert keys <= KEYS, f"{record.name}: {sorted(keys - KEYS)} in {line}"

