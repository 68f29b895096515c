"""Account roles (issue 12, start): Praxisadmin, Arzt/Ärztin, MFA. An MFA's account
organises (appointments, chat) but cannot start or join a call: refused by the routes
and by the signalling, not only hidden. The demo practice has one account of each."""
import pytest

from app.auth.models import ADMIN, DOCTOR, MFA, Practice, Staff
from app.auth.services import AccountError, add_staff
from app.extensions import db
from app.hub import IDLE
from tests.support.forms import appointment_form, created_appointment_id
from tests.support.webapp import PASSWORD, logged_in

NO_CALLS = "Mit einem MFA-Konto können Sie keine Videosprechstunde führen: Das Gespräch führt eine Ärztin oder ein Arzt."


@pytest.fixture
def team(app, make_practice):
    """A practice with its admin, a doctor and an MFA; an appointment made by the MFA."""
    practice_id, admin_email = make_practice("premium")
    with app.app_context():
        practice = db.session.get(Practice, practice_id)
        add_staff(practice, "aerztin@team.example", "Dr. Ärztin", PASSWORD, DOCTOR)
        add_staff(practice, "mfa@team.example", "Mia MFA", PASSWORD, MFA)
    mfa = logged_in(app, "mfa@team.example")
    response = mfa.post("/patienten/termine", data=appointment_form())
    assert response.status_code == 201  # an MFA organises
    return {"admin": logged_in(app, admin_email), "arzt": logged_in(app, "aerztin@team.example"), "mfa": mfa,
            "appointment": created_appointment_id(response)}


def test_an_mfa_cannot_start_or_open_a_call(app, team):
    mfa, appointment_id = team["mfa"], team["appointment"]
    page = mfa.get(f"/anruf/{appointment_id}", htmx=False)
    assert page.status_code == 403 and NO_CALLS in page.get_data(as_text=True)
    started = mfa.post(f"/anruf/{appointment_id}/starten", htmx=False)
    assert started.status_code == 403 and NO_CALLS in started.get_data(as_text=True)
    with app.app_context():
        from app.extensions import hub

        assert hub.get().call_state(appointment_id).state == IDLE  # nothing rang
    # The panel and the chat page offer no call to an MFA; the chat itself works.
    panel = mfa.get("/patienten", htmx=False).get_data(as_text=True)
    assert "/starten" not in panel
    assert "/starten" not in mfa.get(f"/chat/{appointment_id}", htmx=False).get_data(as_text=True)
    sent = mfa.post(f"/chat/{appointment_id}/nachrichten", data={"text": "Die Ärztin ruft gleich an."})
    assert sent.status_code == 201


@pytest.mark.parametrize("who", ["admin", "arzt"])
def test_admin_and_doctor_conduct_calls(app, team, who):
    staff, appointment_id = team[who], team["appointment"]
    assert staff.get(f"/anruf/{appointment_id}", htmx=False).status_code == 200
    response = staff.post(f"/anruf/{appointment_id}/starten", htmx=False)
    assert response.status_code == 303


def test_the_signalling_refuses_an_mfa(app, team, live):
    appointment_id = team["appointment"]
    assert live.connect(f"/ws/anruf/{appointment_id}", team["mfa"].client).closed_with() == 1008
    doctor = live.connect(f"/ws/anruf/{appointment_id}", team["arzt"].client)
    assert doctor.take("welcome")["role"] == "staff"


def test_unknown_role_is_refused(app, make_practice):
    practice_id, _ = make_practice()
    with app.app_context():
        practice = db.session.get(Practice, practice_id)
        with pytest.raises(AccountError):
            add_staff(practice, "x@team.example", "X", PASSWORD, "chef")
        assert db.session.execute(db.select(db.func.count(Staff.id))).scalar() == 1


def test_the_demo_practice_has_one_of_each(app, runner):
    for _ in range(2):
        result = runner.invoke(args=["practice", "demo"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        roles = sorted(s.role for s in db.session.execute(db.select(Staff)).scalars())
    assert roles == sorted([ADMIN, DOCTOR, MFA])


def test_the_first_account_of_a_practice_is_its_admin(app, runner):
    result = runner.invoke(args=["practice", "create", "--name", "Praxis Süd", "--email", "chef@sued.example",
                                 "--staff-name", "Dr. Süd", "--password", "sehr-geheim-1"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.execute(db.select(Staff.role)).scalar_one() == ADMIN
