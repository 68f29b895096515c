"""Who is connecting: the staff member of the appointment's practice, the patient who
redeemed its link, or a guest who redeemed their own (app/patients/links.py).

Checked once, at the top of the socket's life (the handshake is already done then):
a socket that is nobody gets ``None`` and is closed. Checks of what a staff account
may do in a call belong here too.
"""
from dataclasses import dataclass

from flask import g
from flask_login import current_user
from werkzeug.exceptions import NotFound

from app.auth import sessions
from app.auth.models import Practice
from app.extensions import db
from app.patients import consent
from app.patients.links import current_visitor
from app.patients.models import Appointment
from app.roles import Role, member_key
from app.tariffs import TARIFFS, has_feature
from app.web import load_in_practice, same_origin_socket


@dataclass(frozen=True)
class Identity:
    role: Role
    appointment_id: int
    practice_id: int
    screen_sharing: bool
    # The tariff's limit; more than two means group calls through the relay.
    max_participants: int = 2
    # Guests only: who they are.
    participant_id: int | None = None
    display_name: str | None = None
    # Staff only: the login session the socket lives on (it keeps it alive in a call).
    login_session_id: int | None = None
    staff_id: int | None = None  # staff: the account (the audit log names it)
    # Patient and guests: the device (patients.models.LinkDevice) this socket's page is on.
    device_id: int | None = None
    # The practice lets a browser without frame encryption into a group call (issue 13).
    allow_unencrypted: bool = False

    @property
    def group_calls(self):
        return self.max_participants > 2

    @property
    def key(self):
        """In the call, the relay and the chat: staff, patient or guest-<participant id>."""
        return member_key(self.role, self.participant_id)


def _max_participants(practice):
    tariff = TARIFFS.get(practice.tariff)
    return tariff.max_participants if tariff else 2


def staff_identity(appointment_id):
    if not same_origin_socket() or not current_user.is_authenticated:
        return None
    if not current_user.conducts_calls:
        return None  # an MFA's account organises, it never joins a call (Anlage 31b)
    practice = current_user.practice
    try:
        appointment = load_in_practice(Appointment, appointment_id, practice)
    except NotFound:
        return None
    return Identity(Role.STAFF, appointment.id, practice.id,
                    has_feature(practice, "screen_sharing"), _max_participants(practice),
                    login_session_id=sessions.current_id(), staff_id=current_user.id,
                    allow_unencrypted=practice.allow_unencrypted_group_calls)


def patient_identity():
    """The patient or a guest, by the link this session redeemed, once they have given
    their own consent (issue 12): before it, or after a withdrawal, no media and no call.
    ``consent_missing()`` tells that reason afterwards."""
    if not same_origin_socket():
        return None
    visitor = current_visitor()
    if visitor is None:
        return None
    appointment = visitor.appointment
    if not consent.is_current(appointment.id, visitor.participant and visitor.participant.id):
        g.consent_missing = True
        return None
    practice = db.session.get(Practice, appointment.practice_id)
    screen_sharing = has_feature(practice, "screen_sharing")
    limit = _max_participants(practice)
    if visitor.participant is not None:
        return Identity(Role.GUEST, appointment.id, practice.id, screen_sharing, limit,
                        visitor.participant.id, visitor.display_name,
                        device_id=visitor.device_id,
                        allow_unencrypted=practice.allow_unencrypted_group_calls)
    return Identity(Role.PATIENT, appointment.id, practice.id, screen_sharing, limit,
                    device_id=visitor.device_id,
                    allow_unencrypted=practice.allow_unencrypted_group_calls)


def consent_missing() -> bool:
    """After patient_identity() gave None: the person has no consent in force."""
    return g.get("consent_missing", False)
