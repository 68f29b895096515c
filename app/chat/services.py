"""Chat of one appointment: the practice, the patient and, in group calls, the guests.

Messages are stored with the appointment (and deleted with it by the database) and
go out live as the rendered fragment over the sockets of all sides. A guest sees only
what was written since it was added, never the earlier conversation of patient and
practice (docs/signalling.md, "Chat").
"""
import logging

from flask import render_template
from sqlalchemy import func
from sqlalchemy.orm import selectinload

from app.chat.models import ChatMessage
from app.extensions import db, hub
from app.roles import Role
from app.timeutil import utcnow

log = logging.getLogger(__name__)

# Guests keep no read markers: nothing depends on what they have seen.
READ_COLUMN = {Role.STAFF: "read_by_staff_at", Role.PATIENT: "read_by_patient_at"}


def history(appointment, reader, participant=None):
    """The messages ``reader`` may see, oldest first; the others' count as read by it now.

    A guest (``participant``) gets only those since it was added.
    """
    query = (db.select(ChatMessage).filter_by(appointment_id=appointment.id)
             .options(selectinload(ChatMessage.participant)).order_by(ChatMessage.id))
    if reader == Role.GUEST:
        query = query.where(ChatMessage.created_at >= participant.created_at)
    messages = db.session.execute(query).scalars().all()
    if reader in READ_COLUMN:
        unread = [m.id for m in messages
                  if m.sender != reader and getattr(m, READ_COLUMN[reader]) is None]
        _mark_read(unread, reader)
    return messages


def _mark_read(ids, reader):
    if not ids:
        return
    db.session.execute(
        db.update(ChatMessage).where(ChatMessage.id.in_(ids))
        .values({READ_COLUMN[reader]: utcnow()})
    )
    db.session.commit()


def render_message(message, practice, viewer_key=None):
    """One <li>; ``viewer_key`` (staff, patient, guest-<id>) marks the reader's own messages."""
    return render_template("chat/_message.html", m=message, practice=practice,
                           viewer_key=viewer_key)


def post_message(appointment, practice, sender, text, staff=None, participant=None):
    """Store, then send the fragment to every side's sockets (the sender's page lists it
    from there).

    Only new messages are published, so a guest's socket never gets one from before the
    guest was added. The payload carries the writer's key in ``sender_key``, not in
    ``from``: the guest sockets drop a ``from`` of their own, and the guest's own page
    must list its message too.
    """
    now = utcnow()
    message = ChatMessage(appointment_id=appointment.id, sender=sender, text=text, created_at=now,
                          staff_id=staff.id if staff is not None else None,
                          participant_id=participant.id if participant is not None else None)
    if sender in READ_COLUMN:
        setattr(message, READ_COLUMN[sender], now)
    db.session.add(message)
    db.session.commit()
    payload = {"type": "chat", "html": render_message(message, practice), "id": message.id,
               "sender": sender, "sender_key": message.sender_key}
    for side, delivered in hub.broadcast(appointment.id, payload).items():
        if delivered and side in READ_COLUMN and side != sender:
            # An open page of that side shows it at once.
            _mark_read([message.id], side)
    log.info("chat message message=%s appointment=%s sender=%s",
             message.id, appointment.id, message.sender_key)
    return message


def unread_by_staff(appointments):
    """{appointment id: number of patient and guest messages the practice has not seen}.

    The Patienten list shows it as a badge; patients is below chat, so its template
    asks through the ``unread_chat`` template global (app/chat/__init__.py).
    """
    appointment_ids = [a.id for a in appointments]
    if not appointment_ids:
        return {}
    rows = db.session.execute(
        db.select(ChatMessage.appointment_id, func.count())
        .where(ChatMessage.appointment_id.in_(appointment_ids),
               ChatMessage.sender.in_((Role.PATIENT, Role.GUEST)),
               ChatMessage.read_by_staff_at.is_(None))
        .group_by(ChatMessage.appointment_id)
    ).all()
    return dict(rows)
