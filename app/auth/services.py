"""Practices, staff and passwords (argon2)."""
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.auth.models import Practice, Staff
from app.extensions import db, login_manager
from app.tariffs import TARIFFS

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("sprechzimmer-dummy-password")


class AccountError(ValueError):
    pass


@login_manager.user_loader
def load_staff(user_id):
    if not str(user_id).isdigit():
        return None
    # Every staff request needs the practice (tenant scope): one query instead of two.
    return db.session.get(Staff, int(user_id), options=[db.joinedload(Staff.practice)])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def authenticate(email: str, password: str):
    """The staff member for these credentials, or None; same cost either way."""
    staff = db.session.execute(
        db.select(Staff).filter_by(email=(email or "").strip().lower())
    ).scalar_one_or_none()
    try:
        _hasher.verify(staff.password_hash if staff else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if staff is None:
        return None
    if _hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = _hasher.hash(password)
        db.session.commit()
    return staff


def create_practice(name, tariff, staff_email, staff_name, password, timezone="Europe/Berlin"):
    if tariff not in TARIFFS:
        raise AccountError(f"unknown tariff {tariff!r}; choose one of {', '.join(TARIFFS)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountError(f"unknown time zone {timezone!r}") from None
    if len(password) < 10:
        raise AccountError("password must have at least 10 characters")
    email = staff_email.strip().lower()
    if db.session.execute(db.select(Staff.id).filter_by(email=email)).first():
        raise AccountError(f"a staff member with e-mail {email} exists already")
    practice = Practice(name=name.strip(), tariff=tariff, timezone=timezone)
    staff = Staff(practice=practice, email=email, name=staff_name.strip(),
                  password_hash=hash_password(password))
    db.session.add_all([practice, staff])
    db.session.commit()
    return practice, staff


def set_tariff(practice_id, tariff):
    if tariff not in TARIFFS:
        raise AccountError(f"unknown tariff {tariff!r}; choose one of {', '.join(TARIFFS)}")
    practice = db.session.get(Practice, practice_id)
    if practice is None:
        raise AccountError(f"no practice with id {practice_id}")
    practice.tariff = tariff
    db.session.commit()
    return practice
