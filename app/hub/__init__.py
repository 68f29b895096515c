"""Routes signalling messages between the sockets of one appointment and keeps its call state.

Channels are ``appointment:<id>:staff`` and ``appointment:<id>:patient``. The in-process
hub serves one web process; ``RedisHub`` (app/consultation/redis_hub.py) implements the
same interface when several processes serve the websockets (HUB_URL).
"""
import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from app.consultation import protocol

log = logging.getLogger(__name__)

IDLE = "idle"
OFFLINE = "offline"
RINGING = "ringing"
ACCEPTED = "accepted"
DECLINED = "declined"
TIMEOUT = "timeout"
ENDED = "ended"
STATES = (IDLE, OFFLINE, RINGING, ACCEPTED, DECLINED, TIMEOUT, ENDED)


def channel(appointment_id: int, role: str) -> str:
    return f"appointment:{appointment_id}:{role}"


@dataclass(frozen=True)
class CallState:
    state: str = IDLE
    # Bumped on every change, so a late ring timer cannot end a newer ring.
    version: int = 0


def publish_state(hub, appointment_id, state):
    message = {"type": "call-state", "state": state}
    hub.publish(channel(appointment_id, protocol.STAFF), message)
    hub.publish(channel(appointment_id, protocol.PATIENT), message)
    hub.publish(channel(appointment_id, protocol.GUEST), message)


def ring_timed_out(hub, appointment_id, ringing):
    """Time out this very ring; the version tells it from a later one, so only one caller wins."""
    if hub.compare_and_set(appointment_id, ringing, TIMEOUT) is not None:
        log.info("appointment %s: timeout", appointment_id)
        publish_state(hub, appointment_id, TIMEOUT)


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
    def compare_and_set(self, appointment_id: int, expected: CallState, state: str) -> CallState | None:
        """Set ``state`` if the current state is still ``expected``; the new state or None."""

    @abstractmethod
    def reset(self, appointment_id: int):
        """Back to idle (deleted, or nobody connected any more); the version keeps rising."""

    def time_out_ring(self, appointment_id: int, ringing: CallState, seconds: float):
        """Call ``ring_timed_out`` for this ring after ``seconds``: here a timer in this process."""
        timer = threading.Timer(seconds, ring_timed_out, (self, appointment_id, ringing))
        timer.daemon = True
        timer.start()


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

    def subscribe(self, channel, deliver):
        subscription = _InProcessSubscription(self, channel, deliver)
        with self._lock:
            # Copy on write: publish iterates a snapshot without holding the lock.
            self._channels[channel] = self._channels.get(channel, []) + [subscription]
        return subscription

    def _unsubscribe(self, subscription):
        with self._lock:
            remaining = [s for s in self._channels.get(subscription.channel, []) if s is not subscription]
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

    def compare_and_set(self, appointment_id, expected, state):
        if state not in STATES:
            raise ValueError(state)
        with self._lock:
            current = self._states.get(appointment_id, CallState())
            if current != expected:
                return None
            new = CallState(state, current.version + 1)
            self._states[appointment_id] = new
            return new

    def reset(self, appointment_id):
        with self._lock:
            current = self._states.get(appointment_id)
            if current is not None:
                # The version keeps rising so that a timer of an earlier ring stays harmless.
                self._states[appointment_id] = CallState(IDLE, current.version + 1)
