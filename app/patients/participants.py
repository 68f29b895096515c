"""Further participants of a Premium appointment (interpreter, relative, colleague).

The staff member and the patient take two of the tariff's seats; every further
person takes one of the rest. Seats are numbered and unique per appointment, so the
database itself refuses a person beyond the limit, even from two requests at once.
"""
import logging

from sqlalchemy.exc import IntegrityError

from app import events, invitations
from app.auth import audit
from app.extensions import db
from app.patients import submissions
from app.patients.models import Participant
from app.tariffs import tariff_of
from app.timeutil import utcnow
from app.tokens import new_token

log = logging.getLogger(__name__)


class NoSeatLeft(Exception):
    """Every seat of the tariff is taken."""


def _free_seat(appointment_id, seats):
    taken = set(db.session.execute(
        db.select(Participant.seat).filter_by(appointment_id=appointment_id)
    ).scalars())
    return next((s for s in range(1, seats + 1) if s not in taken), None)


def add_participant(practice, staff, appointment, form, consent_text,
                    submit_key=None) -> Participant:
    """Participant, link token and outbox entries in one transaction; NoSeatLeft when full.
    With a submit key that already added someone: that participant, nothing new."""
    seats = tariff_of(practice).extra_participants
    appointment_id = appointment.id
    for _attempt in range(seats + 1):
        done = submissions.earlier(practice, submit_key, "participant")
        if done is not None:
            return done.participant
        seat = _free_seat(appointment_id, seats)
        if seat is None:
            raise NoSeatLeft()
        token, token_hash = new_token()
        participant = Participant(
            appointment_id=appointment_id, practice_id=practice.id, seat=seat,
            first_name=form.first_name.data, last_name=form.last_name.data,
            email=form.email.data, mobile=form.mobile.data or None, language=form.language.data,
            call_role=form.call_role.data,
            token_hash=token_hash,
            consent_at=utcnow(), consent_by_id=staff.id, consent_text=consent_text,
        )
        db.session.add(participant)
        channels = ["email"] + (["sms"] if form.send_sms.data else [])
        invitations.queue_invitation(appointment, token, channels, participant=participant)
        submissions.remember(practice, submit_key, "participant", appointment, participant)
        audit.by_staff(staff, audit.PARTICIPANT_ADD, "appointment", appointment_id)
        try:
            db.session.commit()
        except IntegrityError:
            # Another request took this seat (or carried the same key) a moment ago: look again.
            db.session.rollback()
            continue
        log.info("participant added appointment=%s participant=%s seat=%s",
                 appointment_id, participant.id, seat)
        events.participant_added.send(participant.id, appointment_id=appointment_id)
        return participant
    raise NoSeatLeft()


def remove_participant(participant):
    """Their link dies with the row; they are told on the channels that reached them."""
    appointment_id, participant_id = participant.appointment_id, participant.id
    invitations.queue_participant_removed(participant)
    db.session.delete(participant)
    db.session.commit()
    events.participant_removed.send(participant_id, appointment_id=appointment_id)
    log.info("participant removed appointment=%s participant=%s", appointment_id, participant_id)
