"""Redeeming a link into a session bound to one appointment: the patient's own link,
or a further participant's (a "guest": own link, same device check and waiting room).

One device at a time per link (issue 12): redeeming a link makes this browser the
link's device; a device that had it before is told and cut off (the signal
``link_device_replaced``, answered by consultation), and the practice sees that the
device changed. The browser's session cookie holds only a random secret
(models.LinkDevice): whoever reads the cookie learns neither the appointment nor the link.

The consultation and the chat both ask ``current_visitor()`` who is on the other end.
"""
import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, session

from app import events
from app.extensions import db
from app.patients import progress
from app.patients.models import Appointment, LinkDevice, Participant
from app.roles import Role, member_key
from app.timeutil import utcnow
from app.tokens import hash_token, new_token, well_formed

log = logging.getLogger(__name__)

SESSION_KEY = "visitor"


@dataclass(frozen=True)
class Visitor:
    """Whoever holds a redeemed link: the patient (participant None) or a guest."""

    appointment: Appointment
    participant: Participant | None = None
    # This browser's LinkDevice (None until the link is redeemed here).
    device_id: int | None = None

    @property
    def role(self):
        return Role.PATIENT if self.participant is None else Role.GUEST

    @property
    def participant_id(self):
        return self.participant.id if self.participant is not None else None

    @property
    def key(self):
        """As in the call and the chat: "patient" or the guest's key."""
        return member_key(self.role, self.participant and self.participant.id)

    @property
    def display_name(self):
        return (self.participant or self.appointment.contact).full_name

    @property
    def link_hash(self):
        return (self.participant or self.appointment).token_hash


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


def _same_link(visitor):
    participant_id = visitor.participant_id
    return db.and_(LinkDevice.appointment_id == visitor.appointment.id,
                   LinkDevice.participant_id.is_(None) if participant_id is None
                   else LinkDevice.participant_id == participant_id)


def _newest_device_id(visitor):
    return db.session.execute(
        db.select(db.func.max(LinkDevice.id)).where(_same_link(visitor))
    ).scalar()


def redeem(visitor):
    """This browser becomes the link's device. A browser that already is stays so (a link
    opened twice on one device takes nothing over)."""
    current = current_visitor()
    if (current is not None and current.key == visitor.key
            and current.appointment.id == visitor.appointment.id):
        return current
    before = _newest_device_id(visitor)
    previous = (db.session.get(LinkDevice, before) if before is not None else None)
    secret, secret_hash = new_token()
    device = LinkDevice(appointment_id=visitor.appointment.id,
                        participant_id=visitor.participant_id,
                        token_hash=secret_hash, link_hash=visitor.link_hash)
    db.session.add(device)
    db.session.commit()
    chosen = session.get("lang")  # the language switch, used before the link was opened
    session.clear()
    session[SESSION_KEY] = secret
    # Invited in English: the pages too, unless this browser chose otherwise.
    person = visitor.participant or visitor.appointment.contact
    if chosen or person.language == "en":
        session["lang"] = chosen or person.language
    participant_id = device.participant_id
    # Only a device of the same link (not of an earlier, resent one) is taken over.
    if previous is not None and previous.link_hash == device.link_hash:
        log.info("link opened on another device appointment=%s participant=%s",
                 device.appointment_id, participant_id)
        events.link_device_replaced.send(device.appointment_id, participant_id=participant_id,
                                         device_id=device.id)
    if participant_id is None:
        progress.link_opened(device.appointment_id)  # the practice's "Heute" board
    return Visitor(visitor.appointment, visitor.participant, device.id)


def current_visitor():
    """The patient or guest this session's redeemed link belongs to, or None. When this
    browser's device was taken over by another, ``taken_over()`` tells so afterwards."""
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str) or not well_formed(secret):
        return None
    device = db.session.execute(
        db.select(LinkDevice).filter_by(token_hash=hash_token(secret))
    ).scalar_one_or_none()
    if device is None:
        return None
    appointment = db.session.get(Appointment, device.appointment_id)
    if appointment is None or not link_valid(appointment):
        return None
    participant = None
    if device.participant_id is not None:
        participant = db.session.get(Participant, device.participant_id)
        if participant is None or participant.appointment_id != appointment.id:
            return None
    visitor = Visitor(appointment, participant, device.id)
    if visitor.link_hash != device.link_hash:
        return None  # the link was sent anew: its old devices are out
    if _newest_device_id(visitor) != device.id:
        g.link_taken_over = True
        return None
    return visitor


def taken_over() -> bool:
    """After current_visitor() gave None: this browser's link was opened on another device."""
    return g.get("link_taken_over", False)
