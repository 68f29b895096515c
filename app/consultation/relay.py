"""The web app's side of the media relay for group calls: create a room, join it with a
browser's offer, leave, status. Nothing else in the app talks to the relay, so another
SFU can take its place behind these four functions (RELAY.md "Beyond one box").

Requests go through media_relay.client, signed with RELAY_SECRET. Every failure
reaches the caller as one of the RelayError kinds below, whose message can be shown to
the practice as it is.
"""
import http.client
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l

from media_relay.client import RelayClient, RelayRefused

logger = logging.getLogger(__name__)


class RelayError(Exception):
    """reason: the relay's code (or "unreachable", "unsigned"), for logs and tests."""

    messages = {}
    default = ""

    def __init__(self, reason):
        self.reason = reason
        # str() now: the caller's request decides the language, and the message may go out as JSON.
        self.message = str(self.messages.get(reason, self.default))
        super().__init__(self.message)


class RelayUnavailable(RelayError):
    default = _l("Der Medienserver ist nicht erreichbar. Bitte versuchen Sie es in einigen "
                 "Minuten erneut; bleibt es dabei, wenden Sie sich an Ihre IT-Betreuung.")


class RelayFull(RelayError):
    default = _l("Der Medienserver ist ausgelastet. Bitte versuchen Sie es später erneut; "
                 "laufende Gruppenanrufe bleiben davon ungestört.")
    messages = {"room_full": _l("An diesem Anruf nimmt bereits die größtmögliche Zahl von "
                                "Personen teil.")}


class RelayRejected(RelayError):
    """The relay cannot use what was sent, usually the browser's offer."""

    default = _l("Der Medienserver hat die Verbindung abgelehnt. Bitte laden Sie die Seite neu.")
    messages = {
        "unsupported_codec": _l("Dieser Browser bietet die für Gruppenanrufe nötigen Formate "
                                "(VP8 und Opus) nicht an. Bitte verwenden Sie einen aktuellen "
                                "Browser."),
    }


# The relay answers these when it is at capacity; refusing a new room keeps the
# running calls intact (issue 4, "Faults").
_FULL = {"relay_full", "no_udp_port", "room_full"}


@dataclass(frozen=True)
class Joined:
    """The relay's answer to the offer, and which of the offer's receive m-lines
    (slots) carry whose media."""

    sdp: str
    slots: list


def room_id(appointment_id):
    return f"appointment-{int(appointment_id)}"


def create_room(appointment_id, max_participants):
    """Returns the room id; creating an existing room again is fine (after a restart)."""
    room = room_id(appointment_id)
    _request("create_room", room, max_participants)
    return room


def join(room, key, offer_sdp):
    """``key``: the member's key (staff, patient, guest-<n>), its peer id on the relay."""
    data = _request("join", room, str(key), offer_sdp)
    return Joined(sdp=data["sdp"], slots=data["slots"])


def leave(room, key):
    """Leaving a room or peer the relay no longer knows (it restarted, or the connection
    already failed) is not an error: the peer is gone either way."""
    try:
        _request("leave", room, str(key))
    except RelayRejected as exc:
        if exc.reason not in ("no_room", "no_participant"):
            raise


def room(room_id_):
    """The relay's view of a room: {"room", "max_participants", "participants": [
    {"participant", "state", "publications", "slots": [{"mid", "kind", "participant",
    "publication"}]}]}, where the control API's "participant" is a peer's key;
    RelayRejected("no_room") when the relay does not hold it."""
    return _request("room", room_id_)


def close_room(appointment_id):
    """The call is over: free the relay's ports at once. A room the relay does not hold
    (never created, or the relay restarted) is fine; a relay that cannot be reached is
    logged, not raised: it frees the room when its peers' connections fail."""
    if not current_app.config.get("RELAY_SECRET"):
        return
    try:
        _request("close_room", room_id(appointment_id))
    except RelayRejected as exc:
        if exc.reason != "no_room":
            logger.warning("media relay kept room appointment=%s reason=%s",
                           appointment_id, exc.reason)
    except RelayError as exc:
        logger.warning("media relay room not closed appointment=%s reason=%s",
                       appointment_id, exc.reason)


def status():
    """{"rooms", "max_rooms", "participants"}."""
    return _request("status")


def _client():
    secret = current_app.config.get("RELAY_SECRET") or ""
    if not secret:
        logger.error("media relay not usable: RELAY_SECRET is not set")
        raise RelayUnavailable("unsigned")
    url = urlsplit(current_app.config["RELAY_URL"])
    return RelayClient(url.hostname, url.port or 80, secret.encode())


def _request(name, *args):
    client = _client()
    try:
        return getattr(client, name)(*args)
    except RelayRefused as exc:
        if exc.code in _FULL:
            logger.warning("media relay refused request=%s reason=%s", name, exc.code)
            raise RelayFull(exc.code) from exc
        if exc.status == 401:
            logger.error("media relay refused the signature: RELAY_SECRET differs between "
                         "web app and relay reason=%s", exc.code)
            raise RelayUnavailable(exc.code) from exc
        if 400 <= exc.status < 500:
            logger.info("media relay refused request=%s reason=%s", name, exc.code)
            raise RelayRejected(exc.code) from exc
        logger.error("media relay failed request=%s status=%s reason=%s",
                     name, exc.status, exc.code)
        raise RelayUnavailable(exc.code) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        logger.error("media relay unreachable address=%s:%s request=%s error=%s",
                     client.host, client.port, name, type(exc).__name__)
        raise RelayUnavailable("unreachable") from exc
