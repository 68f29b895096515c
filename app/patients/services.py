"""What the Patienten tab does: contacts, appointments, search, deletion."""
from datetime import timedelta

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError

from app import events, invitations
from app.auth import audit
from app.extensions import db
from app.patients import progress, submissions
from app.patients.models import Appointment, Cancellation, Contact
from app.timeutil import utcnow
from app.tokens import new_token

SEARCH_LIMIT = 10
PAST_LIMIT = 50


def upsert_contact(practice, form):
    """The same e-mail in the same practice is one contact; its details follow the latest form."""
    contact = db.session.execute(
        db.select(Contact).filter_by(practice_id=practice.id, email=form.email.data)
    ).scalar_one_or_none()
    if contact is None:
        contact = Contact(practice_id=practice.id, email=form.email.data)
        db.session.add(contact)
    contact.first_name = form.first_name.data
    contact.last_name = form.last_name.data
    contact.search_name = f"{form.first_name.data} {form.last_name.data}".lower()
    if form.mobile.data:
        contact.mobile = form.mobile.data
    contact.language = form.language.data
    return contact


def create_appointment(practice, staff, form, consent_text, submit_key=None):
    """Contact, appointment, link token and outbox entries in one transaction.

    With a submit key that already made an appointment: that appointment, nothing new.
    """
    for attempt in range(2):
        done = submissions.earlier(practice, submit_key, "appointment")
        if done is not None:
            return done.appointment
        try:
            contact = upsert_contact(practice, form)
            token, token_hash = new_token()
            now = utcnow()
            appointment = Appointment(
                practice_id=practice.id,
                contact=contact,
                starts_at=form.starts_at_utc,
                duration_minutes=form.duration.parsed,
                token_hash=token_hash,
                sms_requested=bool(form.send_sms.data),
                consent_at=now,
                consent_by_id=staff.id,
                consent_text=consent_text,
                created_by_id=staff.id,
                created_at=now,
            )
            db.session.add(appointment)
            channels = ["email"] + (["sms"] if form.send_sms.data else [])
            invitations.queue_invitation(appointment, token, channels)
            submissions.remember(practice, submit_key, "appointment", appointment)
            db.session.flush()  # the id, for the audit log
            audit.by_staff(staff, audit.APPOINTMENT_CREATE, "appointment", appointment.id)
            _commit_keeping_state()
            return appointment
        except IntegrityError:
            # Another request created the same contact, or carried the same submit key,
            # a moment ago: take that one.
            db.session.rollback()
            if attempt:
                raise


def resend(practice, appointment, channel, submit_key=None, participant=None):
    """Erneut senden: a fresh link on this channel, once per submit key. False when the
    key already did it (nothing is sent again)."""
    action = f"resend-{channel}"
    if submissions.earlier(practice, submit_key, action) is not None:
        return False
    submissions.remember(practice, submit_key, action, appointment, participant)
    try:
        if participant is None:
            invitations.resend_invitation(appointment, channel)
        else:
            invitations.resend_participant_invitation(participant, channel)
    except IntegrityError:
        # The same key a moment ago, in another request: that one sent it.
        db.session.rollback()
        if submissions.earlier(practice, submit_key, action) is None:
            raise
        return False
    return True


def _commit_keeping_state():
    """Commit without expiring the objects just written.

    The confirmation renders exactly what this request wrote; expiring it would read
    the appointment, its contact and its messages back: three queries per creation.
    """
    session = db.session()
    previous, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = previous


def delete_appointment(appointment):
    appointment_id, practice_id = appointment.id, appointment.practice_id
    invitations.queue_cancellation(appointment)
    called = appointment.call_live_since is not None or appointment.call_ended_at is not None
    if not called and appointment.ends_at > utcnow():
        # Called off before it took place: its day's board says "abgesagt" (board.py).
        db.session.add(Cancellation(appointment_id=appointment_id, practice_id=practice_id,
                                    contact_id=appointment.contact_id,
                                    starts_at=appointment.starts_at))
    db.session.delete(appointment)
    db.session.commit()
    events.appointment_deleted.send(appointment_id, practice_id=practice_id)
    progress.cancelled(practice_id, appointment_id)


def search_contacts(practice, query):
    # PostgreSQL refuses NUL in text parameters; no name or address contains one.
    q = " ".join((query or "").replace("\x00", "").lower().split())[:100]
    if len(q) < 2:
        return []
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    word = "% " + pattern
    return db.session.execute(
        db.select(Contact)
        .where(Contact.practice_id == practice.id)
        .where(or_(
            Contact.search_name.like(pattern, escape="\\"),
            Contact.search_name.like(word, escape="\\"),
            Contact.email.like(pattern, escape="\\"),
        ))
        .order_by(Contact.last_name, Contact.first_name)
        .limit(SEARCH_LIMIT)
    ).scalars().all()


def appointment_lists(practice):
    """Upcoming (soonest first) and recent past appointments with their contacts."""
    now = utcnow()
    base = db.select(Appointment).where(Appointment.practice_id == practice.id).options(
        db.joinedload(Appointment.contact)
    )
    # An appointment stays "upcoming" until its expected end, so a running one is on top.
    horizon = now - timedelta(minutes=180)
    candidates = db.session.execute(
        base.where(Appointment.starts_at >= horizon).order_by(Appointment.starts_at)
    ).scalars().all()
    upcoming = [a for a in candidates if _still_on(a, now)]
    past = [a for a in candidates if not _still_on(a, now)]
    past += db.session.execute(
        base.where(Appointment.starts_at < horizon)
        .order_by(Appointment.starts_at.desc()).limit(PAST_LIMIT)
    ).scalars().all()
    past.sort(key=lambda a: a.starts_at, reverse=True)
    return upcoming, past[:PAST_LIMIT]


def contact_appointments(practice, contact):
    now = utcnow()
    appointments = db.session.execute(
        db.select(Appointment)
        .filter_by(practice_id=practice.id, contact_id=contact.id)
        .options(db.selectinload(Appointment.messages))
        .order_by(Appointment.starts_at)
    ).scalars().all()
    upcoming = [a for a in appointments if _still_on(a, now)]
    past = [a for a in appointments if not _still_on(a, now)][::-1]
    return upcoming, past


def _still_on(appointment, now):
    """Before its expected end, or its patient still waits or talks (issue 11): an
    appointment the practice is behind with does not drop into "Vergangene Termine"."""
    return (appointment.ends_at > now or appointment.waiting_since is not None
            or appointment.call_live_since is not None)
