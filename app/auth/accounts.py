"""The practice's own accounts (issue 12), managed by its Praxisadmin: invite, change the
role, deactivate and reactivate, reset the password; and the set-password link that an
invitation or a reset sends.

Every change that takes rights away (deactivation, another role, a reset) ends the
account's logins and, through the hub, its open sockets at once (sessions.end_all). The
practice always keeps one active admin. Each step records an audit entry (ids only) in
its own transaction.

The e-mail with the link is not sent from here: auth sits below invitations. After the
commit, ``events.password_link_requested`` asks invitations, which makes the link here
(``issue_link``) and queues the e-mail in one transaction: the token leaves this module
only to be sealed into the outbox, and only its hash is stored.
"""
import logging
from datetime import timedelta

from flask import current_app

from app import events
from app.auth import audit, sessions
from app.auth.models import ADMIN, ROLES, UNUSABLE_PASSWORD, PasswordLink, Staff
from app.auth.services import hash_password
from app.extensions import db
from app.timeutil import utcnow
from app.tokens import hash_token, new_token, well_formed

log = logging.getLogger(__name__)

INVITE, RESET = "invite", "reset"
# The e-mail's link: LINK_PATH + token (the route is account_pages.set_password).
LINK_PATH = "/konto/passwort/"


class Refused(Exception):
    """A step the account's state does not allow (409); ``reason`` names which."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


LAST_ADMIN, DEACTIVATED, EMAIL_TAKEN = "last-admin", "deactivated", "email-taken"


def of_practice(practice):
    """The practice's accounts, and nobody else's."""
    return db.session.scalars(db.select(Staff).filter_by(practice_id=practice.id)
                              .order_by(Staff.name, Staff.id)).all()


def email_taken(email):
    return db.session.execute(db.select(Staff.id).filter_by(email=email)).first() is not None


def _last_active_admin(staff):
    if staff.role != ADMIN or not staff.active:
        return False
    others = db.session.execute(
        db.select(db.func.count(Staff.id)).where(
            Staff.practice_id == staff.practice_id, Staff.role == ADMIN,
            Staff.active.is_(True), Staff.id != staff.id)).scalar()
    return others == 0


def invite(actor, first_name, last_name, email, role):
    """A new account of the actor's practice, without a usable password; the e-mail with
    its set-password link is queued after the commit."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if email_taken(email):
        raise Refused(EMAIL_TAKEN)
    staff = Staff(practice_id=actor.practice_id, email=email, name=f"{first_name} {last_name}",
                  role=role, password_hash=UNUSABLE_PASSWORD)
    db.session.add(staff)
    db.session.flush()
    audit.by_staff(actor, audit.ACCOUNT_INVITE, "staff", staff.id)
    db.session.commit()
    log.info("account invited staff=%s practice=%s by=%s", staff.id, staff.practice_id, actor.id)
    events.password_link_requested.send(staff.id, practice_id=staff.practice_id, reason=INVITE)
    return staff


def change_role(actor, staff, role):
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if not staff.active:
        raise Refused(DEACTIVATED)
    if role == staff.role:
        return False
    if role != ADMIN and _last_active_admin(staff):
        raise Refused(LAST_ADMIN)
    staff.role = role
    audit.by_staff(actor, audit.ACCOUNT_ROLE, "staff", staff.id)
    db.session.commit()
    log.info("account role changed staff=%s by=%s", staff.id, actor.id)
    # What the account may do changed: every page and socket starts again from the login.
    sessions.end_all(staff.id)
    return True


def deactivate(actor, staff):
    if not staff.active:
        return False
    if _last_active_admin(staff):
        raise Refused(LAST_ADMIN)
    staff.active = False
    db.session.execute(db.delete(PasswordLink).filter_by(staff_id=staff.id))
    audit.by_staff(actor, audit.ACCOUNT_DEACTIVATE, "staff", staff.id)
    db.session.commit()
    log.info("account deactivated staff=%s by=%s", staff.id, actor.id)
    sessions.end_all(staff.id)
    return True


def reactivate(actor, staff):
    if staff.active:
        return False
    staff.active = True
    audit.by_staff(actor, audit.ACCOUNT_REACTIVATE, "staff", staff.id)
    db.session.commit()
    log.info("account reactivated staff=%s by=%s", staff.id, actor.id)
    return True


def reset_password(actor, staff):
    """The old password stops working (it may be known to someone else), the account's
    logins end, and a new set-password link goes out."""
    if not staff.active:
        raise Refused(DEACTIVATED)
    staff.password_hash = UNUSABLE_PASSWORD
    audit.by_staff(actor, audit.ACCOUNT_PASSWORD_RESET, "staff", staff.id)
    db.session.commit()
    log.info("account password reset staff=%s by=%s", staff.id, actor.id)
    sessions.end_all(staff.id)
    events.password_link_requested.send(staff.id, practice_id=staff.practice_id, reason=RESET)


def issue_link(staff):
    """A new set-password link for the account (no commit: the caller queues the e-mail in
    the same transaction). Earlier links of the account stop working."""
    db.session.execute(db.delete(PasswordLink).filter_by(staff_id=staff.id))
    token, token_hash = new_token()
    hours = current_app.config["PASSWORD_LINK_HOURS"]
    db.session.add(PasswordLink(staff_id=staff.id, token_hash=token_hash,
                                expires_at=utcnow() + timedelta(hours=hours)))
    return token


def link_for(token):
    """The link this token opens, or None: unknown, used, expired, or the account was
    deactivated meanwhile (the page says the same for all of them)."""
    if not isinstance(token, str) or not well_formed(token):
        return None
    link = db.session.execute(
        db.select(PasswordLink).filter_by(token_hash=hash_token(token))).scalar_one_or_none()
    if link is None or link.expires_at <= utcnow() or not link.staff.active:
        return None
    return link


def set_password(link, password):
    """Use the link: the password is set, the link and its siblings are spent, and any
    login the account still had ends."""
    staff = link.staff
    # Spent first, by its own row: of two uses at the same moment only one deletes it.
    if db.session.execute(db.delete(PasswordLink).filter_by(id=link.id)).rowcount != 1:
        db.session.rollback()
        return None
    staff.password_hash = hash_password(password)
    db.session.execute(db.delete(PasswordLink).filter_by(staff_id=staff.id))
    audit.by_staff(staff, audit.ACCOUNT_PASSWORD_SET, "staff", staff.id)
    db.session.commit()
    log.info("password set by link staff=%s", staff.id)
    sessions.end_all(staff.id)
    return staff
