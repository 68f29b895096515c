"""Who of an appointment's people is in the call and who waits outside it (issue 11):
the list on the staff's call page of a group call.

Asked afresh each time the staff page hears that something changed (docs/signalling.md,
"People of a group call"), never kept: the hub knows whose page is open (a socket per
channel), the call state and the relay know who is in the call. Only the staff of the
appointment's own practice get it (consultation/routes.py); patients and guests learn
no more than the roster tells them.
"""
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from app.consultation import group
from app.hub import ACCEPTED, Hub, channel
from app.patients import guest_roles
from app.roles import Role, guest_key

IN_CALL, WAITING, AWAY = "in-call", "waiting", "away"
STATES = {IN_CALL: _l("Im Gespräch"), WAITING: _l("Wartet"), AWAY: _l("Nicht da")}
PATIENT = _l("Patient/in")


# To the staff channel only: "look again". It names nobody, so whatever hears it learns nothing.
NEWS = {"type": "people"}


def changed(hub: Hub, appointment_id):
    """A guest's page came or went (the patient's has "presence"; the call state and the
    relay have their own messages, which the staff page takes as the same news)."""
    hub.broadcast(appointment_id, NEWS, roles=(Role.STAFF,))


@dataclass(frozen=True)
class Person:
    key: str  # patient or guest-<participant id>, as in the call
    name: str
    role: str  # the words for why they take part (Patient/in, Dolmetscher/in ...)
    state: str  # IN_CALL, WAITING or AWAY

    @property
    def state_words(self):
        return STATES[self.state]


def of(appointment, hub: Hub):
    """The patient, then the further people in the order they were added. Raises
    HubUnavailable when the hub cannot say whose page is open."""
    aid = appointment.id
    accepted = hub.call_state(aid).state == ACCEPTED

    def there(key):
        return hub.subscribers(channel(aid, key)) > 0

    guests = [(guest_key(p.id), p) for p in appointment.participants]
    open_pages = {key for key, _ in guests if there(key)}
    # A guest is on the relay only while its page is open (its socket's end takes it off),
    # and only in a running call: the relay is asked then alone, not on every 1:1 call.
    on_relay = group.members(aid) if accepted and open_pages else set()
    # The patient belongs to an accepted call whether or not on the relay (a 1:1 call,
    # joining it, a reload): the open page is what counts.
    if there(Role.PATIENT):
        state = IN_CALL if accepted else WAITING
    else:
        state = AWAY
    people = [Person(str(Role.PATIENT), appointment.contact.full_name, str(PATIENT), state)]
    for key, participant in guests:
        # In the call only on the relay; with the page open and not joined, waiting.
        state = IN_CALL if key in on_relay else WAITING if key in open_pages else AWAY
        people.append(Person(key, participant.full_name,
                             str(guest_roles.label(participant.call_role)), state))
    return people
