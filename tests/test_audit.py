"""The practice's audit log (issue 12): what staff and links did, by whom, when, to which
object, with ids only; append-only in the ORM and in the database; shown to the practice's
admin only; deleted by nothing but the retention purge. On SQLite and PostgreSQL."""
import pytest
from sqlalchemy import text

from app.auth import audit
from app.auth.models import DOCTOR, MFA, Practice, Staff
from app.auth.services import add_staff
from app.extensions import db
from app.patients.models import Participant
from config import BASE_DIR
from tests.support.forms import appointment_form, created_ids
from tests.support.waiting import wait_until
from tests.support.webapp import PASSWORD, logged_in


def entries(app, practice_id):
    with app.app_context():
        return [(e.action, e.actor_type, e.actor_id, e.object_type, e.object_id)
                for e in reversed(audit.entries(practice_id))]


def staff_id(app, email):
    with app.app_context():
        return db.session.execute(db.select(Staff.id).filter_by(email=email)).scalar_one()


def calls_of(app, call):
    return [e for e in entries(app, call.practice_id) if e[0].startswith("call.")]


def test_a_day_at_the_desk_is_logged_with_ids_only(app, make_practice, auth):
    practice_id, email = make_practice("premium")
    me = staff_id(app, email)
    auth.login(email)
    appointment_id, contact_id = created_ids(auth.post("/patienten/termine", data=appointment_form()))
    assert auth.get(f"/patienten/kontakte/{contact_id}", htmx=False).status_code == 200
    assert auth.post(f"/patienten/termine/{appointment_id}/erneut-senden/email").status_code == 200
    guest = {"first_name": "Gerd", "last_name": "Gast", "email": "gerd@example.org", "mobile": "", "consent": "y"}
    assert auth.post(f"/patienten/termine/{appointment_id}/teilnehmer",
                     data={f"a{appointment_id}-{k}": v for k, v in guest.items()}).status_code == 201
    with app.app_context():
        participant_id = db.session.execute(db.select(Participant.id)).scalar_one()
    assert auth.delete(f"/patienten/termine/{appointment_id}/teilnehmer/{participant_id}").status_code == 200
    assert auth.delete(f"/patienten/termine/{appointment_id}").status_code == 200
    auth.logout()

    staff = ("staff", me)
    assert entries(app, practice_id) == [
        ("login", *staff, None, None),
        ("appointment.create", *staff, "appointment", appointment_id),
        ("contact.view", *staff, "contact", contact_id),
        ("invitation.resend", *staff, "appointment", appointment_id),
        ("participant.add", *staff, "appointment", appointment_id),
        ("participant.remove", *staff, "participant", participant_id),
        ("appointment.delete", *staff, "appointment", appointment_id),
        ("logout", *staff, None, None),
    ]


def test_a_refused_change_leaves_no_entry(app, make_practice, auth):
    practice_id, email = make_practice("basis")
    auth.login(email)
    response = auth.post("/patienten/termine", data=appointment_form(email="kein-at-zeichen"))
    assert response.status_code == 422
    guest = auth.post("/patienten/termine/999/teilnehmer", data={})
    assert guest.status_code == 404
    assert [e[0] for e in entries(app, practice_id)] == ["login"]


def test_the_call_steps_name_who_took_them(app, make_call):
    call = make_call()
    staff, patient = call.both()
    staff.send({"type": "ring"})
    patient.expect("call-state", state="ringing")
    patient.send({"type": "accept"})
    staff.expect("call-state", state="accepted")
    staff.send({"type": "hangup"})
    patient.expect("call-state", state="ended")
    me = staff_id(app, call.staff_email)
    # The patient hears "ended" the moment the state changed, the entry commits just after.
    steps = wait_until(lambda: len(calls_of(app, call)) == 3 and calls_of(app, call), "three call steps logged", 5)
    assert steps == [("call.start", "staff", me, "appointment", call.id),
                     ("call.join", "patient", None, "appointment", call.id),
                     ("call.end", "staff", me, "appointment", call.id)]


def test_anruf_starten_over_http_is_logged_once(app, make_call):
    call = make_call()
    patient = call.patient()
    for _ in range(2):  # the second click (or a reload) rings nothing new
        assert call.staff_auth.post(f"/anruf/{call.id}/starten", htmx=False).status_code == 303
    patient.expect("call-state", state="ringing")
    me = staff_id(app, call.staff_email)
    assert calls_of(app, call) == [
        ("call.start", "staff", me, "appointment", call.id)]


def test_entries_cannot_be_changed_or_deleted(app, make_practice, auth):
    practice_id, email = make_practice()
    auth.login(email)
    with app.app_context():
        entry = audit.entries(practice_id)[0]
        entry.action = "nothing happened"
        with pytest.raises(audit.AppendOnly):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.merge(entry))
        with pytest.raises(audit.AppendOnly):
            db.session.commit()
        db.session.rollback()
        # Past the ORM, the database refuses an UPDATE itself.
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(text("UPDATE audit_entry SET action = 'x'"))
        db.session.rollback()
        assert [e.action for e in audit.entries(practice_id)] == ["login"]


def test_no_code_but_the_retention_purge_deletes_entries():
    """A source check beside the ORM's guard: a bulk DELETE would pass the guard."""
    deleting = [str(path.relative_to(BASE_DIR)) for path in sorted((BASE_DIR / "app").rglob("*.py"))
                if "delete(AuditEntry)" in path.read_text()]
    assert deleting == ["app/ops/retention.py"]


def test_only_the_admin_sees_the_practice_log(app, make_practice):
    practice_id, admin_email = make_practice()
    other_id, other_email = make_practice()
    with app.app_context():
        practice = db.session.get(Practice, practice_id)
        add_staff(practice, "arzt@log.example", "Dr. Arzt", PASSWORD, DOCTOR)
        add_staff(practice, "mfa@log.example", "Mia MFA", PASSWORD, MFA)
    logged_in(app, other_email)  # the other practice's login
    admin = logged_in(app, admin_email)
    page = admin.get("/praxis/protokoll", htmx=False)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert body.count("<tr>") == 1 + 1  # the head and this admin's own login
    assert "Anmeldung" in body and "Dr. Test" in body
    assert "Protokoll" in admin.get("/patienten", htmx=False).get_data(as_text=True)
    for email in ("arzt@log.example", "mfa@log.example"):
        other = logged_in(app, email)
        assert other.get("/praxis/protokoll", htmx=False).status_code == 403
        assert "/praxis/protokoll" not in other.get("/patienten", htmx=False).get_data(as_text=True)
    assert other_id != practice_id
