"""Reminders before an appointment (issue 11): e-mail, and SMS where the invitation
went by SMS and the tariff allows it, with the patient's same link.

The outbox sender's periodic round (app/events.py ``outbox_round``) asks for them, as
invitations sits below patients and cannot read appointments itself. Each reminder is a
``ReminderMark`` written in the same transaction as its outbox rows: a second sender,
or one restarted after a kill -9, finds the mark and queues nothing. A reminder of an
appointment deleted meanwhile goes with it (its rows cascade); one that would reach
the patient after the start is dropped by the sender.
"""
import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app import events, invitations
from app.auth.models import Practice
from app.extensions import db
from app.patients.models import Appointment, ReminderMark

log = logging.getLogger(__name__)

# (kind, how long before the start, the practice setting that switches it on)
KINDS = (
    ("day", timedelta(hours=24), "remind_day_before"),
    ("soon", timedelta(minutes=15), "remind_shortly_before"),
)
HORIZON = max(lead for _, lead, _ in KINDS)


def _moment_passed(appointment, lead, now):
    return appointment.starts_at - lead <= now


def due_kinds(appointment, practice, now, marked):
    """The kinds due now that were neither queued nor made pointless: a reminder whose
    moment came before the appointment was even made would only repeat the invitation."""
    return [kind for kind, lead, setting in KINDS
            if getattr(practice, setting) and _moment_passed(appointment, lead, now)
            and appointment.created_at <= appointment.starts_at - lead
            and kind not in marked]


@events.outbox_round.connect
def queue_due_reminders(_sender, now, **_):
    """Queue every reminder that is due; the appointments starting within a day are few."""
    rows = db.session.execute(
        db.select(Appointment, Practice).join(Practice, Practice.id == Appointment.practice_id)
        .where(Appointment.starts_at > now, Appointment.starts_at <= now + HORIZON)
    ).all()
    marks = {}
    if rows:
        for appointment_id, kind in db.session.execute(
            db.select(ReminderMark.appointment_id, ReminderMark.kind)
            .where(ReminderMark.appointment_id.in_([a.id for a, _ in rows]))
        ):
            marks.setdefault(appointment_id, set()).add(kind)
    queued = 0
    for appointment, practice in rows:
        kinds = due_kinds(appointment, practice, now, marks.get(appointment.id, set()))
        if kinds:
            queued += _queue(appointment, kinds)
    db.session.commit()
    return queued


def _queue(appointment, kinds):
    """One reminder (when the sender was away, the nearest moment's only) and the marks
    of every due kind, in one transaction."""
    appointment_id = appointment.id
    try:
        for kind in kinds:
            db.session.add(ReminderMark(appointment_id=appointment_id, kind=kind))
        channels = invitations.queue_reminder(appointment)
        db.session.commit()
    except IntegrityError:
        # Another sender queued it a moment ago.
        db.session.rollback()
        return 0
    log.info("reminder queued appointment=%s kinds=%s channels=%s", appointment_id,
             ",".join(kinds), ",".join(channels))
    return 1


def reset_for_new_time(appointment, now):
    """The appointment moved (no commit): reminders of the old time go, and the moments
    of the new time that already passed count as done (the update just told the patient)."""
    invitations.drop_pending_reminders(appointment)
    db.session.execute(db.delete(ReminderMark).where(ReminderMark.appointment_id == appointment.id))
    for kind, lead, _ in KINDS:
        if _moment_passed(appointment, lead, now):
            db.session.add(ReminderMark(appointment_id=appointment.id, kind=kind))
