"""Retention: what a Videosprechstunde leaves behind goes RETENTION_DAYS after it
(KBV Anlage 31b allows at most three months; DSGVO Art. 5(1)(e): no longer than needed).

`purge` deletes, as of `now`:
- appointments that began before the cutoff, and with them (the database's ON DELETE
  CASCADE, on SQLite through PRAGMA foreign_keys) their participants, link devices,
  the patients' and guests' consents, submission keys, chat messages and delivery rows;
- what deleted appointments left for their day's board (cancellations), by the same rule;
- contacts left without any appointment and unchanged since the cutoff (the "earlier
  invited person" picker keeps a contact as long as its last appointment);
- delivery rows that outlived their appointment (cancellations) or never had one
  (login-lock e-mails), once older than the cutoff;
- login sessions past their absolute lifetime (they no longer open anything);
- audit entries older than the cutoff.

It runs daily in the outbox sender (events.outbox_round) and as `flask retention purge`.
Ops sits above every domain (docs/architecture.md), so it may read all their tables.
"""
import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, exists, select

from app import events
from app.auth.audit import AuditEntry
from app.auth.models import LoginSession
from app.extensions import db
from app.invitations.models import OutboxMessage
from app.patients.models import Appointment, Cancellation, Contact
from app.timeutil import utcnow

log = logging.getLogger("sprechzimmer.retention")

# Appointments per transaction: short transactions keep the web app's writes flowing
# on SQLite, and memory flat however much is due.
BATCH = 1000
DAILY_SECONDS = 24 * 3600
RETRY_SECONDS = 3600


def cutoff(now=None, days=None):
    now = now or utcnow()
    return now - timedelta(days=days or current_app.config["RETENTION_DAYS"])


def purge(now=None, days=None, batch=BATCH):
    """Delete what is due as of `now` (UTC, default the clock); return counts per kind."""
    now = now or utcnow()
    before = cutoff(now, days)
    counts = {"appointments": _purge_appointments(before, batch)}
    counts["cancellations"] = _delete(delete(Cancellation).where(Cancellation.starts_at < before))
    no_appointment = ~exists().where(Appointment.contact_id == Contact.id)
    counts["contacts"] = _delete(delete(Contact).where(no_appointment, Contact.updated_at < before))
    counts["messages"] = _delete(delete(OutboxMessage).where(
        OutboxMessage.appointment_id.is_(None), OutboxMessage.created_at < before))
    dead = now - timedelta(hours=current_app.config["SESSION_MAX_HOURS"])
    counts["sessions"] = _delete(delete(LoginSession).where(LoginSession.created_at < dead))
    # The only deletion of audit entries (app/auth/audit.py): on the same schedule.
    counts["audit"] = _delete(delete(AuditEntry).where(AuditEntry.created_at < before))
    log.info("retention purge %s", " ".join(f"{kind}={n}" for kind, n in counts.items()))
    return counts


def _purge_appointments(before, batch):
    deleted = 0
    while True:
        ids = db.session.scalars(select(Appointment.id).where(Appointment.starts_at < before)
                                 .order_by(Appointment.id).limit(batch)).all()
        if not ids:
            return deleted
        # No appointment_deleted signal: a call or a socket of an appointment months
        # old has long ended, and its link expired (LINK_VALID_DAYS_AFTER).
        deleted += _delete(delete(Appointment).where(Appointment.id.in_(ids)))


def _delete(statement):
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount


class _Daily:
    """Once at the sender's start, then once a day (monotonic clock)."""

    def __init__(self):
        self.next_run = 0.0

    def __call__(self, sender, **_):
        now = time.monotonic()
        if now < self.next_run:
            return
        # A failing purge (database away) is tried again in an hour, not every round.
        self.next_run = now + RETRY_SECONDS
        purge()
        self.next_run = now + DAILY_SECONDS


daily = _Daily()
events.outbox_round.connect(daily, weak=False)
