"""An appointment's day as it happens (issue 11): link opened, waiting room, call.

Consultation (above) reports what it sees by calling down into these functions; the
times land on the appointment (patients/models.py) and every open "Heute" board of
the practice is told through the hub (``hub.board_changed``), after the commit. Only
times and member keys are kept: the consultation record is billing metadata, never
content.

Each function is quick (one small write) and never raises into the socket loop that
calls it: a board that missed a change catches up on its next refresh.
"""
import logging

from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db, hub
from app.hub import ACCEPTED, RINGING
from app.patients.models import Appointment
from app.timeutil import utcnow

log = logging.getLogger(__name__)


def _tell(practice_id, appointment_id, what):
    hub.board_changed(practice_id, appointment_id, what)


def _write(appointment_id, what, change):
    """Load the appointment, apply ``change(appointment, now)`` (False: nothing to do),
    commit, tell the boards. After the commit the session holds no connection, so a
    long-lived socket that calls this keeps none from the pool."""
    try:
        appointment = db.session.get(Appointment, appointment_id)
        if appointment is None:
            return  # deleted meanwhile
        if change(appointment, utcnow()) is False:
            db.session.rollback()
            return
        practice_id = appointment.practice_id
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("progress not recorded appointment=%s what=%s error=%s",
                    appointment_id, what, type(exc).__name__)
        return
    _tell(practice_id, appointment_id, what)


def link_opened(appointment_id):
    """The patient redeemed the link (the first time counts)."""
    def change(a, now):
        if a.link_opened_at is not None:
            return False
        a.link_opened_at = now
    _write(appointment_id, "link", change)


def entered_waiting_room(appointment_id):
    """A page of the patient is open (waiting room or call): waiting since the first."""
    def change(a, now):
        if a.waiting_since is not None:
            return False
        a.waiting_since = now
    _write(appointment_id, "waiting", change)


def left_waiting_room(appointment_id):
    """The patient's last page closed."""
    def change(a, now):
        if a.waiting_since is None:
            return False
        a.waiting_since = None
    _write(appointment_id, "left", change)


def _add_member(a, key):
    members = [m for m in (a.call_members or "").split(",") if m]
    if key not in members:
        a.call_members = ",".join(members + [key])[:400]


def call_state(appointment_id, state):
    """The call moved to ``state`` (app/hub states): started on the first ring,
    connected on the first accept; the connected time adds up over every call."""
    def change(a, now):
        if state == RINGING:
            a.call_started_at = a.call_started_at or now
        elif state == ACCEPTED:
            a.call_started_at = a.call_started_at or now
            a.call_connected_at = a.call_connected_at or now
            a.call_live_since = a.call_live_since or now
            _add_member(a, "patient")
        elif a.call_live_since is not None:
            _end(a, now)
        else:
            return False
    _write(appointment_id, "call", change)


def _end(a, now):
    a.call_seconds = (a.call_seconds or 0) + max(0, int((now - a.call_live_since).total_seconds()))
    a.call_live_since = None
    a.call_ended_at = now


def took_part(appointment_id, key):
    """A further participant (``guest-<id>``) joined the running call."""
    def change(a, now):
        before = a.call_members
        _add_member(a, key)
        if a.call_members == before:
            return False
    _write(appointment_id, "call", change)


def notify(appointment, what):
    """Something else on the appointment's line changed (a delay notice, a chat message)."""
    _tell(appointment.practice_id, appointment.id, what)


def cancelled(practice_id, appointment_id):
    """The practice deleted the appointment: the other boards drop it (or say "abgesagt")."""
    _tell(practice_id, appointment_id, "cancelled")
