"""E-mail: text + HTML with a calendar entry, over SMTP or into a local folder.

Patients and guests get their messages in German, or in English where the practice
chose it for them (Contact.language): the English texts are templates of their own
(templates/email/en/, templates/sms/en/), written as English, not word for word."""
import os
from datetime import timezone

from babel.dates import format_date
from flask import current_app, render_template
from flask_mail import Message
from icalendar import Calendar, Event, vCalAddress, vText

from app.extensions import mail
from app.timeutil import utcnow

# What each message about an appointment says, and what its calendar entry does: the
# invitation publishes the entry, an update replaces it (same UID, higher SEQUENCE;
# METHOD:REQUEST is what calendars apply to an entry they hold), a reminder has none.
SUBJECTS = {
    "de": {
        "invitation": "Einladung zur Videosprechstunde bei {practice}",
        "update": "Termin geändert: Videosprechstunde bei {practice}",
        "reminder": "Erinnerung: Videosprechstunde am {date} um {time} Uhr",
        "cancellation": "Termin abgesagt: Videosprechstunde bei {practice}",
        "removed": "Einladung zurückgenommen: Videosprechstunde bei {practice}",
    },
    "en": {
        "invitation": "Invitation to a video consultation with {practice}",
        "update": "Appointment changed: video consultation with {practice}",
        "reminder": "Reminder: video consultation on {date} at {time}",
        "cancellation": "Appointment cancelled: video consultation with {practice}",
        "removed": "Invitation withdrawn: video consultation with {practice}",
    },
}
CALENDAR_METHODS = {"invitation": "PUBLISH", "update": "REQUEST"}


def template(folder, name, language):
    """templates/<folder>/<name>, or its English version in templates/<folder>/en/."""
    return f"{folder}/en/{name}" if language == "en" else f"{folder}/{name}"


def subject(kind, language, practice, local):
    words = SUBJECTS["en" if language == "en" else "de"][kind]
    day = when(local, language)[0] if language == "en" else local.strftime("%d.%m.")
    return words.format(practice=practice.name, date=day, time=local.strftime("%H:%M"))


def when(local, language):
    """(day, time) of a local datetime as the reader writes them: 30.11.2026 and 14:30,
    or Monday, 30 November 2026 and 14:30."""
    if language == "en":
        return format_date(local, "EEEE, d MMMM y", locale="en_GB"), local.strftime("%H:%M")
    return local.strftime("%d.%m.%Y"), local.strftime("%H:%M")


def calendar_entry(appointment, practice, link, cancelled=False, method=None, sequence=None,
                   attendee=None, language="de") -> bytes:
    """The appointment's calendar entry. SEQUENCE is the appointment's (its changes so
    far); a cancellation is one step beyond, so it wins over the last update."""
    if sequence is None:
        sequence = (appointment.ics_sequence or 0) + (1 if cancelled else 0)
    cal = Calendar()
    cal.add("prodid", "-//Sprechzimmer//Videosprechstunde//DE")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else (method or "PUBLISH"))
    event = Event()
    # Stable per appointment, so an update or a cancellation replaces the entry.
    event.add("uid", f"appointment-{appointment.id}-{practice.id}@sprechzimmer")
    event.add("dtstamp", utcnow().replace(tzinfo=timezone.utc))
    event.add("dtstart", appointment.starts_at.replace(tzinfo=timezone.utc))
    event.add("dtend", appointment.ends_at.replace(tzinfo=timezone.utc))
    english = language == "en"
    event.add("summary", f"{'Video consultation with' if english else 'Videosprechstunde bei'} "
                         f"{practice.name}")
    event.add("sequence", sequence)
    if cancelled:
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
        if link:
            intro = ("Your personal link to the video consultation" if english
                     else "Ihr persönlicher Link zur Videosprechstunde")
            event.add("description", f"{intro}:\n{link}")
            event.add("location", vText(link))
            event.add("url", link)
    organizer = vCalAddress("mailto:" + _sender_address())
    organizer.params["cn"] = vText(practice.name)
    event.add("organizer", organizer)
    if attendee:
        # A REQUEST names whom it is for (RFC 5546); calendars match it to the entry.
        event.add("attendee", vCalAddress("mailto:" + attendee))
    cal.add_component(event)
    return cal.to_ical()


def _sender_address():
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    if "<" in sender:
        return sender.split("<", 1)[1].rstrip(">").strip()
    return sender


def appointment_message(kind, appointment, practice, contact, link, local_start,
                        sequence=None) -> Message:
    """The invitation, an update after a change (Bearbeiten) or a reminder: one text per
    kind (templates/email/<kind>.txt|html), the same link, and for the first two the
    calendar entry."""
    language = contact.language
    day, clock = when(local_start, language)
    ctx = dict(practice=practice, contact=contact, appointment=appointment, link=link,
               local=local_start, day=day, clock=clock)
    msg = Message(
        subject=subject(kind, language, practice, local_start),
        recipients=[contact.email],
        body=render_template(template("email", f"{kind}.txt", language), **ctx),
        html=render_template(template("email", f"{kind}.html", language), **ctx),
    )
    method = CALENDAR_METHODS.get(kind)
    if method:
        entry = calendar_entry(appointment, practice, link, method=method, sequence=sequence,
                               attendee=contact.email if method == "REQUEST" else None,
                               language=language)
        msg.attach("termin.ics", f"text/calendar; charset=utf-8; method={method}", entry)
    return msg


def cancellation_message(data) -> Message:
    msg = Message(subject=data["subject"], recipients=[data["to"]], body=data["text"],
                  html=data["html"])
    if data.get("ics"):  # absent in cancellations queued before it was added
        msg.attach("termin.ics", "text/calendar; charset=utf-8; method=CANCEL",
                   data["ics"].encode())
    return msg


def stable_message_id(message_id: int) -> str:
    """The same Message-ID on every attempt of one outbox message: a copy sent twice
    (a sender killed after SMTP's 250, before its commit) is recognisable as one."""
    domain = _sender_address().rsplit("@", 1)[-1] or "sprechzimmer.local"
    return f"<outbox-{message_id}@{domain}>"


def deliver(msg: Message, message_id: int):
    """Hand the message to SMTP, or without MAIL_SERVER write it to the outbox folder."""
    msg.msgId = stable_message_id(message_id)
    if current_app.config.get("MAIL_SERVER"):
        mail.send(msg)
        return
    folder = current_app.config["OUTBOX_DIR"]
    # The e-mails hold patients' links: for the service user's eyes only.
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"message-{message_id}.eml")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(msg.as_bytes())
    return path
