"""Redeeming a patient's link into a session bound to one appointment."""
from datetime import timedelta

from flask import current_app, session

from app.consultation.tokens import hash_token, well_formed
from app.extensions import db
from app.patients.models import Appointment
from app.timeutil import utcnow

SESSION_KEY = "patient_appointment"


def appointment_for_token(token):
    """The appointment a link token opens, or None: unknown, malformed and expired alike."""
    if not well_formed(token):
        return None
    appointment = db.session.execute(
        db.select(Appointment).filter_by(token_hash=hash_token(token))
    ).scalar_one_or_none()
    if appointment is None or not link_valid(appointment):
        return None
    return appointment


def link_valid(appointment) -> bool:
    days = current_app.config["LINK_VALID_DAYS_AFTER"]
    return utcnow() <= appointment.ends_at + timedelta(days=days)


def redeem(appointment):
    # The session remembers which token it redeemed: a resent link (new token)
    # or a deleted appointment ends it.
    session.clear()
    session[SESSION_KEY] = {"id": appointment.id, "token_hash": appointment.token_hash}


def current_patient_appointment():
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    appointment = db.session.get(Appointment, data.get("id")) if isinstance(data.get("id"), int) else None
    if appointment is None or appointment.token_hash != data.get("token_hash") or not link_valid(appointment):
        return None
    return appointment
