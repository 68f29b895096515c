"""Real local stand-ins for what the product talks to: an SMTP server (aiosmtpd) and
Vonage's SMS API (HTTPS with a trustme certificate), and the fixtures that start them.
A test module points the app at them by overriding ``config_overrides`` (see
tests/test_email.py)."""
import asyncio
import base64
import email
import email.policy
import json
import math
import os
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import trustme
from aiosmtpd.controller import Controller

from tests.support.outbox import links_in, text_of
from tests.support.ports import free_port

# Vonage credentials set, but the API on a port where nothing listens: SMS is offered,
# and should anything try to send, it stays on this machine.
VONAGE_NOWHERE = {"VONAGE_API_KEY": "test-key", "VONAGE_API_SECRET": "test-secret",
                  "VONAGE_REST_HOST": "127.0.0.1:9"}


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, smtp_server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.server.hold == "before":
            await self.server.wait_if_first()
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
        if self.server.hold == "after":
            await self.server.wait_if_first()  # stored, the 250 not yet said
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on loopback that keeps what it receives.

    Set `rcpt_reply` or `data_reply` (e.g. "451 4.3.0 try later") to make it refuse.
    With `hold` "before" (at RCPT) or "after" (mail stored, before the 250) the first
    message waits there until `release` is set; `held` says one waits (crash tests).
    """

    def __init__(self, port=None, hold=None):
        self.port = port or free_port()
        self.messages = []
        self.envelopes = []
        self.rcpt_reply = None
        self.data_reply = None
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.hold = hold
        self.held = threading.Event()
        self.release = threading.Event()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    async def wait_if_first(self):
        if self.held.is_set():
            return
        self.held.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)

    def start(self):
        self._controller.start()
        return self

    def stop(self):
        self._controller.stop()

    def wait_for(self, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} e-mail(s), got {len(self.messages)}")

    def mails_to(self, address, subject_contains="", count=1, timeout=10.0):
        """The e-mails to `address` with that subject, once there are `count` (or the time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [m for m in self.messages if address in m["To"] and subject_contains in m["Subject"]]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    @staticmethod
    def text(message):
        return text_of(message)

    @staticmethod
    def link(message):
        """The one patient link in an e-mail, on whatever host the app was told."""
        links = links_in(text_of(message))
        assert len(links) == 1, f"expected one patient link, found {links}"
        return links.pop()

    def invitation_link(self, address, subject="Einladung", count=1):
        """The link in the latest of `count` invitations to `address`."""
        return self.link(self.mails_to(address, subject, count=count)[-1])


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
