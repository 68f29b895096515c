"""Which media relay holds which group call, when RELAY_URLS lists several.

The placement is shared by every web process: in Redis under HUB_PREFIX when HUB_URL
is set, in this process otherwise (one web process). A new room goes to the relay that
answers with the lowest load, the higher of its rooms against its RELAY_MAX_ROOMS and
the share of its core it used lately (the control API's status, signed as every
request); a relay that does not answer gets none. When the relay of a room stops
answering, the first member whose browser comes back with a new offer moves the room
to another relay (compare-and-set, so all of them agree on one), and the others follow
the placement (docs/scaling.md).
"""
import random
import threading
import time

import redis
from flask import current_app

KEY = "sprechzimmer.placement"
# Longer than any consultation; each join renews it, a closed room drops it.
TTL_SECONDS = 12 * 3600

# KEYS[1] the room's key; ARGV: expected relay ("" for none), new relay, ttl.
_MOVE = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return ARGV[2]
end
return current
"""


class InProcessPlacements:
    def __init__(self):
        self._lock = threading.Lock()
        self._rooms = {}

    def get(self, room):
        with self._lock:
            entry = self._rooms.get(room)
            if entry is None or entry[1] < time.monotonic():
                return None
            return entry[0]

    def move(self, room, expected, relay):
        """Places ``room`` on ``relay`` if it is still on ``expected`` (None: nowhere);
        returns where the room is now."""
        with self._lock:
            entry = self._rooms.get(room)
            current = entry[0] if entry and entry[1] >= time.monotonic() else None
            if current == expected:
                self._rooms[room] = (relay, time.monotonic() + TTL_SECONDS)
                return relay
            return current

    def renew(self, room):
        with self._lock:
            entry = self._rooms.get(room)
            if entry is not None:
                self._rooms[room] = (entry[0], time.monotonic() + TTL_SECONDS)

    def drop(self, room):
        with self._lock:
            self._rooms.pop(room, None)

    def close(self):
        pass


class RedisPlacements:
    def __init__(self, url, prefix):
        self.prefix = prefix
        # Blocking: many socket threads may ask at once (see app/hub/redis_hub.py).
        pool = redis.BlockingConnectionPool.from_url(
            url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5,
            max_connections=16, timeout=10)
        self.redis = redis.Redis(connection_pool=pool)
        self._move = self.redis.register_script(_MOVE)

    def _key(self, room):
        return f"{self.prefix}relay-of:{room}"

    def get(self, room):
        return self.redis.get(self._key(room))

    def move(self, room, expected, relay):
        return self._move(keys=[self._key(room)], args=[expected or "", relay, TTL_SECONDS])

    def renew(self, room):
        self.redis.expire(self._key(room), TTL_SECONDS)

    def drop(self, room):
        self.redis.delete(self._key(room))

    def close(self):
        self.redis.close()


def store(app=None):
    app = app or current_app._get_current_object()
    placements = app.extensions.get(KEY)
    if placements is None:
        url = app.config.get("HUB_URL")
        placements = (RedisPlacements(url, app.config.get("HUB_PREFIX") or "sprechzimmer:")
                      if url else InProcessPlacements())
        # Two threads may build one each at first use; either is fine (no state of its own).
        placements = app.extensions.setdefault(KEY, placements)
    return placements


def load(status):
    """0 (idle) .. 1 (full) from a relay's status: rooms against its limit, or the share
    of its core, whichever is higher."""
    rooms = status.get("rooms", 0) / max(1, status.get("max_rooms", 1))
    return max(rooms, float(status.get("cpu") or 0.0))


def least_loaded(statuses, rng=random):
    """``statuses``: {relay url: its status, or None when it did not answer}. The url
    with room to spare and the lowest load (fewer rooms, then chance, among equals);
    None when no relay answered or all are full."""
    candidates = [(load(s), s.get("rooms", 0), rng.random(), url) for url, s in statuses.items()
                  if s is not None and s.get("rooms", 0) < s.get("max_rooms", 0)]
    return min(candidates)[3] if candidates else None
