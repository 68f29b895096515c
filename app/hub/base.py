"""The hub's interface, the call states it stores, and the hub of one process.

Channels are ``appointment:<id>:<role>`` (one per ``Role``),
``appointment:<id>:<guest key>`` (one guest's own pages, for presence) and
``practice:<id>:board`` (the staff's "Heute" boards of one practice) and
``staff:<id>`` (every open socket of one staff account: told when its logins end).
"""
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.roles import Role

log = logging.getLogger(__name__)

IDLE = "idle"
OFFLINE = "offline"
RINGING = "ringing"
ACCEPTED = "accepted"
DECLINED = "declined"
TIMEOUT = "timeout"
ENDED = "ended"
STATES = (IDLE, OFFLINE, RINGING, ACCEPTED, DECLINED, TIMEOUT, ENDED)

EVERYONE = tuple(Role)

# Delivered by a hub to its local subscriptions when it lost its shared store (Redis):
# what was published meanwhile may be lost, so each socket closes and its page comes
# back for a fresh welcome with the true call state. Never sent to a browser.
HUB_LOST = "hub-lost"


class HubUnavailable(Exception):
    """The hub cannot reach its shared store now (Redis down or restarting); try again
    shortly. Pages answer 503 with a German message, sockets close with 1013."""


def channel(appointment_id: int, key: str) -> str:
    """``key`` is a role or a guest's key."""
    return f"appointment:{appointment_id}:{key}"


def board_channel(practice_id: int) -> str:
    """The practice's "Heute" boards: told that something on today's board changed."""
    return f"practice:{int(practice_id)}:board"


def staff_channel(staff_id: int) -> str:
    """Every open socket of one staff account (call pages, boards): told ``LOGIN_ENDED``
    when the account's logins end (logout, deactivation, role change), so they close at
    once instead of at their next periodic check."""
    return f"staff:{int(staff_id)}"


# The message on a staff channel: the account's logins ended; its sockets close.
LOGIN_ENDED = "login-ended"


@dataclass(frozen=True)
class CallState:
    state: str = IDLE
    # Bumped on every change, so a late ring timer cannot end a newer ring.
    version: int = 0


def ring_timed_out(hub, appointment_id, ringing):
    """Time out this very ring; the version tells it from a later one, so only one caller wins."""
    if hub.compare_and_set(appointment_id, ringing, TIMEOUT) is not None:
        log.info("call state appointment=%s state=%s", appointment_id, TIMEOUT)
        hub.broadcast(appointment_id, {"type": "call-state", "state": TIMEOUT})


class Subscription(ABC):
    @abstractmethod
    def close(self):
        """Stop delivering; safe to call more than once."""


class Hub(ABC):
    @abstractmethod
    def subscribe(self, channel: str, deliver: Callable[[dict], None]) -> Subscription:
        """Call ``deliver(message)`` for every message published to the channel.

        ``deliver`` runs in the publisher's thread (or the hub's listener thread) and must
        not block for long.
        """

    @abstractmethod
    def publish(self, channel: str, message: dict) -> int:
        """Deliver to every subscriber of the channel; returns how many there were."""

    @abstractmethod
    def subscribers(self, channel: str) -> int:
        """How many sockets listen on the channel now (presence)."""

    @abstractmethod
    def call_state(self, appointment_id: int) -> CallState:
        ...

    @abstractmethod
    def compare_and_set(self, appointment_id: int, expected: CallState, state: str,
                        ring_timeout: float | None = None) -> CallState | None:
        """Set ``state`` if the current state is still ``expected``; the new state or None.

        ``ring_timeout``: this ring times out after so many seconds (``ring_timed_out``),
        set in the same step as the state, so that no ring is left without its end.
        """

    @abstractmethod
    def reset(self, appointment_id: int):
        """Back to idle (deleted, or nobody connected any more); the version keeps rising."""

    # Guests who joined the running call and did not hang up (issue 9): a guest whose
    # network is cut keeps a tile, marked as away, as staff and patient do. The set goes
    # with the call (forget_joined, reset).

    @abstractmethod
    def joined(self, appointment_id: int) -> set[str]:
        ...

    @abstractmethod
    def set_joined(self, appointment_id: int, key: str, joined: bool):
        ...

    @abstractmethod
    def forget_joined(self, appointment_id: int):
        ...

    def broadcast(self, appointment_id: int, message: dict,
                  roles: Iterable[Role] = EVERYONE) -> dict[Role, int]:
        """Publish to the channels of these roles of one appointment; how many sockets
        of each role it reached."""
        return {role: self.publish(channel(appointment_id, role), message) for role in roles}

    @abstractmethod
    def close(self):
        """Let go of connections and threads (the app shuts down)."""


class _InProcessSubscription(Subscription):
    def __init__(self, hub, channel, deliver):
        self.hub = hub
        self.channel = channel
        self.deliver = deliver

    def close(self):
        self.hub._unsubscribe(self)


class InProcessHub(Hub):
    def __init__(self):
        self._lock = threading.Lock()
        self._channels: dict[str, list[_InProcessSubscription]] = {}
        self._states: dict[int, CallState] = {}
        self._joined: dict[int, set[str]] = {}

    def subscribe(self, channel, deliver):
        subscription = _InProcessSubscription(self, channel, deliver)
        with self._lock:
            # Copy on write: publish iterates a snapshot without holding the lock.
            self._channels[channel] = self._channels.get(channel, []) + [subscription]
        return subscription

    def _unsubscribe(self, subscription):
        with self._lock:
            remaining = [s for s in self._channels.get(subscription.channel, [])
                         if s is not subscription]
            if remaining:
                self._channels[subscription.channel] = remaining
            else:
                self._channels.pop(subscription.channel, None)

    def publish(self, channel, message):
        with self._lock:
            targets = self._channels.get(channel, [])
        # Deliver outside the lock: a slow socket must not hold up every other channel.
        for subscription in targets:
            subscription.deliver(message)
        return len(targets)

    def subscribers(self, channel):
        with self._lock:
            return len(self._channels.get(channel, []))

    def call_state(self, appointment_id):
        with self._lock:
            return self._states.get(appointment_id, CallState())

    def compare_and_set(self, appointment_id, expected, state, ring_timeout=None):
        if state not in STATES:
            raise ValueError(state)
        with self._lock:
            current = self._states.get(appointment_id, CallState())
            if current != expected:
                return None
            new = CallState(state, current.version + 1)
            self._states[appointment_id] = new
        if ring_timeout is not None:
            # A timer in this process: the state lives here too and dies with it.
            timer = threading.Timer(ring_timeout, ring_timed_out, (self, appointment_id, new))
            timer.daemon = True
            timer.start()
        return new

    def joined(self, appointment_id):
        with self._lock:
            return set(self._joined.get(appointment_id, ()))

    def set_joined(self, appointment_id, key, joined):
        with self._lock:
            keys = self._joined.setdefault(appointment_id, set())
            if joined:
                keys.add(key)
            else:
                keys.discard(key)

    def forget_joined(self, appointment_id):
        with self._lock:
            self._joined.pop(appointment_id, None)

    def reset(self, appointment_id):
        self.forget_joined(appointment_id)
        with self._lock:
            current = self._states.get(appointment_id)
            if current is not None:
                # The version keeps rising so that a timer of an earlier ring stays harmless.
                self._states[appointment_id] = CallState(IDLE, current.version + 1)

    def close(self):
        pass  # nothing outside this process to let go of
