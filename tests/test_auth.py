import pytest

from app.auth.models import Practice
from app.extensions import db


def test_login_page_is_german(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "Anmelden" in response.get_data(as_text=True)


def test_login_and_logout(auth, make_practice, client):
    _, email = make_practice()
    response = auth.login(email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/patienten"
    assert client.get("/patienten").status_code == 200
    auth.logout()
    response = client.get("/patienten")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("email, password", [
    ("nobody@example.org", "richtig-geheim-1"),  # unknown user
    ("staff1@praxis1.example", "falsch-falsch"),   # wrong password
    ("STAFF1@praxis1.example", "falsch-falsch"),
])
def test_login_failure_same_answer(auth, make_practice, email, password):
    make_practice()
    response = auth.login(email, password)
    assert response.status_code == 401
    assert "E-Mail-Adresse oder Passwort ist falsch." in response.get_data(as_text=True)


def test_login_email_is_case_insensitive(auth, make_practice):
    _, email = make_practice()
    assert auth.login(email.upper()).status_code == 302


def test_login_without_csrf_is_refused(client, make_practice):
    _, email = make_practice()
    response = client.post("/login", data={"email": email, "password": "richtig-geheim-1"})
    assert response.status_code == 400
    assert "Sitzung ist abgelaufen" in response.get_data(as_text=True)


def test_login_is_rate_limited(auth, make_practice):
    # Per client address: a new address each time, so the per-account lock
    # (tests/test_login_throttle.py) plays no part.
    make_practice()
    statuses = [auth.login(f"nobody{i}@example.org", "x" * 12).status_code for i in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


def test_open_redirect_is_ignored(auth, make_practice, client):
    _, email = make_practice()
    token = auth.csrf("/login")
    response = client.post("/login?next=//evil.example/x", data={"email": email, "password": "richtig-geheim-1", "csrf_token": token})
    assert response.headers["Location"] == "/patienten"


def test_passwords_are_argon2(app, make_practice):
    make_practice()
    with app.app_context():
        from app.auth.models import Staff

        staff = db.session.execute(db.select(Staff)).scalar_one()
        assert staff.password_hash.startswith("$argon2id$")


def test_security_headers(client):
    headers = client.get("/login").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_flags(auth, make_practice, client):
    _, email = make_practice()
    response = auth.login(email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_cli_creates_practice_and_changes_tariff(app, runner):
    result = runner.invoke(args=["practice", "create", "--name", "Praxis Nord", "--tariff", "standard",
                                 "--email", "Chef@nord.example", "--staff-name", "Dr. Nord",
                                 "--password", "sehr-geheim-1"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        practice = db.session.execute(db.select(Practice).filter_by(name="Praxis Nord")).scalar_one()
        assert practice.tariff == "standard"
        assert practice.timezone == "Europe/Berlin"
        practice_id = practice.id
    result = runner.invoke(args=["practice", "set-tariff", str(practice_id), "premium"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.get(Practice, practice_id).tariff == "premium"
    result = runner.invoke(args=["practice", "set-tariff", str(practice_id), "gold"])
    assert result.exit_code != 0


@pytest.mark.parametrize("option, value", [
    ("--name", "Praxis \u202eNord"),
    ("--name", "Praxis\u2060Nord"),
    ("--staff-name", "Dr. \u2067Nord"),
    ("--staff-name", "Dr.\u200b Nord"),
    ("--staff-name", "   "),
])
def test_cli_refuses_names_with_hidden_characters(app, runner, option, value):
    args = {"--name": "Praxis Nord", "--staff-name": "Dr. Nord", option: value}
    result = runner.invoke(args=["practice", "create", "--email", "chef@nord.example", "--password", "sehr-geheim-1",
                                 *[part for pair in args.items() for part in pair]])
    assert result.exit_code != 0
    assert "control characters" in result.output or "is empty" in result.output
    with app.app_context():
        assert db.session.execute(db.select(Practice)).first() is None


def test_cli_demo_is_idempotent(app, runner):
    for _ in range(2):
        result = runner.invoke(args=["practice", "demo"])
        assert result.exit_code == 0
        assert "demo@praxis.example" in result.output
    with app.app_context():
        practices = db.session.execute(db.select(Practice)).scalars().all()
        assert [p.tariff for p in practices] == ["premium"]


def test_production_without_secret_key_fails(tmp_path):
    import subprocess
    import sys

    env = {"SPRECHZIMMER_ENV": "production", "PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], env=env, capture_output=True, text=True,
                            cwd=str(__import__("config").BASE_DIR))
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_htmx_request_after_logout_redirects_whole_page(client):
    response = client.get("/patienten/liste", headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/patienten"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/patienten"
    assert response.get_data(as_text=True) == ""
