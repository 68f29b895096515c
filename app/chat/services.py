"""Chat between the practice and the patient of one appointment.

Messages are stored with the appointment (and deleted with it by the database) and
go out live as the rendered fragment over both sides' sockets.
"""
import logging

from flask import render_template
from sqlalchemy import func

from app.chat.models import PATIENT, STAFF, ChatMessage
from app.consultation.hub import channel
from app.consultation.signalling import get_hub
from app.extensions import db
from app.timeutil import utcnow

log = logging.getLogger(__name__)

READ_COLUMN = {STAFF: "read_by_staff_at", PATIENT: "read_by_patient_at"}


def _other(role):
    return PATIENT if role == STAFF else STAFF


def history(appointment, reader):
    """All messages, oldest first; what the other side wrote counts as read by ``reader`` now."""
    messages = db.session.execute(
        db.select(ChatMessage).filter_by(appointment_id=appointment.id).order_by(ChatMessage.id)
    ).scalars().all()
    _mark_read([m.id for m in messages if m.sender != reader and getattr(m, READ_COLUMN[reader]) is None],
               reader)
    return messages


def _mark_read(ids, reader):
    if not ids:
        return
    db.session.execute(
        db.update(ChatMessage).where(ChatMessage.id.in_(ids)).values({READ_COLUMN[reader]: utcnow()})
    )
    db.session.commit()


def render_message(message, practice):
    return render_template("chat/_message.html", m=message, practice=practice)


def post_message(appointment, practice, sender, text, staff=None):
    """Store, then send the fragment to both sides' sockets (the sender's page lists it from there)."""
    now = utcnow()
    message = ChatMessage(appointment_id=appointment.id, sender=sender, text=text, created_at=now,
                          staff_id=staff.id if staff is not None else None)
    setattr(message, READ_COLUMN[sender], now)
    db.session.add(message)
    db.session.commit()
    payload = {"type": "chat", "html": render_message(message, practice), "id": message.id, "sender": sender}
    hub = get_hub()
    hub.publish(channel(appointment.id, sender), payload)
    delivered = hub.publish(channel(appointment.id, _other(sender)), payload)
    if delivered:
        # An open page of the other side shows it at once.
        _mark_read([message.id], _other(sender))
    log.info("chat message %s appointment %s from %s", message.id, appointment.id, sender)
    return message


def unread_by_staff(appointment_ids):
    """{appointment id: number of patient messages the practice has not seen}."""
    if not appointment_ids:
        return {}
    rows = db.session.execute(
        db.select(ChatMessage.appointment_id, func.count())
        .where(ChatMessage.appointment_id.in_(appointment_ids), ChatMessage.sender == PATIENT,
               ChatMessage.read_by_staff_at.is_(None))
        .group_by(ChatMessage.appointment_id)
    ).all()
    return dict(rows)
