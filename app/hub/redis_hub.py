"""The hub shared by several web processes (gunicorn workers or machines) through Redis.

Selected with HUB_URL=redis://host:port/db. Every key and pub/sub channel starts with
the prefix (HUB_PREFIX), and every key has a TTL, so nothing lingers after a crash:

- ``<prefix>ch:<channel>``: the pub/sub channel. Each process holds one SUBSCRIBE
  connection and one listener thread that hands messages to its local subscriptions;
  a process subscribes to a channel only while one of its sockets listens on it.
- ``<prefix>presence:<channel>``: sorted set, one member per socket, scored with the
  time it counts as gone. The listener renews its members every HEARTBEAT_SECONDS, so
  the sockets of a process that died drop out after PRESENCE_TTL_SECONDS.
  (PUBSUB NUMSUB cannot say this: it counts processes, not sockets.)
- ``<prefix>call:<appointment id>``: ``"<state>:<version>"``, changed only by Lua
  scripts, so compare-and-set is atomic across processes.
- ``<prefix>ring-deadlines``: see ``time_out_ring``.

Presence and deadlines are scored with each process's own clock: the machines must keep
time (NTP); a skew of a second moves a ring timeout by a second, nothing worse.

Redis going away (docs/signalling.md, "When Redis goes away"): every command then raises
HubUnavailable, and the listener hands HUB_LOST to this process's subscriptions, so their
sockets close and come back for a fresh welcome once Redis is back. Call states and ring
deadlines outlive a restart only with Redis persistence (appendonly, README "Redis").
"""
import functools
import itertools
import json
import logging
import threading
import time
import uuid

import redis

from app.hub.base import (
    HUB_LOST,
    IDLE,
    RINGING,
    STATES,
    TIMEOUT,
    CallState,
    Hub,
    HubUnavailable,
    Subscription,
)

log = logging.getLogger(__name__)

# Longer than any consultation; renewed on every change of the call state. When it
# runs out the version starts again at 0, which a ring deadline (minutes) never sees.
STATE_TTL_SECONDS = 24 * 3600
PRESENCE_TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10
SUBSCRIBE_WAIT_SECONDS = 10
# A Redis that does not answer is as good as down: pages and sockets must not hang on it.
CONNECT_TIMEOUT_SECONDS = 2
COMMAND_TIMEOUT_SECONDS = 5


def _unavailable(method):
    """Redis errors leave the hub as HubUnavailable: callers need not know about Redis."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise HubUnavailable(type(exc).__name__) from exc
    return wrapper

_CAS = """
local current = redis.call('GET', KEYS[1])
local state, version = 'idle', 0
if current then
  local sep = string.find(current, ':', 1, true)
  state = string.sub(current, 1, sep - 1)
  version = tonumber(string.sub(current, sep + 1))
end
if state ~= ARGV[1] or version ~= tonumber(ARGV[2]) then
  return false
end
version = version + 1
redis.call('SET', KEYS[1], ARGV[3] .. ':' .. version, 'EX', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6] .. ':' .. version)
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
return version
"""

_RESET = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.sub(current, string.find(current, ':', 1, true) + 1))
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. (version + 1), 'EX', ARGV[2])
end
return false
"""


POOL_CONNECTIONS = 64
POOL_WAIT_SECONDS = 10

# Claim a due ring deadline and time out that very ring in one step: a claim whose
# compare-and-set never ran (Redis gone in between) would leave the call ringing for ever.
_FIRE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return false
end
local current = redis.call('GET', KEYS[2])
if not current then
  return false
end
local sep = string.find(current, ':', 1, true)
local version = tonumber(string.sub(current, sep + 1))
if string.sub(current, 1, sep - 1) ~= ARGV[2] or version ~= tonumber(ARGV[3]) then
  return false
end
version = version + 1
redis.call('SET', KEYS[2], ARGV[4] .. ':' .. version, 'EX', ARGV[5])
return version
"""


class _RedisSubscription(Subscription):
    def __init__(self, hub, key, member, deliver):
        self.hub = hub
        self.key = key
        self.member = member
        self.deliver = deliver
        self.closed = False
        self.ticket = 0

    def close(self):
        self.hub._unsubscribe(self)


class RedisHub(Hub):
    @_unavailable
    def __init__(self, url, prefix="sprechzimmer:", poll_seconds=0.5):
        self.prefix = prefix
        self.poll_seconds = poll_seconds
        # Every socket thread publishes through this client (one thread per websocket,
        # 2,100 by default): redis-py's pool refuses the 101st concurrent user with "Too
        # many connections", which closed sockets under load. A blocking pool lets a
        # thread wait its turn instead; a command takes well under a millisecond.
        pool = redis.BlockingConnectionPool.from_url(
            url, decode_responses=True, health_check_interval=30,
            max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=COMMAND_TIMEOUT_SECONDS)
        self.redis = redis.Redis(connection_pool=pool)
        # A wrong HUB_URL (or Redis down at the first socket) fails here, before a thread
        # starts; the next use tries again.
        self.redis.ping()
        self._pubsub = self.redis.pubsub()
        self._cas = self.redis.register_script(_CAS)
        self._reset = self.redis.register_script(_RESET)
        self._fire = self.redis.register_script(_FIRE)
        self._id = uuid.uuid4().hex
        self._numbers = itertools.count(1)
        self._lock = threading.Condition()
        self._local: dict[str, list[_RedisSubscription]] = {}
        # Redis answers the SUBSCRIBEs of one connection in order: the n-th confirmation
        # of a channel belongs to its n-th SUBSCRIBE.
        self._issued: dict[str, int] = {}
        self._confirmed: dict[str, int] = {}
        # Presence members whose removal failed while Redis was away: removed once it is back.
        self._stale: list[tuple[str, str]] = []
        self._stopped = threading.Event()
        self._next_heartbeat = 0.0
        self._next_poll = 0.0
        # Started here, after gunicorn forked: hub.get() builds the hub at first use.
        self._listener = threading.Thread(target=self._listen, name="redis-hub", daemon=True)
        self._listener.start()

    # -- keys --------------------------------------------------------------------------

    def _channel_key(self, channel):
        return f"{self.prefix}ch:{channel}"

    def _presence_key(self, channel):
        return f"{self.prefix}presence:{channel}"

    def _state_key(self, appointment_id):
        return f"{self.prefix}call:{int(appointment_id)}"

    def _joined_key(self, appointment_id):
        return f"{self.prefix}joined:{int(appointment_id)}"

    @property
    def _deadlines_key(self):
        return f"{self.prefix}ring-deadlines"

    # -- publish / subscribe -----------------------------------------------------------

    @_unavailable
    def subscribe(self, channel, deliver):
        key = self._channel_key(channel)
        subscription = _RedisSubscription(self, key, f"{self._id}:{next(self._numbers)}", deliver)
        with self._lock:
            subscriptions = self._local.get(key)
            if not subscriptions:
                # Redis down raises here, before anything of this subscription is kept.
                self._pubsub.subscribe(key)
                self._issued[key] = self._issued.get(key, 0) + 1
            self._local[key] = (subscriptions or []) + [subscription]
            ticket = subscription.ticket = self._issued[key]
            # Back only once Redis has the subscription: a message published right after
            # (the peer's presence answer) must not get lost.
            confirmed = self._lock.wait_for(lambda: self._confirmed.get(key, 0) >= ticket,
                                            timeout=SUBSCRIBE_WAIT_SECONDS)
        if not confirmed:
            subscription.close()
            raise redis.TimeoutError(f"no subscription confirmed for {channel}")
        # Present only once it can receive: a peer that sees it may send at once.
        try:
            self._mark_present([(self._presence_key(channel), subscription.member)])
        except redis.RedisError:
            subscription.close()
            raise
        return subscription

    def _unsubscribe(self, subscription):
        with self._lock:
            if subscription.closed:
                return
            subscription.closed = True
            remaining = [s for s in self._local.get(subscription.key, []) if s is not subscription]
            if remaining:
                self._local[subscription.key] = remaining
            else:
                self._local.pop(subscription.key, None)
                # Counting starts afresh with the next SUBSCRIBE: a long-running process
                # must not keep a counter for every appointment it ever served.
                self._issued.pop(subscription.key, None)
                self._confirmed.pop(subscription.key, None)
                try:
                    self._pubsub.unsubscribe(subscription.key)
                except redis.RedisError:
                    pass  # redis-py subscribes again on reconnect; _dispatch drops it then
        channel = subscription.key[len(self._channel_key("")):]
        entry = (self._presence_key(channel), subscription.member)
        try:
            self.redis.zrem(*entry)
        except redis.RedisError:
            # Else the page would count as present until its TTL ran out.
            with self._lock:
                self._stale.append(entry)

    @_unavailable
    def publish(self, channel, message):
        pipe = self.redis.pipeline(transaction=False)
        pipe.publish(self._channel_key(channel), json.dumps(message))
        pipe.zcount(self._presence_key(channel), time.time(), "+inf")
        processes, sockets = pipe.execute()
        # Sockets, not processes, as the in-process hub counts; none if no process listens.
        return sockets if processes else 0

    @_unavailable
    def subscribers(self, channel):
        return self.redis.zcount(self._presence_key(channel), time.time(), "+inf")

    def _mark_present(self, entries):
        """Renew (presence key, member) pairs; drops members whose process stopped renewing."""
        pipe = self.redis.pipeline(transaction=False)
        now = time.time()
        for key, member in entries:
            pipe.zadd(key, {member: now + PRESENCE_TTL_SECONDS})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.expire(key, PRESENCE_TTL_SECONDS)
        pipe.execute()

    # -- call state --------------------------------------------------------------------

    @_unavailable
    def call_state(self, appointment_id):
        value = self.redis.get(self._state_key(appointment_id))
        if value is None:
            return CallState()
        state, version = value.split(":")
        return CallState(state, int(version))

    @_unavailable
    def compare_and_set(self, appointment_id, expected, state, ring_timeout=None):
        if state not in STATES:
            raise ValueError(state)
        # The ring and its deadline in one script: Redis going away between the two would
        # leave a ring without end.
        deadline, ttl = "", 0
        if ring_timeout is not None:
            deadline, ttl = time.time() + ring_timeout, int(ring_timeout) + STATE_TTL_SECONDS
        version = self._cas(keys=[self._state_key(appointment_id), self._deadlines_key],
                            args=[expected.state, expected.version, state, STATE_TTL_SECONDS,
                                  deadline, int(appointment_id), ttl])
        return None if version is None else CallState(state, int(version))

    @_unavailable
    def reset(self, appointment_id):
        self._reset(keys=[self._state_key(appointment_id)], args=[IDLE, STATE_TTL_SECONDS])
        self.forget_joined(appointment_id)

    @_unavailable
    def joined(self, appointment_id):
        return set(self.redis.smembers(self._joined_key(appointment_id)))

    @_unavailable
    def set_joined(self, appointment_id, key, joined):
        name = self._joined_key(appointment_id)
        if joined:
            # As long as a call's state: a forgotten set does not outlive it in Redis.
            self.redis.pipeline().sadd(name, key).expire(name, STATE_TTL_SECONDS).execute()
        else:
            self.redis.srem(name, key)

    @_unavailable
    def forget_joined(self, appointment_id):
        self.redis.delete(self._joined_key(appointment_id))

    # Ring deadlines live in Redis, not in a timer of the process that rang: a restarted
    # worker must not leave a call ringing for ever. compare_and_set adds them, every
    # process polls the sorted set. A key with expiry would need keyspace notifications,
    # which Redis delivers late and only when configured.

    def fire_due_ring_timeouts(self):
        due = self.redis.zrangebyscore(self._deadlines_key, "-inf", time.time(), start=0, num=100)
        for member in due:
            appointment_id, version = member.split(":")
            # ZREM is the claim (only one process removes a member); the version makes a
            # ring that was answered or replaced meanwhile a no-op.
            fired = self._fire(keys=[self._deadlines_key, self._state_key(appointment_id)],
                               args=[member, RINGING, version, TIMEOUT, STATE_TTL_SECONDS])
            if fired is not None:
                log.info("call state appointment=%s state=%s", appointment_id, TIMEOUT)
                # Lost with Redis gone now: the pages learn "timeout" from their next welcome.
                self.broadcast(int(appointment_id), {"type": "call-state", "state": TIMEOUT})

    # -- the listener thread -------------------------------------------------------------

    def _listen(self):
        down = False
        while not self._stopped.is_set():
            try:
                # Short waits: housekeeping and close() must not wait for the next message.
                message = self._pubsub.get_message(timeout=min(self.poll_seconds, 0.5))
                if message is not None:
                    self._dispatch(message)
                self._housekeeping()
                if down:
                    down = False
                    log.warning("hub redis back")
            except (redis.RedisError, HubUnavailable, ValueError, OSError) as exc:
                # redis-py reconnects and subscribes again on the next call. ValueError and
                # OSError are the same lost connection seen from this thread: a socket
                # thread's SUBSCRIBE on the shared pubsub connection hit the error first
                # and closed the connection under get_message ("I/O operation on closed
                # file"); the next get_message connects again.
                if not down:
                    down = True
                    log.warning("hub redis unavailable, retrying error=%s", type(exc).__name__)
                self._lost()
                self._stopped.wait(1)
            except Exception:  # one bad delivery must not stop every call
                log.exception("hub listener failed")

    def _dispatch(self, message):
        key = message["channel"]
        if message["type"] == "subscribe":
            with self._lock:
                confirmed = self._confirmed.get(key, 0)
                if confirmed >= self._issued.get(key, 0):
                    # Not ours: redis-py subscribed again after a lost connection. Redis may
                    # have restarted empty, so renew presence now rather than in 10 s.
                    self._next_heartbeat = 0.0
                    if key not in self._local:
                        self._pubsub.unsubscribe(key)  # its last socket left meanwhile
                else:
                    self._confirmed[key] = confirmed + 1
                self._lock.notify_all()
        elif message["type"] == "message":
            with self._lock:
                # A message that was on its way before this process subscribed again (after
                # the channel's last socket left) is not for the new sockets; it would also
                # block on a socket whose open() waits for that very confirmation.
                confirmed = self._confirmed.get(key, 0)
                targets = [s for s in self._local.get(key, []) if s.ticket <= confirmed]
            payload = json.loads(message["data"])
            for subscription in targets:
                try:
                    subscription.deliver(payload)
                except Exception:  # the others still get it
                    log.exception("hub delivery failed")

    def _lost(self):
        """Messages may have been lost: every local socket must close and come back."""
        with self._lock:
            # Not to a subscription still waiting for its confirmation: its socket holds
            # its send lock until then (open()); it fails or gets its welcome after.
            local = [s for key, subscriptions in self._local.items() for s in subscriptions
                     if s.ticket <= self._confirmed.get(key, 0)]
        for subscription in local:
            try:
                subscription.deliver({"type": HUB_LOST})
            except Exception:  # the others still get it
                log.exception("hub delivery failed")

    def _housekeeping(self):
        now = time.monotonic()
        with self._lock:
            stale, self._stale = self._stale, []
        if stale:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for key, member in stale:
                    pipe.zrem(key, member)
                pipe.execute()
            except redis.RedisError:
                with self._lock:
                    self._stale = stale + self._stale
                raise
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            with self._lock:
                local = [s for subscriptions in self._local.values() for s in subscriptions]
            if local:
                prefix = len(self._channel_key(""))
                self._mark_present([(self._presence_key(s.key[prefix:]), s.member) for s in local])
        if now >= self._next_poll:
            self._next_poll = now + self.poll_seconds
            self.fire_due_ring_timeouts()

    def close(self):
        """Stop the listener and take this process's sockets out of presence."""
        self._stopped.set()
        self._listener.join()
        with self._lock:
            local = [s for subscriptions in self._local.values() for s in subscriptions]
        for subscription in local:
            subscription.close()
        self._pubsub.close()
        self.redis.close()
