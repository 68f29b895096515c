"""The two hubs that carry a call's messages: in-process (one web process) and Redis
(several). ``hub_kind`` parametrises a test over both, as ``database_url`` does over
SQLite and PostgreSQL: every test that opens a websocket (through ``live``) and every
test of ``hub`` runs once per kind. Redis tests work under their own key prefix and
delete only keys under it.
"""
import threading
import uuid

import pytest

from app.hub import InProcessHub
from app.hub.redis_hub import RedisHub
from tests.support.machine import REDIS_URL, need_redis

WAIT = 10


@pytest.fixture(params=["in-process", "redis"])
def hub_kind(request):
    if request.param == "redis":
        need_redis()
    return request.param


def new_prefix():
    return f"sprechzimmer-test-{uuid.uuid4().hex}:"


@pytest.fixture
def hub_config(hub_kind):
    """The app settings that select this test's hub (``app`` asks for them); its Redis
    keys go afterwards."""
    if hub_kind == "in-process":
        yield {}
        return
    prefix = new_prefix()
    yield {"HUB_URL": REDIS_URL, "HUB_PREFIX": prefix}
    delete_keys(prefix + "*")


def delete_keys(pattern):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=pattern, count=500))
    if keys:
        client.delete(*keys)
    client.close()
    return keys


class RedisHubs:
    """Hubs as separate processes would have them: own connections and listener threads, one prefix."""

    def __init__(self):
        self.prefix = new_prefix()
        self.hubs = []

    def __call__(self, **kwargs):
        hub = RedisHub(REDIS_URL, prefix=self.prefix, **kwargs)
        self.hubs.append(hub)
        return hub

    def close(self):
        for hub in self.hubs:
            hub.close()
        delete_keys(self.prefix + "*")


@pytest.fixture
def make_redis_hub():
    """make_redis_hub(**kwargs) -> a RedisHub under this test's prefix; closed and its keys
    deleted afterwards."""
    need_redis()
    hubs = RedisHubs()
    yield hubs
    hubs.close()


@pytest.fixture
def hub(hub_kind, request):
    """A hub of this test's kind, without an app."""
    if hub_kind == "in-process":
        return InProcessHub()
    return request.getfixturevalue("make_redis_hub")()


def settle(hub, via=None):
    """Wait until ``hub`` delivered what was published before (through ``via``, default itself).

    A Redis hub delivers in its listener thread, in the order Redis got the messages: a
    marker published afterwards arrives after them. The in-process hub delivers at once.
    """
    if isinstance(hub, InProcessHub):
        return
    arrived = threading.Event()
    marker = f"settle-{uuid.uuid4().hex}"
    subscription = hub.subscribe(marker, lambda message: arrived.set())
    (via or hub).publish(marker, {})
    assert arrived.wait(WAIT), "the marker never arrived"
    subscription.close()
