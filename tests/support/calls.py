"""One harness for a call over the real sockets: a practice's appointment (own staff
login), the patient who opened the link, guests added in the panel who opened theirs,
and the pages' sockets on the live server (tests/support/sockets.py).

    call = make_call("premium", guests=1)
    staff, patient = call.accepted()        # rung and accepted: the 1:1 call runs
    staff, patient, guests = call.grouped() # and the guests took it: on the relay
"""
import pytest

from app.extensions import db
from app.patients.models import Participant
from tests.support.forms import appointment_form, created_appointment_id
from tests.support.outbox import invitation_token, opened_link
from tests.support.webapp import logged_in

PRACTICE_NAME = "Hausarztpraxis Sonnenschein"
PATIENT_NAME = "Erika Mustermann"  # appointment_form's contact
# (first name, last name, role in the call) of the further people a test adds.
GUESTS = [("Jonas", "Dolmetscher", "interpreter"), ("Mira", "Tochter", "relative"),
          ("Paul", "Kollege", "colleague")]


class Call:
    def __init__(self, app, live, practice_id, staff_email, guests=0, consent=True):
        self.app = app
        self.live = live
        self.practice_id = practice_id
        self.staff_email = staff_email
        self.staff_auth = logged_in(app, staff_email)
        self.staff_client = self.staff_auth.client
        response = self.staff_auth.post("/patienten/termine", data=appointment_form())
        assert response.status_code == 201, response.get_data(as_text=True)
        self.id = created_appointment_id(response)
        self.room = f"appointment-{self.id}"
        # consent=False: the patient opened the link but has not agreed yet (tests/test_consent.py).
        self.patient_client = opened_link(app, invitation_token(app, appointment_id=self.id), consent)
        self.guest_ids, self.guest_clients, self.guest_names = [], {}, {}
        for first, last, call_role in GUESTS[:guests]:
            self.add_guest(first, last, call_role)

    def add_guest(self, first="Jonas", last="Dolmetscher", call_role="interpreter", consent=True):
        """Staff add a participant in the panel; its browser opens the invited link (and
        gives its consent unless ``consent=False``). Returns (participant id, its test client)."""
        prefix = f"a{self.id}-"
        data = {"first_name": first, "last_name": last, "email": f"{first.lower()}@example.org",
                "mobile": "", "consent": "y", "call_role": call_role}
        response = self.staff_auth.post(f"/patienten/termine/{self.id}/teilnehmer",
                                        data={prefix + k: v for k, v in data.items()})
        assert response.status_code == 201, response.get_data(as_text=True)
        with self.app.app_context():
            participant_id = db.session.execute(
                db.select(Participant.id).filter_by(appointment_id=self.id, first_name=first)
            ).scalar_one()
        client = opened_link(self.app, invitation_token(self.app, participant_id=participant_id), consent)
        self.guest_ids.append(participant_id)
        self.guest_clients[participant_id] = client
        self.guest_names[participant_id] = f"{first} {last}"
        return participant_id, client

    def set_tariff(self, tariff):
        from app.auth.services import set_tariff

        with self.app.app_context():
            set_tariff(self.practice_id, tariff)

    # -- the pages' sockets, each once its welcome came ---------------------------------

    # ``on``: another server of the same app and database than ``live`` (e.g. a second
    # web process).

    def _page(self, path, client, label, on):
        socket = (on or self.live).connect(path, client, label=label)
        socket.welcome = socket.take("welcome")
        return socket

    def staff(self, on=None):
        return self._page(f"/ws/anruf/{self.id}", self.staff_client, "staff", on)

    def patient(self, on=None):
        return self._page("/ws/sprechstunde", self.patient_client, "patient", on)

    def guest(self, index=0, on=None):
        participant_id = self.guest_ids[index]
        return self._page("/ws/sprechstunde", self.guest_clients[participant_id], f"guest-{participant_id}", on)

    def both(self):
        """Staff page, then the patient's: the staff page has heard the patient come."""
        staff, patient = self.staff(), self.patient()
        staff.expect("presence", peer_online=True)
        return staff, patient

    @staticmethod
    def accept(staff, patient):
        """Staff ring, the patient accepts; both pages hear each state."""
        staff.send({"type": "ring"})
        staff.take("call-state", state="ringing")
        patient.take("call-state", state="ringing")
        patient.send({"type": "accept"})
        staff.take("call-state", state="accepted")
        patient.take("call-state", state="accepted")

    def accepted(self):
        """Staff and patient pages open, rung and accepted (the 1:1 call runs)."""
        staff, patient = self.staff(), self.patient()
        self.accept(staff, patient)
        self.settle(staff, patient)
        return staff, patient

    @staticmethod
    def settle(staff, patient):
        """A round trip between the two pages: what the server sent either of them
        before has arrived, so its old call states can be forgotten (the ringing page
        gets "ringing" twice: published, and as the answer to its ring)."""
        staff.send({"type": "restart-ice"})
        patient.take("restart-ice")
        patient.send({"type": "restart-ice"})
        staff.take("restart-ice")
        staff.forget("call-state")
        patient.forget("call-state")

    def grouped(self, guests=1):
        """accepted(), then the guests' pages open and accept: the call is on the relay."""
        staff, patient = self.accepted()
        joined = []
        for index in range(guests):
            guest = self.guest(index)
            guest.send({"type": "accept"})
            for member in (staff, patient, guest):
                member.take("relay", active=True)
            joined.append(guest)
        return staff, patient, joined


def relays(sender, receiver, message):
    """``sender``'s page sends ``message``; the other page gets it as it was sent."""
    sender.send(message)
    assert receiver.expect(message["type"]) == message


@pytest.fixture
def make_call(app, live, make_practice):
    """make_call(tariff="premium", guests=0, consent=True) -> Call of a new practice on the
    live server."""

    def factory(tariff="premium", guests=0, consent=True):
        practice_id, email = make_practice(tariff, name=PRACTICE_NAME)
        return Call(app, live, practice_id, email, guests, consent)

    return factory
