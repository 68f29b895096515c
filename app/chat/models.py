from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.invitations import crypto
from app.roles import member_key
from app.timeutil import utcnow

MAX_TEXT = 2000
# Shown for a message sealed with an earlier SECRET_KEY.
UNREADABLE = _l("[Nachricht nicht lesbar]")


class ChatMessage(db.Model):
    """One message in an appointment's chat (practice, patient, guests); goes with the
    appointment."""

    __table_args__ = (
        # participant_id only on guests' messages; it may be NULL there too once the
        # participant is removed (the message stays in the practice's record).
        db.CheckConstraint(
            "sender IN ('staff', 'patient', 'guest') "
            "AND (participant_id IS NULL OR sender = 'guest')",
            name="sender",
        ),
        # Serves the history (by appointment) and the unread badges of the Patienten list.
        db.Index("ix_chat_message_appointment_unread",
                 "appointment_id", "sender", "read_by_staff_at"),
    )

    id = db.Column(db.Integer, primary_key=True)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False
    )
    sender = db.Column(db.String(10), nullable=False)  # a Role
    # Which staff member wrote it; kept as NULL when the staff account goes.
    staff_id = db.Column(db.Integer, db.ForeignKey("staff.id", ondelete="SET NULL"))
    # Which guest wrote it; NULL once that participant is removed (shown as a removed participant).
    participant_id = db.Column(
        db.Integer, db.ForeignKey("participant.id", ondelete="SET NULL"), index=True
    )
    # Encrypted at rest (invitations/crypto.py): a backup or a dump of the database shows
    # no patient's words without SECRET_KEY. The column keeps its name "text".
    sealed_text = db.Column("text", db.Text, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)  # UTC
    read_by_staff_at = db.Column(db.DateTime)
    read_by_patient_at = db.Column(db.DateTime)

    participant = db.relationship("Participant")

    @property
    def sender_key(self):
        """The writer's key as in the call (docs/signalling.md): staff, patient, guest-<id>
        (or "guest" once that participant is removed)."""
        return member_key(self.sender, self.participant_id)

    @property
    def text(self):
        opened = crypto.open_text(self.sealed_text)
        return opened if opened is not None else str(UNREADABLE)

    @text.setter
    def text(self, value):
        self.sealed_text = crypto.seal_text(value)
