"""Redeeming a link into a session bound to one appointment: the patient's own link,
or a further participant's (a "guest": own link, same device check and waiting room).

The consultation and the chat both ask ``current_visitor()`` who is on the other end.
"""
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, session

from app.extensions import db
from app.patients.models import Appointment, Participant
from app.roles import Role, member_key
from app.timeutil import utcnow
from app.tokens import hash_token, well_formed

SESSION_KEY = "patient_appointment"


@dataclass(frozen=True)
class Visitor:
    """Whoever holds a redeemed link: the patient (participant None) or a guest."""

    appointment: Appointment
    participant: Participant | None = None

    @property
    def role(self):
        return Role.PATIENT if self.participant is None else Role.GUEST

    @property
    def key(self):
        """As in the call and the chat: "patient" or the guest's key."""
        return member_key(self.role, self.participant and self.participant.id)

    @property
    def display_name(self):
        return (self.participant or self.appointment.contact).full_name


def visitor_for_token(token):
    """Who a link token lets in, or None: unknown, malformed and expired alike."""
    if not well_formed(token):
        return None
    token_hash = hash_token(token)
    appointment = db.session.execute(
        db.select(Appointment).filter_by(token_hash=token_hash)
    ).scalar_one_or_none()
    participant = None
    if appointment is None:
        participant = db.session.execute(
            db.select(Participant).filter_by(token_hash=token_hash)
        ).scalar_one_or_none()
        appointment = participant.appointment if participant is not None else None
    if appointment is None or not link_valid(appointment):
        return None
    return Visitor(appointment, participant)


def link_valid(appointment) -> bool:
    days = current_app.config["LINK_VALID_DAYS_AFTER"]
    return utcnow() <= appointment.ends_at + timedelta(days=days)


def redeem(appointment, participant=None):
    # The session remembers which token it redeemed: a resent link (new token), a
    # deleted appointment or a removed participant ends it.
    session.clear()
    if participant is None:
        session[SESSION_KEY] = {"id": appointment.id, "token_hash": appointment.token_hash}
    else:
        session[SESSION_KEY] = {"id": appointment.id, "participant_id": participant.id,
                                "token_hash": participant.token_hash}


def current_visitor():
    """The patient or guest this session's redeemed link belongs to, or None."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    appointment_id = data.get("id")
    appointment = (db.session.get(Appointment, appointment_id)
                   if isinstance(appointment_id, int) else None)
    if appointment is None or not link_valid(appointment):
        return None
    participant_id = data.get("participant_id")
    if participant_id is None:
        if appointment.token_hash != data.get("token_hash"):
            return None
        return Visitor(appointment)
    participant = (db.session.get(Participant, participant_id)
                   if isinstance(participant_id, int) else None)
    if (participant is None or participant.appointment_id != appointment.id
            or participant.token_hash != data.get("token_hash")):
        return None
    return Visitor(appointment, participant)
