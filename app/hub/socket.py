"""A websocket the hub delivers to: the one send/close every live page's socket uses."""
import json
import threading


class HubSocket:
    """Sends JSON on a websocket from any thread.

    The hub delivers from other threads (a peer's handler, a ring timer, a delete) while
    the socket's own handler answers, and simple-websocket's send is not thread-safe:
    every send goes through one lock. A send that fails marks the socket closed, so a
    broken page never breaks whoever published to it.
    """

    def __init__(self, ws, log):
        self.ws = ws
        self.log = log
        self.send_lock = threading.Lock()
        self.closed = False

    def send(self, message):
        with self.send_lock:
            self._send_locked(message)

    def _send_locked(self, message):
        if self.closed:
            return
        try:
            self.ws.send(json.dumps(message))
        except Exception as exc:  # noqa: BLE001 - a broken socket must not break its publisher
            self.log.info("send failed error=%s", type(exc).__name__)
            self.closed = True

    def close(self, code=1000, reason=None):
        with self.send_lock:
            if self.closed:
                return
            self.closed = True
            try:
                self.ws.close(code, reason)
            except Exception:  # noqa: BLE001 - already gone
                pass
        # Wake the handler blocked in receive() even if the client never answers the close.
        self.ws.event.set()
