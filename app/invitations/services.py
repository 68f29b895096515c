import logging

from flask import current_app, render_template
from flask_babel import gettext as _

from app.auth.models import Practice
from app.extensions import db
from app.invitations import crypto, email
from app.invitations.models import FAILED, PENDING, OutboxMessage
from app.tariffs import has_feature
from app.timeutil import to_local
from app.tokens import JOIN_PATH, new_token

log = logging.getLogger(__name__)


def patient_link(token: str) -> str:
    # Built from configuration, not url_for: the sender runs outside any request.
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + JOIN_PATH + token


def sms_configured() -> bool:
    cfg = current_app.config
    return bool(cfg.get("VONAGE_API_KEY") and cfg.get("VONAGE_API_SECRET"))


def sms_available(practice):
    """(available, reason): SMS needs the tariff and Vonage credentials."""
    if not has_feature(practice, "sms"):
        return False, _("SMS-Einladungen sind in den Tarifen Standard und Premium enthalten.")
    if not sms_configured():
        return False, _("Der SMS-Versand ist auf diesem Server nicht eingerichtet "
                        "(Vonage-Zugangsdaten fehlen).")
    return True, None


def queue_invitation(appointment, token, channels, participant=None):
    """Add one outbox entry per channel to the current transaction (no commit).

    Without `participant` the message goes to the patient (the appointment's contact).
    """
    payload = crypto.seal({"token": token})
    for channel in channels:
        db.session.add(OutboxMessage(
            practice_id=appointment.practice_id, appointment=appointment, participant=participant,
            kind="invitation", channel=channel, payload=payload,
        ))


def _patient_messages(appointment):
    return [m for m in appointment.messages if m.participant_id is None and m.participant is None]


def resend_invitation(appointment, channel):
    """A fresh link for the patient (the old one stops working) on this channel.

    Invitations still waiting for delivery hold the old link: on this channel the new
    message replaces them, on the other channel they go out with the new link.
    """
    token, token_hash = new_token()
    appointment.token_hash = token_hash
    for message in _patient_messages(appointment):
        if message.kind == "invitation" and message.status == PENDING:
            if message.channel == channel:
                appointment.messages.remove(message)
            else:
                message.payload = crypto.seal({"token": token})
    queue_invitation(appointment, token, [channel])
    db.session.commit()


def resend_participant_invitation(participant, channel):
    """A fresh link for a further participant on this channel, as resend_invitation does
    for the patient: the old link and any session it opened stop working at once."""
    token, token_hash = new_token()
    participant.token_hash = token_hash
    for message in list(participant.messages):
        if message.kind == "invitation" and message.status == PENDING:
            if message.channel == channel:
                participant.messages.remove(message)
            else:
                message.payload = crypto.seal({"token": token})
    queue_invitation(participant.appointment, token, [channel], participant=participant)
    db.session.commit()
    log.info("participant link renewed appointment=%s participant=%s channel=%s",
             participant.appointment_id, participant.id, channel)


def queue_cancellation(appointment):
    """Tell the patient and every further participant on every channel an invitation
    already reached or may reach.

    The text is rendered now: the appointment is gone when the sender runs.
    """
    practice = _practice(appointment)
    _queue_cancellation_to(appointment.contact, _patient_messages(appointment), appointment,
                           practice)
    for participant in appointment.participants:
        _queue_cancellation_to(participant, participant.messages, appointment, practice)


def queue_participant_removed(participant):
    """Tell a participant taken off an appointment that their link no longer works."""
    appointment = participant.appointment
    _queue_cancellation_to(participant, participant.messages, appointment, _practice(appointment),
                           removed=True)


def _queue_cancellation_to(person, messages, appointment, practice, removed=False):
    # `person` is the Contact or a Participant: both have names, email and mobile.
    channels = sorted({m.channel for m in messages
                       if m.kind == "invitation" and m.status != FAILED})
    if not channels:
        return
    local = to_local(appointment.starts_at, practice.timezone)
    ctx = dict(practice=practice, contact=person, local=local, appointment=appointment,
               removed=removed)
    for channel in channels:
        if channel == "email":
            data = {
                "to": person.email,
                "subject": (f"Einladung zurückgenommen: Videosprechstunde bei {practice.name}"
                            if removed
                            else f"Termin abgesagt: Videosprechstunde bei {practice.name}"),
                "text": render_template("email/cancellation.txt", **ctx),
                "html": render_template("email/cancellation.html", **ctx),
                # Same UID as the invitation's entry: the calendar drops it.
                "ics": email.calendar_entry(appointment, practice, None, cancelled=True).decode(),
            }
        else:
            if not person.mobile:
                continue
            data = {"to": person.mobile, "text": render_template("sms/cancellation.txt", **ctx)}
        db.session.add(OutboxMessage(
            practice_id=appointment.practice_id, appointment_id=None, kind="cancellation",
            channel=channel, payload=crypto.seal(data),
        ))


def _practice(appointment):
    return db.session.get(Practice, appointment.practice_id)


def delivery_states(appointment, participant=None):
    """The latest invitation message per channel of the patient (or of `participant`):
    what the panel shows."""
    messages = participant.messages if participant is not None else _patient_messages(appointment)
    latest = {}
    for message in messages:
        if message.kind == "invitation":
            latest[message.channel] = message
    return [latest[c] for c in ("email", "sms") if c in latest]


