"""The signalling socket loop (docs/signalling.md): one websocket per open page.

Each socket subscribes to its own role's channel of its appointment and reaches the
others through ``hub.broadcast``; the hub never lets a socket name another
appointment, so no socket can reach another call. Who may connect is decided in
identity.py, the call's states in calls.py, group calls in group.py.
"""
import itertools
import logging
import time

from flask import current_app
from flask_babel import gettext as _

from app.auth import audit, sessions
from app.consultation import calls, group, people, protocol, relay
from app.consultation.ice import ice_servers
from app.extensions import db, hub
from app.hub import (
    ACCEPTED,
    HUB_LOST,
    IDLE,
    LOGIN_ENDED,
    RINGING,
    HubUnavailable,
    channel,
    staff_channel,
)
from app.hub.socket import HubSocket
from app.patients import progress
from app.roles import Role
from app.tariffs import FEATURE_MESSAGES
from logfmt import IdLogger

# Call steps the audit log keeps (the others, such as decline, change nothing lasting).
AUDITED = {"accept": audit.CALL_JOIN, "hangup": audit.CALL_END}

log = logging.getLogger(__name__)

_connection_ids = itertools.count(1)
# simple-websocket 1.1.0 wakes receive() before it marks an oversized frame's socket
# closed, so a receive() without timeout can wait forever; look again this often.
RECEIVE_POLL_SECONDS = 2
# Close codes of a socket the server gives up on; the page connects again (socket.js).
CLOSE_TRY_AGAIN = 1013  # the hub (Redis) is away: "try again later"
CLOSE_SILENT = 4000  # no heartbeat within HEARTBEAT_TIMEOUT_SECONDS


def other(role):
    """The other side of a 1:1 call (a guest's other side is the practice)."""
    return Role.PATIENT if role == Role.STAFF else Role.STAFF


def _ignore(message):
    pass


class Connection(HubSocket):
    """A websocket bound to one appointment and role (sends: HubSocket)."""

    def __init__(self, ws, identity, hub, config):
        aid = identity.appointment_id
        ids = IdLogger(log, ws=next(_connection_ids), appointment=aid, role=identity.role)
        super().__init__(ws, ids)
        self.identity = identity
        self.hub = hub
        self.config = config
        self.bucket = protocol.TokenBucket()
        self.subscription = None
        # The silence bound holds once the page sent its first ping: pages from before
        # the heartbeat (and test clients) send none.
        self.heartbeat = False
        self.last_heard = time.monotonic()
        # Guests share one channel: each also holds its own key's channel, so that the
        # server can tell whether another page of the same guest is still there.
        self.key_subscription = None
        # Staff: the account's own channel, where the end of its logins is told at once.
        self.staff_subscription = None
        # This socket's page joined the relay: leave it when the socket goes.
        self.in_relay = False
        self.guest = identity.role == Role.GUEST
        self.peer = other(identity.role)
        self.own_channel = channel(aid, identity.role)
        self.peer_channel = channel(aid, self.peer)
        self.login_checked = time.monotonic()

    def deliver(self, message):
        """Hub callback (any thread)."""
        if message.get("from") == self.identity.key:
            return  # the guests share a channel: a guest's own message comes back
        if message.get("type") == HUB_LOST:
            self.log.info("closing reason=hub-lost")
            self.close(CLOSE_TRY_AGAIN, "try again later")
            return
        if message.get("type") == "device-replaced":
            if (message["key"] == self.identity.key
                    and message["device"] != self.identity.device_id):
                # The page says it in its own language (templates/consultation/waiting.html).
                self.send({"type": "taken-over"})
                self.log.info("closing reason=taken-over")
                self.close(protocol.CLOSE_TAKEN_OVER, "taken over")
            return
        if message.get("type") == "consent-withdrawn" and self.identity.role != Role.STAFF:
            # Staff pages get it as news (their notice); the person's own pages close.
            if message["key"] == self.identity.key:
                self.log.info("closing reason=consent-withdrawn")
                self.close(protocol.CLOSE_NO_CONSENT, "consent withdrawn")
            return
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

    def logins_ended(self, message):
        """Hub callback (any thread): the account logged out, was deactivated or got
        another role; this socket's login is among the ended ones."""
        if (message.get("type") == LOGIN_ENDED
                and self.identity.login_session_id in message.get("sessions", ())):
            self.logged_out()

    def logged_out(self):
        self.log.info("closing reason=logged-out")
        self.send({"type": "error", "code": "logged-out",
                   "message": _("Sie wurden abgemeldet. Bitte melden Sie sich erneut an.")})
        self.close(protocol.CLOSE_POLICY, "logged out")

    def open(self):
        aid = self.identity.appointment_id
        if self.identity.login_session_id is not None:
            self.staff_subscription = self.hub.subscribe(
                staff_channel(self.identity.staff_id), self.logins_ended)
            # Ended between the handshake and this subscription: the first check finds it.
            self.login_checked = float("-inf")
        # Subscribe, then read the state and greet, under the send lock: whatever is
        # published from the subscription on reaches the socket after the welcome, never
        # before it, and nothing between reading and subscribing is missed.
        with self.send_lock:
            self.subscription = self.hub.subscribe(self.own_channel, self.deliver)
            if self.identity.role == Role.PATIENT:
                # The practice's "Heute" board: once subscribed (the board asks the hub
                # whether the patient is really there) and before the welcome, so that a
                # welcomed page finds itself counted as waiting. cleanup() undoes it.
                progress.entered_waiting_room(aid)
            if self.guest:
                self.key_subscription = self.hub.subscribe(channel(aid, self.identity.key), _ignore)
            state = self.hub.call_state(aid).state
            welcome = {
                "type": "welcome",
                "role": self.identity.role,
                "key": self.identity.key,
                "iceServers": ice_servers(self.config, aid),
                "iceTransportPolicy": self.config["ICE_TRANSPORT_POLICY"],
                "state": state,
                "features": {"screen_sharing": self.identity.screen_sharing},
                "group": self.identity.group_calls,
                "maxParticipants": self.identity.max_participants,
                "relay": self.identity.group_calls and state == ACCEPTED and group.is_active(aid),
                # Group calls: browsers without frame encryption are refused ("required")
                # or let in with a warning for everyone ("warn"), as the practice chose.
                "e2ee": "warn" if self.identity.allow_unencrypted else "required",
                "heartbeat": {"interval": self.config["HEARTBEAT_SECONDS"],
                              "timeout": self.config["HEARTBEAT_TIMEOUT_SECONDS"]},
            }
            if self.guest:
                welcome["participant"] = {"id": self.identity.participant_id,
                                          "name": self.identity.display_name}
            welcome["peer_online"] = self.hub.subscribers(self.peer_channel) > 0
            self._send_locked(welcome)
        if self.guest:
            people.changed(self.hub, aid)  # the staff's list: this guest waits now
        else:
            self.hub.broadcast(aid, {"type": "presence", "peer_online": True}, roles=(self.peer,))
        self.log.info("connected")

    def cleanup(self):
        try:
            self._cleanup()
        except HubUnavailable:
            # Redis is away: the other side's socket closes too (HUB_LOST) and learns the
            # truth from its next welcome; presence entries go when Redis is back.
            self.log.info("disconnected hub=unavailable")

    def _cleanup(self):
        aid = self.identity.appointment_id
        for subscription in (self.subscription, self.key_subscription,
                             self.staff_subscription):
            if subscription is not None:
                subscription.close()
        # A page that came back on a new socket has joined again under the same key:
        # the old socket must not take it out.
        if self.in_relay and self.hub.subscribers(channel(aid, self.identity.key)) == 0:
            if group.leave(self.identity):
                group.publish_roster(self.hub, aid)
        if self.guest:
            # The 1:1 call neither sees guests come and go nor resets for them; the
            # staff's list of the group call's people does.
            people.changed(self.hub, aid)
            self.log.info("disconnected")
            return
        online = self.hub.subscribers(self.own_channel) > 0
        self.hub.broadcast(aid, {"type": "presence", "peer_online": online}, roles=(self.peer,))
        if not online and self.identity.role == Role.PATIENT:
            progress.left_waiting_room(aid)
        if not online and self.hub.subscribers(self.peer_channel) == 0:
            # Nobody is left on this appointment: the next page starts from idle.
            self.hub.reset(aid)
            progress.call_state(aid, IDLE)  # a call still counted as running is over
            if self.identity.group_calls:
                group.end(aid)
        self.log.info("disconnected")

    def login_still_counts(self):
        """Staff: the login this socket opened on has not ended (logout anywhere, idle,
        12 h). A running call is activity: it keeps the login alive."""
        session_id = self.identity.login_session_id
        if session_id is None:
            return True
        now = time.monotonic()
        if now - self.login_checked < self.config["SESSION_CHECK_SECONDS"]:
            return True
        self.login_checked = now
        try:
            running = self.hub.call_state(self.identity.appointment_id).state in (RINGING, ACCEPTED)
        except Exception:  # noqa: BLE001 - hub unreachable: whether a call runs is unknown
            running = True
        if sessions.keep_alive(session_id, touch=running):
            return True
        self.logged_out()
        return False

    def run(self):
        timeout = self.config["HEARTBEAT_TIMEOUT_SECONDS"]
        poll = min(RECEIVE_POLL_SECONDS, timeout / 4, self.config["SESSION_CHECK_SECONDS"])
        while not self.closed:
            if not self.login_still_counts():
                return
            raw = self.ws.receive(timeout=poll)
            if raw is None:
                if not self.ws.connected:
                    return
                if self.heartbeat and time.monotonic() - self.last_heard > timeout:
                    # A dead path (NAT dropped it, no FIN came): the peer sees this side away.
                    self.log.info("closing reason=silent")
                    self.close(CLOSE_SILENT, "heartbeat timeout")
                    return
                continue
            self.last_heard = time.monotonic()
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
            try:
                self.handle(message)
            finally:
                # A socket lives for the whole consultation: no database connection (the
                # audit log's) is held between messages.
                db.session.remove()

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
        if kind == "ping":
            self.heartbeat = True
            self.send({"type": "pong"})
            return
        if kind == "relay-offer":
            self.relay_offer(message["sdp"], message.get("e2ee", False))
            return
        if kind in ("media-state", "screen-share"):
            self.media_message(message)
            return
        if kind in protocol.E2EE:
            self.to_everyone_else(message)
            return
        if self.guest:
            self.guest_control(kind)
            return
        if kind == "ring":
            state = calls.start(self.hub, aid, self.config["RING_TIMEOUT_SECONDS"],
                                self.identity.practice_id, self.identity.staff_id)
            if state.state in (RINGING, ACCEPTED):
                # Already so before: this page (perhaps reloaded) still wants to know.
                self.send({"type": "call-state", "state": state.state})
            return
        if (role, kind) in calls.TRANSITIONS:
            allowed_from, target = calls.TRANSITIONS[(role, kind)]
            if not calls.audited(self.audit_entry(AUDITED.get(kind)), lambda: calls.transition(
                    self.hub, aid, allowed_from, target, self.identity.group_calls) is not None):
                self.not_now(_("Das ist im Moment nicht möglich."), self.hub.call_state(aid).state)
            return
        self.hub.broadcast(aid, message, roles=(self.peer,))

    def audit_entry(self, action):
        """audit.record's arguments for a step of this socket's person, or None."""
        if action is None:
            return None
        who = self.identity
        actor = {Role.STAFF: (audit.STAFF, who.staff_id), Role.PATIENT: (audit.PATIENT, None),
                 Role.GUEST: (audit.GUEST, who.participant_id)}[who.role]
        return (who.practice_id, action, *actor, "appointment", who.appointment_id)

    def media_message(self, message):
        """Camera, microphone and screen state go to everyone else in the call."""
        if message["type"] == "screen-share" and message["active"]:
            if not self.identity.screen_sharing:
                self.error("tariff", FEATURE_MESSAGES["screen_sharing"])
                return
        self.to_everyone_else(message)
        if message["type"] == "screen-share" and message["active"]:
            self.send({"type": "screen-share-ok"})

    def to_everyone_else(self, message):
        """To all other pages of the appointment, marked with whose it is ("from")."""
        message = {**message, "from": self.identity.key}
        if message["type"] == "e2ee-hello" and message["pub"] is None and self.guest:
            # Staff's page names the guest whose browser cannot encrypt a group call.
            message["name"] = self.identity.display_name
        # Other guests share the guests' channel; deliver() drops the sender's own.
        others = [role for role in Role if role != self.identity.role or role == Role.GUEST]
        self.hub.broadcast(self.identity.appointment_id, message, roles=others)

    def guest_control(self, kind):
        aid = self.identity.appointment_id
        if kind == "decline":
            return
        if kind == "hangup":
            self.hub.set_joined(aid, self.identity.key, False)
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
        calls.audited(self.audit_entry(audit.CALL_JOIN), lambda: True)

    def relay_offer(self, sdp, encrypted):
        aid = self.identity.appointment_id
        if not self.identity.group_calls:
            self.error("tariff", FEATURE_MESSAGES["participants"])
            return
        state = self.hub.call_state(aid).state
        if state != ACCEPTED:
            self.not_now(_("Das ist im Moment nicht möglich."), state)
            return
        if not encrypted and not self.identity.allow_unencrypted:
            self.log.info("relay join refused reason=no-frame-encryption")
            self.error("e2ee", _("Ihr Browser kann Gruppengespräche nicht Ende-zu-Ende "
                                 "verschlüsseln. Bitte verwenden Sie einen aktuellen Chrome, Edge, "
                                 "Firefox oder Safari."), tell_staff=self.guest)
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
        if self.guest:
            self.hub.set_joined(aid, self.identity.key, True)
            progress.took_part(aid, self.identity.key)  # the consultation record
        self.send({"type": "relay-answer", "sdp": answer})
        group.publish_roster(self.hub, aid)


def serve(ws, identity):
    """The whole life of one socket: check, greet, loop, clean up."""
    if identity is None:
        ws.close(protocol.CLOSE_POLICY, "not allowed")
        return
    # The socket lives for the whole consultation: give the database connection back now.
    db.session.close()
    connection = None
    try:
        connection = Connection(ws, identity, hub.get(), current_app.config)
        connection.open()
        connection.run()
    except HubUnavailable as exc:
        # Redis is away: a clean close the page answers by trying again with backoff,
        # never an error after the upgrade.
        log.info("socket refused reason=hub-unavailable appointment=%s error=%s",
                 identity.appointment_id, exc)
        if connection is not None:
            connection.close(CLOSE_TRY_AGAIN, "try again later")
        else:
            ws.close(CLOSE_TRY_AGAIN, "try again later")
    finally:
        if connection is not None:
            connection.cleanup()
