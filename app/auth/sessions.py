"""Staff logins kept on the server (issue 12): logout and a password change end every
session of the account, an idle session ends after SESSION_IDLE_MINUTES, every session
after SESSION_MAX_HOURS.

Why rows in the database and not Flask-Session or a version number in the signed cookie:
the user loader reads the staff row on every request anyway, so one joined query also
checks the login; it needs no store beside the database (SQLite for one process,
PostgreSQL shared by many); "every session of this account" is one DELETE by staff id,
which Flask-Session's stores cannot do; and a running call keeps its login alive from the
socket (consultation/sockets.py), which no cookie can, as a socket sends none back. Rows
are written at login and at most once a minute per session, never for anonymous visits.
"""
import logging
from datetime import timedelta

from flask import current_app, g, request

from app.auth.models import LoginSession, Staff
from app.extensions import db, hub
from app.timeutil import utcnow
from app.tokens import hash_token, new_token

log = logging.getLogger(__name__)

# The key in Flask's (signed) session cookie.
SESSION_KEY = "login"
# last_seen_at is written at most this often per session: the idle timeout is in minutes.
TOUCH_EVERY = timedelta(seconds=60)
# Sent by the pages' own polling (hx-headers): a chat page left open is not a person at work.
POLL_HEADER = "X-Poll"


def _limits():
    config = current_app.config
    return (timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
            timedelta(hours=config["SESSION_MAX_HOURS"]))


def _expired_clause(now):
    idle, lifetime = _limits()
    return db.or_(LoginSession.last_seen_at < now - idle, LoginSession.created_at < now - lifetime)


def start(staff) -> str:
    """A new login session for ``staff``; the secret for the session cookie."""
    now = utcnow()
    # Ended sessions of everybody go here: a login is rare, the delete uses an index.
    db.session.execute(db.delete(LoginSession).where(_expired_clause(now)))
    secret, token_hash = new_token()
    row = LoginSession(staff_id=staff.id, token_hash=token_hash, created_at=now, last_seen_at=now)
    db.session.add(row)
    db.session.commit()
    g.login_session_id = row.id
    log.info("login session started staff=%s", staff.id)
    return secret


def staff_for(user_id, secret):
    """The staff member of this cookie's login session, or None when it has ended. Counts
    the request as activity."""
    if not isinstance(secret, str) or not secret or not str(user_id).isdigit():
        return None
    row = db.session.execute(
        db.select(LoginSession).filter_by(token_hash=hash_token(secret))
        .options(db.joinedload(LoginSession.staff).joinedload(Staff.practice))
    ).scalar_one_or_none()
    if row is None or row.staff_id != int(user_id):
        return None
    if not row.staff.active:
        # Deactivating ends the sessions; this holds should one have been left behind.
        return None
    now = utcnow()
    idle, lifetime = _limits()
    if now - row.last_seen_at > idle or now - row.created_at > lifetime:
        log.info("login session expired staff=%s", row.staff_id)
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY and not request.headers.get(POLL_HEADER):
        row.last_seen_at = now
        db.session.commit()
    g.login_session_id = row.id
    return row.staff


def current_id():
    """The id of this request's login session (after the user loader ran), or None."""
    return g.get("login_session_id")


def keep_alive(session_id, touch) -> bool:
    """For a long-lived socket: whether its login session still counts; with ``touch``
    (a call is running) it counts as activity."""
    now = utcnow()
    try:
        row = db.session.get(LoginSession, session_id)
        if row is None or not row.staff.active or db.session.execute(
                db.select(LoginSession.id).where(LoginSession.id == session_id,
                                                 _expired_clause(now))).first():
            return False
        if touch and now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
            db.session.commit()
        return True
    finally:
        # Sockets live long: never hold a database connection between checks.
        db.session.remove()


def end(session_id):
    """This browser's login only (a staff browser that goes on as a patient)."""
    if session_id is not None:
        db.session.execute(db.delete(LoginSession).filter_by(id=session_id))
        db.session.commit()


def end_all(staff_id):
    """Every login of the account, on every device: logout, password change,
    deactivation, role change. Its open sockets are told at once through the hub."""
    ended = db.session.scalars(db.select(LoginSession.id).filter_by(staff_id=staff_id)).all()
    db.session.execute(db.delete(LoginSession).filter_by(staff_id=staff_id))
    db.session.commit()
    log.info("every login session ended staff=%s", staff_id)
    if ended:
        hub.logins_ended(staff_id, ended)
