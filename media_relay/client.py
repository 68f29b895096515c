"""The web app's side of the control API: signed requests with the standard library
(the app is synchronous; tests call it through asyncio.to_thread)."""
import http.client
import json

from .signing import sign


class RelayRefused(Exception):
    def __init__(self, status, code):
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


class RelayClient:
    def __init__(self, host, port, secret: bytes, timeout=15):
        self.host, self.port, self.secret, self.timeout = host, port, secret, timeout

    def send(self, method, path, body=b"", headers=None):
        """One raw HTTP exchange; returns (status, decoded JSON)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()

    def request(self, method, path, payload=None):
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Content-Type": "application/json", **sign(self.secret, method, path, body)}
        status, data = self.send(method, path, body, headers)
        if status >= 300:
            raise RelayRefused(status, data.get("error", "unknown"))
        return data

    def status(self):
        return self.request("GET", "/status")

    def create_room(self, room, max_participants=5):
        return self.request("POST", "/rooms", {"room": room, "max_participants": max_participants})

    def room(self, room):
        return self.request("GET", f"/rooms/{room}")

    def close_room(self, room):
        return self.request("DELETE", f"/rooms/{room}")

    def join(self, room, participant, sdp):
        """Sends the browser's offer (ICE gathering complete) and returns the answer
        with the participant's slots."""
        return self.request(
            "POST", f"/rooms/{room}/participants",
            {"participant": participant, "type": "offer", "sdp": sdp},
        )

    def leave(self, room, participant):
        return self.request("DELETE", f"/rooms/{room}/participants/{participant}")
