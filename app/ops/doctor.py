"""`flask doctor`: is this installation ready for patients? One line per check, in
German or English, and for every failing line what to do about it.

Every check talks to the real thing (database, Redis, SMTP, Vonage, the media relay,
TURN) with short timeouts; nothing is changed anywhere, except that a TURN allocation
is made and released at once.
"""

import http.client
import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import AuthenticationError, ForbiddenError

from app.consultation.ice import ice_servers
from app.consultation.relay import relay_urls
from app.extensions import db
from app.ops import turn
from config import BASE_DIR
from media_relay.client import RelayClient, RelayRefused

OK, FAIL, SKIP = "ok", "fail", "skip"
TIMEOUT = 5


@dataclass
class Line:
    status: str
    de: str
    en: str
    fix_de: str = ""
    fix_en: str = ""

    def text(self, lang):
        return self.de if lang == "de" else self.en

    def fix(self, lang):
        return self.fix_de if lang == "de" else self.fix_en


def ok(de, en):
    return Line(OK, de, en)


def skip(de, en):
    return Line(SKIP, de, en)


def fail(de, en, fix_de, fix_en):
    return Line(FAIL, de, en, fix_de, fix_en)


class Checks:
    """The checks, in the order they are printed. `env_file` names where the settings
    live, for the fixes ("set X in /etc/sprechzimmer/env")."""

    def __init__(self, app, env_file):
        self.app = app
        self.cfg = app.config
        self.env = env_file
        self.restart = "systemctl restart sprechzimmer.target"

    def run(self):
        lines = []
        for check in (
            self.public_base_url,
            self.production,
            self.secrets,
            self.database,
            self.redis,
            self.smtp,
            self.vonage,
            self.relay,
            self.turn,
            self.ice_policy,
        ):
            try:
                lines.extend(check())
            except Exception as exc:  # noqa: BLE001 - a broken check is a failing line, not a traceback
                lines.append(
                    fail(
                        f"Prüfung {check.__name__} brach ab: {type(exc).__name__}: {exc}",
                        f"check {check.__name__} crashed: {type(exc).__name__}: {exc}",
                        "Bitte melden Sie das mit dieser Ausgabe.",
                        "Please report this with this output.",
                    )
                )
        return lines

    # -- settings ------------------------------------------------------------------

    def public_base_url(self):
        url = self.cfg["PUBLIC_BASE_URL"]
        parts = urlsplit(url)
        if (
            parts.scheme == "https"
            and parts.hostname
            and parts.hostname not in ("localhost", "127.0.0.1")
        ):
            return [ok(f"PUBLIC_BASE_URL ist https: {url}", f"PUBLIC_BASE_URL is https: {url}")]
        return [
            fail(
                f"PUBLIC_BASE_URL ist nicht https mit einer Domain: {url} (Browser geben Kamera "
                f"und "
                f"Mikrofon nur "
                f"https-Seiten, und die Links der Patienten zeigen hierhin)",
                f"PUBLIC_BASE_URL is not https with a domain: {url} (browsers give camera and "
                f"microphone to "
                f"https pages only, and the patients' links point here)",
                f"PUBLIC_BASE_URL=https://<Ihre Domain> in {self.env} eintragen (Caddy aus "
                f"deploy/Caddyfile "
                f"stellt HTTPS bereit), dann: {self.restart}",
                f"set PUBLIC_BASE_URL=https://<your domain> in {self.env} (Caddy from "
                f"deploy/Caddyfile "
                f"provides HTTPS), then: {self.restart}",
            )
        ]

    def production(self):
        if self.cfg.get("ENV_NAME") == "production":
            return [
                ok(
                    "SPRECHZIMMER_ENV=production (sichere Cookies, Geheimnisse Pflicht)",
                    "SPRECHZIMMER_ENV=production (secure cookies, secrets required)",
                )
            ]
        return [
            fail(
                f"SPRECHZIMMER_ENV ist {self.cfg.get('ENV_NAME')!r}, nicht production",
                f"SPRECHZIMMER_ENV is {self.cfg.get('ENV_NAME')!r}, not production",
                f"SPRECHZIMMER_ENV=production in {self.env} eintragen, dann: {self.restart}",
                f"set SPRECHZIMMER_ENV=production in {self.env}, then: {self.restart}",
            )
        ]

    def secrets(self):
        generate = "python3 -c 'import secrets; print(secrets.token_hex(32))'"
        wanted = [
            (
                "SECRET_KEY",
                self.cfg.get("SECRET_KEY"),
                32,
                "signiert die Sitzungen",
                "signs the sessions",
            ),
            (
                "RELAY_SECRET",
                self.cfg.get("RELAY_SECRET"),
                16,
                "signiert die Aufträge an den Medienserver",
                "signs the requests to the media relay",
            ),
        ]
        if self.cfg.get("TURN_URLS"):
            wanted.append(
                (
                    "TURN_SECRET",
                    self.cfg.get("TURN_SECRET"),
                    16,
                    "gibt zeitlich begrenzte TURN-Zugangsdaten aus",
                    "issues time-limited TURN credentials",
                )
            )
        lines = []
        for name, value, minimum, what_de, what_en in wanted:
            if value and len(value) >= minimum:
                lines.append(ok(f"{name} gesetzt ({what_de})", f"{name} set ({what_en})"))
            else:
                state_de = "fehlt" if not value else f"ist kürzer als {minimum} Zeichen"
                state_en = "is missing" if not value else f"is shorter than {minimum} characters"
                lines.append(
                    fail(
                        f"{name} {state_de} ({what_de})",
                        f"{name} {state_en} ({what_en})",
                        f"{name}=<Ausgabe von {generate}> in {self.env} eintragen, "
                        f"dann: {self.restart}",
                        f"set {name}=<output of {generate}> in {self.env}, then: {self.restart}",
                    )
                )
        return lines

    # -- storage -------------------------------------------------------------------

    def database(self):

        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are no news here

        url = db.engine.url
        where = url.render_as_string(hide_password=True)
        try:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                current = set(MigrationContext.configure(connection).get_current_heads())
        except Exception as exc:  # noqa: BLE001 - any driver error means: not reachable
            hint = "systemctl status postgresql; " if url.get_backend_name() == "postgresql" else ""
            return [
                fail(
                    f"Datenbank nicht erreichbar ({where}): {type(exc).__name__}",
                    f"database not reachable ({where}): {type(exc).__name__}",
                    f"{hint}DATABASE_URL in {self.env} prüfen",
                    f"{hint}check DATABASE_URL in {self.env}",
                )
            ]
        lines = [
            ok(
                f"Datenbank erreichbar ({url.get_backend_name()})",
                f"database reachable ({url.get_backend_name()})",
            )
        ]
        heads = set(ScriptDirectory(str(BASE_DIR / "migrations")).get_heads())
        if current == heads:
            lines.append(
                ok(
                    "Datenbank auf dem Stand der Migrationen",
                    "database migrated to the latest revision",
                )
            )
        else:
            lines.append(
                fail(
                    f"Datenbank nicht migriert (Stand "
                    f"{', '.join(sorted(current)) or 'leer'}, erwartet "
                    f"{', '.join(sorted(heads))})",
                    f"database not migrated (at {', '.join(sorted(current)) or 'none'}, "
                    f"expected {', '.join(sorted(heads))})",
                    "sprechzimmer db upgrade (oder deploy/install.sh erneut ausführen), "
                    "dann: " + self.restart,
                    "sprechzimmer db upgrade (or run deploy/install.sh again), then: "
                    + self.restart,
                )
            )
        return lines

    def redis(self):

        lines = []
        for name in ("HUB_URL", "RATELIMIT_STORAGE_URI"):
            url = self.cfg.get(name) or ""
            if not url.startswith(("redis://", "rediss://", "unix://")):
                lines.append(
                    skip(
                        f"{name}: ohne Redis ({url or 'leer'})",
                        f"{name}: without Redis ({url or 'empty'})",
                    )
                )
                continue
            shown = _without_password(url)
            try:
                client = redis.Redis.from_url(
                    url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
                )
                client.ping()
                client.close()
                lines.append(
                    ok(f"{name}: Redis antwortet ({shown})", f"{name}: Redis answers ({shown})")
                )
            except redis.RedisError as exc:
                lines.append(
                    fail(
                        f"{name}: Redis antwortet nicht ({shown}): {type(exc).__name__}",
                        f"{name}: Redis does not answer ({shown}): {type(exc).__name__}",
                        f"systemctl status redis-server; {name} in {self.env} prüfen",
                        f"systemctl status redis-server; check {name} in {self.env}",
                    )
                )
        return lines

    # -- delivery ------------------------------------------------------------------

    def smtp(self):
        cfg = self.cfg
        server, port = cfg.get("MAIL_SERVER"), cfg.get("MAIL_PORT")
        settings_de = (
            f"MAIL_SERVER, MAIL_PORT, MAIL_USE_TLS=true, MAIL_USERNAME, MAIL_PASSWORD "
            f"und "
            f"MAIL_DEFAULT_SENDER Ihres E-Mail-Anbieters in {self.env} eintragen, "
            f"dann: {self.restart}"
        )
        settings_en = (
            f"set MAIL_SERVER, MAIL_PORT, MAIL_USE_TLS=true, MAIL_USERNAME, "
            f"MAIL_PASSWORD and "
            f"MAIL_DEFAULT_SENDER of your mail provider in {self.env}, then: "
            f"{self.restart}"
        )
        if not server:
            return [
                fail(
                    "SMTP nicht eingerichtet: Einladungen landen nur als Datei in OUTBOX_DIR",
                    "SMTP not set up: invitations only land as files in OUTBOX_DIR",
                    settings_de,
                    settings_en,
                )
            ]
        where = f"{server}:{port}"
        user = cfg.get("MAIL_USERNAME")
        try:
            if cfg.get("MAIL_USE_SSL"):
                connection = smtplib.SMTP_SSL(
                    server, port, timeout=TIMEOUT, context=ssl.create_default_context()
                )
            else:
                connection = smtplib.SMTP(server, port, timeout=TIMEOUT)
            try:
                connection.ehlo()
                if cfg.get("MAIL_USE_TLS"):
                    connection.starttls(context=ssl.create_default_context())
                    connection.ehlo()
                if user:
                    connection.login(user, cfg.get("MAIL_PASSWORD") or "")
            finally:
                try:
                    connection.quit()
                except (smtplib.SMTPException, OSError):
                    connection.close()
        except smtplib.SMTPAuthenticationError as exc:
            text = exc.smtp_error
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            reply = f"{exc.smtp_code} {text}"
            return [
                fail(
                    f"SMTP-Anmeldung bei {where} als {user} abgelehnt: {reply}",
                    f"SMTP login at {where} as {user} refused: {reply}",
                    f"MAIL_USERNAME und MAIL_PASSWORD in {self.env} prüfen (beim Anbieter "
                    f"ggf. ein "
                    f"App-Passwort anlegen), dann: {self.restart}",
                    f"check MAIL_USERNAME and MAIL_PASSWORD in {self.env} (create an app "
                    f"password at the "
                    f"provider if it needs one), then: {self.restart}",
                )
            ]
        except smtplib.SMTPNotSupportedError:
            return [
                fail(
                    f"SMTP-Server {where} bietet keine Anmeldung an (ohne TLS?)",
                    f"SMTP server {where} offers no login (without TLS?)",
                    f"MAIL_USE_TLS=true und MAIL_PORT=587 (oder MAIL_USE_SSL=true, 465) in "
                    f"{self.env}",
                    f"MAIL_USE_TLS=true and MAIL_PORT=587 (or MAIL_USE_SSL=true, 465) in "
                    f"{self.env}",
                )
            ]
        except (smtplib.SMTPException, OSError) as exc:
            return [
                fail(
                    f"SMTP-Server {where} nicht erreichbar: {type(exc).__name__}: {exc}",
                    f"SMTP server {where} not reachable: {type(exc).__name__}: {exc}",
                    f"MAIL_SERVER und MAIL_PORT in {self.env} prüfen; ausgehende "
                    f"Verbindungen zu "
                    f"Port {port} dürfen nicht gesperrt sein",
                    f"check MAIL_SERVER and MAIL_PORT in {self.env}; outgoing connections to "
                    f"port {port} "
                    f"must not be blocked",
                )
            ]
        lines = [
            ok(
                f"SMTP-Anmeldung bei {where} gelingt"
                + (f" ({user})" if user else " (ohne Anmeldung)"),
                f"SMTP login at {where} works" + (f" ({user})" if user else " (no login)"),
            )
        ]
        sender = cfg.get("MAIL_DEFAULT_SENDER") or ""
        if sender.rstrip(">").endswith(".local"):
            lines.append(
                fail(
                    f"Absender {sender} ist keine echte Adresse: Einladungen werden "
                    f"abgewiesen oder "
                    f"landen im Spam",
                    f"sender {sender} is no real address: invitations bounce or land in spam",
                    f'MAIL_DEFAULT_SENDER="Praxis <termine@ihre-domain.de>" in {self.env}',
                    f'set MAIL_DEFAULT_SENDER="Practice '
                    f'<appointments@your-domain.de>" in {self.env}',
                )
            )
        return lines

    def vonage(self):
        cfg = self.cfg
        if not (cfg.get("VONAGE_API_KEY") and cfg.get("VONAGE_API_SECRET")):
            return [
                skip(
                    "SMS (Vonage) nicht eingerichtet: optional, für die Tarife Standard und "
                    "Premium",
                    "SMS (Vonage) not set up: optional, for the tariffs Standard and Premium",
                )
            ]

        options = {"timeout": TIMEOUT}
        if cfg.get("VONAGE_REST_HOST"):
            options["rest_host"] = cfg["VONAGE_REST_HOST"]
        client = Vonage(
            Auth(api_key=cfg["VONAGE_API_KEY"], api_secret=cfg["VONAGE_API_SECRET"]),
            HttpClientOptions(**options),
        )
        try:
            balance = client.account.get_balance()
        except (AuthenticationError, ForbiddenError) as exc:
            return [
                fail(
                    f"Vonage lehnt die Zugangsdaten ab ({type(exc).__name__})",
                    f"Vonage refuses the credentials ({type(exc).__name__})",
                    f"VONAGE_API_KEY und VONAGE_API_SECRET (Vonage-Dashboard, API settings) "
                    f"in {self.env} "
                    f"prüfen, dann: {self.restart}",
                    f"check VONAGE_API_KEY and VONAGE_API_SECRET (Vonage dashboard, API "
                    f"settings) in "
                    f"{self.env}, then: {self.restart}",
                )
            ]
        except Exception as exc:  # noqa: BLE001 - network errors come in several kinds
            return [
                fail(
                    f"Vonage nicht erreichbar: {type(exc).__name__}",
                    f"Vonage not reachable: {type(exc).__name__}",
                    "ausgehende HTTPS-Verbindungen zu rest.nexmo.com erlauben",
                    "allow outgoing HTTPS connections to rest.nexmo.com",
                )
            ]
        return [
            ok(
                f"Vonage nimmt die Zugangsdaten an (Guthaben {balance.value:.2f} €)",
                f"Vonage accepts the credentials (balance {balance.value:.2f} €)",
            )
        ]

    # -- calls ---------------------------------------------------------------------

    def relay(self):

        secret = self.cfg.get("RELAY_SECRET") or ""
        if not secret:
            return [
                fail(
                    "Medienserver: RELAY_SECRET fehlt, Gruppenanrufe gehen nicht",
                    "media relay: RELAY_SECRET missing, group calls cannot work",
                    f"RELAY_SECRET in {self.env} eintragen, dann: {self.restart}",
                    f"set RELAY_SECRET in {self.env}, then: {self.restart}",
                )
            ]
        urls = relay_urls(self.cfg)
        lines = []
        for url in urls:
            lines.extend(self._one_relay(url, secret, where=len(urls) > 1))
        # Where the relay binds is only worth a line once a relay answers.
        if any(line.status == OK for line in lines):
            lines.extend(self._relay_bind())
        return lines

    def _one_relay(self, url, secret, where):
        url = urlsplit(url)
        at = f" {url.geturl()}" if where else ""
        client = RelayClient(
            url.hostname or "127.0.0.1", url.port or 80, secret.encode(), timeout=TIMEOUT
        )
        try:
            status = client.status()
        except RelayRefused as exc:
            if exc.status == 401:
                return [
                    fail(
                        "Medienserver lehnt die Signatur ab: RELAY_SECRET von Web-App und "
                        "Relay verschieden",
                        "media relay refuses the signature: RELAY_SECRET differs between web "
                        "app and relay",
                        f"beide lesen {self.env}: {self.restart}",
                        f"both read {self.env}: {self.restart}",
                    )
                ]
            return [
                fail(
                    f"Medienserver antwortet mit {exc}",
                    f"media relay answers {exc}",
                    "journalctl -u sprechzimmer-relay",
                    "journalctl -u sprechzimmer-relay",
                )
            ]
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return [
                fail(
                    f"Medienserver (Relay) antwortet nicht unter {url.geturl()}: "
                    f"{type(exc).__name__}",
                    f"media relay does not answer at {url.geturl()}: {type(exc).__name__}",
                    "systemctl status sprechzimmer-relay; journalctl -u sprechzimmer-relay",
                    "systemctl status sprechzimmer-relay; journalctl -u sprechzimmer-relay",
                )
            ]
        return [
            ok(
                f"Medienserver{at} antwortet ({status.get('rooms')} von "
                f"{status.get('max_rooms')} "
                f"Gruppenanrufen belegt)",
                f"media relay{at} answers ({status.get('rooms')} of {status.get('max_rooms')} "
                f"group calls "
                f"in use)",
            )
        ]

    def _relay_bind(self):
        lines = []
        # The relay process's own settings: the same environment file, not the app's config.
        bind = [
            ip.strip()
            for ip in os.environ.get("RELAY_BIND_IP", "127.0.0.1").split(",")
            if ip.strip()
        ]
        if bind and not any(ip.startswith("127.") or ip == "::1" for ip in bind):
            lines.append(
                ok(
                    f"Medienserver für Browser erreichbar gebunden ({', '.join(bind)})",
                    f"media relay bound where browsers reach it ({', '.join(bind)})",
                )
            )
        elif self.cfg.get("ENV_NAME") == "production":
            lines.append(
                fail(
                    "Medienserver nur auf 127.0.0.1: Browser anderer Rechner erreichen ihn nicht",
                    "media relay on 127.0.0.1 only: browsers on other machines cannot reach it",
                    f"RELAY_BIND_IP=<Adresse des Servers> (und hinter NAT "
                    f"RELAY_PUBLIC_IP) in {self.env}, "
                    f"UDP {self._relay_ports()} in der Firewall öffnen",
                    f"set RELAY_BIND_IP=<the server's address> (behind NAT also "
                    f"RELAY_PUBLIC_IP) in "
                    f"{self.env}, open UDP {self._relay_ports()} in the firewall",
                )
            )
        return lines

    def _relay_ports(self):
        low = os.environ.get("RELAY_UDP_PORT_MIN", "40000")
        return f"{low}-{os.environ.get('RELAY_UDP_PORT_MAX', '40999')}"

    def turn(self):

        lines = []
        stun_urls = [
            u.strip() for u in (self.cfg.get("ICE_STUN_URLS") or "").split(",") if u.strip()
        ]
        turn_urls = [u.strip() for u in (self.cfg.get("TURN_URLS") or "").split(",") if u.strip()]
        if not turn_urls:
            return [
                fail(
                    "Kein TURN-Server (TURN_URLS): Anrufe aus Mobilfunk- und Firmennetzen "
                    "scheitern oft",
                    "no TURN server (TURN_URLS): calls from mobile and company networks often fail",
                    f"coturn mit deploy/turnserver.conf betreiben (deploy/install.sh richtet "
                    f"es ein) und "
                    f"TURN_URLS, TURN_SECRET in {self.env} eintragen",
                    f"run coturn with deploy/turnserver.conf (deploy/install.sh sets it up) "
                    f"and set "
                    f"TURN_URLS, TURN_SECRET in {self.env}",
                )
            ]
        for url in stun_urls:
            try:
                target = turn.parse_url(url)
                mapped = turn.binding(target, timeout=TIMEOUT)
                lines.append(
                    ok(
                        f"{url}: STUN antwortet (sieht uns als {mapped[0]})",
                        f"{url}: STUN answers (sees us as {mapped[0]})",
                    )
                )
            except (ValueError, OSError, turn.TurnError) as exc:
                lines.append(self._turn_down(url, exc))
        issued = [s for s in ice_servers(self.cfg, "doctor") if s.get("username")]
        if not issued:
            return lines + [
                fail(
                    "TURN_SECRET fehlt: die Web-App kann keine TURN-Zugangsdaten ausstellen",
                    "TURN_SECRET missing: the web app cannot issue TURN credentials",
                    f"TURN_SECRET in {self.env} = static-auth-secret in /etc/turnserver.conf",
                    f"TURN_SECRET in {self.env} = static-auth-secret in /etc/turnserver.conf",
                )
            ]
        username, password = issued[0]["username"], issued[0]["credential"]
        for url in turn_urls:
            try:
                target = turn.parse_url(url)
                turn.binding(target, timeout=TIMEOUT)
                relayed = turn.allocate(target, username, password, timeout=TIMEOUT)
            except turn.TurnError as exc:
                if exc.code == 401:
                    lines.append(
                        fail(
                            f"{url}: TURN lehnt die ausgestellten Zugangsdaten ab (401)",
                            f"{url}: TURN refuses the issued credentials (401)",
                            f"TURN_SECRET in {self.env} und static-auth-secret in "
                            f"/etc/turnserver.conf "
                            f"müssen gleich sein (deploy/install.sh setzt beide), dann: "
                            f"systemctl restart coturn; {self.restart}",
                            f"TURN_SECRET in {self.env} and static-auth-secret in "
                            f"/etc/turnserver.conf "
                            f"must be the same (deploy/install.sh sets both), then: "
                            f"systemctl restart coturn; {self.restart}",
                        )
                    )
                else:
                    lines.append(self._turn_down(url, exc))
                continue
            except (ValueError, OSError, ssl.SSLError) as exc:
                lines.append(self._turn_down(url, exc))
                continue
            lines.append(
                ok(
                    f"{url}: STUN antwortet, TURN vergibt mit ausgestellten Zugangsdaten "
                    f"ein Relay "
                    f"({relayed[0]}:{relayed[1]})",
                    f"{url}: STUN answers, TURN allocates a relay with issued credentials "
                    f"({relayed[0]}:{relayed[1]})",
                )
            )
        return lines

    def ice_policy(self):
        policy = self.cfg.get("ICE_TRANSPORT_POLICY", "all")
        if policy != "relay":
            return [
                skip(
                    f"ICE_TRANSPORT_POLICY={policy}: Browser verbinden sich direkt, wo es geht "
                    "(sie sehen dann die IP-Adresse der Gegenseite)",
                    f"ICE_TRANSPORT_POLICY={policy}: browsers connect directly where they can "
                    "(and then see the other side's IP address)",
                )
            ]
        if self.cfg.get("TURN_URLS") and self.cfg.get("TURN_SECRET"):
            return [
                ok(
                    "ICE_TRANSPORT_POLICY=relay: alle Anrufe laufen über TURN, keine Seite "
                    "erfährt die IP-Adresse der anderen",
                    "ICE_TRANSPORT_POLICY=relay: every call runs through TURN, no side learns "
                    "the other's IP address",
                )
            ]
        return [
            fail(
                "ICE_TRANSPORT_POLICY=relay ohne TURN (TURN_URLS, TURN_SECRET): so kommt "
                "kein Anruf zustande",
                "ICE_TRANSPORT_POLICY=relay without TURN (TURN_URLS, TURN_SECRET): no call "
                "can connect",
                f"TURN_URLS und TURN_SECRET in {self.env} eintragen (coturn aus "
                f"deploy/install.sh) oder ICE_TRANSPORT_POLICY=all setzen, dann: {self.restart}",
                f"set TURN_URLS and TURN_SECRET in {self.env} (coturn from deploy/install.sh) "
                f"or set ICE_TRANSPORT_POLICY=all, then: {self.restart}",
            )
        ]

    def _turn_down(self, url, exc):
        tls = url.startswith(("turns:", "stuns:"))
        extra_de = (
            " Für turns: braucht coturn das Zertifikat (systemctl start sprechzimmer-turn-cert)."
            if tls
            else ""
        )
        extra_en = (
            " For turns: coturn needs the certificate (systemctl start sprechzimmer-turn-cert)."
            if tls
            else ""
        )
        return fail(
            f"{url}: keine Antwort ({type(exc).__name__}: {exc})",
            f"{url}: no answer ({type(exc).__name__}: {exc})",
            "systemctl status coturn; Firewall: 3478 UDP/TCP, 5349 TCP und 49160-49999 "
            "UDP offen?" + extra_de,
            "systemctl status coturn; firewall: 3478 UDP/TCP, 5349 TCP and 49160-49999 "
            "UDP open?" + extra_en,
        )


def _without_password(url):
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@")).geturl()


def run_checks(app, env_file):
    return Checks(app, env_file).run()


MARKS = {
    "de": {OK: "[ OK ]", FAIL: "[FEHLER]", SKIP: "[ -- ]"},
    "en": {OK: "[ OK ]", FAIL: "[FAIL]", SKIP: "[ -- ]"},
}


def render(lines, lang, base_url):
    marks = MARKS[lang]
    width = max(len(mark) for mark in marks.values())
    head = {
        "de": f"Sprechzimmer – Prüfung der Installation ({base_url})",
        "en": f"Sprechzimmer – installation check ({base_url})",
    }[lang]
    out = [head]
    for line in lines:
        out.append(f"{marks[line.status]:<{width}} {line.text(lang)}")
        if line.status == FAIL:
            out.append(
                " " * (width + 1) + ("→ Lösung: " if lang == "de" else "→ fix: ") + line.fix(lang)
            )
    failed = sum(1 for line in lines if line.status == FAIL)
    if lang == "de":
        out.append("Alles bereit." if not failed else f"{failed} Punkt(e) offen.")
    else:
        out.append("All set." if not failed else f"{failed} item(s) to fix.")
    return "\n".join(out)
