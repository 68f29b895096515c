from flask_babel import lazy_gettext as _l
from flask_login import UserMixin

from app.extensions import db
from app.timeutil import utcnow

# What a staff account may do (issue 12; not the sides of a call, which are app/roles.py).
# Anlage 31b: the consultation is conducted by the doctor (or psychotherapist); an MFA's
# account organises (appointments, invitations, chat) but never starts or joins a call.
ADMIN, DOCTOR, MFA = "admin", "arzt", "mfa"
ROLES = (ADMIN, DOCTOR, MFA)
# Stored instead of a hash until the invited person sets a password: no argon2 hash looks
# like this, so no password matches it.
UNUSABLE_PASSWORD = "!"
ROLE_LABELS = {ADMIN: _l("Praxisadmin"), DOCTOR: _l("Arzt/Ärztin"), MFA: _l("MFA")}


class Practice(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    tariff = db.Column(db.String(20), nullable=False, default="basis")
    timezone = db.Column(db.String(64), nullable=False, default="Europe/Berlin")
    # Practice settings (issue 11, the Einstellungen page): reminders before an
    # appointment, and the number patients call when something does not work.
    remind_day_before = db.Column(db.Boolean, nullable=False, default=True)
    remind_shortly_before = db.Column(db.Boolean, nullable=False, default=True)
    phone = db.Column(db.String(30))
    # Group calls are end-to-end encrypted (issue 13); a browser that cannot encrypt
    # frames is refused, unless the practice lets it in with a warning for everyone.
    allow_unencrypted_group_calls = db.Column(db.Boolean, nullable=False, default=False,
                                              server_default=db.false())
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    staff = db.relationship("Staff", back_populates="practice", cascade="all, delete-orphan")


class Staff(UserMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email = db.Column(db.String(254), nullable=False, unique=True)
    name = db.Column(db.String(200), nullable=False)
    password_hash = db.Column(db.String(200), nullable=False)
    # No default: every account gets its role on purpose (the first one of a practice is
    # its admin, who in a small practice is the doctor too).
    role = db.Column(db.String(20), nullable=False)
    # A deactivated account keeps its row (the audit log and the consultation records
    # name it) but cannot log in; deactivating ends its sessions and sockets.
    active = db.Column(db.Boolean, nullable=False, default=True, server_default=db.true())
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    practice = db.relationship("Practice", back_populates="staff")

    @property
    def invitation_pending(self):
        """Invited, but the password was not set through the e-mail's link yet."""
        return self.password_hash == UNUSABLE_PASSWORD

    @property
    def conducts_calls(self):
        """Starts and joins video consultations (server and signalling check this)."""
        return self.role in (ADMIN, DOCTOR)


class LoginSession(db.Model):
    """One browser's login (issue 12). The session cookie holds a random secret; only its
    hash is here. A request counts only while its row exists and is neither idle too long
    nor too old, so a copied cookie dies with the logout, the password change, the idle
    timeout and the absolute lifetime, on every web process at once."""

    id = db.Column(db.Integer, primary_key=True)
    staff_id = db.Column(
        db.Integer, db.ForeignKey("staff.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    last_seen_at = db.Column(db.DateTime, nullable=False, default=utcnow, index=True)

    staff = db.relationship("Staff")


class PasswordLink(db.Model):
    """A set-password link sent by e-mail (invitation, reset): single use, time-limited,
    only the token's hash stored, like a patient's link. A new link of the account
    replaces its earlier ones."""

    id = db.Column(db.Integer, primary_key=True)
    staff_id = db.Column(
        db.Integer, db.ForeignKey("staff.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    expires_at = db.Column(db.DateTime, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    staff = db.relationship("Staff")
