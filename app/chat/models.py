from app.extensions import db
from app.timeutil import utcnow

STAFF = "staff"
PATIENT = "patient"
MAX_TEXT = 2000


class ChatMessage(db.Model):
    """One message between the practice and the patient of an appointment; goes with it."""

    __table_args__ = (
        db.CheckConstraint("sender IN ('staff', 'patient')", name="sender"),
        # Serves the history (by appointment) and the unread badges of the Patienten list.
        db.Index("ix_chat_message_appointment_unread", "appointment_id", "sender", "read_by_staff_at"),
    )

    id = db.Column(db.Integer, primary_key=True)
    appointment_id = db.Column(
        db.Integer, db.ForeignKey("appointment.id", ondelete="CASCADE"), nullable=False
    )
    sender = db.Column(db.String(10), nullable=False)
    # Which staff member wrote it; kept as NULL when the staff account goes.
    staff_id = db.Column(db.Integer, db.ForeignKey("staff.id", ondelete="SET NULL"))
    text = db.Column(db.String(MAX_TEXT), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)  # UTC
    read_by_staff_at = db.Column(db.DateTime)
    read_by_patient_at = db.Column(db.DateTime)
