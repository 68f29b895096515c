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

from app import events
from app.chat.models import ChatMessage
from app.extensions import db, hub
from app.hub import HubUnavailable
from app.patients import progress
from app.roles import Role
from app.timeutil import utcnow

log = logging.getLogger(__name__)

# Guests keep no read markers: nothing depends on what they have seen.
READ_COLUMN = {Role.STAFF: "read_by_staff_at", Role.PATIENT: "read_by_patient_at"}


def history(appointment, reader, participant=None):
    """The messages ``reader`` may see, oldest first. Reading them changes nothing: the
    page that shows them says so by POST (``mark_read``), as no GET changes state.

    A guest (``participant``) gets only those since it was added.
    """
    query = (db.select(ChatMessage).filter_by(appointment_id=appointment.id)
             .options(selectinload(ChatMessage.participant)).order_by(ChatMessage.id))
    if reader == Role.GUEST:
        query = query.where(ChatMessage.created_at >= participant.created_at)
    return db.session.execute(query).scalars().all()


def unread_upto(messages, reader):
    """The newest of ``messages`` that ``reader`` has not read yet (its id), or None."""
    if reader not in READ_COLUMN:
        return None
    unread = [m.id for m in messages
              if m.sender != reader and getattr(m, READ_COLUMN[reader]) is None]
    return max(unread, default=None)


def mark_read(appointment, reader, upto):
    """``reader``'s page showed the messages up to id ``upto``: they count as read. Later
    ones stay unread, even if they came in meanwhile."""
    if reader not in READ_COLUMN:
        return
    column = getattr(ChatMessage, READ_COLUMN[reader])
    db.session.execute(
        db.update(ChatMessage)
        .where(ChatMessage.appointment_id == appointment.id, ChatMessage.id <= upto,
               ChatMessage.sender != reader, column.is_(None))
        .values({READ_COLUMN[reader]: utcnow()})
    )
    db.session.commit()


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
    try:
        reached = hub.broadcast(appointment.id, payload)
    except HubUnavailable:
        # Stored is sent: the pages' sockets are closed meanwhile, and each page loads the
        # history again when its socket is back (js/call/main.js).
        log.info("chat message not published appointment=%s hub=unavailable", appointment.id)
        reached = {}
    for side, delivered in reached.items():
        if delivered and side in READ_COLUMN and side != sender:
            # An open page of that side shows it at once.
            _mark_read([message.id], side)
    if sender != Role.STAFF:
        progress.notify(appointment, "chat")  # the board's unread badge
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


@events.contact_export.connect
def _export(contact_id, appointment_ids, **_):
    """The chat's part of a person's data export (patients/erasure.py): every message of
    their appointments, with who wrote it (a role, never a guest's name) and when."""
    if not appointment_ids:
        return {"chat": []}
    query = db.select(ChatMessage).where(ChatMessage.appointment_id.in_(appointment_ids))
    return {"chat": [{"appointment_id": m.appointment_id, "from": m.sender, "text": m.text,
                      "written_at": m.created_at.isoformat(timespec="seconds") + "Z"}
                     for m in db.session.scalars(query.order_by(ChatMessage.id))]}
