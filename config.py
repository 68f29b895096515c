"""Settings from the environment, with safe development defaults.

Production (``FLASK_ENV``/``SPRECHZIMMER_ENV`` = production) refuses to start
without SECRET_KEY instead of signing sessions with a guessable constant.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


# KBV Anlage 31b: a Videosprechstunde's metadata goes at most three months after the
# appointment (92 days: the longest three months of a year).
RETENTION_MAX_DAYS = 92


class Config:
    ENV_NAME = os.environ.get("SPRECHZIMMER_ENV", "development")
    SECRET_KEY = os.environ.get("SECRET_KEY")

    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'sprechzimmer.db'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    # Links in e-mails and SMS point here.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://localhost:5000")

    MAIL_SERVER = os.environ.get("MAIL_SERVER")  # unset: write .eml files instead
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_USE_TLS = _bool("MAIL_USE_TLS")
    MAIL_USE_SSL = _bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get(
        "MAIL_DEFAULT_SENDER", "Sprechzimmer <no-reply@sprechzimmer.local>"
    )
    MAIL_TIMEOUT = _int("MAIL_TIMEOUT", 15)
    OUTBOX_DIR = os.environ.get("OUTBOX_DIR", str(BASE_DIR / "instance" / "outbox"))

    VONAGE_API_KEY = os.environ.get("VONAGE_API_KEY")
    VONAGE_API_SECRET = os.environ.get("VONAGE_API_SECRET")
    VONAGE_SMS_FROM = os.environ.get("VONAGE_SMS_FROM", "Praxis")
    # Only for the local stand-in in tests; production uses the SDK's defaults.
    VONAGE_REST_HOST = os.environ.get("VONAGE_REST_HOST")

    # The sender retries temporary failures with exponential backoff.
    OUTBOX_MAX_ATTEMPTS = _int("OUTBOX_MAX_ATTEMPTS", 8)
    OUTBOX_BACKOFF_SECONDS = _int("OUTBOX_BACKOFF_SECONDS", 30)
    OUTBOX_POLL_SECONDS = float(os.environ.get("OUTBOX_POLL_SECONDS", "1"))
    # How long a sender holds the message it is sending (renewed while it sends): a
    # crashed sender's message goes out again after at most this long.
    OUTBOX_LEASE_SECONDS = float(os.environ.get("OUTBOX_LEASE_SECONDS", "30"))
    # How often the sender looks for reminders that are due (issue 11).
    OUTBOX_REMINDER_SECONDS = float(os.environ.get("OUTBOX_REMINDER_SECONDS", "30"))

    # How long a patient's link stays valid after the appointment.
    LINK_VALID_DAYS_AFTER = _int("LINK_VALID_DAYS_AFTER", 90)
    # Days after an appointment until it is deleted with everything about it (contact,
    # participants, chat, delivery rows): KBV Anlage 31b allows at most three months,
    # so a longer value stops the start (app/ops/retention.py, `flask retention purge`).
    RETENTION_DAYS = _int("RETENTION_DAYS", 90)

    # WebRTC (docs/signalling.md): STUN and TURN URLs comma separated; TURN credentials
    # follow coturn's use-auth-secret scheme and expire after TURN_TTL_SECONDS.
    ICE_STUN_URLS = os.environ.get("ICE_STUN_URLS", "")
    TURN_URLS = os.environ.get("TURN_URLS", "")
    TURN_SECRET = os.environ.get("TURN_SECRET", "")
    TURN_TTL_SECONDS = _int("TURN_TTL_SECONDS", 4 * 3600)
    # "relay": the browsers use TURN candidates only, so neither side (nor the media
    # relay) learns the other's IP address; every call's media then runs through coturn
    # (README "ICE_TRANSPORT_POLICY=relay" has the cost). "all": direct paths first.
    ICE_TRANSPORT_POLICY = os.environ.get("ICE_TRANSPORT_POLICY", "all").strip().lower()
    RING_TIMEOUT_SECONDS = float(os.environ.get("RING_TIMEOUT_SECONDS", "45"))
    # A call whose connection stays broken this long is ended by the pages (issue 9).
    CALL_LOST_SECONDS = float(os.environ.get("CALL_LOST_SECONDS", "300"))
    # 64 KiB frames at most (simple-websocket closes with 1009 above); pings every 25 s
    # find phones that lost the network, so presence does not stay "online" forever.
    SOCK_SERVER_OPTIONS = {"max_message_size": 64 * 1024, "ping_interval": 25}
    # The pages' own heartbeat (docs/signalling.md, "Heartbeat"): a page pings every
    # HEARTBEAT_SECONDS and reconnects when it heard nothing for HEARTBEAT_TIMEOUT_SECONDS;
    # the server closes a socket silent that long, so the other side sees it away. A NAT
    # that drops a connection sends no FIN, and the browser cannot see protocol pings.
    HEARTBEAT_SECONDS = float(os.environ.get("HEARTBEAT_SECONDS", "10"))
    HEARTBEAT_TIMEOUT_SECONDS = float(os.environ.get("HEARTBEAT_TIMEOUT_SECONDS", "30"))

    # The media relay for group calls (media_relay/, started by ./run): its control
    # interface and the shared secret that signs every request to it.
    RELAY_URL = os.environ.get("RELAY_URL", "http://127.0.0.1:5100")
    # Several relays, comma separated: each new group call goes to the least loaded one
    # that answers (app/consultation/placement.py). Empty: RELAY_URL alone.
    RELAY_URLS = os.environ.get("RELAY_URLS", "")
    RELAY_SECRET = os.environ.get("RELAY_SECRET", "")

    # Empty: the signalling hub lives in this process (one web process only). With
    # several processes (workers or machines) they share it through Redis, e.g.
    # redis://127.0.0.1:6379/0; its keys start with HUB_PREFIX.
    HUB_URL = os.environ.get("HUB_URL", "")
    HUB_PREFIX = os.environ.get("HUB_PREFIX", "sprechzimmer:")

    # The reverse proxy whose X-Forwarded-For/-Proto/-Host are believed (addresses or
    # networks, comma separated; "*" for any). gunicorn reads the same variable, so the
    # app and gunicorn agree on who the proxy is. Its default is gunicorn's: a proxy on
    # this machine (Caddy, nginx) and no one else.
    FORWARDED_ALLOW_IPS = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    # The app checks Origin/Referer itself (app/web.py check_origin), with Origin first
    # and PUBLIC_BASE_URL accepted; Flask-WTF's Referer-only variant would refuse a
    # proxy that rewrites Host.
    WTF_CSRF_SSL_STRICT = False

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    # Redis away: count in this process meanwhile rather than answer 500.
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")
    # Failed logins per e-mail address, from any address (app/auth/throttle.py).
    LOGIN_ACCOUNT_LIMIT = os.environ.get("LOGIN_ACCOUNT_LIMIT", "10 per 15 minutes")

    # argon2id as OWASP's password storage cheat sheet recommends (46 MiB, 1 pass, 1
    # lane): about 80 ms on one core of a small VPS. argon2-cffi's own default (64 MiB,
    # 3 passes, 4 lanes) takes 240 ms on two cores and holds both during every login.
    PASSWORD_HASHING = {"time_cost": 1, "memory_cost": 47104, "parallelism": 1}

    BABEL_DEFAULT_LOCALE = "de"
    BABEL_DEFAULT_TIMEZONE = "Europe/Berlin"
    LANGUAGES = ("de", "en")

    # Staff logins (app/auth/sessions.py): end after this long without a request (a
    # running call counts) and this long after the login, whatever happens.
    SESSION_IDLE_MINUTES = float(os.environ.get("SESSION_IDLE_MINUTES", "30"))
    SESSION_MAX_HOURS = float(os.environ.get("SESSION_MAX_HOURS", "12"))
    # How often an open staff socket checks that its login still counts.
    SESSION_CHECK_SECONDS = float(os.environ.get("SESSION_CHECK_SECONDS", "30"))
    # A set-password link (invitation of a new account, password reset) works this long.
    PASSWORD_LINK_HOURS = float(os.environ.get("PASSWORD_LINK_HOURS", "72"))

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Secure whenever the app is reached over HTTPS (production always is).
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE",
                                  ENV_NAME == "production" or PUBLIC_BASE_URL.startswith("https:"))
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead; tablets stay open all day

    DEMO_PRACTICE = _bool("SPRECHZIMMER_DEMO")

    # The operator of this install, named on the Impressum, the Datenschutzerklärung and
    # in every e-mail (app/legal). A production start without NAME, ADDRESS, EMAIL and
    # DPO (the data protection officer's name and contact) stops; elsewhere demo values
    # say what to set. Lines of ADDRESS and DPO are separated by "|".
    _demo = ENV_NAME != "production"
    OPERATOR_NAME = os.environ.get(
        "OPERATOR_NAME", "Demo-Betreiber (OPERATOR_NAME setzen)" if _demo else "")
    OPERATOR_ADDRESS = os.environ.get(
        "OPERATOR_ADDRESS",
        "Musterstraße 1|12345 Musterstadt (OPERATOR_ADDRESS setzen)" if _demo else "")
    OPERATOR_EMAIL = os.environ.get("OPERATOR_EMAIL", "kontakt@sprechzimmer.local" if _demo else "")
    OPERATOR_PHONE = os.environ.get("OPERATOR_PHONE", "")
    OPERATOR_REPRESENTATIVE = os.environ.get("OPERATOR_REPRESENTATIVE", "")
    OPERATOR_REGISTER = os.environ.get("OPERATOR_REGISTER", "")
    OPERATOR_VAT_ID = os.environ.get("OPERATOR_VAT_ID", "")
    OPERATOR_DPO = os.environ.get(
        "OPERATOR_DPO",
        "Datenschutzbeauftragte(r) (OPERATOR_DPO setzen)|datenschutz@sprechzimmer.local"
        if _demo else "")

    # `flask backup` (app/ops/backup.py): where backups go and how many stay.
    BACKUP_DIR = os.environ.get("BACKUP_DIR", str(BASE_DIR / "instance" / "backups"))
    BACKUP_KEEP = _int("BACKUP_KEEP", 14)


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    PUBLIC_BASE_URL = "http://localhost"
    # Flask-Mail suppresses sending under TESTING; tests send to a real local SMTP server.
    MAIL_SUPPRESS_SEND = False
    MAIL_SERVER = None
    VONAGE_API_KEY = None
    VONAGE_API_SECRET = None
    ICE_STUN_URLS = ""
    TURN_URLS = ""
    TURN_SECRET = ""
    ICE_TRANSPORT_POLICY = "all"
    RELAY_SECRET = ""  # tests that need the relay start one with their own secret
    RELAY_URLS = ""
    HUB_URL = ""  # tests that need Redis set it themselves
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    # Tests log in thousands of times; what they check does not depend on the cost
    # (bench/login.py measures the real parameters).
    PASSWORD_HASHING = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_SECURE = False
