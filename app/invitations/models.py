from app.extensions import db
from app.timeutil import utcnow

PENDING, SENT, FAILED = "pending", "sent", "failed"


class OutboxMessage(db.Model):
    """One message to one person over one channel, written in the same transaction
    as the change it reports, and delivered later by the sender."""

    __table_args__ = (db.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id = db.Column(db.Integer, primary_key=True)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Invitations die with their appointment; cancellations outlive it (NULL then).
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), index=True
    )
    # Set for a further participant's messages; the patient's own have NULL here.
    participant_id = db.Column(
        db.Integer, db.ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    kind = db.Column(db.String(20), nullable=False)  # invitation | cancellation | login-locked
    channel = db.Column(db.String(10), nullable=False)  # email | sms
    status = db.Column(db.String(10), nullable=False, default=PENDING)
    attempts = db.Column(db.Integer, nullable=False, default=0)
    next_attempt_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    # Encrypted with a key derived from SECRET_KEY: it holds the link token (for an
    # invitation) or the whole text (for a cancellation). Purged once delivered or failed.
    payload = db.Column(db.Text)
    last_error = db.Column(db.String(300))
    permanent = db.Column(db.Boolean, nullable=False, default=False)
    sent_at = db.Column(db.DateTime)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    appointment = db.relationship("Appointment", back_populates="messages")
    participant = db.relationship("Participant", back_populates="messages")
