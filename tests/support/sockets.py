"""The app served for real on 127.0.0.1, and one websocket client for its sockets.

HTTP goes through Flask test clients (same app, same secret key, so their session
cookies are valid on the live server); websockets are real TCP connections.
"""
import json
import threading

import pytest
import websocket
from werkzeug.serving import make_server

TIMEOUT = 10


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.sockets = []

    def connect(self, path, client, origin=None, label=None):
        """A websocket to ``path`` carrying the test client's session cookie."""
        cookie = client.get_cookie("session")
        ws = websocket.WebSocket()
        ws.settimeout(TIMEOUT)
        kwargs = {"cookie": f"session={cookie.value}"} if cookie else {}
        if origin:
            kwargs["origin"] = origin
        ws.connect(f"ws://127.0.0.1:{self.port}{path}", **kwargs)
        self.sockets.append(ws)
        return Socket(ws, label or path)

    def stop(self):
        """Closes every socket, then the server; a second call does nothing."""
        sockets, self.sockets = self.sockets, []
        for ws in sockets:
            try:
                ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - already closed by the server
                pass
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def live(app, hub_kind):
    """The app on a real port, once per hub kind."""
    server = LiveServer(app)
    yield server
    server.stop()


class Socket:
    """A page's socket, reading JSON messages. ``take`` returns the earliest not yet
    taken message of a type and keeps the others for later, so concurrent rosters,
    presence and call states can arrive in any order without being lost; ``expect``
    drops what came before the message it returns (the test is past it)."""

    def __init__(self, ws, label):
        self.ws = ws
        self.label = label
        self.backlog = []
        self.welcome = None

    @property
    def key(self):
        return self.welcome.get("key")

    def send(self, message):
        if isinstance(message, bytes):
            self.ws.send_binary(message)
        else:
            self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def _read(self):
        opcode, data = self.ws.recv_data(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise Closed(close_code(data))
        return json.loads(data)

    def recv(self):
        """The next message not yet taken."""
        return self.backlog.pop(0) if self.backlog else self._read()

    def take(self, type_, where=None, **fields):
        """The earliest not yet taken message of this type (with these fields, and for
        which ``where`` holds); the others stay for later."""
        return self._find(_fits(type_, where, fields))

    def first_of(self, *types):
        """The earliest not yet taken message of one of these types: tells whether
        something arrived before a later marker message."""
        return self._find(lambda m: m["type"] in types)

    def expect(self, type_, **fields):
        """The next message of this type (with these fields); others before it are dropped."""
        fits = _fits(type_, None, fields)
        for i, message in enumerate(self.backlog):
            if fits(message):
                del self.backlog[:i + 1]
                return message
        self.backlog.clear()
        while True:
            message = self._read()
            if fits(message):
                return message

    def next_but_presence(self):
        """The next message that is not presence (which may race with a socket's welcome)."""
        while True:
            message = self.recv()
            if message["type"] != "presence":
                return message

    def forget(self, type_):
        """Drops what came of this type so far (e.g. call states before a settle())."""
        self.backlog = [m for m in self.backlog if m["type"] != type_]

    def _find(self, fits):
        for i, message in enumerate(self.backlog):
            if fits(message):
                return self.backlog.pop(i)
        while True:
            message = self._read()
            if fits(message):
                return message
            self.backlog.append(message)

    def relay_offer(self, loop, browser):
        """relay-offer with the (synthetic) browser's complete offer; applies the
        relay-answer and returns it. The synthetic browser says it encrypts its frames:
        the relay forwards its packets unread either way, and the server refuses only
        pages that say they cannot (test_relay_offer_without_frame_encryption)."""
        self.send({"type": "relay-offer", "sdp": loop.run(browser.offer()), "e2ee": True})
        reply = self.first_of("relay-answer", "error")
        assert reply["type"] == "relay-answer", (self.label, reply)
        loop.run(browser.answer(reply["sdp"]))
        return reply

    def closed_with(self):
        """Read until the server closes; the close code."""
        try:
            while True:
                self._read()
        except Closed as closed:
            return closed.code
        except websocket.WebSocketConnectionClosedException:
            return None

    def close(self):
        self.ws.close()

    def crash(self):
        """The page goes away without a close handshake (tab killed, network gone)."""
        self.ws.sock.shutdown(2)
        self.ws.sock.close()


def _fits(type_, where, fields):
    return lambda m: (m["type"] == type_ and all(m.get(k) == v for k, v in fields.items())
                      and (where is None or where(m)))


class Closed(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def close_code(data):
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
