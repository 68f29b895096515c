"""Real local stand-ins for what the product talks to: an SMTP server (aiosmtpd) and
Vonage's SMS API (HTTPS with a trustme certificate)."""
import base64
import email
import email.policy
import json
import math
import os
import re
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_range(size=20, start=44000):
    """A block of UDP ports free right now on loopback (for a relay process). tests/relay
    uses fixed ports below 44000; callers running side by side pick different starts."""
    for base in range(start, 60000, size):
        sockets = []
        try:
            for port in range(base, base + size):
                sockets.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                sockets[-1].bind(("127.0.0.1", port))
            return base, base + size - 1
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free UDP port range")


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, smtp_server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        reply = self.server.rcpt_reply
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp_server, session, envelope):  # noqa: N802 - aiosmtpd's name
        reply = self.server.data_reply
        if reply:
            return reply
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append(message)
            self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.server.arrived.set()
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on loopback that keeps what it receives.

    Set `rcpt_reply` or `data_reply` (e.g. "451 4.3.0 try later") to make it refuse.
    """

    def __init__(self, port=None):
        self.port = port or free_port()
        self.messages = []
        self.envelopes = []
        self.rcpt_reply = None
        self.data_reply = None
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self):
        self._controller.start()
        return self

    def stop(self):
        self._controller.stop()

    def wait_for(self, count=1, timeout=10.0):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} e-mail(s), got {len(self.messages)}")


# Texts the real SMS API sends with each status (developer.vonage.com, SMS API errors).
VONAGE_ERROR_TEXTS = {
    "1": "Throttled",
    "2": "Missing params",
    "3": "Invalid params",
    "4": "Invalid credentials",
    "5": "Internal error",
    "6": "Invalid message",
    "7": "Number barred",
    "8": "Partner account barred",
    "9": "Partner quota violation",
    "29": "Non-Whitelisted Destination",
}


def _sms_parts(text, unicode):
    # Concatenated SMS: 70/67 characters per part for unicode, 160/153 for GSM text.
    single, part = (70, 67) if unicode else (160, 153)
    return 1 if len(text) <= single else math.ceil(len(text) / part)


class _VonageHandler(BaseHTTPRequestHandler):
    # HTTP/1.0: one connection per request, so stop() really leaves nothing to talk to.

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        stand_in = self.server.stand_in
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if self.path != "/sms/json":
            self._answer(404, {"error": "not found"})
            return
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(raw or "{}")
        else:
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        key, secret = form.get("api_key"), form.get("api_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        with stand_in.lock:
            stand_in.requests.append({"form": form, "api_key": key, "api_secret": secret})
            http_status, status = stand_in.http_status, stand_in.status
        if http_status != 200:
            self._answer(http_status, {"type": "https://developer.nexmo.com/api-errors#internal-error",
                                       "title": "Internal Error"})
            return
        if not form.get("to") or not form.get("from") or "text" not in form:
            status = "2"
        elif (key, secret) != (stand_in.api_key, stand_in.api_secret):
            status = "4"
        if status != "0":
            self._answer(200, {"message-count": "1", "messages": [
                {"status": status, "error-text": VONAGE_ERROR_TEXTS.get(status, "Error")}]})
            return
        with stand_in.lock:
            stand_in.delivered.append(form)
            stand_in.arrived.set()
            parts = _sms_parts(form["text"], form.get("type") == "unicode")
            messages = []
            for _ in range(parts):
                stand_in.counter += 1
                messages.append({
                    "to": form["to"], "message-id": f"1A0000{stand_in.counter:010X}", "status": "0",
                    "remaining-balance": "12.34560000", "message-price": "0.07500000", "network": "26202",
                })
        self._answer(200, {"message-count": str(parts), "messages": messages})


class VonageStandIn:
    """Vonage's SMS API (POST /sms/json) over HTTPS on loopback.

    Answers like the real API: HTTP 200 with a per-message "status" ("0" = accepted).
    Set `status` (e.g. "1" throttled, "3" invalid params) to refuse every message,
    `http_status` (e.g. 500) to fail at the HTTP level; `stop()` leaves nothing
    listening on the port and `start()` brings it back on the same port.
    `ca_bundle` is the path of the CA certificate a client must trust
    (REQUESTS_CA_BUNDLE for the vonage SDK); `rest_host` is what VONAGE_REST_HOST needs.
    """

    def __init__(self, api_key="k", api_secret="s", port=None):
        import trustme

        self.api_key, self.api_secret = api_key, api_secret
        self.port = port or free_port()
        self.rest_host = f"127.0.0.1:{self.port}"
        self.status = "0"
        self.http_status = 200
        self.requests = []  # every POST: {"form", "api_key", "api_secret"}
        self.delivered = []  # forms of accepted messages
        self.counter = 0
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        ca = trustme.CA()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._context)
        fd, self.ca_bundle = tempfile.mkstemp(prefix="vonage-ca-", suffix=".pem")
        os.close(fd)
        ca.cert_pem.write_to_path(self.ca_bundle)
        self._httpd = None
        self._thread = None

    def start(self):
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _VonageHandler)
        httpd.daemon_threads = True
        httpd.socket = self._context.wrap_socket(httpd.socket, server_side=True)
        httpd.stand_in = self
        self._httpd = httpd
        # A short poll keeps stop() quick; serve_forever's default waits half a second.
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="vonage-stand-in",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = None

    def close(self):
        self.stop()
        if os.path.exists(self.ca_bundle):
            os.unlink(self.ca_bundle)


# ---- Fixtures and helpers for tests that drive the outbox through these stand-ins ----
# Import the fixtures you need into a test module and override `config_overrides` there
# to point the app at them (see tests/test_email.py).

LINK_RE = re.compile(r"http://localhost/j/[A-Za-z0-9_-]{43}")


@pytest.fixture
def smtp_port():
    """The port the app sends e-mail to; nothing listens there unless `smtp` is used."""
    return free_port()


@pytest.fixture
def smtp(smtp_port):
    server = SmtpServer(port=smtp_port).start()
    yield server
    server.stop()


@pytest.fixture
def vonage(monkeypatch):
    """The Vonage stand-in, trusted by the SDK (requests reads REQUESTS_CA_BUNDLE per request)."""
    server = VonageStandIn().start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
    yield server
    server.close()


def deliver(app):
    """One round of the real sender, as `flask outbox flush` runs it."""
    from app.invitations import sender

    with app.app_context():
        return sender.deliver_due()


def make_due(app):
    """Let waiting retries run now instead of after their backoff."""
    from app.extensions import db
    from app.invitations.models import PENDING, OutboxMessage
    from app.timeutil import utcnow

    with app.app_context():
        db.session.execute(db.update(OutboxMessage).where(OutboxMessage.status == PENDING)
                           .values(next_attempt_at=utcnow()))
        db.session.commit()


def outbox(app, **filters):
    """Outbox rows (oldest first) as plain snapshots, readable after the session is gone."""
    from app.extensions import db
    from app.invitations.models import OutboxMessage

    with app.app_context():
        rows = db.session.execute(
            db.select(OutboxMessage).filter_by(**filters).order_by(OutboxMessage.id)
        ).scalars().all()
        return [SimpleNamespace(**{c.name: getattr(r, c.name) for c in OutboxMessage.__table__.columns})
                for r in rows]


def created_ids(response):
    """(appointment_id, contact_id) from the HTMX answer to Einladen."""
    body = response.get_data(as_text=True)
    appointment_id = int(re.search(r'id="appointment-created-(\d+)"', body).group(1))
    contact_id = int(re.search(r"/patienten/kontakte/(\d+)", body).group(1))
    return appointment_id, contact_id


def link_in(text):
    """The one patient link in a message text, and its path for the test client."""
    links = set(LINK_RE.findall(text))
    assert len(links) == 1, links
    link = links.pop()
    return link, urlsplit(link).path


def text_of(message, subtype="plain"):
    return message.get_body(preferencelist=(subtype,)).get_content()
