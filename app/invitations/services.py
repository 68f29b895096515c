import logging

from flask import current_app, render_template
from flask_babel import gettext as _
from limits import parse

from app import events
from app.auth import accounts
from app.auth.models import Practice, Staff
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
    if participant is None:
        # Kept for the updates and reminders, which carry the same link (models.py).
        appointment.link_sealed = payload
    for channel in channels:
        db.session.add(OutboxMessage(
            practice_id=appointment.practice_id, appointment=appointment, participant=participant,
            kind="invitation", channel=channel, payload=payload,
        ))


def _patient_channels(appointment, practice):
    """E-mail always; SMS where the appointment was invited by SMS and the tariff and
    the server still allow it."""
    sms = (appointment.sms_requested and appointment.contact.mobile
           and sms_available(practice)[0])
    return ["email"] + (["sms"] if sms else [])


def _participant_channels(participant, practice):
    invited = {m.channel for m in participant.messages if m.kind == "invitation"}
    sms = "sms" in invited and participant.mobile and sms_available(practice)[0]
    return ["email"] + (["sms"] if sms else [])


def _queue_to_people(appointment, kind, **data):
    """Outbox rows of `kind` (update, reminder) to the patient, with the link they hold
    (none for appointments made before links were kept), and to every further
    participant, whose link is not kept: their text points to their invitation's.
    Rendered when sent. Returns the patient's channels."""
    practice = _practice(appointment)
    token = crypto.unseal(appointment.link_sealed)["token"] if appointment.link_sealed else None
    people = [(None, token, _patient_channels(appointment, practice))]
    people += [(p, None, _participant_channels(p, practice)) for p in appointment.participants]
    for participant, link_token, channels in people:
        payload = crypto.seal({"token": link_token, **data})
        for channel in channels:
            db.session.add(OutboxMessage(
                practice_id=appointment.practice_id, appointment=appointment,
                participant=participant, kind=kind, channel=channel, payload=payload,
            ))
    return people[0][2]


def queue_update(appointment):
    """Tell the patient and the further participants of a changed appointment (no
    commit): the calendar entry is replaced by one with the next SEQUENCE, which the
    appointment keeps."""
    appointment.ics_sequence = (appointment.ics_sequence or 0) + 1
    return _queue_to_people(appointment, "update", sequence=appointment.ics_sequence)


def queue_reminder(appointment):
    """A reminder to the patient and the further participants (no commit)."""
    return _queue_to_people(appointment, "reminder")


def drop_pending_reminders(appointment):
    """Reminders not yet sent are for a time that no longer holds (no commit)."""
    for message in list(appointment.messages):
        if message.kind == "reminder" and message.status == PENDING:
            appointment.messages.remove(message)


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
    language = person.language
    day, clock = email.when(local, language)
    ctx = dict(practice=practice, contact=person, local=local, day=day, clock=clock,
               appointment=appointment, removed=removed)

    def render(name):
        return render_template(name, **ctx)

    for channel in channels:
        if channel == "email":
            data = {
                "to": person.email,
                "subject": email.subject("removed" if removed else "cancellation", language,
                                         practice, local),
                "text": render(email.template("email", "cancellation.txt", language)),
                "html": render(email.template("email", "cancellation.html", language)),
                # Same UID as the invitation's entry: the calendar drops it.
                "ics": email.calendar_entry(appointment, practice, None, cancelled=True,
                                            language=language).decode(),
            }
        else:
            if not person.mobile:
                continue
            data = {"to": person.mobile,
                    "text": render(email.template("sms", "cancellation.txt", language))}
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




@events.login_locked.connect
def queue_login_locked(staff_id, **_):
    """Tell the account that its login is locked after many failed attempts (issue 12):
    its owner learns of the attack, or of a forgotten password."""
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        return
    practice = db.session.get(Practice, staff.practice_id)
    config = current_app.config
    minutes = max(1, parse(config["LOGIN_ACCOUNT_LIMIT"]).get_expiry() // 60)
    ctx = dict(staff=staff, practice=practice, minutes=minutes,
               login_url=config["PUBLIC_BASE_URL"].rstrip("/") + "/login")
    data = {"to": staff.email, "subject": "Anmeldung vorübergehend gesperrt: Sprechzimmer",
            "text": render_template("email/login_locked.txt", **ctx),
            "html": render_template("email/login_locked.html", **ctx)}
    db.session.add(OutboxMessage(practice_id=staff.practice_id, appointment_id=None,
                                 kind="login-locked", channel="email", payload=crypto.seal(data)))
    db.session.commit()
    log.info("login lock notice queued staff=%s", staff_id)


@events.password_link_requested.connect
def queue_password_link(staff_id, reason, **_):
    """The e-mail with a staff account's set-password link (issue 12): the link is made
    and the e-mail queued in one transaction; the link lives only sealed in the outbox."""
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        return
    practice = db.session.get(Practice, staff.practice_id)
    token = accounts.issue_link(staff)
    config = current_app.config
    ctx = dict(staff=staff, practice=practice, invited=reason == accounts.INVITE,
               hours=int(config["PASSWORD_LINK_HOURS"]),
               link=config["PUBLIC_BASE_URL"].rstrip("/") + accounts.LINK_PATH + token)
    subject = ("Einladung zu Sprechzimmer: Passwort festlegen" if ctx["invited"]
               else "Neues Passwort für Sprechzimmer festlegen")
    data = {"to": staff.email, "subject": subject,
            "text": render_template("email/password_link.txt", **ctx),
            "html": render_template("email/password_link.html", **ctx)}
    db.session.add(OutboxMessage(practice_id=staff.practice_id, appointment_id=None,
                                 kind="password-link", channel="email",
                                 payload=crypto.seal(data)))
    db.session.commit()
    log.info("password link queued staff=%s reason=%s", staff_id, reason)
