"""The "Heute" board (issue 11): today's appointments of the practice, in its time
zone, each with where its patient is now.

What a line says comes from the times that patients/progress.py records as they
happen; this module only reads them. One query for the day (contacts and messages
loaded with it), so that the board renders quickly for a full day; the hub is asked
only about the few patients the database counts as waiting (a process that died
could not clear its mark).
"""
import re
import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from flask_babel import lazy_gettext as _l

from app import invitations
from app.extensions import db, hub
from app.hub import HubUnavailable, channel
from app.invitations.models import FAILED, SENT
from app.patients import consent
from app.patients.models import Appointment, Cancellation, Contact
from app.roles import Role
from app.timeutil import local_to_utc, to_local, utcnow

INVITED, OPENED, WAITING, IN_CALL, DONE = "invited", "opened", "waiting", "in-call", "done"
CANCELLED = "cancelled"

DELIVERY_WORDS = {SENT: _l("zugestellt"), FAILED: _l("nicht zustellbar")}


@dataclass
class Line:
    appointment: Appointment
    status: str
    since: datetime | None  # local time the status began (waiting, in the call)
    late: bool  # the appointment time has come, the patient is not there
    overdue: bool  # the practice is behind: the patient waits past the start, or the time is over
    deliveries: list  # (channel, status, words) of the patient's invitation
    # The patient withdrew their consent to the Videosprechstunde (and has not given it again).
    consent_withdrawn: bool = False
    # A delay notice still means something: the patient waits, or the appointment is yet
    # to come (not after its end, the call or a cancellation).
    delay_open: bool = False

    @property
    def waiting(self):
        return self.status == WAITING


@dataclass
class CalledOff:
    """A cancelled appointment (models.Cancellation) as a board line reads an appointment."""
    id: int
    contact_id: int
    contact: Contact
    starts_at: datetime
    delay_minutes = None
    delay_notice = None


def day_bounds(practice, now=None):
    """Today in the practice's zone, as naive UTC [start, end)."""
    local_day = to_local(now or utcnow(), practice.timezone).date()
    start = local_to_utc(datetime.combine(local_day, time()), practice.timezone)
    end = local_to_utc(datetime.combine(local_day + timedelta(days=1), time()), practice.timezone)
    return start, end


def todays_appointments(practice, now=None):
    start, end = day_bounds(practice, now)
    return db.session.execute(
        db.select(Appointment)
        .where(Appointment.practice_id == practice.id,
               Appointment.starts_at >= start, Appointment.starts_at < end)
        .options(db.joinedload(Appointment.contact), db.selectinload(Appointment.messages))
        .order_by(Appointment.starts_at, Appointment.id)
    ).scalars().all()


def todays_cancellations(practice, now=None):
    start, end = day_bounds(practice, now)
    return db.session.execute(
        db.select(Cancellation)
        .where(Cancellation.practice_id == practice.id,
               Cancellation.starts_at >= start, Cancellation.starts_at < end)
        .options(db.joinedload(Cancellation.contact))
    ).scalars().all()


def _really_waiting(appointment):
    if appointment.waiting_since is None:
        return False
    try:
        return hub.get().subscribers(channel(appointment.id, Role.PATIENT)) > 0
    except HubUnavailable:
        return True  # cannot tell now: the database's word


def status_of(appointment, waiting):
    """(status, UTC time it began)."""
    a = appointment
    if a.call_live_since is not None:
        return IN_CALL, a.call_live_since
    back_after_call = waiting and a.call_ended_at and a.waiting_since > a.call_ended_at
    if a.call_ended_at is not None and not back_after_call:
        return DONE, a.call_ended_at
    if waiting:
        return WAITING, a.waiting_since
    if a.link_opened_at is not None:
        return OPENED, a.link_opened_at
    return INVITED, None


def line_of(appointment, practice, now, words, consent_withdrawn=False):
    waiting = _really_waiting(appointment)
    status, since = status_of(appointment, waiting)
    open_ = status not in (IN_CALL, DONE)
    started = now >= appointment.starts_at
    deliveries = [(m.channel, m.status, words.get(m.status, words[None]))
                  for m in invitations.delivery_states(appointment)]
    return Line(
        appointment=appointment, status=status,
        since=to_local(since, practice.timezone) if since else None,
        late=open_ and started and not waiting,
        overdue=open_ and (now >= appointment.ends_at or (waiting and started)),
        deliveries=deliveries, consent_withdrawn=consent_withdrawn,
        delay_open=open_ and (waiting or now < appointment.ends_at),
    )


def lines(practice, now=None):
    now = now or utcnow()
    words = {status: str(text) for status, text in DELIVERY_WORDS.items()}
    words[None] = str(_l("wird gesendet"))
    appointments = todays_appointments(practice, now)
    withdrawn = consent.withdrawn_patients([a.id for a in appointments])
    active = [line_of(a, practice, now, words, a.id in withdrawn) for a in appointments]
    called_off = [
        Line(appointment=CalledOff(c.appointment_id, c.contact_id, c.contact, c.starts_at),
             status=CANCELLED, since=to_local(c.cancelled_at, practice.timezone),
             late=False, overdue=False, deliveries=[])
        for c in todays_cancellations(practice, now)]
    return sorted(active + called_off, key=lambda ln: (ln.appointment.starts_at, ln.appointment.id))


# -- one render for every board that fetches after the same change ---------------------

# A patient entering tells every open board of the practice at once, and each fetches
# the fragment: with 50 boards that is 50 renders of the same thing. A fetch that names
# the change it follows (board.js: ?nach=<change>) gets the board as rendered once for
# that change in this process; any other fetch renders afresh. Only the latest change
# per practice and language is kept.
CHANGE_RE = re.compile(r"[0-9a-f]{16}")
_shared = {}  # (practice id, language) -> (change, html)
_shared_lock = threading.Lock()
_render_locks = {}


def shared_render(practice_id, language, change, render):
    """``render()``'s html, once per (practice, language, change) in this process."""
    if not change or not CHANGE_RE.fullmatch(change):
        return render()
    key = (practice_id, language)
    with _shared_lock:
        lock = _render_locks.setdefault(key, threading.Lock())
    with lock:  # the first renders, the others wait for it and take its result
        cached = _shared.get(key)
        if cached is not None and cached[0] == change:
            return cached[1]
        html = render()
        _shared[key] = (change, html)
        return html
