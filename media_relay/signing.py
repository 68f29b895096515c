"""Request signatures between the web app and the relay: HMAC-SHA256 with the shared
RELAY_SECRET over method, path, timestamp, a nonce and the body. The nonce lets the
relay refuse a replayed request while the web app may still repeat one on purpose."""
import hashlib
import hmac
import secrets
import time

MAX_SKEW = 60  # seconds a signed request stays valid
TIMESTAMP_HEADER = "x-relay-timestamp"
NONCE_HEADER = "x-relay-nonce"
SIGNATURE_HEADER = "x-relay-signature"


def signature(secret: bytes, method: str, path: str, timestamp: str, nonce: str,
              body: bytes) -> str:
    message = b"\n".join(
        [method.upper().encode(), path.encode(), timestamp.encode(), nonce.encode(), body]
    )
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, path: str, body: bytes, now=None) -> dict:
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(secret, method, path, timestamp, nonce, body),
    }


class Verifier:
    """Checks signatures and refuses a signature seen before within MAX_SKEW, so a
    captured request cannot be replayed."""

    def __init__(self, secret: bytes):
        self._secret = secret
        self._seen = {}

    def check(self, method, path, headers, body, now=None):
        """Returns None when the request is good, else the reason code."""
        now = time.time() if now is None else now
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not timestamp or not nonce or not given:
            return "unsigned"
        try:
            age = abs(now - int(timestamp))
        except ValueError:
            return "bad_signature"
        expected = signature(self._secret, method, path, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return "bad_signature"
        if age > MAX_SKEW:
            return "stale"
        for seen, seen_at in list(self._seen.items()):
            if now - seen_at > 2 * MAX_SKEW:
                del self._seen[seen]
        if nonce in self._seen:
            return "replayed"
        self._seen[nonce] = now
        return None
