"""What the practice types into Einladen, and what the app answers with."""
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.invitations.models import OutboxMessage
from app.patients.models import Appointment, Contact
from app.timeutil import to_local, utcnow

# What a refused form must leave behind: nothing.
NOTHING_SAVED = {"Contact": 0, "Appointment": 0, "OutboxMessage": 0}


def future_slot(days=3, hour=10, minute=0, tz="Europe/Berlin"):
    """(date, time) strings in the practice's zone, `days` ahead."""
    local = to_local(utcnow() + timedelta(days=days), tz)
    return local.strftime("%Y-%m-%d"), f"{hour:02d}:{minute:02d}"


def appointment_form(**overrides):
    """Einladen for Erika Mustermann by e-mail, three days ahead; a None drops the field."""
    day, time = future_slot()
    data = {
        "first_name": "Erika",
        "last_name": "Mustermann",
        "email": "erika@example.org",
        "mobile": "",
        "date": day,
        "time": time,
        "duration": "20",
        "consent": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def created_appointment_id(response):
    """The new appointment's id in the HTMX answer to Einladen."""
    return int(re.search(r'id="appointment-created-(\d+)"', response.get_data(as_text=True)).group(1))


def created_ids(response):
    """(appointment_id, contact_id) from the HTMX answer to Einladen."""
    contact_id = int(re.search(r"/patienten/kontakte/(\d+)", response.get_data(as_text=True)).group(1))
    return created_appointment_id(response), contact_id


def row_counts(app):
    with app.app_context():
        return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                for model in (Contact, Appointment, OutboxMessage)}
