"""Delivers the outbox: runs beside the web app (`flask outbox work`).

At least once: a message is leased before it is sent, so a crashed sender's
messages are picked up again when the lease runs out; temporary failures are
retried with exponential backoff, permanent ones are marked failed.
"""
import logging
import smtplib
import socket
import time
from datetime import timedelta

from cryptography.fernet import InvalidToken
from flask import current_app, render_template

from app.auth.models import Practice
from app.extensions import db
from app.invitations import crypto, email, sms
from app.invitations.models import FAILED, PENDING, SENT, OutboxMessage
from app.invitations.services import patient_link
from app.timeutil import to_local, utcnow

log = logging.getLogger("sprechzimmer.outbox")

LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


class Temporary(Exception):
    pass


class Permanent(Exception):
    pass


def deliver_due(limit=20) -> int:
    """Send what is due; return how many messages were attempted."""
    now = utcnow()
    batch = db.session.execute(
        db.select(OutboxMessage)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    ids = [m.id for m in batch]
    for message in batch:
        message.next_attempt_at = now + LEASE
    db.session.commit()
    for message_id in ids:
        _deliver_one(message_id)
    return len(ids)


def _deliver_one(message_id):
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status != PENDING:  # appointment deleted meanwhile
        db.session.commit()
        return
    message.attempts += 1
    try:
        transport = _prepare(message)
    except Permanent as exc:
        _fail(message, str(exc))
        db.session.commit()
        return
    # End the transaction before talking to SMTP or Vonage: on SQLite an open write
    # would block every appointment change for as long as the provider takes.
    db.session.commit()
    try:
        transport()
    except Temporary as exc:
        _retry_or_fail(message, str(exc))
    except Permanent as exc:
        _fail(message, str(exc))
    except Exception as exc:  # one broken message must not stop the round
        log.exception("outbox unexpected error message=%s", message.id)
        _retry_or_fail(message, f"unexpected {type(exc).__name__}")
    else:
        message.status = SENT
        message.sent_at = utcnow()
        message.last_error = None
        message.payload = None
        log.info("outbox sent message=%s kind=%s channel=%s attempt=%s",
                 message.id, message.kind, message.channel, message.attempts)
    db.session.commit()


def _retry_or_fail(message, error):
    if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
        _fail(message, error)
        return
    base = timedelta(seconds=current_app.config["OUTBOX_BACKOFF_SECONDS"])
    message.next_attempt_at = utcnow() + min(base * 2 ** (message.attempts - 1), MAX_BACKOFF)
    message.last_error = error[:300]
    log.warning("outbox temporary failure message=%s channel=%s attempt=%s error=%r",
                message.id, message.channel, message.attempts, error)


def _fail(message, error):
    message.status = FAILED
    message.permanent = True
    message.last_error = error[:300]
    message.payload = None
    log.warning("outbox failed for good message=%s channel=%s attempts=%s error=%r",
                message.id, message.channel, message.attempts, error)


def _prepare(message):
    """Read and render everything the message needs; return the call that sends it."""
    try:
        data = crypto.unseal(message.payload)
    except InvalidToken:
        # Sealed under an earlier SECRET_KEY: no retry can read it.
        raise Permanent("payload unreadable (SECRET_KEY changed?)") from None
    message_id = message.id
    if message.kind != "invitation":
        if message.channel == "email":
            msg = email.cancellation_message(data)
            return lambda: _send_email(msg, message_id, None)
        return lambda: _send_sms(data["to"], data["text"])
    appointment = message.appointment
    # The patient or a further participant: both have names, e-mail and mobile.
    contact = message.participant or appointment.contact
    practice = db.session.get(Practice, message.practice_id)
    link = patient_link(data["token"])
    local = to_local(appointment.starts_at, practice.timezone)
    if message.channel == "email":
        msg = email.invitation_message(appointment, practice, contact, link, local)
        return lambda: _send_email(msg, message_id, link)
    if not contact.mobile:
        raise Permanent("no mobile number")
    text = render_template("sms/invitation.txt", practice=practice, local=local, link=link,
                           appointment=appointment)
    mobile = contact.mobile
    return lambda: _send_sms(mobile, text)


def _send_email(msg, message_id, link):
    try:
        path = email.deliver(msg, message_id)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise Temporary(f"smtp recipient refused {codes}") from None
        raise Permanent(f"smtp recipient refused {codes}") from None
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise Temporary(f"smtp {exc.smtp_code}") from None
        raise Permanent(f"smtp {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise Temporary(f"smtp unreachable: {type(exc).__name__}") from None
    if path and link:
        # Development without SMTP: show the developer where to click.
        print(f"[outbox] E-Mail {message_id} -> {path}\n         Link: {link}", flush=True)


def _send_sms(to, text):
    try:
        sms.send_sms(to, text)
    except sms.TemporaryError as exc:
        raise Temporary(str(exc)) from None
    except sms.PermanentError as exc:
        raise Permanent(str(exc)) from None


def run_worker(stop=None):
    """Poll the outbox until stopped; a failing round never ends the worker."""
    socket.setdefaulttimeout(current_app.config["MAIL_TIMEOUT"])  # flask-mail sets none
    poll = current_app.config["OUTBOX_POLL_SECONDS"]
    log.info("outbox sender started")
    while stop is None or not stop.is_set():
        try:
            sent = deliver_due()
        except Exception:  # keep delivering after a database hiccup
            log.exception("outbox round failed")
            db.session.rollback()
            sent = 0
        finally:
            db.session.remove()
        if not sent:
            if stop is not None:
                stop.wait(poll)
            else:
                time.sleep(poll)
