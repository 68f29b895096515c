"""The signalling messages (docs/signalling.md): schema checks, size limit, rate limit.

Plain Python checks: the schemas are small and fixed, and an error must name nothing
but the socket's own mistake.
"""
import json
import re
import time

from app.roles import Role

MAX_MESSAGE_BYTES = 64 * 1024
# Candidates arrive in bursts of a dozen or more at the start of a call and on ICE restarts.
RATE_PER_SECOND = 30
RATE_BURST = 60

CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
# The link was opened on another device, which took it over: this page must not reconnect.
CLOSE_TAKEN_OVER = 4001
# No consent (never given, or withdrawn) of the patient or guest: the page goes back to
# the device check, which asks for it (static/js/call/socket.js).
CLOSE_NO_CONSENT = 4002

# Messages the server acts on itself; "ping" is the page's heartbeat (answered "pong").
CONTROL = {
    Role.STAFF: {"ring", "cancel", "hangup", "relay-offer", "ping"},
    Role.PATIENT: {"accept", "decline", "hangup", "relay-offer", "ping"},
    Role.GUEST: {"accept", "decline", "hangup", "relay-offer", "ping"},
}
# End-to-end encryption of group calls (docs/encryption.md): public keys, wrapped frame
# keys and their receipts, relayed to every other member; the server cannot open them.
E2EE = {"e2ee-hello", "e2ee-key", "e2ee-ack"}
# Messages relayed to the other side(s) after the check.
RELAYED = {
    Role.STAFF: {"signal", "media-state", "screenshot-request", "screenshot-taken",
                 "screen-share", "restart-ice", *E2EE},
    Role.PATIENT: {"signal", "media-state", "screenshot-consent", "screen-share", "restart-ice",
                   *E2EE},
    Role.GUEST: {"media-state", "screen-share", *E2EE},
}
# An uncompressed P-256 public key (65 bytes) and a wrapped frame key (12-byte IV, 32-byte
# key, 16-byte tag), base64url without padding.
PUBLIC_KEY_CHARS = 87
WRAPPED_KEY_CHARS = 80
MAX_KID = 2 ** 48
# More entries than people fit in a Premium call (5) are never needed.
MAX_WRAPPED_KEYS = 8
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_MEMBER_KEY = re.compile(r"staff|patient|guest-[0-9]{1,12}")


class ProtocolError(Exception):
    def __init__(self, close_code, reason):
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


def _invalid(reason):
    return ProtocolError(CLOSE_UNSUPPORTED, reason)


def _keys(message, required, optional=()):
    keys = set(message)
    missing = set(required) - keys
    extra = keys - set(required) - set(optional)
    if missing or extra:
        raise _invalid("unexpected fields")


def _is_str(value, limit=MAX_MESSAGE_BYTES):
    return isinstance(value, str) and len(value) <= limit


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1024


def _check_signal(message):
    if "description" in message:
        _keys(message, {"type", "description"})
        description = message["description"]
        if not isinstance(description, dict):
            raise _invalid("description")
        _keys(description, {"type"}, {"sdp"})
        if description["type"] not in ("offer", "answer", "rollback"):
            raise _invalid("description type")
        if "sdp" in description and not _is_str(description["sdp"]):
            raise _invalid("sdp")
        return
    _keys(message, {"type", "candidate"})
    candidate = message["candidate"]
    if candidate is None:
        return
    if not isinstance(candidate, dict):
        raise _invalid("candidate")
    _keys(candidate, {"candidate"}, {"sdpMid", "sdpMLineIndex", "usernameFragment"})
    if not _is_str(candidate["candidate"], 4096):
        raise _invalid("candidate")
    for key in ("sdpMid", "usernameFragment"):
        if candidate.get(key) is not None and not _is_str(candidate[key], 256):
            raise _invalid(key)
    if candidate.get("sdpMLineIndex") is not None and not _is_int(candidate["sdpMLineIndex"]):
        raise _invalid("sdpMLineIndex")


def _bool_fields(*names, optional=()):
    def check(message):
        _keys(message, {"type", *names}, optional)
        given = [name for name in (*names, *optional) if name in message]
        if not all(isinstance(message[name], bool) for name in given):
            raise _invalid("flags")
    return check


def _bare(message):
    _keys(message, {"type"})


def _check_relay_offer(message):
    # e2ee: whether this browser encrypts its frames (absent: an older page, which did not)
    _keys(message, {"type", "sdp"}, {"e2ee"})
    if not _is_str(message["sdp"]) or not message["sdp"].startswith("v=0"):
        raise _invalid("sdp")
    if "e2ee" in message and not isinstance(message["e2ee"], bool):
        raise _invalid("e2ee")


def _is_base64url(value, length):
    return isinstance(value, str) and len(value) == length and _BASE64URL.fullmatch(value)


def _is_member_key(value):
    return isinstance(value, str) and _MEMBER_KEY.fullmatch(value)


def _is_kid(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_KID


def _check_e2ee_hello(message):
    _keys(message, {"type", "pub"})
    if message["pub"] is not None and not _is_base64url(message["pub"], PUBLIC_KEY_CHARS):
        raise _invalid("public key")


def _check_e2ee_key(message):
    _keys(message, {"type", "kid", "keys"})
    keys = message["keys"]
    if not _is_kid(message["kid"]) or not isinstance(keys, dict) or len(keys) > MAX_WRAPPED_KEYS:
        raise _invalid("frame key")
    if not all(_is_member_key(k) and _is_base64url(v, WRAPPED_KEY_CHARS) for k, v in keys.items()):
        raise _invalid("wrapped key")


def _check_e2ee_ack(message):
    _keys(message, {"type", "to", "kid"})
    if not _is_member_key(message["to"]) or not _is_kid(message["kid"]):
        raise _invalid("receipt")


CHECKS = {
    "ping": _bare,
    "ring": _bare, "cancel": _bare, "hangup": _bare, "accept": _bare, "decline": _bare,
    "screenshot-request": _bare, "screenshot-taken": _bare, "restart-ice": _bare,
    "signal": _check_signal,
    "relay-offer": _check_relay_offer,
    "e2ee-hello": _check_e2ee_hello,
    "e2ee-key": _check_e2ee_key,
    "e2ee-ack": _check_e2ee_ack,
    # cameraBlocked: the browser refused the camera (permission), not switched off;
    # audioOnly: "Nur Ton", the sender stopped its video on purpose.
    "media-state": _bool_fields("camera", "mic", "screen", optional=("cameraBlocked", "audioOnly")),
    "screenshot-consent": _bool_fields("granted"),
    "screen-share": _bool_fields("active"),
}


def parse(raw, role) -> dict:
    """The checked message, or ProtocolError with the close code for this socket."""
    if not isinstance(raw, str):
        raise ProtocolError(CLOSE_UNSUPPORTED, "binary frame")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(CLOSE_TOO_BIG, "too big")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        # Thousands of nested brackets fit in one frame; json's C parser gives up with
        # RecursionError, which is just another malformed message.
        raise _invalid("malformed JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _invalid("no type")
    kind = message["type"]
    if kind not in CONTROL[role] and kind not in RELAYED[role]:
        raise _invalid("unknown type")
    CHECKS[kind](message)
    return message


class TokenBucket:
    """RATE_PER_SECOND on average, RATE_BURST at once; one per socket."""

    def __init__(self, rate=RATE_PER_SECOND, burst=RATE_BURST, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
