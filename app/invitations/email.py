"""E-mail: German text + HTML with a calendar entry, over SMTP or into a local folder."""
import os
from datetime import timezone

from flask import current_app, render_template
from flask_mail import Message
from icalendar import Calendar, Event, vCalAddress, vText

from app.extensions import mail
from app.timeutil import utcnow


def calendar_entry(appointment, practice, link, cancelled=False) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Sprechzimmer//Videosprechstunde//DE")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    # Stable per appointment, so a cancellation replaces the entry in the calendar.
    event.add("uid", f"appointment-{appointment.id}-{practice.id}@sprechzimmer")
    event.add("dtstamp", utcnow().replace(tzinfo=timezone.utc))
    event.add("dtstart", appointment.starts_at.replace(tzinfo=timezone.utc))
    event.add("dtend", appointment.ends_at.replace(tzinfo=timezone.utc))
    event.add("summary", f"Videosprechstunde bei {practice.name}")
    event.add("sequence", 1 if cancelled else 0)
    if cancelled:
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
        event.add("description", f"Ihr persönlicher Link zur Videosprechstunde:\n{link}")
        event.add("location", vText(link))
        event.add("url", link)
    organizer = vCalAddress("mailto:" + _sender_address())
    organizer.params["cn"] = vText(practice.name)
    event.add("organizer", organizer)
    cal.add_component(event)
    return cal.to_ical()


def _sender_address():
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    if "<" in sender:
        return sender.split("<", 1)[1].rstrip(">").strip()
    return sender


def invitation_message(appointment, practice, contact, link, local_start) -> Message:
    ctx = dict(practice=practice, contact=contact, appointment=appointment, link=link,
               local=local_start)
    msg = Message(
        subject=f"Einladung zur Videosprechstunde bei {practice.name}",
        recipients=[contact.email],
        body=render_template("email/invitation.txt", **ctx),
        html=render_template("email/invitation.html", **ctx),
    )
    msg.attach("termin.ics", "text/calendar; charset=utf-8; method=PUBLISH",
               calendar_entry(appointment, practice, link))
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
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"message-{message_id}.eml")
    with open(path, "wb") as fh:
        fh.write(msg.as_bytes())
    return path
