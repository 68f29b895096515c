from datetime import timedelta

from app.extensions import db
from app.timeutil import utcnow


class Contact(db.Model):
    """A person the practice has invited; one per e-mail address and practice."""

    __table_args__ = (
        db.UniqueConstraint("practice_id", "email", name="uq_contact_practice_email"),
    )

    id = db.Column(db.Integer, primary_key=True)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    first_name = db.Column(db.String(100), nullable=False)
    last_name = db.Column(db.String(100), nullable=False)
    email = db.Column(db.String(254), nullable=False)  # lower-cased
    mobile = db.Column(db.String(20))  # E.164
    # The language of the e-mails and SMS to this person (text.MESSAGE_LANGUAGES).
    language = db.Column(db.String(2), nullable=False, default="de", server_default="de")
    # Lower-cased "first last" for the contact search.
    search_name = db.Column(db.String(201), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    appointments = db.relationship("Appointment", back_populates="contact", passive_deletes=True)

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}"


class Appointment(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    contact_id = db.Column(
        db.Integer, db.ForeignKey("contact.id", ondelete="CASCADE"), nullable=False, index=True
    )
    starts_at = db.Column(db.DateTime, nullable=False, index=True)  # UTC
    duration_minutes = db.Column(db.Integer, nullable=False)
    # SHA-256 of the patient's link token; the token itself is never stored.
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    sms_requested = db.Column(db.Boolean, nullable=False, default=False)
    consent_at = db.Column(db.DateTime, nullable=False)
    consent_by_id = db.Column(db.Integer, db.ForeignKey("staff.id", ondelete="SET NULL"))
    consent_text = db.Column(db.Text, nullable=False)
    created_by_id = db.Column(db.Integer, db.ForeignKey("staff.id", ondelete="SET NULL"))
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    # The calendar entry's SEQUENCE: one higher with every change the patient is told
    # of, so the update's .ics replaces the entry of the invitation (same UID).
    ics_sequence = db.Column(db.Integer, nullable=False, default=0)
    # The current link token, sealed like an outbox payload (invitations/crypto.py): an
    # update or reminder carries the same link long after the invitation's payload was
    # purged. NULL for appointments made before issue 11 (their mails say "the link of
    # the invitation"). Only its hash is looked up; this is never searched.
    link_sealed = db.Column(db.Text)
    # The day's progress (issue 11), written by patients/progress.py as consultation
    # reports it: what the "Heute" board shows and the consultation record bills. Times
    # only, no content. waiting_since is set while a page of the patient is open in the
    # waiting room; call_live_since while the call is connected.
    link_opened_at = db.Column(db.DateTime)
    waiting_since = db.Column(db.DateTime)
    call_started_at = db.Column(db.DateTime)
    call_connected_at = db.Column(db.DateTime)
    call_live_since = db.Column(db.DateTime)
    call_ended_at = db.Column(db.DateTime)
    call_seconds = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    # Who took part in a connected call: member keys ("patient", "guest-3"), comma-separated.
    call_members = db.Column(db.String(400))
    # "ca. 10 Min. später" or the practice's own short text; shown in the waiting room.
    # Either a pick ("ca. 10 Min. später": delay_minutes, worded in the reader's language)
    # or the practice's own short text (delay_notice, plain text).
    delay_minutes = db.Column(db.Integer)
    delay_notice = db.Column(db.String(200))
    delay_notice_at = db.Column(db.DateTime)

    contact = db.relationship("Contact", back_populates="appointments")
    consent_by = db.relationship("Staff", foreign_keys=[consent_by_id])
    messages = db.relationship(
        "OutboxMessage", back_populates="appointment", cascade="all, delete-orphan",
        passive_deletes=True, order_by="OutboxMessage.id",
    )
    participants = db.relationship(
        "Participant", back_populates="appointment", cascade="all, delete-orphan",
        passive_deletes=True, order_by="Participant.id",
    )

    @property
    def ends_at(self):
        return self.starts_at + timedelta(minutes=self.duration_minutes)


class Participant(db.Model):
    """A further person in an appointment's call (interpreter, relative, colleague).

    The patient (the appointment's contact) and the staff member are not rows here.
    Each holds one of the tariff's extra seats: the unique (appointment, seat) pair
    lets the database refuse two requests that take the last seat at once.
    """

    __table_args__ = (
        db.UniqueConstraint("appointment_id", "seat", name="uq_participant_appointment_seat"),
    )

    id = db.Column(db.Integer, primary_key=True)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    seat = db.Column(db.Integer, nullable=False)  # 1 .. max_participants - 2
    first_name = db.Column(db.String(100), nullable=False)
    last_name = db.Column(db.String(100), nullable=False)
    email = db.Column(db.String(254), nullable=False)  # lower-cased
    mobile = db.Column(db.String(20))  # E.164
    language = db.Column(db.String(2), nullable=False, default="de", server_default="de")
    # Why they take part (guest_roles.GUEST_ROLES): interpreter, relative, carer, ...
    call_role = db.Column(db.String(20), nullable=False, default="other", server_default="other")
    # SHA-256 of the participant's own link token; the token itself is never stored.
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    consent_at = db.Column(db.DateTime, nullable=False)
    consent_by_id = db.Column(db.Integer, db.ForeignKey("staff.id", ondelete="SET NULL"))
    consent_text = db.Column(db.Text, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    appointment = db.relationship("Appointment", back_populates="participants")
    messages = db.relationship(
        "OutboxMessage", back_populates="participant", cascade="all, delete-orphan",
        passive_deletes=True, order_by="OutboxMessage.id",
    )

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}"


class ReminderMark(db.Model):
    """A reminder (kind "day" or "soon") that was queued for an appointment: written in
    the same transaction as its outbox rows, so the unique pair keeps a restarted or a
    second sender from queuing it again. Goes with the appointment; a change of its
    time removes the marks, so the new time is reminded of."""

    __table_args__ = (
        db.UniqueConstraint("appointment_id", "kind", name="uq_reminder_appointment_kind"),
    )

    id = db.Column(db.Integer, primary_key=True)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False
    )
    kind = db.Column(db.String(10), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class Submission(db.Model):
    """A form that was carried out, by the one-time key it carried: the same key again
    (a retry after a lost answer, a second click) gets the first result instead of a
    second appointment, participant or message. Goes with what it made."""

    __table_args__ = (
        db.UniqueConstraint("practice_id", "key", name="uq_submission_practice_key"),
    )

    id = db.Column(db.Integer, primary_key=True)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False
    )
    key = db.Column(db.String(64), nullable=False)
    action = db.Column(db.String(30), nullable=False)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    participant_id = db.Column(
        db.Integer, db.ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    appointment = db.relationship("Appointment")
    participant = db.relationship("Participant")


class LinkDevice(db.Model):
    """A browser that redeemed a link (issue 12): the patient's or a participant's.

    One device at a time per link: the newest row of a link is its device, an older one
    has been taken over. The browser's session cookie holds only a random secret whose
    hash is here, so the cookie shows neither the appointment nor the link. ``link_hash``
    is the link's token hash at redemption: a resent link ends every device of the old
    one. Rows go with the appointment or the participant.
    """

    id = db.Column(db.Integer, primary_key=True)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    participant_id = db.Column(
        db.Integer, db.ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    link_hash = db.Column(db.String(64), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class VisitorConsent(db.Model):
    """The patient's or a guest's own consent to the Videosprechstunde (issue 12), given on
    the device check before any camera or microphone is asked for.

    It belongs to the person of a link (the appointment, and the participant for a
    guest), not to a device: a device that takes the link over needs none of its own.
    ``wording`` is the version of the notice that was agreed to (patients/consent.py);
    a withdrawn consent keeps its row with ``withdrawn_at``, and consenting again adds
    a new one. Rows go with the appointment or the participant.
    """

    id = db.Column(db.Integer, primary_key=True)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    participant_id = db.Column(
        db.Integer, db.ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    wording = db.Column(db.Integer, nullable=False)
    given_at = db.Column(db.DateTime, nullable=False, default=utcnow)  # UTC
    withdrawn_at = db.Column(db.DateTime)  # UTC


class Cancellation(db.Model):
    """What stays of an appointment the practice deleted before it took place: enough for
    that day's "Heute" board to say "abgesagt" (issue 11), nothing of the appointment's
    content (no link, no consent, no chat). ``appointment_id`` is the deleted
    appointment's id, so a board that showed the line keeps its place. It goes with the
    contact, and with retention like the appointment would have.
    """

    appointment_id = db.Column(db.Integer, primary_key=True, autoincrement=False)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    contact_id = db.Column(
        db.Integer, db.ForeignKey("contact.id", ondelete="CASCADE"), nullable=False, index=True
    )
    starts_at = db.Column(db.DateTime, nullable=False, index=True)  # UTC
    cancelled_at = db.Column(db.DateTime, nullable=False, default=utcnow)  # UTC

    contact = db.relationship("Contact")
