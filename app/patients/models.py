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
