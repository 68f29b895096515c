"""`flask doctor` against real parts: coturn from Debian running deploy/turnserver.conf
on loopback, a media relay process, an SMTP server with login (aiosmtpd), Redis, the
Vonage stand-in's account API, SQLite and PostgreSQL. A ready configuration passes
with exit code 0; each broken part gives its failing line with the fix, exit code 1.

Without coturn these tests skip with the reason; CI sets REQUIRE_COTURN=1.
"""
import base64

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import text

from app import create_app
from app.extensions import db
from config import BASE_DIR
from tests.support.deploy import coturn_fixture
from tests.support.fakes import SmtpServer, VonageStandIn, _Handler, _VonageHandler
from tests.support.machine import REDIS_URL, need_redis
from tests.support.ports import free_port
from tests.support.relay import RelayProcess
from tests.support.webapp import make_config

TURN_SECRET = "coturn-test-secret-" + "7" * 16
RELAY_SECRET = "doctor-relay-secret-0123456789"


class AuthSmtp(SmtpServer):
    """The tests' SMTP server, with a login (AUTH PLAIN/LOGIN, no TLS on loopback)."""

    def __init__(self, user, password):
        super().__init__()

        def authenticator(server, session, envelope, mechanism, auth_data):
            good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                user.encode(), password.encode())
            return AuthResult(success=good, handled=False)

        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      authenticator=authenticator, auth_require_tls=False)


class _AccountHandler(_VonageHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        stand_in = self.server.stand_in
        if self.path.split("?")[0] != "/account/get-balance":
            self._answer(404, {"title": "Not found"})
            return
        key, secret = None, None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if (key, secret) != (stand_in.api_key, stand_in.api_secret):
            self._answer(401, {"type": "https://developer.nexmo.com/api-errors#unauthorized",
                               "title": "Unauthorized", "detail": "You did not provide correct credentials."})
            return
        self._answer(200, {"value": 12.3456, "autoReload": False})


class VonageAccount(VonageStandIn):
    """The Vonage stand-in that also answers the account API (GET /account/get-balance)."""

    def start(self):
        import threading
        from http.server import ThreadingHTTPServer

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _AccountHandler)
        httpd.daemon_threads = True
        httpd.socket = self._context.wrap_socket(httpd.socket, server_side=True)
        httpd.stand_in = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self


coturn = coturn_fixture(TURN_SECRET)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    process = RelayProcess(tmp_path_factory.mktemp("relay") / "relay.log", secret=RELAY_SECRET.encode(),
                           udp_start=45600, udp_size=10).start()
    yield process.url
    process.stop()


@pytest.fixture(scope="module")
def smtp_login():
    server = AuthSmtp("termine@praxis-beispiel.de", "richtiges-passwort").start()
    yield server
    server.stop()


@pytest.fixture
def vonage_account(monkeypatch):
    server = VonageAccount(api_key="key123", api_secret="secret456").start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
    yield server
    server.close()


@pytest.fixture(scope="module")
def redis_url():
    need_redis()
    return REDIS_URL


@pytest.fixture
def ready(coturn, relay, smtp_login, vonage_account, redis_url, monkeypatch):
    """The settings of a ready installation, as deploy/install.sh writes them (plus SMTP
    and Vonage), pointing at the real parts on loopback."""
    # Settings of the relay process, which the doctor reads from the environment.
    monkeypatch.setenv("RELAY_BIND_IP", "203.0.113.10")
    return {
        "ENV_NAME": "production",
        "PUBLIC_BASE_URL": "https://video.praxis-beispiel.de",
        "SECRET_KEY": "s" * 64,
        "RELAY_SECRET": RELAY_SECRET,
        "RELAY_URL": relay,
        "TURN_SECRET": TURN_SECRET,
        "TURN_URLS": f"{coturn.url('udp')},{coturn.url('tcp')}",
        "ICE_STUN_URLS": f"stun:127.0.0.1:{coturn.port}",
        "HUB_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp_login.port,
        "MAIL_USERNAME": "termine@praxis-beispiel.de",
        "MAIL_PASSWORD": "richtiges-passwort",
        "MAIL_DEFAULT_SENDER": "Praxis Dr. Muster <termine@praxis-beispiel.de>",
        "VONAGE_API_KEY": "key123",
        "VONAGE_API_SECRET": "secret456",
        "VONAGE_REST_HOST": vonage_account.rest_host,
    }


def migrated_app(tmp_path, database_url, settings, migrated=True):
    """The app on a database at the migrations' head (as `flask db upgrade` leaves it)."""
    from alembic.script import ScriptDirectory

    app = create_app(make_config(tmp_path, database_url, **settings))
    with app.app_context():
        db.drop_all()
        db.create_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            if migrated:
                head = ScriptDirectory(str(BASE_DIR / "migrations")).get_current_head()
                connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
                connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})
    return app


@pytest.fixture
def doctor(tmp_path, database_url):
    apps = []

    def run(settings, *args, migrated=True):
        app = migrated_app(tmp_path, database_url, settings, migrated)
        apps.append(app)
        result = app.test_cli_runner().invoke(args=["doctor", *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, result.output

    yield run
    for app in apps:
        with app.app_context():
            db.session.remove()
            with db.engine.begin() as connection:
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            db.drop_all()
            db.engine.dispose()


def failing(output, lang="de"):
    mark = "[FEHLER]" if lang == "de" else "[FAIL]"
    return [line for line in output.splitlines() if line.startswith(mark)]


def fix_after(output, start):
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if start in line)
    return lines[index + 1].strip()


def test_a_ready_installation_passes(doctor, ready, coturn):
    code, output = doctor(ready, "--lang", "de")
    assert code == 0, output
    assert not failing(output), output
    assert output.splitlines()[-1] == "Alles bereit."
    for expected in ("PUBLIC_BASE_URL ist https: https://video.praxis-beispiel.de",
                     "SECRET_KEY gesetzt", "RELAY_SECRET gesetzt", "TURN_SECRET gesetzt",
                     "Datenbank erreichbar", "Datenbank auf dem Stand der Migrationen",
                     "HUB_URL: Redis antwortet", "RATELIMIT_STORAGE_URI: Redis antwortet",
                     "SMTP-Anmeldung bei 127.0.0.1", "Vonage nimmt die Zugangsdaten an (Guthaben 12.35 €)",
                     "Medienserver antwortet (0 von 8 Gruppenanrufen belegt)",
                     f"stun:127.0.0.1:{coturn.port}: STUN antwortet",
                     f"{coturn.url('udp')}: STUN antwortet, TURN vergibt mit ausgestellten Zugangsdaten ein Relay",
                     f"{coturn.url('tcp')}: STUN antwortet, TURN vergibt"):
        assert any(line.startswith("[ OK ]") and expected in line for line in output.splitlines()), (expected, output)

    code, english = doctor(ready, "--lang", "en")
    assert code == 0 and english.splitlines()[-1] == "All set.", english
    assert "TURN allocates a relay with issued credentials" in english


def test_wrong_smtp_password_fails_with_the_fix(doctor, ready, smtp_login):
    code, output = doctor({**ready, "MAIL_PASSWORD": "falsches-passwort"}, "--lang", "de")
    assert code == 1
    (line,) = failing(output)
    assert line.startswith(f"[FEHLER] SMTP-Anmeldung bei 127.0.0.1:{smtp_login.port} als "
                           f"termine@praxis-beispiel.de abgelehnt: 535"), line
    assert fix_after(output, "SMTP-Anmeldung").startswith(
        "→ Lösung: MAIL_USERNAME und MAIL_PASSWORD in /etc/sprechzimmer/env prüfen")
    assert output.splitlines()[-1] == "1 Punkt(e) offen."

    code, english = doctor({**ready, "MAIL_PASSWORD": "falsches-passwort"}, "--lang", "en")
    assert code == 1
    assert failing(english, "en")[0].startswith("[FAIL] SMTP login at 127.0.0.1")
    assert fix_after(english, "SMTP login").startswith("→ fix: check MAIL_USERNAME and MAIL_PASSWORD")


def test_http_public_base_url_fails_with_the_fix(doctor, ready):
    code, output = doctor({**ready, "PUBLIC_BASE_URL": "http://video.praxis-beispiel.de"}, "--lang", "de")
    assert code == 1
    (line,) = failing(output)
    assert line.startswith("[FEHLER] PUBLIC_BASE_URL ist nicht https mit einer Domain: http://video.praxis-beispiel.de")
    assert fix_after(output, "PUBLIC_BASE_URL ist nicht https").startswith(
        "→ Lösung: PUBLIC_BASE_URL=https://<Ihre Domain> in /etc/sprechzimmer/env eintragen")


def test_wrong_turn_secret_fails_with_the_fix(doctor, ready, coturn):
    code, output = doctor({**ready, "TURN_SECRET": "nicht-das-secret-von-coturn"}, "--lang", "de")
    assert code == 1
    lines = failing(output)
    assert lines == [f"[FEHLER] {coturn.url('udp')}: TURN lehnt die ausgestellten Zugangsdaten ab (401)",
                     f"[FEHLER] {coturn.url('tcp')}: TURN lehnt die ausgestellten Zugangsdaten ab (401)"], output
    assert "static-auth-secret in /etc/turnserver.conf müssen gleich sein" in fix_after(output, coturn.url("udp"))
    # STUN itself still answers: the line says it is the credentials.
    assert f"[ OK ]   stun:127.0.0.1:{coturn.port}: STUN antwortet" in output


def test_every_broken_part_has_its_line_and_fix(doctor, ready, coturn, monkeypatch):
    closed = free_port()
    monkeypatch.setenv("RELAY_BIND_IP", "127.0.0.1")
    broken = {**ready,
              "ENV_NAME": "development",
              "SECRET_KEY": "kurz",
              "RELAY_URL": f"http://127.0.0.1:{closed}",
              "HUB_URL": f"redis://127.0.0.1:{closed}/0",
              "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": closed,
              "VONAGE_API_SECRET": "falsch",
              "TURN_URLS": f"turn:127.0.0.1:{closed}?transport=tcp"}
    code, output = doctor(broken, "--lang", "de", migrated=False)
    assert code == 1
    expected = [
        "[FEHLER] SPRECHZIMMER_ENV ist 'development', nicht production",
        "[FEHLER] SECRET_KEY ist kürzer als 32 Zeichen",
        "[FEHLER] Datenbank nicht migriert",
        f"[FEHLER] HUB_URL: Redis antwortet nicht (redis://127.0.0.1:{closed}/0)",
        f"[FEHLER] SMTP-Server 127.0.0.1:{closed} nicht erreichbar",
        "[FEHLER] Vonage lehnt die Zugangsdaten ab",
        f"[FEHLER] Medienserver (Relay) antwortet nicht unter http://127.0.0.1:{closed}",
        f"[FEHLER] turn:127.0.0.1:{closed}?transport=tcp: keine Antwort",
    ]
    lines = failing(output)
    assert len(lines) == len(expected), output
    for want, line in zip(expected, lines, strict=True):
        assert line.startswith(want), (want, line)
        assert fix_after(output, line).startswith("→ Lösung: "), line
    assert "sprechzimmer db upgrade" in fix_after(output, "Datenbank nicht migriert")
    assert "systemctl status sprechzimmer-relay" in fix_after(output, "Medienserver (Relay)")
    assert "systemctl status coturn" in fix_after(output, "keine Antwort")
    # Not in production, a relay on loopback is no failure (development on one machine).
    assert "Medienserver nur auf 127.0.0.1" not in output

    code, output = doctor({**ready, "RELAY_SECRET": "ein-anderes-relay-secret"}, "--lang", "de")
    assert failing(output) == ["[FEHLER] Medienserver lehnt die Signatur ab: RELAY_SECRET von Web-App und Relay "
                               "verschieden"], output


def test_production_relay_on_loopback_and_missing_parts(doctor, ready, monkeypatch):
    monkeypatch.setenv("RELAY_BIND_IP", "127.0.0.1")
    settings = {**ready, "MAIL_SERVER": None, "TURN_URLS": "", "VONAGE_API_KEY": None,
                "MAIL_DEFAULT_SENDER": "Sprechzimmer <no-reply@sprechzimmer.local>"}
    code, output = doctor(settings, "--lang", "en")
    assert code == 1
    assert failing(output, "en") == [
        "[FAIL] SMTP not set up: invitations only land as files in OUTBOX_DIR",
        "[FAIL] media relay on 127.0.0.1 only: browsers on other machines cannot reach it",
        "[FAIL] no TURN server (TURN_URLS): calls from mobile and company networks often fail",
    ], output
    assert "[ -- ] SMS (Vonage) not set up: optional" in output
    assert "open UDP 40000-40999 in the firewall" in fix_after(output, "media relay on 127.0.0.1 only")


def test_relay_only_ice_needs_turn(doctor, ready):
    code, output = doctor({**ready, "ICE_TRANSPORT_POLICY": "relay"}, "--lang", "de")
    assert code == 0, output
    assert ("[ OK ]   ICE_TRANSPORT_POLICY=relay: alle Anrufe laufen über TURN, keine Seite erfährt die IP-Adresse "
            "der anderen") in output

    code, output = doctor({**ready, "ICE_TRANSPORT_POLICY": "relay", "TURN_URLS": "", "TURN_SECRET": ""}, "--lang", "en")
    assert code == 1
    assert "[FAIL] ICE_TRANSPORT_POLICY=relay without TURN (TURN_URLS, TURN_SECRET): no call can connect" in failing(
        output, "en"), output
    assert fix_after(output, "ICE_TRANSPORT_POLICY=relay without TURN").startswith(
        "→ fix: set TURN_URLS and TURN_SECRET in /etc/sprechzimmer/env")

    # The default names what it gives away, without failing.
    code, output = doctor(ready, "--lang", "en")
    assert "[ -- ] ICE_TRANSPORT_POLICY=all: browsers connect directly where they can" in output


def test_every_relay_of_relay_urls_gets_its_line(doctor, ready, relay):
    closed = f"http://127.0.0.1:{free_port()}"
    code, output = doctor({**ready, "RELAY_URLS": f"{relay},{closed}"}, "--lang", "de")
    assert code == 1
    assert f"[ OK ]   Medienserver {relay} antwortet (0 von 8 Gruppenanrufen belegt)" in output, output
    assert failing(output) == [f"[FEHLER] Medienserver (Relay) antwortet nicht unter {closed}: ConnectionRefusedError"]
