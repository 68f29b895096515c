"""Bearbeiten (issue 11): an appointment's date, time, duration and contact change, its
link stays; the patient is told by an update whose calendar entry replaces the
invitation's. And the check against booking one person twice at the same time, for
Einladen and Bearbeiten alike."""
import logging
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import or_

from app import invitations
from app.extensions import db
from app.patients import reminders, services
from app.patients.forms import DURATION_MAX, AppointmentEditForm
from app.patients.models import Appointment, Contact
from app.timeutil import to_local, utcnow

log = logging.getLogger(__name__)


def edit_form(appointment, practice, formdata=None):
    """The form of one appointment: filled from the request, or from the appointment.
    The prefix keeps the ids of several appointments' forms in one panel apart."""
    prefix = f"e{appointment.id}-"
    common = dict(practice_tz=practice.timezone, sms_requested=appointment.sms_requested,
                  prefix=prefix)
    if formdata is not None:
        return AppointmentEditForm(formdata=formdata, **common)
    contact = appointment.contact
    local = to_local(appointment.starts_at, practice.timezone)
    return AppointmentEditForm(formdata=None, data={
        "first_name": contact.first_name, "last_name": contact.last_name,
        "email": contact.email, "mobile": contact.mobile or "", "language": contact.language,
        "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
        "duration": str(appointment.duration_minutes),
    }, **common)


def overlapping(practice, email, mobile, starts_at, duration, exclude_id=None):
    """Appointments of the same person (same e-mail or mobile in this practice) that
    overlap [starts_at, starts_at + duration)."""
    ends_at = starts_at + timedelta(minutes=duration)
    person = Contact.email == email
    if mobile:
        person = or_(person, Contact.mobile == mobile)
    candidates = db.session.execute(
        db.select(Appointment).join(Contact, Contact.id == Appointment.contact_id)
        .where(Appointment.practice_id == practice.id, person,
               Appointment.starts_at < ends_at,
               Appointment.starts_at > starts_at - timedelta(minutes=DURATION_MAX))
        .order_by(Appointment.starts_at)
    ).scalars().all()
    return [a for a in candidates if a.id != exclude_id and a.ends_at > starts_at]


def refuse_double_booking(practice, form, exclude_id=None):
    """True (and the message beside Uhrzeit) when the person already has an appointment
    at that time and the user did not tick the confirmation that appears with it."""
    if form.confirm_overlap.data:
        return False
    clash = overlapping(practice, form.email.data, form.mobile.data, form.starts_at_utc,
                        form.duration.parsed, exclude_id)
    if not clash:
        return False
    local = to_local(clash[0].starts_at, practice.timezone)
    form.time.errors = list(form.time.errors) + [_(
        "Diese Person hat zu dieser Zeit schon einen Termin (%(date)s, %(time)s Uhr, "
        "%(n)d Minuten). Wählen Sie eine andere Zeit oder bestätigen Sie unten.",
        date=local.strftime("%d.%m.%Y"), time=local.strftime("%H:%M"),
        n=clash[0].duration_minutes)]
    form.double_booked = True
    return True


def _contact_details(contact):
    return (contact.id, contact.first_name, contact.last_name, contact.email, contact.mobile,
            contact.language)


def edit_appointment(practice, appointment, form):
    """Apply the form; when anything the patient knows changed, queue the update, all in
    one transaction. False when nothing changed (nothing is sent)."""
    before = _contact_details(appointment.contact), appointment.starts_at, \
        appointment.duration_minutes
    # The same e-mail is the same contact (as at Einladen); a new one is a new contact.
    contact = services.upsert_contact(practice, form)
    contact.mobile = form.mobile.data  # Bearbeiten may also remove the number
    appointment.contact = contact
    time_changed = (form.starts_at_utc, form.duration.parsed) != before[1:]
    appointment.starts_at = form.starts_at_utc
    appointment.duration_minutes = form.duration.parsed
    if (_contact_details(contact), appointment.starts_at, appointment.duration_minutes) == before:
        db.session.rollback()
        return False
    if time_changed:
        reminders.reset_for_new_time(appointment, utcnow())
    channels = invitations.queue_update(appointment)
    db.session.commit()
    log.info("appointment changed appointment=%s sequence=%s channels=%s", appointment.id,
             appointment.ics_sequence, ",".join(channels))
    return True
