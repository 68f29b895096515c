"""The signalling service: who may connect, the call state machine, relaying, ICE servers.

One websocket per open page. Each socket subscribes to its own channel
(``appointment:<id>:staff|patient``) and publishes to the other side's; the hub never
lets a socket name another appointment, so no socket can reach another call.
"""
import base64
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import NotFound

from app.consultation import group, protocol, relay
from app.consultation.hub import (
    ACCEPTED, DECLINED, ENDED, IDLE, OFFLINE, RINGING, InProcessHub, channel, publish_state,
)
from app.consultation.hub import ring_timed_out as _ring_timeout  # noqa: F401 - tests call it
from app.extensions import db
from app.tariffs import FEATURE_MESSAGES, TARIFFS, has_feature
from app.web import same_origin_socket

log = logging.getLogger(__name__)

HUB_KEY = "sprechzimmer.hub"
_hub_lock = threading.Lock()
_connection_ids = itertools.count(1)
# simple-websocket 1.1.0 wakes receive() before it marks an oversized frame's socket
# closed, so a receive() without timeout can wait forever; look again this often.
RECEIVE_POLL_SECONDS = 2

# (role, message type) -> (states it may leave, state it leads to)
TRANSITIONS = {
    ("staff", "cancel"): ({RINGING}, IDLE),
    ("staff", "hangup"): ({RINGING, ACCEPTED}, ENDED),
    ("patient", "accept"): ({RINGING}, ACCEPTED),
    ("patient", "decline"): ({RINGING}, DECLINED),
    ("patient", "hangup"): ({ACCEPTED}, ENDED),
}


def get_hub(app=None):
    app = app or current_app._get_current_object()
    hub = app.extensions.get(HUB_KEY)
    if hub is None:
        with _hub_lock:
            hub = app.extensions.get(HUB_KEY)
            if hub is None:
                hub = app.extensions[HUB_KEY] = _make_hub(app.config)
    return hub


def _make_hub(config):
    url = config.get("HUB_URL")
    if not url:
        return InProcessHub()
    from app.consultation.redis_hub import RedisHub

    return RedisHub(url, prefix=config.get("HUB_PREFIX") or "sprechzimmer:")


def other(role):
    return protocol.PATIENT if role == protocol.STAFF else protocol.STAFF


# -- ICE servers ---------------------------------------------------------------------

def _urls(value):
    return [u.strip() for u in (value or "").split(",") if u.strip()]


def ice_servers(config, appointment_id, now=None):
    """STUN as configured; TURN with coturn's time-limited shared-secret credentials."""
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


# -- call state ------------------------------------------------------------------------

def ring(hub, appointment_id, timeout_seconds):
    """Ring the patient's open pages, or note that none is open. Returns the state.

    Ringing or connected calls are left alone: a second click or a reloaded call page
    must not ring twice or break a running call.
    """
    while True:
        current = hub.call_state(appointment_id)
        if current.state in (RINGING, ACCEPTED):
            return current
        online = hub.subscribers(channel(appointment_id, protocol.PATIENT)) > 0
        new = hub.compare_and_set(appointment_id, current, RINGING if online else OFFLINE)
        if new is not None:
            break
    log.info("appointment %s: %s", appointment_id, new.state)
    publish_state(hub, appointment_id, new.state)
    if new.state == RINGING:
        hub.time_out_ring(appointment_id, new, timeout_seconds)
    return new


def transition(hub, appointment_id, allowed_from, target, group_calls=False):
    """Move to ``target`` from one of ``allowed_from``; the new state or None."""
    while True:
        current = hub.call_state(appointment_id)
        if current.state not in allowed_from:
            return None
        new = hub.compare_and_set(appointment_id, current, target)
        if new is not None:
            log.info("appointment %s: %s", appointment_id, target)
            if target == ENDED and group_calls:
                group.end(appointment_id)
            publish_state(hub, appointment_id, target)
            return new


def ring_now(appointment):
    """"Anruf starten" over HTTP: ring at once, before the call page has its socket."""
    return ring(get_hub(), appointment.id, current_app.config["RING_TIMEOUT_SECONDS"])


def appointment_deleted(appointment_id, app=None):
    """Tell the appointment's open pages and close their sockets (after the commit)."""
    hub = get_hub(app)
    message = {"type": "appointment-deleted"}
    hub.publish(channel(appointment_id, protocol.STAFF), message)
    hub.publish(channel(appointment_id, protocol.PATIENT), message)
    hub.publish(channel(appointment_id, protocol.GUEST), message)
    hub.reset(appointment_id)
    relay.close_room(appointment_id)


def participant_removed(appointment_id, participant_id, app=None):
    """Close the removed guest's pages (after the commit); other guests ignore it."""
    get_hub(app).publish(channel(appointment_id, protocol.GUEST),
                         {"type": "participant-removed", "participant_id": participant_id})


# -- who connects --------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    role: str
    appointment_id: int
    practice_id: int
    screen_sharing: bool
    # The tariff's limit; more than two means group calls through the relay.
    max_participants: int = 2
    # Guests only: who they are.
    participant_id: int | None = None
    display_name: str | None = None

    @property
    def group_calls(self):
        return self.max_participants > 2

    @property
    def key(self):
        return group.key_for(self)


def _max_participants(practice):
    tariff = TARIFFS.get(practice.tariff)
    return tariff.max_participants if tariff else 2


def staff_identity(appointment_id):
    from app.patients.services import get_appointment

    if not same_origin_socket() or not current_user.is_authenticated:
        return None
    practice = current_user.practice
    try:
        appointment = get_appointment(practice, appointment_id)
    except NotFound:
        return None
    return Identity(protocol.STAFF, appointment.id, practice.id, has_feature(practice, "screen_sharing"),
                    _max_participants(practice))


def patient_identity():
    from app.auth.models import Practice
    from app.consultation.services import current_visitor

    if not same_origin_socket():
        return None
    visitor = current_visitor()
    if visitor is None:
        return None
    appointment = visitor.appointment
    practice = db.session.get(Practice, appointment.practice_id)
    screen_sharing = has_feature(practice, "screen_sharing")
    limit = _max_participants(practice)
    if visitor.participant is not None:
        return Identity(protocol.GUEST, appointment.id, practice.id, screen_sharing, limit,
                        visitor.participant.id, visitor.display_name)
    return Identity(protocol.PATIENT, appointment.id, practice.id, screen_sharing, limit)


# -- one socket --------------------------------------------------------------------------

def _ignore(message):
    pass


class Connection:
    """A websocket bound to one appointment and role.

    The hub delivers from other threads (the peer's handler, a ring timer, a delete),
    while this socket's own handler answers it: every send goes through one lock,
    because simple-websocket's send is not thread-safe.
    """

    def __init__(self, ws, identity, hub, config):
        self.ws = ws
        self.identity = identity
        self.hub = hub
        self.config = config
        self.id = next(_connection_ids)
        self.send_lock = threading.Lock()
        self.closed = False
        self.bucket = protocol.TokenBucket()
        self.subscription = None
        # Guests share one channel: each also holds its own key's channel, so that the
        # server can tell whether another page of the same guest is still there.
        self.key_subscription = None
        # This socket's page joined the relay: leave it when the socket goes.
        self.in_relay = False
        aid = identity.appointment_id
        self.guest = identity.role == protocol.GUEST
        self.own_channel = channel(aid, identity.role)
        self.peer_channel = channel(aid, other(identity.role))

    def _log(self, message, *args):
        log.info("ws %s appointment %s %s: " + message, self.id, self.identity.appointment_id,
                 self.identity.role, *args)

    def send(self, message):
        with self.send_lock:
            self._send_locked(message)

    def _send_locked(self, message):
        if self.closed:
            return
        try:
            self.ws.send(json.dumps(message))
        except Exception as exc:  # noqa: BLE001 - a broken socket must not break its publisher
            self._log("send failed (%s)", type(exc).__name__)
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

    def deliver(self, message):
        """Hub callback (any thread)."""
        if message.get("from") == self.identity.key:
            return  # the guests share a channel: a guest's own message comes back
        if message.get("type") == "participant-removed":
            if message["participant_id"] == self.identity.participant_id:
                self.send(message)
                self._log("participant removed, closing")
                self.close(1000, "participant removed")
            return
        self.send(message)
        if message.get("type") == "appointment-deleted":
            self._log("appointment deleted, closing")
            self.close(1000, "appointment deleted")

    def open(self):
        aid = self.identity.appointment_id
        # Subscribe and greet under the send lock: whatever is published meanwhile
        # reaches the socket after the welcome, never before it.
        state = self.hub.call_state(aid).state
        welcome = {
            "type": "welcome",
            "role": self.identity.role,
            "key": self.identity.key,
            "iceServers": ice_servers(self.config, aid),
            "state": state,
            "features": {"screen_sharing": self.identity.screen_sharing},
            "group": self.identity.group_calls,
            "maxParticipants": self.identity.max_participants,
            "relay": self.identity.group_calls and state == ACCEPTED and group.is_active(aid),
        }
        if self.guest:
            welcome["participant"] = {"id": self.identity.participant_id, "name": self.identity.display_name}
        with self.send_lock:
            self.subscription = self.hub.subscribe(self.own_channel, self.deliver)
            if self.guest:
                self.key_subscription = self.hub.subscribe(channel(aid, self.identity.key), _ignore)
            welcome["peer_online"] = self.hub.subscribers(self.peer_channel) > 0
            self._send_locked(welcome)
        if not self.guest:
            self.hub.publish(self.peer_channel, {"type": "presence", "peer_online": True})
        self._log("connected")

    def cleanup(self):
        aid = self.identity.appointment_id
        for subscription in (self.subscription, self.key_subscription):
            if subscription is not None:
                subscription.close()
        # A page that came back on a new socket has joined again under the same key:
        # the old socket must not take it out.
        if self.in_relay and self.hub.subscribers(channel(aid, self.identity.key)) == 0:
            if group.leave(self.identity):
                group.publish_roster(self.hub, aid)
        if self.guest:
            # The 1:1 call neither sees guests come and go nor resets for them.
            self._log("disconnected")
            return
        online = self.hub.subscribers(self.own_channel) > 0
        self.hub.publish(self.peer_channel, {"type": "presence", "peer_online": online})
        if not online and self.hub.subscribers(self.peer_channel) == 0:
            # Nobody is left on this appointment: the next page starts from idle.
            self.hub.reset(aid)
            if self.identity.group_calls:
                group.end(aid)
        self._log("disconnected")

    def run(self):
        while not self.closed:
            raw = self.ws.receive(timeout=RECEIVE_POLL_SECONDS)
            if raw is None:
                if not self.ws.connected:
                    return
                continue
            if not self.bucket.take():
                self._log("rate limit exceeded, closing")
                self.send({"type": "error", "code": "rate",
                           "message": _("Zu viele Nachrichten. Die Verbindung wird neu aufgebaut.")})
                self.close(protocol.CLOSE_POLICY, "rate limit")
                return
            try:
                message = protocol.parse(raw, self.identity.role)
            except protocol.ProtocolError as exc:
                self._log("protocol error: %s, closing", exc.reason)
                self.close(exc.close_code, exc.reason)
                return
            self.handle(message)

    def error(self, code, text, tell_staff=False):
        message = {"type": "error", "code": code, "message": str(text)}
        self.send(message)
        if tell_staff:  # a guest's join failed: the practice must know why
            self.hub.publish(channel(self.identity.appointment_id, protocol.STAFF), message)

    def not_now(self, text, state):
        self.error("invalid", text)
        self.send({"type": "call-state", "state": state})

    def handle(self, message):
        role, kind = self.identity.role, message["type"]
        aid = self.identity.appointment_id
        if kind == "relay-offer":
            self.relay_offer(message["sdp"])
            return
        if kind in ("media-state", "screen-share"):
            self.media_message(message)
            return
        if self.guest:
            self.guest_control(kind)
            return
        if kind == "ring":
            state = ring(self.hub, aid, self.config["RING_TIMEOUT_SECONDS"])
            if state.state in (RINGING, ACCEPTED):
                # Already so before: this page (perhaps reloaded) still wants to know.
                self.send({"type": "call-state", "state": state.state})
            return
        if (role, kind) in TRANSITIONS:
            allowed_from, target = TRANSITIONS[(role, kind)]
            if transition(self.hub, aid, allowed_from, target, self.identity.group_calls) is None:
                self.not_now(_("Das ist im Moment nicht möglich."), self.hub.call_state(aid).state)
            return
        self.hub.publish(self.peer_channel, message)

    def media_message(self, message):
        """Camera, microphone and screen state go to everyone else in the call."""
        if message["type"] == "screen-share" and message["active"]:
            if not self.identity.screen_sharing:
                self.error("tariff", FEATURE_MESSAGES["screen_sharing"])
                return
        message = {**message, "from": self.identity.key}
        for role in group.CHANNELS:
            if role != self.identity.role or role == protocol.GUEST:
                self.hub.publish(channel(self.identity.appointment_id, role), message)
        if message["type"] == "screen-share" and message["active"]:
            self.send({"type": "screen-share-ok"})

    def guest_control(self, kind):
        aid = self.identity.appointment_id
        if kind == "decline":
            return
        if kind == "hangup":
            if self.in_relay:
                self.in_relay = False
                if group.leave(self.identity):
                    group.publish_roster(self.hub, aid)
            return
        # accept: join the running call, which moves it to the relay.
        state = self.hub.call_state(aid).state
        if state != ACCEPTED:
            self.not_now(_("Das Gespräch hat noch nicht begonnen. Bitte warten Sie, bis die Praxis anruft."), state)
            return
        if not self.identity.group_calls:
            self.error("tariff", _("Der Tarif der Praxis erlaubt keine weiteren Personen in diesem Anruf."),
                       tell_staff=True)
            return
        try:
            group.start(self.identity)
        except relay.RelayError as exc:
            self.error("relay", exc.message, tell_staff=True)
            return
        group.publish_all(self.hub, aid, {"type": "relay", "active": True})

    def relay_offer(self, sdp):
        aid = self.identity.appointment_id
        if not self.identity.group_calls:
            self.error("tariff", FEATURE_MESSAGES["participants"])
            return
        state = self.hub.call_state(aid).state
        if state != ACCEPTED:
            self.not_now(_("Das ist im Moment nicht möglich."), state)
            return
        try:
            answer = group.join(self.identity, sdp)
        except relay.RelayFull as exc:
            self.error("full" if exc.reason == "room_full" else "relay", exc.message)
            return
        except relay.RelayError as exc:
            self.error("relay", exc.message)
            return
        self.in_relay = True
        self.send({"type": "relay-answer", "sdp": answer})
        group.publish_roster(self.hub, aid)


def serve(ws, identity):
    """The whole life of one socket: check, greet, loop, clean up."""
    if identity is None:
        ws.close(protocol.CLOSE_POLICY, "not allowed")
        return
    # The socket lives for the whole consultation: give the database connection back now.
    db.session.close()
    connection = Connection(ws, identity, get_hub(), current_app.config)
    connection.open()
    try:
        connection.run()
    finally:
        connection.cleanup()
