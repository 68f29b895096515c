"""The app served for real on 127.0.0.1, and websocket clients for its sockets.

HTTP goes through Flask test clients (same app, same secret key, so their session
cookies are valid on the live server); websockets are real TCP connections.
"""
import json
import re
import threading

import websocket
from werkzeug.serving import make_server

from app.extensions import db
from app.invitations import crypto
from app.invitations.models import OutboxMessage

TIMEOUT = 10


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.sockets = []

    def connect(self, path, client, origin=None):
        """A websocket to ``path`` carrying the test client's session cookie."""
        cookie = client.get_cookie("session")
        ws = websocket.WebSocket()
        ws.settimeout(TIMEOUT)
        kwargs = {"cookie": f"session={cookie.value}"} if cookie else {}
        if origin:
            kwargs["origin"] = origin
        ws.connect(f"ws://127.0.0.1:{self.port}{path}", **kwargs)
        self.sockets.append(ws)
        return Socket(ws)

    def stop(self):
        for ws in self.sockets:
            try:
                ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - already closed by the server
                pass
        self.server.shutdown()
        self.server.server_close()


class Socket:
    """Reads JSON messages; ``expect`` skips what the test is not about (presence etc.)."""

    def __init__(self, ws):
        self.ws = ws

    def send(self, message):
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self):
        opcode, data = self.ws.recv_data(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise Closed(close_code(data))
        return json.loads(data)

    def next_but_presence(self):
        """The next message that is not presence (which may race with a socket's welcome)."""
        while True:
            message = self.recv()
            if message["type"] != "presence":
                return message

    def expect(self, type_, **fields):
        """The next message of this type (with these fields); others before it are skipped."""
        while True:
            message = self.recv()
            if message["type"] == type_ and all(message.get(k) == v for k, v in fields.items()):
                return message

    def closed_with(self):
        """Read until the server closes; the close code."""
        try:
            while True:
                self.recv()
        except Closed as closed:
            return closed.code
        except websocket.WebSocketConnectionClosedException:
            return None


class Closed(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def close_code(data):
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else None


def created_appointment_id(response):
    return int(re.search(r'id="appointment-created-(\d+)"', response.get_data(as_text=True)).group(1))


def invitation_token(app, appointment_id):
    """The token of the latest invitation in the outbox, as the patient's e-mail carries it."""
    with app.app_context():
        message = db.session.execute(
            db.select(OutboxMessage).filter_by(appointment_id=appointment_id, kind="invitation")
            .order_by(OutboxMessage.id.desc())
        ).scalars().first()
        return crypto.unseal(message.payload)["token"]


def patient_client(app, appointment_id):
    """A browser of the patient: opened the link, holds the session bound to the appointment."""
    client = app.test_client()
    response = client.get(f"/j/{invitation_token(app, appointment_id)}")
    assert response.status_code == 302, response.status_code
    return client
