"""Who takes part in an appointment's call and chat.

A role here is a side of one appointment (the practice, the patient, a further
person), not what a staff account may do: account roles (Praxisadmin, Arzt, MFA)
belong to auth. The values are the wire format (docs/signalling.md), the hub's
channel names and the chat's ``sender`` column, so they never change.
"""
from enum import StrEnum


class Role(StrEnum):
    STAFF = "staff"
    PATIENT = "patient"
    # A further person (Premium): app/patients/models.py::Participant. Takes part only
    # in a group call through the relay.
    GUEST = "guest"


def guest_key(participant_id):
    """A guest's key in the call, the relay and the chat (staff and patient use their role)."""
    return f"guest-{participant_id}"


def member_key(role, participant_id=None):
    """One person's key: ``staff``, ``patient`` or ``guest-<participant id>``."""
    if role == Role.GUEST and participant_id is not None:
        return guest_key(participant_id)
    return str(Role(role))
