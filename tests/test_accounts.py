"""Konten (issue 12): the Praxisadmin invites, changes roles, deactivates and reactivates
the practice's accounts and resets their passwords. The invitation and the reset send a
single-use, time-limited set-password link by e-mail (over SMTP to the test server).
Everything is refused on the server for Arzt and MFA, and for another practice's ids."""
import logging
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from app.auth import audit
from app.auth.models import ADMIN, DOCTOR, MFA, LoginSession, PasswordLink, Practice, Staff
from app.auth.services import add_staff
from app.extensions import db
from app.invitations.models import OutboxMessage
from app.timeutil import utcnow
from tests.support.html import Html
from tests.support.outbox import deliver
from tests.support.sockets import Closed
from tests.support.webapp import PASSWORD, Auth, logged_in

KONTEN = "/praxis/konten"
NEW_PASSWORD = "ganz-neu-geheim-7"
LINK_RE = re.compile(r"https?://[^\s\"'<>]+/konto/passwort/[A-Za-z0-9_-]{43}")
DEACTIVATED = "Dieses Konto ist deaktiviert. Bitte wenden Sie sich an die Praxisadministration."
LAST_ADMIN = "Sie sind der letzte aktive Praxisadmin dieser Praxis."
LINK_INVALID = "Dieser Link ist nicht (mehr) gültig."
WRONG = "E-Mail-Adresse oder Passwort ist falsch."


@pytest.fixture
def config_overrides(request, smtp_port):
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port, "LOGIN_RATE_LIMIT": "1000 per minute",
            **getattr(request, "param", {})}


@pytest.fixture
def team(app, make_practice):
    """A practice with its admin (logged in), a doctor and an MFA; ids by role."""
    practice_id, admin_email = make_practice("premium")
    with app.app_context():
        practice = db.session.get(Practice, practice_id)
        ids = {"practice": practice_id,
               "arzt": add_staff(practice, "aerztin@team.example", "Dr. Ärztin", PASSWORD, DOCTOR).id,
               "mfa": add_staff(practice, "mfa@team.example", "Mia MFA", PASSWORD, MFA).id}
        ids["admin"] = db.session.execute(db.select(Staff.id).filter_by(email=admin_email)).scalar_one()
    return {"ids": ids, "admin": logged_in(app, admin_email), "admin_email": admin_email}


def invite_form(**overrides):
    data = {"first_name": "Nora", "last_name": "Neu", "email": "nora@team.example", "role": MFA}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def counts(app):
    with app.app_context():
        return {model.__name__: db.session.execute(db.select(db.func.count()).select_from(model)).scalar()
                for model in (Staff, PasswordLink, OutboxMessage, audit.AuditEntry)}


def staff_row(app, staff_id):
    with app.app_context():
        staff = db.session.get(Staff, staff_id)
        return {"role": staff.role, "active": staff.active, "hash": staff.password_hash}


def sessions_of(app, staff_id):
    with app.app_context():
        return db.session.execute(db.select(db.func.count(LoginSession.id)).filter_by(staff_id=staff_id)).scalar()


def is_in(auth):
    return auth.client.get("/patienten").status_code == 200


def link_from_mail(smtp, address, count=1):
    mail = smtp.mails_to(address, count=count)[-1]
    (link,) = set(LINK_RE.findall(mail.get_body(("plain",)).get_content()))
    return urlsplit(link).path


def error_for(page, field):
    """The one error message of the form, beside its field (aria-describedby)."""
    assert page.error_ids() == {f"{field}-error"}
    assert page.by_id(field)["attrs"].get("aria-describedby") == f"{field}-error"
    return page.text(f"{field}-error")


def login_answer(app, email, password):
    auth = Auth(app.test_client())
    response = auth.login(email, password)
    return response.status_code, response.get_data(as_text=True)


# -- who may ---------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("get", KONTEN), ("post", KONTEN),
    ("post", KONTEN + "/{mfa}/rolle"), ("post", KONTEN + "/{mfa}/deaktivieren"),
    ("post", KONTEN + "/{mfa}/aktivieren"), ("post", KONTEN + "/{mfa}/passwort"),
]


@pytest.mark.parametrize("who", ["arzt", "mfa"])
@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
def test_konten_is_for_the_admin_only(app, team, who, method, path):
    staff = logged_in(app, {"arzt": "aerztin@team.example", "mfa": "mfa@team.example"}[who])
    before = counts(app), staff_row(app, team["ids"]["mfa"])
    url = path.format(**team["ids"])
    response = staff.get(url) if method == "get" else staff.post(url, data={**invite_form(), "role": ADMIN})
    assert response.status_code == 403
    assert (counts(app), staff_row(app, team["ids"]["mfa"])) == before
    assert "/praxis/konten" not in staff.get("/patienten", htmx=False).get_data(as_text=True)


def test_the_admin_sees_the_own_accounts_only(app, team, make_practice):
    _, other_email = make_practice("basis")
    page = team["admin"].get(KONTEN, htmx=False)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/praxis/konten"' in html  # in the admin's navigation
    for text in ("Dr. Ärztin", "aerztin@team.example", "Mia MFA", "mfa@team.example", "Arzt/Ärztin", "MFA"):
        assert text in html
    assert other_email not in html and "Dr. Test 2" not in html


@pytest.mark.parametrize("path", [p for m, p in ADMIN_ROUTES if "{mfa}" in p])
def test_another_practices_account_is_404_and_untouched(app, team, make_practice, path):
    _, other_email = make_practice("basis")
    with app.app_context():
        other_id = db.session.execute(db.select(Staff.id).filter_by(email=other_email)).scalar_one()
    other = logged_in(app, other_email)
    before = counts(app), staff_row(app, other_id)
    response = team["admin"].post(path.format(mfa=other_id), data={"role": MFA})
    assert response.status_code == 404
    assert (counts(app), staff_row(app, other_id)) == before
    assert is_in(other)
    # Ids no database holds are the same 404.
    assert team["admin"].post(path.format(mfa=2**40), data={"role": MFA}).status_code == 404


# -- invitation and the set-password link -------------------------------------------------

def test_an_invited_account_sets_its_password_through_the_link(app, team, smtp, caplog):
    caplog.set_level(logging.INFO)
    response = team["admin"].post(KONTEN, data=invite_form())
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    assert 'id="accounts" class="account-list" hx-swap-oob="true"' in html
    assert "Nora Neu" in html and "Einladung offen" in html
    with app.app_context():
        nora = db.session.execute(db.select(Staff).filter_by(email="nora@team.example")).scalar_one()
        nora_id, practice_id = nora.id, nora.practice_id
        link = db.session.execute(db.select(PasswordLink).filter_by(staff_id=nora_id)).scalar_one()
        assert nora.role == MFA and nora.practice_id == team["ids"]["practice"]
        assert len(link.token_hash) == 64  # only the hash is kept
    assert practice_id == team["ids"]["practice"]
    # No password works yet, not even an empty one.
    assert login_answer(app, "nora@team.example", "")[0] == 400
    assert login_answer(app, "nora@team.example", "!")[0] == 401

    (row,) = [m for m in _outbox(app) if m.kind == "password-link"]
    assert row.appointment_id is None and "nora" not in (row.payload or "")
    deliver(app)
    assert smtp.envelopes[-1][1] == ["nora@team.example"]
    path = link_from_mail(smtp, "nora@team.example")
    token = path.rsplit("/", 1)[1]

    visitor = Auth(app.test_client())
    page = visitor.client.get(path)
    assert page.status_code == 200 and "nora@team.example" in page.get_data(as_text=True)
    token_csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    done = visitor.client.post(path, data={"csrf_token": token_csrf, "password": NEW_PASSWORD,
                                           "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert "Ihr Passwort ist gesetzt" in visitor.client.get("/login").get_data(as_text=True)
    nora_auth = logged_in(app, "nora@team.example", NEW_PASSWORD)
    assert is_in(nora_auth)
    # Single use: the same link is now the neutral 404.
    again = visitor.client.get(path)
    assert again.status_code == 404 and LINK_INVALID in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(db.select(PasswordLink)).first() is None
        entries = [(e.action, e.actor_id, e.object_type, e.object_id) for e in audit.entries(practice_id)]
    assert ("account.invite", team["ids"]["admin"], "staff", nora_id) in entries
    assert ("account.password_set", nora_id, "staff", nora_id) in entries
    # Ours only (the SMTP stand-in logs its recipients).
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("app", "sprechzimmer"))
    assert "nora@team.example" not in logged and "Nora" not in logged and token not in logged


def _outbox(app):
    with app.app_context():
        return db.session.execute(db.select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()


def test_unknown_expired_and_malformed_links_are_one_neutral_404(app, team, smtp):
    team["admin"].post(KONTEN, data=invite_form())
    deliver(app)
    path = link_from_mail(smtp, "nora@team.example")
    with app.app_context():
        link = db.session.execute(db.select(PasswordLink)).scalar_one()
        link.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    client = app.test_client()
    pages = [client.get(p) for p in (path, "/konto/passwort/" + "A" * 43, "/konto/passwort/kurz",
                                     "/konto/passwort/" + "%E2%80%AE" * 5)]
    assert [p.status_code for p in pages] == [404] * 4
    texts = {re.search(r"<main.*</main>", p.get_data(as_text=True), re.S).group(0) for p in pages}
    assert len(texts) == 1 and LINK_INVALID in texts.pop()
    # A POST to an expired link sets nothing.
    assert client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code in (400, 404)
    assert login_answer(app, "nora@team.example", NEW_PASSWORD)[0] == 401


SET_PASSWORD_BAD = [
    ("", "", "password", "Bitte geben Sie ein Passwort ein."),
    ("kurz", "kurz", "password", "Das Passwort muss mindestens 10 Zeichen lang sein."),
    ("x" * 1001, "x" * 1001, "password", "Höchstens 1000 Zeichen."),
    (NEW_PASSWORD, NEW_PASSWORD + "!", "confirm", "Die beiden Passwörter stimmen nicht überein."),
]


@pytest.mark.parametrize("password,confirm,field,message", SET_PASSWORD_BAD)
def test_set_password_bad_input(app, team, smtp, password, confirm, field, message):
    team["admin"].post(KONTEN, data=invite_form())
    deliver(app)
    path = link_from_mail(smtp, "nora@team.example")
    client = app.test_client()
    html = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = client.post(path, data={"csrf_token": token, "password": password, "confirm": confirm})
    assert response.status_code == 422
    page = Html(response.get_data(as_text=True))
    assert error_for(page, field) == message
    # Nothing changed: the link still works, no password is set.
    assert client.get(path).status_code == 200
    assert login_answer(app, "nora@team.example", password)[0] in (400, 401)
    # Without the CSRF token: refused, nothing set.
    assert client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 400
    assert login_answer(app, "nora@team.example", NEW_PASSWORD)[0] == 401


INVITE_BAD = [
    ("first_name", "", "Bitte geben Sie den Vornamen ein."),
    ("first_name", "   ", "Bitte geben Sie den Vornamen ein."),
    ("last_name", None, "Bitte geben Sie den Nachnamen ein."),
    ("first_name", "N" * 101, "Höchstens 100 Zeichen."),
    ("last_name", "Neu\u202eueN", "Der Name enthält unsichtbare Steuerzeichen (z. B. eine Umkehr der "
                                 "Schreibrichtung). Bitte tippen Sie ihn neu ein."),
    ("first_name", "No\u200bra", "Der Name enthält unsichtbare Steuerzeichen (z. B. eine Umkehr der "
                                 "Schreibrichtung). Bitte tippen Sie ihn neu ein."),
    ("last_name", "Neu\x07", "Bitte nur Buchstaben, Leerzeichen, Bindestrich und Apostroph."),
    ("last_name", "<script>", "Bitte nur Buchstaben, Leerzeichen, Bindestrich und Apostroph."),
    ("email", "", "Bitte geben Sie die E-Mail-Adresse ein."),
    ("email", "nora@", "Bitte geben Sie eine gültige E-Mail-Adresse ein, z. B. name@beispiel.de."),
    ("email", "nora@team.example\r\nBcc: x@evil.example",
     "Bitte geben Sie eine gültige E-Mail-Adresse ein, z. B. name@beispiel.de."),
    ("email", "n" * 250 + "@team.example", "Die E-Mail-Adresse ist zu lang."),
    ("role", "chef", "Bitte wählen Sie eine Rolle."),
    ("role", "", "Bitte wählen Sie eine Rolle."),
    ("role", None, "Bitte wählen Sie eine Rolle."),
]


@pytest.mark.parametrize("field,value,message", INVITE_BAD)
def test_invite_bad_input(app, team, field, value, message):
    before = counts(app)
    response = team["admin"].post(KONTEN, data=invite_form(**{field: value}))
    assert response.status_code == 422
    page = Html(response.get_data(as_text=True))
    assert error_for(page, field) == message
    assert counts(app) == before


def test_an_address_in_use_anywhere_is_refused_beside_the_field(app, team, make_practice):
    _, other_email = make_practice("basis")
    for email in ("MFA@team.example", other_email, f" {other_email.upper()} "):
        before = counts(app)
        response = team["admin"].post(KONTEN, data=invite_form(email=email))
        assert response.status_code == 409
        page = Html(response.get_data(as_text=True))
        assert error_for(page, "email") == "Mit dieser E-Mail-Adresse gibt es schon ein Konto."
        assert counts(app) == before


def test_inviting_without_csrf_token_is_refused(app, team):
    before = counts(app)
    response = team["admin"].client.post(KONTEN, data=invite_form(), headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert counts(app) == before


# -- deactivate, reactivate, role, reset -------------------------------------------------

def test_deactivated_account_is_logged_out_and_cannot_log_in(app, team):
    arzt_id = team["ids"]["arzt"]
    doctor = logged_in(app, "aerztin@team.example")
    response = team["admin"].post(f"{KONTEN}/{arzt_id}/deaktivieren")
    assert response.status_code == 200
    assert "deaktiviert" in response.get_data(as_text=True)
    assert f'id="account-{arzt_id}"' in response.get_data(as_text=True)
    assert sessions_of(app, arzt_id) == 0 and not is_in(doctor)
    # Right or wrong password: the same German answer.
    right, wrong = login_answer(app, "aerztin@team.example", PASSWORD), login_answer(app, "aerztin@team.example", "falsch-1234")
    assert right[0] == wrong[0] == 403
    assert DEACTIVATED in right[1] and DEACTIVATED in wrong[1]
    assert WRONG not in right[1] + wrong[1]
    # A second deactivation changes nothing; reactivating lets the account in again.
    before = counts(app)
    assert team["admin"].post(f"{KONTEN}/{arzt_id}/deaktivieren").status_code == 200
    assert counts(app) == before
    assert team["admin"].post(f"{KONTEN}/{arzt_id}/aktivieren").status_code == 200
    assert is_in(logged_in(app, "aerztin@team.example"))
    with app.app_context():
        actions = [(e.action, e.object_id) for e in audit.entries(team["ids"]["practice"])]
    assert ("account.deactivate", arzt_id) in actions and ("account.reactivate", arzt_id) in actions


def test_the_last_active_admin_cannot_deactivate_or_demote_themselves(app, team):
    admin_id = team["ids"]["admin"]
    before = counts(app), staff_row(app, admin_id)
    for path, data in ((f"{KONTEN}/{admin_id}/deaktivieren", {}), (f"{KONTEN}/{admin_id}/rolle", {"role": DOCTOR})):
        response = team["admin"].post(path, data=data)
        assert response.status_code == 409
        html = response.get_data(as_text=True)
        assert LAST_ADMIN in html and f'id="account-{admin_id}-error"' in html
    assert (counts(app), staff_row(app, admin_id)) == before and is_in(team["admin"])
    # With a second active admin it is allowed.
    assert team["admin"].post(f"{KONTEN}/{team['ids']['arzt']}/rolle", data={"role": ADMIN}).status_code == 200
    assert team["admin"].post(f"{KONTEN}/{admin_id}/rolle", data={"role": DOCTOR}).status_code == 200
    assert staff_row(app, admin_id)["role"] == DOCTOR
    assert not is_in(team["admin"])  # the own role change ended the own login too


def test_a_role_change_ends_the_sessions_and_takes_effect(app, team, make_call):
    arzt_id = team["ids"]["arzt"]
    doctor = logged_in(app, "aerztin@team.example")
    response = team["admin"].post(f"{KONTEN}/{arzt_id}/rolle", data={"role": MFA})
    assert response.status_code == 200 and staff_row(app, arzt_id)["role"] == MFA
    assert sessions_of(app, arzt_id) == 0 and not is_in(doctor)
    assert logged_in(app, "aerztin@team.example").get(KONTEN).status_code == 403
    with app.app_context():
        actions = [(e.action, e.actor_id, e.object_id) for e in audit.entries(team["ids"]["practice"])]
    assert ("account.role", team["ids"]["admin"], arzt_id) in actions


def test_a_password_reset_sends_a_new_link_and_ends_the_sessions(app, team, smtp):
    mfa_id = team["ids"]["mfa"]
    mfa = logged_in(app, "mfa@team.example")
    response = team["admin"].post(f"{KONTEN}/{mfa_id}/passwort")
    assert response.status_code == 200
    assert not is_in(mfa) and login_answer(app, "mfa@team.example", PASSWORD)[0] == 401
    deliver(app)
    first = link_from_mail(smtp, "mfa@team.example")
    # A second reset: only the newest link works.
    team["admin"].post(f"{KONTEN}/{mfa_id}/passwort")
    deliver(app)
    second = link_from_mail(smtp, "mfa@team.example", count=2)
    client = app.test_client()
    assert client.get(first).status_code == 404 and client.get(second).status_code == 200
    with app.app_context():
        actions = [(e.action, e.object_id) for e in audit.entries(team["ids"]["practice"])]
    assert actions.count(("account.password_reset", mfa_id)) == 2


ROW_BAD = [
    ("rolle", {"role": "chef"}, 422, "Bitte wählen Sie eine Rolle."),
    ("rolle", {"role": ""}, 422, "Bitte wählen Sie eine Rolle."),
    ("rolle", {}, 422, "Bitte wählen Sie eine Rolle."),
]


@pytest.mark.parametrize("action,data,status,message", ROW_BAD)
def test_row_bad_input(app, team, action, data, status, message):
    mfa_id = team["ids"]["mfa"]
    before = counts(app), staff_row(app, mfa_id)
    response = team["admin"].post(f"{KONTEN}/{mfa_id}/{action}", data=data)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert message in html and f'aria-describedby="account-{mfa_id}-error"' in html
    assert (counts(app), staff_row(app, mfa_id)) == before


@pytest.mark.parametrize("action,data", [("rolle", {"role": DOCTOR}), ("passwort", {})])
def test_a_deactivated_account_gets_no_role_and_no_link(app, team, action, data):
    mfa_id = team["ids"]["mfa"]
    team["admin"].post(f"{KONTEN}/{mfa_id}/deaktivieren")
    before = counts(app), staff_row(app, mfa_id)
    response = team["admin"].post(f"{KONTEN}/{mfa_id}/{action}", data=data)
    assert response.status_code == 409
    assert "Dieses Konto ist deaktiviert. Aktivieren Sie es zuerst wieder." in response.get_data(as_text=True)
    assert (counts(app), staff_row(app, mfa_id)) == before


def test_a_link_dies_with_the_deactivation(app, team, smtp):
    team["admin"].post(KONTEN, data=invite_form())
    deliver(app)
    path = link_from_mail(smtp, "nora@team.example")
    with app.app_context():
        nora_id = db.session.execute(db.select(Staff.id).filter_by(email="nora@team.example")).scalar_one()
    team["admin"].post(f"{KONTEN}/{nora_id}/deaktivieren")
    assert app.test_client().get(path).status_code == 404


@pytest.mark.parametrize("action", ["rolle", "deaktivieren", "aktivieren", "passwort"])
def test_row_actions_need_the_csrf_token(app, team, action):
    mfa_id = team["ids"]["mfa"]
    before = counts(app), staff_row(app, mfa_id)
    response = team["admin"].client.post(f"{KONTEN}/{mfa_id}/{action}", data={"role": DOCTOR},
                                         headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert (counts(app), staff_row(app, mfa_id)) == before


def test_the_audit_log_names_no_person(app, team):
    team["admin"].post(KONTEN, data=invite_form())
    mfa_id = team["ids"]["mfa"]
    for path, data in (("rolle", {"role": DOCTOR}), ("passwort", {}), ("deaktivieren", {}), ("aktivieren", {})):
        assert team["admin"].post(f"{KONTEN}/{mfa_id}/{path}", data=data).status_code == 200
    with app.app_context():
        rows = db.session.execute(db.select(audit.AuditEntry)).scalars().all()
        dump = " ".join(str(vars(r)) for r in rows)
    assert {r.action for r in rows} >= {"account.invite", "account.role", "account.password_reset",
                                         "account.deactivate", "account.reactivate"}
    assert "@" not in dump and "Nora" not in dump and "Mia" not in dump
    page = team["admin"].get("/praxis/protokoll", htmx=False).get_data(as_text=True)
    assert "Konto deaktiviert" in page and "Rolle eines Kontos geändert" in page


# -- open sockets close at once ----------------------------------------------------------

# Far beyond the test's time: only the news through the hub can close the sockets.
SLOW_CHECKS = {"SESSION_CHECK_SECONDS": 3600}


@pytest.mark.parametrize("change", ["deaktivieren", "rolle"])
@pytest.mark.parametrize("config_overrides", [SLOW_CHECKS], indirect=True)
def test_deactivation_and_role_change_close_open_sockets_at_once(app, make_call, change):
    call = make_call()
    with app.app_context():
        practice = db.session.get(Practice, call.practice_id)
        add_staff(practice, "zweite@praxis.example", "Zweite Admin", PASSWORD, ADMIN)
        staff_id = db.session.execute(db.select(Staff.id).filter_by(email=call.staff_email)).scalar_one()
    other_admin = logged_in(app, "zweite@praxis.example")
    staff, patient = call.accepted()
    board = call.live.connect("/ws/praxis", call.staff_client, label="board")
    assert board.take("welcome") == {"type": "welcome"}
    # Another admin's open call page stays.
    colleague = call.live.connect(f"/ws/anruf/{call.id}", other_admin.client, label="colleague")
    colleague.take("welcome")

    started = time.monotonic()
    response = other_admin.post(f"{KONTEN}/{staff_id}/{change}", data={"role": MFA})
    assert response.status_code == 200
    assert staff.expect("error")["code"] == "logged-out"
    assert staff.closed_with() == 1008
    with pytest.raises(Closed) as closed:
        board.take("never")
    assert closed.value.code == 1008
    assert time.monotonic() - started < 5
    colleague.send({"type": "ping"})
    assert colleague.expect("pong") == {"type": "pong"}


def test_deactivating_and_resetting_ask_first_and_say_what_follows(app, team):
    page = Html(team["admin"].get(KONTEN, htmx=False).get_data(as_text=True))
    account = page.by_id(f"account-{team['ids']['mfa']}")
    forms = {form["attrs"]["action"].rsplit("/", 1)[-1]: form["attrs"].get("hx-confirm")
             for form in page.find_all("form") if f"/{team['ids']['mfa']}/" in form["attrs"].get("action", "")}
    assert "Mia MFA" in account["text"]
    assert forms["passwort"] == (
        "Passwort von Mia MFA zurücksetzen? Das bisherige Passwort gilt dann nicht mehr, alle Anmeldungen "
        "des Kontos enden, und Mia MFA bekommt per E-Mail einen Link für ein neues.")
    assert forms["deaktivieren"] == ("Mia MFA deaktivieren? Alle Anmeldungen des Kontos enden sofort; "
                                     "wieder aktivieren ist jederzeit möglich.")
