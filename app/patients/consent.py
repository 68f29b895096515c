"""The patient's and guests' own consent to the Videosprechstunde (issue 12, Anlage 31b).

Given on the device check before any camera or microphone is asked for, and needed for
the waiting room and the call socket (consultation asks ``is_current``). It belongs to
the person of a link (appointment, and participant for a guest), not to the device:
a device that takes a link over finds the person's consent already there.

Withdrawing keeps the row with its time (what was agreed to, and until when) and tells
consultation (events.consent_withdrawn), which closes the person's pages and ends a call
with the patient; the practice's boards hear it through progress.
"""
import logging

from app import events
from app.auth import audit
from app.extensions import db
from app.patients import progress
from app.patients.models import VisitorConsent
from app.timeutil import utcnow

log = logging.getLogger(__name__)

# The version of the notice's wording (templates/consultation/_consent_notice.html).
# Bump it whenever that wording changes: consents to an older wording no longer count,
# so everybody agrees to the text they are shown.
WORDING = 1


def _of(appointment_id, participant_id):
    return db.select(VisitorConsent).where(
        VisitorConsent.appointment_id == appointment_id,
        VisitorConsent.participant_id.is_(None) if participant_id is None
        else VisitorConsent.participant_id == participant_id)


def latest(appointment_id, participant_id=None):
    """The person's newest consent row (current, withdrawn or of an older wording), or None."""
    return db.session.execute(
        _of(appointment_id, participant_id).order_by(VisitorConsent.id.desc()).limit(1)
    ).scalar_one_or_none()


def is_current(appointment_id, participant_id=None) -> bool:
    """The person agreed to the present wording and has not withdrawn."""
    row = latest(appointment_id, participant_id)
    return row is not None and row.withdrawn_at is None and row.wording == WORDING


def _actor(visitor):
    if visitor.participant is None:
        return audit.PATIENT, None
    return audit.GUEST, visitor.participant.id


def give(visitor):
    """``visitor`` (patients.links.Visitor) agrees to the current wording. Agreeing twice
    (a second tab, a double click) keeps the first row."""
    appointment = visitor.appointment
    participant_id = visitor.participant_id
    if is_current(appointment.id, participant_id):
        return
    audit.record(appointment.practice_id, audit.CONSENT_GIVE, *_actor(visitor),
                 "appointment", appointment.id)
    db.session.add(VisitorConsent(appointment_id=appointment.id, participant_id=participant_id,
                                  wording=WORDING, given_at=utcnow()))
    db.session.commit()
    log.info("consent given appointment=%s participant=%s", appointment.id, participant_id)
    progress.notify(appointment, "consent")


def withdraw(visitor):
    """``visitor`` withdraws: every open consent of the person ends now; their pages close
    and a call with the patient ends (consultation answers the event). False if there was
    nothing to withdraw."""
    appointment = visitor.appointment
    participant_id = visitor.participant_id
    rows = db.session.execute(
        _of(appointment.id, participant_id).where(VisitorConsent.withdrawn_at.is_(None))
    ).scalars().all()
    if not rows:
        return False
    audit.record(appointment.practice_id, audit.CONSENT_WITHDRAW, *_actor(visitor),
                 "appointment", appointment.id)
    now = utcnow()
    for row in rows:
        row.withdrawn_at = now
    db.session.commit()
    log.info("consent withdrawn appointment=%s participant=%s", appointment.id, participant_id)
    events.consent_withdrawn.send(appointment.id, participant_id=participant_id)
    progress.notify(appointment, "consent")
    return True


def states(appointment):
    """For the practice's panel: [(participant or None, newest consent row or None)], the
    patient first, then each guest."""
    rows = db.session.execute(
        db.select(VisitorConsent).filter_by(appointment_id=appointment.id).order_by(VisitorConsent.id)
    ).scalars().all()
    newest = {row.participant_id: row for row in rows}
    return [(None, newest.get(None))] + [(p, newest.get(p.id)) for p in appointment.participants]


def withdrawn_patients(appointment_ids):
    """Of these appointments, those whose patient's newest consent is withdrawn (the board)."""
    if not appointment_ids:
        return set()
    newest = (db.select(db.func.max(VisitorConsent.id))
              .where(VisitorConsent.appointment_id.in_(appointment_ids),
                     VisitorConsent.participant_id.is_(None))
              .group_by(VisitorConsent.appointment_id))
    return set(db.session.execute(
        db.select(VisitorConsent.appointment_id).where(VisitorConsent.id.in_(newest),
                                                      VisitorConsent.withdrawn_at.is_not(None))
    ).scalars())


def export(appointment_ids):
    """The patient's own consents of these appointments (DSGVO Art. 15; guests are other
    people), JSON-ready."""
    rows = db.session.execute(
        db.select(VisitorConsent).where(VisitorConsent.appointment_id.in_(appointment_ids),
                                        VisitorConsent.participant_id.is_(None))
        .order_by(VisitorConsent.id)).scalars().all()
    return [{"appointment_id": r.appointment_id, "wording_version": r.wording,
             "given_at": _iso(r.given_at), "withdrawn_at": _iso(r.withdrawn_at)} for r in rows]


def _iso(value):
    return value.isoformat(timespec="seconds") + "Z" if value else None
