"""The practice's audit log (issue 12, DSGVO Art. 5(2) and 30): who did what to which
object, when. Append-only: the ORM refuses to change or delete an entry, the database
refuses every UPDATE (a trigger), and only the retention purge (app/ops/retention.py)
deletes, on the same schedule as everything else. Entries hold ids, never a patient's
name, address or anything said.

Here, in auth, because every domain above records into it and it belongs to a practice
and its accounts. An entry is added to the caller's session and commits with the action
it records: an action that is rolled back leaves no entry, and no entry is missing for
an action that happened.
"""
from flask_babel import lazy_gettext as _l
from sqlalchemy import DDL, event

from app.extensions import db
from app.timeutil import utcnow

# Who acted: a staff account (actor_id: its id), the patient's link, a guest's link
# (actor_id: the participant id), or the system (retention, timeouts).
STAFF, PATIENT, GUEST, SYSTEM = "staff", "patient", "guest", "system"

LOGIN, LOGOUT = "login", "logout"
APPOINTMENT_CREATE, APPOINTMENT_DELETE = "appointment.create", "appointment.delete"
APPOINTMENT_UPDATE = "appointment.update"
CONTACT_VIEW, CONTACT_EXPORT, CONTACT_ERASE = "contact.view", "contact.export", "contact.erase"
INVITATION_RESEND = "invitation.resend"
PARTICIPANT_ADD, PARTICIPANT_REMOVE = "participant.add", "participant.remove"
CALL_START, CALL_JOIN, CALL_END = "call.start", "call.join", "call.end"
ACCOUNT_INVITE, ACCOUNT_ROLE = "account.invite", "account.role"
ACCOUNT_DEACTIVATE, ACCOUNT_REACTIVATE = "account.deactivate", "account.reactivate"
ACCOUNT_PASSWORD_RESET, ACCOUNT_PASSWORD_SET = "account.password_reset", "account.password_set"
CONSENT_GIVE, CONSENT_WITHDRAW = "consent.give", "consent.withdraw"

LABELS = {
    LOGIN: _l("Anmeldung"),
    LOGOUT: _l("Abmeldung"),
    APPOINTMENT_CREATE: _l("Termin erstellt und eingeladen"),
    APPOINTMENT_DELETE: _l("Termin gelöscht"),
    APPOINTMENT_UPDATE: _l("Termin geändert"),
    CONTACT_VIEW: _l("Patient angesehen"),
    CONTACT_EXPORT: _l("Daten des Patienten exportiert"),
    CONTACT_ERASE: _l("Patient mit allen Daten gelöscht"),
    INVITATION_RESEND: _l("Einladung erneut gesendet"),
    PARTICIPANT_ADD: _l("Teilnehmer hinzugefügt"),
    PARTICIPANT_REMOVE: _l("Teilnehmer entfernt"),
    CALL_START: _l("Anruf gestartet"),
    CALL_JOIN: _l("Gespräch beigetreten"),
    CALL_END: _l("Gespräch beendet"),
    ACCOUNT_INVITE: _l("Konto angelegt und eingeladen"),
    ACCOUNT_ROLE: _l("Rolle eines Kontos geändert"),
    ACCOUNT_DEACTIVATE: _l("Konto deaktiviert"),
    ACCOUNT_REACTIVATE: _l("Konto wieder aktiviert"),
    ACCOUNT_PASSWORD_RESET: _l("Passwort zurückgesetzt"),
    ACCOUNT_PASSWORD_SET: _l("Passwort über den Link gesetzt"),
    CONSENT_GIVE: _l("Einwilligung zur Videosprechstunde erteilt"),
    CONSENT_WITHDRAW: _l("Einwilligung zur Videosprechstunde widerrufen"),
}
ACTOR_LABELS = {PATIENT: _l("Patient"), GUEST: _l("Gast"), SYSTEM: _l("System")}
OBJECT_LABELS = {"appointment": _l("Termin"), "contact": _l("Kontakt"),
                 "participant": _l("Teilnehmer"), "staff": _l("Konto")}


class AppendOnly(Exception):
    pass


class AuditEntry(db.Model):
    __tablename__ = "audit_entry"
    __table_args__ = (db.Index("ix_audit_entry_practice_created", "practice_id", "created_at"),)

    id = db.Column(db.Integer, primary_key=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow, index=True)  # UTC
    # Plain ids, no foreign keys: an entry outlives the account or the appointment it
    # names (deleting those must not delete what is recorded about them).
    practice_id = db.Column(db.Integer, nullable=False)
    actor_type = db.Column(db.String(10), nullable=False)
    actor_id = db.Column(db.Integer)
    action = db.Column(db.String(40), nullable=False)
    object_type = db.Column(db.String(20))
    object_id = db.Column(db.Integer)


def record(practice_id, action, actor_type, actor_id=None, object_type=None, object_id=None):
    """Add an entry to the current transaction (the caller commits)."""
    db.session.add(AuditEntry(practice_id=practice_id, action=action, actor_type=actor_type,
                              actor_id=actor_id, object_type=object_type, object_id=object_id))


def by_staff(staff, action, object_type=None, object_id=None):
    record(staff.practice_id, action, STAFF, staff.id, object_type, object_id)


def entries(practice_id, limit=200):
    return db.session.scalars(db.select(AuditEntry).filter_by(practice_id=practice_id)
                              .order_by(AuditEntry.id.desc()).limit(limit)).all()


@event.listens_for(AuditEntry, "before_update")
def _no_update(mapper, connection, target):
    raise AppendOnly("the audit log is append-only")


@event.listens_for(AuditEntry, "before_delete")
def _no_delete(mapper, connection, target):
    raise AppendOnly("the audit log is append-only; only the retention purge deletes")


# The same in the database, for any client that bypasses the ORM (the migration
# f1e2d3c4b5a6 creates the same triggers on an existing database).
SQLITE_TRIGGER = ("CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
                  "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END")
PG_FUNCTION = ("CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$ "
               "BEGIN RAISE EXCEPTION 'audit_entry is append-only'; END $$ LANGUAGE plpgsql")
PG_TRIGGER = ("CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
              "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()")
TRIGGERS = ((SQLITE_TRIGGER, "sqlite"), (PG_FUNCTION, "postgresql"), (PG_TRIGGER, "postgresql"))
for _ddl, _dialect in TRIGGERS:
    event.listen(AuditEntry.__table__, "after_create", DDL(_ddl).execute_if(dialect=_dialect))
