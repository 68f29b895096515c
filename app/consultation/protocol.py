"""The signalling messages (docs/signalling.md): schema checks, size limit, rate limit.

Plain Python checks: the schemas are small and fixed, and an error must name nothing
but the socket's own mistake.
"""
import json
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
# Messages relayed to the other side(s) after the check.
RELAYED = {
    Role.STAFF: {"signal", "media-state", "screenshot-request", "screenshot-taken",
                 "screen-share", "restart-ice"},
    Role.PATIENT: {"signal", "media-state", "screenshot-consent", "screen-share", "restart-ice"},
    Role.GUEST: {"media-state", "screen-share"},
}


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
    _keys(message, {"type", "sdp"})
    if not _is_str(message["sdp"]) or not message["sdp"].startswith("v=0"):
        raise _invalid("sdp")


CHECKS = {
    "ping": _bare,
    "ring": _bare, "cancel": _bare, "hangup": _bare, "accept": _bare, "decline": _bare,
    "screenshot-request": _bare, "screenshot-taken": _bare, "restart-ice": _bare,
    "signal": _check_signal,
    "relay-offer": _check_relay_offer,
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
