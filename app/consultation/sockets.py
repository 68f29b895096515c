"""The signalling socket loop (docs/signalling.md): one websocket per open page.

Each socket subscribes to its own role's channel of its appointment and reaches the
others through ``hub.broadcast``; the hub never lets a socket name another
appointment, so no socket can reach another call. Who may connect is decided in
identity.py, the call's states in calls.py, group calls in group.py.
"""
import itertools
import json
import logging
import threading

from flask import current_app
from flask_babel import gettext as _

from app.consultation import calls, group, protocol, relay
from app.consultation.ice import ice_servers
from app.extensions import db, hub
from app.hub import ACCEPTED, RINGING, channel
from app.roles import Role
from app.tariffs import FEATURE_MESSAGES
from logfmt import IdLogger

log = logging.getLogger(__name__)

_connection_ids = itertools.count(1)
# simple-websocket 1.1.0 wakes receive() before it marks an oversized frame's socket
# closed, so a receive() without timeout can wait forever; look again this often.
RECEIVE_POLL_SECONDS = 2


def other(role):
    """The other side of a 1:1 call (a guest's other side is the practice)."""
    return Role.PATIENT if role == Role.STAFF else Role.STAFF


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
        self.guest = identity.role == Role.GUEST
        self.peer = other(identity.role)
        self.own_channel = channel(aid, identity.role)
        self.peer_channel = channel(aid, self.peer)
        self.log = IdLogger(log, ws=self.id, appointment=aid, role=identity.role)

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

    def deliver(self, message):
        """Hub callback (any thread)."""
        if message.get("from") == self.identity.key:
            return  # the guests share a channel: a guest's own message comes back
        if message.get("type") == "participant-removed":
            if message["participant_id"] == self.identity.participant_id:
                self.send(message)
                self.log.info("closing reason=participant-removed")
                self.close(1000, "participant removed")
            return
        self.send(message)
        if message.get("type") == "appointment-deleted":
            self.log.info("closing reason=appointment-deleted")
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
            welcome["participant"] = {"id": self.identity.participant_id,
                                      "name": self.identity.display_name}
        with self.send_lock:
            self.subscription = self.hub.subscribe(self.own_channel, self.deliver)
            if self.guest:
                self.key_subscription = self.hub.subscribe(channel(aid, self.identity.key), _ignore)
            welcome["peer_online"] = self.hub.subscribers(self.peer_channel) > 0
            self._send_locked(welcome)
        if not self.guest:
            self.hub.broadcast(aid, {"type": "presence", "peer_online": True}, roles=(self.peer,))
        self.log.info("connected")

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
            self.log.info("disconnected")
            return
        online = self.hub.subscribers(self.own_channel) > 0
        self.hub.broadcast(aid, {"type": "presence", "peer_online": online}, roles=(self.peer,))
        if not online and self.hub.subscribers(self.peer_channel) == 0:
            # Nobody is left on this appointment: the next page starts from idle.
            self.hub.reset(aid)
            if self.identity.group_calls:
                group.end(aid)
        self.log.info("disconnected")

    def run(self):
        while not self.closed:
            raw = self.ws.receive(timeout=RECEIVE_POLL_SECONDS)
            if raw is None:
                if not self.ws.connected:
                    return
                continue
            if not self.bucket.take():
                self.log.info("closing reason=rate-limit")
                text = _("Zu viele Nachrichten. Die Verbindung wird neu aufgebaut.")
                self.send({"type": "error", "code": "rate", "message": text})
                self.close(protocol.CLOSE_POLICY, "rate limit")
                return
            try:
                message = protocol.parse(raw, self.identity.role)
            except protocol.ProtocolError as exc:
                self.log.info("closing reason=protocol-error error=%r", exc.reason)
                self.close(exc.close_code, exc.reason)
                return
            self.handle(message)

    def error(self, code, text, tell_staff=False):
        message = {"type": "error", "code": code, "message": str(text)}
        self.send(message)
        if tell_staff:  # a guest's join failed: the practice must know why
            self.hub.broadcast(self.identity.appointment_id, message, roles=(Role.STAFF,))

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
            state = calls.ring(self.hub, aid, self.config["RING_TIMEOUT_SECONDS"])
            if state.state in (RINGING, ACCEPTED):
                # Already so before: this page (perhaps reloaded) still wants to know.
                self.send({"type": "call-state", "state": state.state})
            return
        if (role, kind) in calls.TRANSITIONS:
            allowed_from, target = calls.TRANSITIONS[(role, kind)]
            if calls.transition(self.hub, aid, allowed_from, target,
                                self.identity.group_calls) is None:
                self.not_now(_("Das ist im Moment nicht möglich."), self.hub.call_state(aid).state)
            return
        self.hub.broadcast(aid, message, roles=(self.peer,))

    def media_message(self, message):
        """Camera, microphone and screen state go to everyone else in the call."""
        if message["type"] == "screen-share" and message["active"]:
            if not self.identity.screen_sharing:
                self.error("tariff", FEATURE_MESSAGES["screen_sharing"])
                return
        message = {**message, "from": self.identity.key}
        # Other guests share the guests' channel; deliver() drops the sender's own.
        others = [role for role in Role if role != self.identity.role or role == Role.GUEST]
        self.hub.broadcast(self.identity.appointment_id, message, roles=others)
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
            self.not_now(_("Das Gespräch hat noch nicht begonnen. Bitte warten Sie, bis die "
                           "Praxis anruft."), state)
            return
        if not self.identity.group_calls:
            self.error("tariff", _("Der Tarif der Praxis erlaubt keine weiteren Personen in "
                                   "diesem Anruf."), tell_staff=True)
            return
        try:
            group.start(self.identity)
        except relay.RelayError as exc:
            self.error("relay", exc.message, tell_staff=True)
            return
        self.hub.broadcast(aid, {"type": "relay", "active": True})

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
    connection = Connection(ws, identity, hub.get(), current_app.config)
    connection.open()
    try:
        connection.run()
    finally:
        connection.cleanup()
