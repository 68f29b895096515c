"""ICE servers for a call's browsers: STUN as configured, TURN with coturn's
time-limited shared-secret credentials (REST API scheme: ``username = expiry:id``,
``credential = base64(HMAC-SHA1(secret, username))``). Handed out only in the
socket's welcome, to the people of that appointment."""
import base64
import hashlib
import hmac
import time


def _urls(value):
    return [u.strip() for u in (value or "").split(",") if u.strip()]


def ice_servers(config, appointment_id, now=None):
    servers = []
    stun = _urls(config.get("ICE_STUN_URLS"))
    if stun:
        servers.append({"urls": stun})
    turn = _urls(config.get("TURN_URLS"))
    secret = config.get("TURN_SECRET")
    if turn and secret:
        expiry = int(now if now is not None else time.time()) + int(config["TURN_TTL_SECONDS"])
        username = f"{expiry}:{appointment_id}"
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        servers.append({"urls": turn, "username": username,
                        "credential": base64.b64encode(digest).decode("ascii")})
    return servers
