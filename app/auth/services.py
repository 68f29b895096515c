"""Practices, staff and passwords (argon2)."""
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, session

from app.auth import sessions
from app.auth.models import ADMIN, ROLES, UNUSABLE_PASSWORD, Practice, Staff
from app.extensions import db, login_manager
from app.tariffs import TARIFFS
from app.text import hidden_characters

# The one password rule, wherever a password is chosen (CLI, set-password link).
PASSWORD_MIN, PASSWORD_MAX = 10, 1000


def _hashing():
    """This app's argon2 hasher (PASSWORD_HASHING) and a hash to verify against when the
    e-mail is unknown, so that both failures cost the same time."""
    cached = current_app.extensions.get("sprechzimmer_password_hashing")
    if cached is None:
        hasher = PasswordHasher(**current_app.config["PASSWORD_HASHING"])
        cached = (hasher, hasher.hash("sprechzimmer-dummy-password"))
        current_app.extensions["sprechzimmer_password_hashing"] = cached
    return cached


class AccountError(ValueError):
    pass


@login_manager.user_loader
def load_staff(user_id):
    # Every staff request needs the practice (tenant scope): one query for the login
    # session, the staff member and the practice.
    staff = sessions.staff_for(user_id, session.get(sessions.SESSION_KEY))
    if staff is None:
        # Ended (logout elsewhere, idle, too old): the login page says so, once.
        lang = session.get("lang")
        session.clear()
        if lang:
            session["lang"] = lang
        session["ended"] = True
    return staff


def hash_password(password: str) -> str:
    return _hashing()[0].hash(password)


def staff_by_email(email):
    return db.session.execute(
        db.select(Staff).filter_by(email=(email or "").strip().lower())
    ).scalar_one_or_none()


def authenticate(email: str, password: str):
    """The staff member for these credentials, or None; same cost either way."""
    staff = staff_by_email(email)
    hasher, dummy = _hashing()
    # An invited account without a password yet costs the same as an unknown address.
    usable = staff is not None and staff.password_hash != UNUSABLE_PASSWORD
    try:
        hasher.verify(staff.password_hash if usable else dummy, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if not usable:
        return None
    # Hashes made with other parameters (an older default) are renewed at the next login.
    if hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = hasher.hash(password)
        db.session.commit()
    return staff


def change_password(staff, password):
    """A new password ends every session of the account (a thief's copied cookie too)."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(f"password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    staff.password_hash = hash_password(password)
    db.session.commit()
    sessions.end_all(staff.id)


def create_practice(name, tariff, staff_email, staff_name, password, timezone="Europe/Berlin"):
    if tariff not in TARIFFS:
        raise AccountError(f"unknown tariff {tariff!r}; choose one of {', '.join(TARIFFS)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountError(f"unknown time zone {timezone!r}") from None
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(f"password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    name, staff_name = clean_name(name, "practice name"), clean_name(staff_name, "staff name")
    email = staff_email.strip().lower()
    if db.session.execute(db.select(Staff.id).filter_by(email=email)).first():
        raise AccountError(f"a staff member with e-mail {email} exists already")
    practice = Practice(name=name, tariff=tariff, timezone=timezone)
    staff = Staff(practice=practice, email=email, name=staff_name, role=ADMIN,
                  password_hash=hash_password(password))
    db.session.add_all([practice, staff])
    db.session.commit()
    return practice, staff


def clean_name(value, what):
    """A practice's or staff member's name as shown to patients and colleagues."""
    value = " ".join((value or "").split())
    if not value:
        raise AccountError(f"the {what} is empty")
    if len(value) > 200:
        raise AccountError(f"the {what} is longer than 200 characters")
    hidden = hidden_characters(value)
    if hidden:
        raise AccountError(f"the {what} contains invisible control characters "
                           f"({', '.join(hidden)}); type it again")
    return value


def add_staff(practice, email, name, password, role):
    """A further account of the practice (the demo's doctor and MFA; the admin's account
    management builds on it)."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(f"password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    email = email.strip().lower()
    if db.session.execute(db.select(Staff.id).filter_by(email=email)).first():
        raise AccountError(f"a staff member with e-mail {email} exists already")
    staff = Staff(practice_id=practice.id, email=email, name=clean_name(name, "staff name"),
                  role=role, password_hash=hash_password(password))
    db.session.add(staff)
    db.session.commit()
    return staff


def set_tariff(practice_id, tariff):
    if tariff not in TARIFFS:
        raise AccountError(f"unknown tariff {tariff!r}; choose one of {', '.join(TARIFFS)}")
    practice = db.session.get(Practice, practice_id)
    if practice is None:
        raise AccountError(f"no practice with id {practice_id}")
    practice.tariff = tariff
    db.session.commit()
    return practice
