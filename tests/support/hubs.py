"""The two hubs that carry a call's messages: in-process (one web process) and Redis
(several). ``hub_kind`` parametrises a test over both, as ``database_url`` does over
SQLite and PostgreSQL: every test that opens a websocket (through ``live``) and every
test of ``hub`` runs once per kind. Redis tests work under their own key prefix and
delete only keys under it.

Of the four pairs of database and hub, SQLite with Redis is left out: what the hub does
does not depend on the database, and what the database does not on the hub, so SQLite
and PostgreSQL with the in-process hub and PostgreSQL with Redis (the scale-out
install) cover every part; the fourth pair ran the same code a fourth time.
"""
import threading
import uuid

import pytest

from app import create_app
from app.extensions import db
from app.hub import InProcessHub
from app.hub.redis_hub import RedisHub
from tests.support.machine import REDIS_URL, need_redis
from tests.support.webapp import make_config

WAIT = 10


@pytest.fixture(params=["in-process", "redis"])
def hub_kind(request):
    if request.param == "redis":
        need_redis()
    return request.param


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        pair = (params.get("database_url"), params.get("hub_kind"))
        (dropped if pair == ("sqlite", "redis") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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


@pytest.fixture
def calls_context(tmp_path):
    """An app context for tests that drive consultation.calls straight on a hub: every
    state change is also recorded for the board (patients/progress.py), which reads the
    appointment; here there is none, so nothing is recorded."""
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'calls.db'}"))
    with app.app_context():
        db.create_all()
        yield app
