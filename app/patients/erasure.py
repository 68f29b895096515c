"""A person's data, on request (DSGVO): "Daten exportieren" gives everything stored about
a contact as one JSON file (Art. 15, 20); "Kontakt löschen" erases the contact with every
appointment, link, guest, consent, chat message and delivery row (Art. 17).

The chat lives in a higher domain: it answers events.contact_export with its part, and
its messages go with their appointments through the database's ON DELETE CASCADE.
Guests are other people: the export names how many there were, not who.
"""
import logging

from app import events
from app.extensions import db
from app.invitations.models import OutboxMessage
from app.patients import consent
from app.patients.models import Appointment, Cancellation, Participant
from app.timeutil import utcnow

log = logging.getLogger(__name__)


def _iso(value):
    return value.isoformat(timespec="seconds") + "Z" if value else None


def export(practice, contact):
    """What the practice stores about `contact`, JSON-ready."""
    appointments = db.session.scalars(db.select(Appointment).filter_by(contact_id=contact.id)
                                      .order_by(Appointment.starts_at)).all()
    ids = [a.id for a in appointments]
    guests = dict(db.session.execute(
        db.select(Participant.appointment_id, db.func.count())
        .where(Participant.appointment_id.in_(ids)).group_by(Participant.appointment_id)).all())
    deliveries = db.session.scalars(
        db.select(OutboxMessage).where(OutboxMessage.appointment_id.in_(ids),
                                       OutboxMessage.participant_id.is_(None))
        .order_by(OutboxMessage.id)).all()
    data = {
        "exported_at": _iso(utcnow()),
        "practice": practice.name,
        "contact": {"first_name": contact.first_name, "last_name": contact.last_name,
                    "email": contact.email, "mobile": contact.mobile,
                    "language": contact.language, "created_at": _iso(contact.created_at)},
        "appointments": [_appointment(a, guests.get(a.id, 0)) for a in appointments],
        "messages_sent": [{"appointment_id": m.appointment_id, "kind": m.kind, "channel": m.channel,
                           "status": m.status, "sent_at": _iso(m.sent_at)} for m in deliveries],
        # The patient's own consents on the device check (given, withdrawn, which wording).
        "consents": consent.export(ids),
        # Appointments the practice called off: their day's board shows them (board.py);
        # retention takes them like the appointments.
        "cancelled_appointments": [
            {"id": c.appointment_id, "starts_at": _iso(c.starts_at),
             "cancelled_at": _iso(c.cancelled_at)}
            for c in db.session.scalars(db.select(Cancellation).filter_by(contact_id=contact.id)
                                        .order_by(Cancellation.starts_at))],
    }
    for _receiver, part in events.contact_export.send(contact.id, appointment_ids=ids):
        data.update(part or {})
    return data


def _appointment(a, guests):
    return {"id": a.id, "starts_at": _iso(a.starts_at), "duration_minutes": a.duration_minutes,
            "sms_requested": a.sms_requested, "consent_at": _iso(a.consent_at),
            "consent_text": a.consent_text, "created_at": _iso(a.created_at),
            "further_participants": guests, "link_opened_at": _iso(a.link_opened_at),
            "call_started_at": _iso(a.call_started_at), "call_ended_at": _iso(a.call_ended_at),
            "call_seconds": a.call_seconds}


def erase(contact):
    """The contact and everything about it; no message goes out (the person asked for
    their data to be gone). Open pages of its appointments are closed."""
    practice_id, contact_id = contact.practice_id, contact.id
    ids = db.session.scalars(db.select(Appointment.id).filter_by(contact_id=contact_id)).all()
    db.session.delete(contact)  # appointments, guests, links, chat, delivery rows cascade
    db.session.commit()
    for appointment_id in ids:
        events.appointment_deleted.send(appointment_id, practice_id=practice_id)
    log.info("contact erased contact=%s practice=%s appointments=%s",
             contact_id, practice_id, len(ids))
