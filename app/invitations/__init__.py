"""The only place that sends anything to patients (e-mail, SMS), through the outbox.

Below patients: the Patienten tab queues invitations in the same transaction as the
appointment, so it calls down here; nothing here imports a higher domain.
"""
from app.invitations.services import (
    delivery_states,
    drop_pending_reminders,
    queue_cancellation,
    queue_invitation,
    queue_participant_removed,
    queue_reminder,
    queue_update,
    resend_invitation,
    resend_participant_invitation,
    sms_available,
)

__all__ = [
    "delivery_states", "drop_pending_reminders", "queue_cancellation", "queue_invitation",
    "queue_participant_removed", "queue_reminder", "queue_update", "resend_invitation",
    "resend_participant_invitation", "sms_available",
]
