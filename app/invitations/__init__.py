"""The only place that sends anything to patients (e-mail, SMS), through the outbox."""
from app.invitations.services import (  # noqa: F401
    delivery_states,
    queue_cancellation,
    queue_invitation,
    queue_participant_removed,
    resend_invitation,
    sms_available,
)
