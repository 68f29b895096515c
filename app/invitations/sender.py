"""Delivers the outbox: runs beside the web app (`flask outbox work`).

At least once: each message is leased on its own just before it is sent, for
OUTBOX_LEASE_SECONDS (30), and a heartbeat renews the lease while SMTP or Vonage takes
its time. A crashed sender therefore holds exactly one message, for at most one lease;
the rest were never claimed. That one message may reach the patient twice (killed after
the provider accepted it, before the commit): at most one duplicate per crash, and an
e-mail duplicate carries the same Message-ID. Temporary failures are retried with
exponential backoff, permanent ones are marked failed.
"""
import logging
import smtplib
import socket
import threading
import time
from datetime import timedelta

from cryptography.fernet import InvalidToken
from flask import current_app, render_template

from app import events
from app.auth.models import Practice
from app.extensions import db, hub
from app.invitations import crypto, email, sms
from app.invitations.models import FAILED, PENDING, SENT, OutboxMessage
from app.invitations.services import patient_link
from app.timeutil import to_local, utcnow

log = logging.getLogger("sprechzimmer.outbox")

MAX_BACKOFF = timedelta(hours=1)
# Messages about an appointment that still exists, rendered when sent from its row.
APPOINTMENT_KINDS = ("invitation", "update", "reminder")


class Temporary(Exception):
    pass


class Permanent(Exception):
    pass


def deliver_due(limit=20) -> int:
    """Send what is due, one leased message at a time; return how many were attempted."""
    attempted = 0
    while attempted < limit:
        message_id = _claim_next()
        if message_id is None:
            break
        attempted += 1
        _deliver_one(message_id)
    return attempted


def _lease():
    return timedelta(seconds=current_app.config["OUTBOX_LEASE_SECONDS"])


def _claim_next():
    """Lease the next due message; None when nothing is due. The conditional UPDATE
    makes the claim exclusive on SQLite too, where FOR UPDATE SKIP LOCKED is ignored."""
    now = utcnow()
    candidates = db.session.execute(
        db.select(OutboxMessage.id)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(5)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for message_id in candidates:
        claimed = db.session.execute(
            db.update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING,
                   OutboxMessage.next_attempt_at <= now)
            .values(next_attempt_at=now + _lease())
        ).rowcount
        if claimed:
            db.session.commit()
            return message_id
    db.session.commit()
    return None


class _Heartbeat:
    """Renews a message's lease every third of it while the message is being sent, on
    a connection of its own, so a slow provider does not hand the message to a second
    sender, and a dead sender's lease still runs out soon."""

    def __init__(self, message_id):
        self.message_id = message_id
        self.app = current_app._get_current_object()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"outbox-lease-{message_id}",
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def _run(self):
        lease = timedelta(seconds=self.app.config["OUTBOX_LEASE_SECONDS"])
        with self.app.app_context():
            while not self.stop.wait(lease.total_seconds() / 3):
                try:
                    with db.engine.begin() as connection:
                        connection.execute(
                            db.update(OutboxMessage)
                            .where(OutboxMessage.id == self.message_id,
                                   OutboxMessage.status == PENDING)
                            .values(next_attempt_at=utcnow() + lease))
                except Exception:  # the send goes on; the lease may lapse
                    log.exception("outbox lease renewal failed message=%s", self.message_id)


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
    # The heartbeat stops before the outcome is written, so it cannot overwrite a backoff.
    error = None
    with _Heartbeat(message_id):
        try:
            transport()
        except (Temporary, Permanent) as exc:
            error = exc
        except Exception as exc:  # one broken message must not stop the round
            log.exception("outbox unexpected error message=%s", message_id)
            error = Temporary(f"unexpected {type(exc).__name__}")
    if isinstance(error, Permanent):
        _fail(message, str(error))
    elif error is not None:
        _retry_or_fail(message, str(error))
    else:
        message.status = SENT
        message.sent_at = utcnow()
        message.last_error = None
        message.payload = None
        log.info("outbox sent message=%s kind=%s channel=%s attempt=%s",
                 message.id, message.kind, message.channel, message.attempts)
    db.session.commit()
    if message.kind == "invitation" and message.appointment_id is not None:
        # The board shows the invitation's delivery state (issue 11).
        hub.board_changed(message.practice_id, message.appointment_id, "delivery")


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
    if message.kind not in APPOINTMENT_KINDS:
        # Rendered when queued (a cancellation outlives its appointment).
        if message.channel == "email":
            msg = email.cancellation_message(data)
            return lambda: _send_email(msg, message_id, None)
        return lambda: _send_sms(data["to"], data["text"])
    appointment = message.appointment
    if message.kind == "reminder" and appointment.starts_at <= utcnow():
        # The sender was away past the appointment's start: a reminder now is noise.
        raise Permanent("reminder too late: the appointment has begun")
    # The patient or a further participant: both have names, e-mail and mobile.
    contact = message.participant or appointment.contact
    practice = db.session.get(Practice, message.practice_id)
    # Updates and reminders of appointments made before links were kept have none.
    link = patient_link(data["token"]) if data.get("token") else None
    local = to_local(appointment.starts_at, practice.timezone)
    if message.channel == "email":
        msg = email.appointment_message(message.kind, appointment, practice, contact, link, local,
                                        data.get("sequence"))
        return lambda: _send_email(msg, message_id, link)
    if not contact.mobile:
        raise Permanent("no mobile number")
    day, clock = email.when(local, contact.language)
    text = render_template(email.template("sms", f"{message.kind}.txt", contact.language),
                           practice=practice, local=local, day=day, clock=clock, link=link,
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


def queue_scheduled():
    """Let the higher domains do what is due now (events.outbox_round: the reminders, the
    daily retention purge): they know the appointments, this layer does not. Each
    receiver on its own: one that fails is logged, the others and the deliveries go on."""
    now = utcnow()
    for receiver in events.outbox_round.receivers_for("outbox"):
        try:
            receiver("outbox", now=now)
        except Exception:
            log.exception("outbox round failed")
            db.session.rollback()
        finally:
            db.session.remove()


def run_worker(stop=None):
    """Poll the outbox until stopped; a failing round never ends the worker."""
    socket.setdefaulttimeout(current_app.config["MAIL_TIMEOUT"])  # flask-mail sets none
    poll = current_app.config["OUTBOX_POLL_SECONDS"]
    every = current_app.config["OUTBOX_REMINDER_SECONDS"]
    scheduled_at = 0.0
    log.info("outbox sender started")
    while stop is None or not stop.is_set():
        try:
            if time.monotonic() >= scheduled_at:
                scheduled_at = time.monotonic() + every
                queue_scheduled()
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
