"""The web app's side of the media relay for group calls: create a room, join it with a
browser's offer, leave, status. Nothing else in the app talks to the relay, so another
SFU can take its place behind these four functions (RELAY.md "Beyond one box").

With several relays (RELAY_URLS) each room lives on the one placement.py chose; a room
whose relay stops answering moves to another when a member comes back with an offer.
RELAY_URL alone is the one-relay case, without placement.

Requests go through media_relay.client, signed with RELAY_SECRET. Every failure
reaches the caller as one of the RelayError kinds below, whose message can be shown to
the practice as it is.
"""
import http.client
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l

from app.consultation import placement
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


# A relay that does not answer this fast gets no new room (status, create): a dead
# relay refuses at once, a hung one must not hold up the members' offers.
PROBE_TIMEOUT = 2.0


def room_id(appointment_id):
    return f"appointment-{int(appointment_id)}"


def relay_urls(config=None):
    config = config or current_app.config
    urls = [u.strip() for u in (config.get("RELAY_URLS") or "").split(",") if u.strip()]
    return urls or [config["RELAY_URL"]]


def relay_of(room_id_):
    """The relay that holds the room, or None when no relay was chosen for it."""
    urls = relay_urls()
    if len(urls) == 1:
        return urls[0]
    return placement.store().get(room_id_)


def create_room(appointment_id, max_participants):
    """Returns the room id; creating an existing room again is fine (after a restart).
    With several relays: on the placed relay, or on the least loaded one; when the
    placed relay does not answer, on another one (the room moves)."""
    room = room_id(appointment_id)
    urls = relay_urls()
    if len(urls) == 1:
        _request(urls[0], "create_room", room, max_participants)
        return room
    placements = placement.store()
    url = placements.get(room) or placements.move(room, None, _least_loaded(urls))
    try:
        _request(url, "create_room", room, max_participants, timeout=PROBE_TIMEOUT)
    except (RelayUnavailable, RelayFull) as exc:
        if exc.reason in ("unsigned", "room_full"):
            raise
        now = placements.move(room, url, _least_loaded([u for u in urls if u != url]))
        if now != url:
            logger.warning("group call moved to another relay appointment=%s relay=%s "
                           "moved_from=%s reason=%s",
                           appointment_id, _index(now), _index(url), exc.reason)
            # A relay that is only slow may still hold members: closing the room there
            # sends them to the new relay too (their pages rejoin).
            _close_quietly(url, room)
        _request(now, "create_room", room, max_participants)
        url = now
    placements.renew(room)
    return room


def _least_loaded(urls):
    """The url of the relay to take a new room, from their signed status answers."""
    secret = _secret()
    if not urls:
        raise RelayUnavailable("unreachable")

    def probe(url):
        try:
            return _client(url, secret, PROBE_TIMEOUT).status()
        except (RelayRefused, OSError, http.client.HTTPException, ValueError) as exc:
            # (a pool thread: no app context to look the relay's number up in)
            logger.warning("media relay gets no new room address=%s error=%s",
                           urlsplit(url).netloc, getattr(exc, "code", type(exc).__name__))
            return None

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        statuses = dict(zip(urls, pool.map(probe, urls), strict=True))
    chosen = placement.least_loaded(statuses)
    if chosen is None:
        if any(s is not None for s in statuses.values()):
            raise RelayFull("relay_full")
        raise RelayUnavailable("unreachable")
    return chosen


def _index(url):
    """A relay in a log line: its place in RELAY_URLS (1-based)."""
    try:
        return relay_urls().index(url) + 1
    except ValueError:
        return "-"


def _close_quietly(url, room):
    try:
        _request(url, "close_room", room, timeout=PROBE_TIMEOUT)
    except RelayError:
        pass


def _placed(room):
    url = relay_of(room)
    if url is None:
        raise RelayRejected("no_room")
    return url


def join(room, key, offer_sdp):
    """``key``: the member's key (staff, patient, guest-<n>), its peer id on the relay."""
    data = _request(_placed(room), "join", room, str(key), offer_sdp)
    return Joined(sdp=data["sdp"], slots=data["slots"])


def leave(room, key):
    """Leaving a room or peer the relay no longer knows (it restarted, or the connection
    already failed) is not an error: the peer is gone either way."""
    try:
        _request(_placed(room), "leave", room, str(key))
    except RelayRejected as exc:
        if exc.reason not in ("no_room", "no_participant"):
            raise


def room(room_id_):
    """The relay's view of a room: {"room", "max_participants", "participants": [
    {"participant", "state", "publications", "slots": [{"mid", "kind", "participant",
    "publication"}]}]}, where the control API's "participant" is a peer's key;
    RelayRejected("no_room") when the relay does not hold it."""
    return _request(_placed(room_id_), "room", room_id_)


def close_room(appointment_id):
    """The call is over: free the relay's ports at once. A room the relay does not hold
    (never created, or the relay restarted) is fine; a relay that cannot be reached is
    logged, not raised: it frees the room when its peers' connections fail."""
    if not current_app.config.get("RELAY_SECRET"):
        return
    room_id_ = room_id(appointment_id)
    url = relay_of(room_id_)
    if url is None:
        return
    try:
        _request(url, "close_room", room_id_)
    except RelayRejected as exc:
        if exc.reason != "no_room":
            logger.warning("media relay kept room appointment=%s reason=%s",
                           appointment_id, exc.reason)
    except RelayError as exc:
        logger.warning("media relay room not closed appointment=%s reason=%s",
                       appointment_id, exc.reason)
    if len(relay_urls()) > 1:
        placement.store().drop(room_id_)


def status(url=None):
    """{"rooms", "max_rooms", "participants", "cpu", "cores"} of one relay (the first
    of RELAY_URLS unless given)."""
    return _request(url or relay_urls()[0], "status")


def _secret():
    secret = current_app.config.get("RELAY_SECRET") or ""
    if not secret:
        logger.error("media relay not usable: RELAY_SECRET is not set")
        raise RelayUnavailable("unsigned")
    return secret


def _client(url, secret, timeout=15):
    url = urlsplit(url)
    return RelayClient(url.hostname, url.port or 80, secret.encode(), timeout=timeout)


def _request(url, name, *args, timeout=15):
    client = _client(url, _secret(), timeout)
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
