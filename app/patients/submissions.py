"""One-time keys of forms that create or send (issue 9): Einladen, Teilnehmer hinzufügen,
Erneut senden. Each rendered form or button carries a fresh key; the work it does is
written with its key in one transaction, so a repeat finds the first result and does
nothing again, also when both arrive at once (the unique key makes the second commit
fail, and the repeat then finds the first)."""
import re
import secrets

from app.extensions import db
from app.patients.models import Submission

KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_submit_key():
    return secrets.token_urlsafe(16)


def key_of(raw):
    """The submitted key, or None for a missing or malformed one (no idempotency then)."""
    return raw if isinstance(raw, str) and KEY.fullmatch(raw) else None


def earlier(practice, key, action):
    """The submission this key already made for this action, or None."""
    if key is None:
        return None
    return db.session.execute(
        db.select(Submission).filter_by(practice_id=practice.id, key=key, action=action)
    ).scalar_one_or_none()


def remember(practice, key, action, appointment, participant=None):
    """Add the key to the transaction that does the work (nothing without a key)."""
    if key is None:
        return
    db.session.add(Submission(practice_id=practice.id, key=key, action=action,
                              appointment=appointment, participant=participant))
