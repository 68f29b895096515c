"""Staff logins end on the server (issue 12): a session cookie copied before the logout
(another device, a thief) no longer opens anything; logout and a password change end
every session of the account; idle timeout and absolute lifetime; a running call keeps
its login alive; and the cookie itself shows nothing that helps an attacker."""
import base64
import json
import time
import zlib
from datetime import timedelta

import pytest

from app.auth.models import LoginSession
from app.extensions import db
from app.timeutil import utcnow
from tests.support.forms import appointment_form, created_appointment_id
from tests.support.webapp import Auth, csrf_token, logged_in

ENDED = "Ihre Sitzung ist abgelaufen oder wurde beendet. Bitte melden Sie sich erneut an."


def readable_session(client):
    """What anyone who gets hold of the cookie reads in it, without the secret key."""
    value = client.get_cookie("session").value
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(zlib.decompress(raw) if compressed else raw)


def copy_of(app, client):
    """Another browser with the same session cookie (copied off a device or a proxy log)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def shift_sessions(app, **deltas):
    """Move every login session's times into the past (idle or age)."""
    with app.app_context():
        for row in db.session.execute(db.select(LoginSession)).scalars():
            if "idle" in deltas:
                row.last_seen_at = utcnow() - deltas["idle"]
            if "age" in deltas:
                row.created_at = utcnow() - deltas["age"]
        db.session.commit()


def login_rows(app):
    with app.app_context():
        return db.session.execute(db.select(LoginSession)).scalars().all()


def is_in(client):
    return client.get("/patienten").status_code == 200


def test_a_cookie_copied_before_logout_opens_nothing_after_it(app, live, make_practice):
    _, email = make_practice()
    staff = logged_in(app, email)
    appointment_id = created_appointment_id(staff.post("/patienten/termine", data=appointment_form()))
    thief = copy_of(app, staff.client)
    token = csrf_token(thief, "/patienten")  # the thief's page was open before the logout
    assert is_in(thief)

    staff.logout()

    response = thief.get("/patienten")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    created = thief.post("/patienten/termine", data=appointment_form(first_name="Mallory"),
                         headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert created.status_code in (400, 401)
    with app.app_context():
        from app.patients.models import Contact

        assert db.session.execute(db.select(Contact).filter_by(first_name="Mallory")).first() is None
    assert live.connect(f"/ws/anruf/{appointment_id}", thief).closed_with() == 1008
    # The login page says why, once.
    page = thief.get("/login").get_data(as_text=True)
    assert ENDED in page
    assert ENDED not in thief.get("/login").get_data(as_text=True)


def test_logout_ends_every_session_of_the_account(app, make_practice):
    _, email = make_practice()
    _, other_email = make_practice()
    desk, tablet = logged_in(app, email), logged_in(app, email)
    colleague = logged_in(app, other_email)
    assert is_in(desk) and is_in(tablet)
    tablet.logout()
    assert not is_in(desk.client) and not is_in(tablet.client)
    assert is_in(colleague.client)  # another account stays logged in
    assert [row.staff_id for row in login_rows(app)] != []
    # A new login works as before.
    assert Auth(desk.client).login(email).status_code == 302
    assert is_in(desk.client)


def test_a_password_change_ends_every_session(app, runner, make_practice):
    _, email = make_practice()
    desk, tablet = logged_in(app, email), logged_in(app, email)
    result = runner.invoke(args=["practice", "set-password", email, "--password", "ganz-neu-geheim-2"])
    assert result.exit_code == 0, result.output
    assert not is_in(desk.client) and not is_in(tablet.client)
    assert Auth(desk.client).login(email).status_code == 401
    assert Auth(desk.client).login(email, "ganz-neu-geheim-2").status_code == 302


@pytest.mark.parametrize("deltas, still_in", [
    ({"idle": timedelta(minutes=29)}, True),
    ({"idle": timedelta(minutes=31)}, False),
    ({"age": timedelta(hours=11, minutes=50)}, True),
    ({"age": timedelta(hours=12, minutes=1)}, False),
])
def test_idle_timeout_and_absolute_lifetime(app, make_practice, deltas, still_in):
    _, email = make_practice()
    staff = logged_in(app, email)
    shift_sessions(app, **deltas)
    assert is_in(staff.client) is still_in
    if still_in:
        # The request was activity: the idle clock starts again.
        (row,) = login_rows(app)
        assert utcnow() - row.last_seen_at < timedelta(minutes=1)
    else:
        assert login_rows(app) == []


def test_a_pages_own_polling_is_not_activity(app, make_practice):
    _, email = make_practice()
    staff = logged_in(app, email)
    appointment_id = created_appointment_id(staff.post("/patienten/termine", data=appointment_form()))
    page = staff.client.get(f"/chat/{appointment_id}").get_data(as_text=True)
    assert """hx-headers='{"X-Poll": "1"}'""" in page  # the chat list's poll every 5 s says so
    shift_sessions(app, idle=timedelta(minutes=20))
    polled = staff.client.get(f"/chat/{appointment_id}/nachrichten", headers={"HX-Request": "true", "X-Poll": "1"})
    assert polled.status_code == 200
    (row,) = login_rows(app)
    assert utcnow() - row.last_seen_at > timedelta(minutes=19)
    shift_sessions(app, idle=timedelta(minutes=31))
    polled = staff.client.get(f"/chat/{appointment_id}/nachrichten", headers={"HX-Request": "true", "X-Poll": "1"})
    assert polled.status_code == 401 and polled.headers["HX-Redirect"].startswith("/login")


@pytest.fixture
def config_overrides(request):
    return getattr(request, "param", {})


@pytest.mark.parametrize("config_overrides", [{"SESSION_IDLE_MINUTES": 5}], indirect=True)
def test_idle_timeout_is_configurable(app, make_practice):
    _, email = make_practice()
    staff = logged_in(app, email)
    shift_sessions(app, idle=timedelta(minutes=6))
    assert not is_in(staff.client)


FAST_CHECKS = {"SESSION_CHECK_SECONDS": 0.2}


def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("config_overrides", [FAST_CHECKS], indirect=True)
def test_a_running_call_keeps_the_login_alive(app, make_call):
    call = make_call()
    staff, patient = call.accepted()
    shift_sessions(call.app, idle=timedelta(minutes=29, seconds=50))
    # Nothing but the call happens in this browser; its socket counts as activity.
    assert wait_for(lambda: utcnow() - login_rows(app)[0].last_seen_at < timedelta(minutes=1))
    time.sleep(0.5)
    assert is_in(call.staff_client)
    staff.send({"type": "hangup"})
    staff.expect("call-state", state="ended")


@pytest.mark.parametrize("config_overrides", [FAST_CHECKS], indirect=True)
def test_an_open_call_page_without_a_call_does_not(app, make_call):
    call = make_call()
    staff = call.staff()
    shift_sessions(call.app, idle=timedelta(minutes=31))
    error = staff.expect("error")
    assert error["code"] == "logged-out"
    assert staff.closed_with() == 1008


@pytest.mark.parametrize("config_overrides", [FAST_CHECKS], indirect=True)
def test_logout_on_another_device_closes_the_open_call_socket(app, make_call):
    call = make_call()
    staff, patient = call.accepted()
    desk = Auth(app.test_client())
    desk.login(call.staff_email)  # the same account, on the desk's computer
    desk.logout()
    assert staff.expect("error")["code"] == "logged-out"
    assert staff.closed_with() == 1008
    # The call's state for the patient is as after any page that went away.
    patient.expect("presence", peer_online=False)


def test_the_staff_cookie_holds_no_ids_to_reuse(app, make_practice):
    _, email = make_practice()
    staff = logged_in(app, email)
    data = readable_session(staff.client)
    assert set(data) <= {"_user_id", "_fresh", "_id", "csrf_token", "login", "lang"}
    # The login secret is worth nothing once the session ended.
    staff.logout()
    assert login_rows(app) == []
