"""Real local stand-ins for what the product talks to: an SMTP server (aiosmtpd)."""
import email
import email.policy
import socket
import threading

from aiosmtpd.controller import Controller


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, smtp_server, session, envelope, address, rcpt_options):
        reply = self.server.rcpt_reply
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp_server, session, envelope):
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
