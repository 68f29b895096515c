"""RedisHub: several web processes carry one call.

Runs against the Redis at TEST_REDIS_URL (default DB 15). Each test works under its own
key prefix and deletes only keys under it. Without a server the tests skip with the
reason; CI sets REQUIRE_REDIS=1 so that a missing server fails instead. The behaviour
both hubs share is tested in tests/test_hub.py, and every websocket test runs on
RedisHub too (``hub_kind``, tests/support/hubs.py). Here: what only several processes show.
"""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app import create_app
from app.consultation import calls
from app.extensions import hub as app_hub
from app.hub import HUB_LOST, RINGING, TIMEOUT, CallState, HubUnavailable, InProcessHub, channel
from tests.support.calls import relays
from tests.support.hubs import RedisHubs, delete_keys, new_prefix, settle
from tests.support.machine import REDIS_URL, need_redis, need_redis_server
from tests.support.sockets import LiveServer
from tests.support.webapp import csrf_token, make_config, sqlite_only

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10


# -- two processes, one hub ----------------------------------------------------------------

def test_subscribe_on_one_process_publish_on_another(make_redis_hub):
    a, b = make_redis_hub(), make_redis_hub()
    got = []
    subscription = a.subscribe(channel(1, "staff"), got.append)
    assert b.subscribers(channel(1, "staff")) == 1
    assert b.subscribers(channel(1, "patient")) == 0
    assert b.publish(channel(1, "staff"), {"type": "signal", "candidate": None}) == 1
    b.publish(channel(1, "patient"), {"type": "elsewhere"})
    settle(a, via=b)
    assert got == [{"type": "signal", "candidate": None}]
    subscription.close()
    assert b.subscribers(channel(1, "staff")) == 0
    assert b.publish(channel(1, "staff"), {"type": "late"}) == 0


def test_messages_of_one_publisher_keep_their_order_across_processes(make_redis_hub):
    a, b = make_redis_hub(), make_redis_hub()
    got = []
    a.subscribe("c", got.append)
    for n in range(200):
        b.publish("c", {"n": n})
    settle(a, via=b)
    assert got == [{"n": n} for n in range(200)]


def test_two_prefixes_do_not_hear_each_other(make_redis_hub):
    ours = make_redis_hub()
    other = RedisHubs()
    try:
        theirs = other()
        got = []
        ours.subscribe("c", got.append)
        assert theirs.publish("c", {"x": 1}) == 0
        assert theirs.subscribers("c") == 0
        theirs.compare_and_set(5, CallState(), RINGING)
        assert ours.call_state(5) == CallState()
        settle(ours)
        assert got == []
    finally:
        other.close()


def test_compare_and_set_contention_across_processes(make_redis_hub):
    hubs = [make_redis_hub(), make_redis_hub()]
    start = hubs[0].call_state(9)
    results = []
    barrier = threading.Barrier(16)

    def attempt(hub):
        barrier.wait()
        results.append(hub.compare_and_set(9, start, RINGING))

    threads = [threading.Thread(target=attempt, args=(hubs[n % 2],)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert winners == [CallState(RINGING, 1)]
    assert hubs[0].call_state(9) == hubs[1].call_state(9) == CallState(RINGING, 1)


def test_every_key_has_a_ttl(make_redis_hub, calls_context):
    import redis

    hub = make_redis_hub()
    hub.subscribe(channel(2, "patient"), lambda m: None)
    calls.ring(hub, 2, timeout_seconds=3600)
    hub.reset(2)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=hub.prefix + "*"))
    assert {k.decode()[len(hub.prefix):].split(":")[0] for k in keys} == {"presence", "call", "ring-deadlines"}
    assert all(client.ttl(k) > 0 for k in keys)
    client.close()


# -- ring timeout across processes ---------------------------------------------------------

def test_ring_timeout_fires_exactly_once_with_two_processes(make_redis_hub, calls_context):
    # No background polling: the test lets both processes race for the due deadline.
    a, b = make_redis_hub(poll_seconds=3600), make_redis_hub(poll_seconds=3600)
    states = []
    b.subscribe(channel(6, "staff"), states.append)
    a.subscribe(channel(6, "patient"), lambda m: None)
    ringing = calls.ring(a, 6, timeout_seconds=0)
    assert ringing.state == RINGING
    barrier = threading.Barrier(8)

    def poll(hub):
        barrier.wait()
        hub.fire_due_ring_timeouts()

    threads = [threading.Thread(target=poll, args=((a, b)[n % 2],)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle(b, via=a)
    settle(b)
    assert [m["state"] for m in states] == ["ringing", "timeout"]
    assert b.call_state(6) == CallState(TIMEOUT, ringing.version + 1)


def test_the_ring_times_out_even_when_the_ringing_process_is_gone(make_redis_hub, calls_context):
    a, b = make_redis_hub(poll_seconds=0.1), make_redis_hub(poll_seconds=0.1)
    timed_out = threading.Event()
    b.subscribe(channel(8, "staff"),
                lambda m: m.get("state") == "timeout" and timed_out.set())
    b.subscribe(channel(8, "patient"), lambda m: None)
    ringing = calls.ring(a, 8, timeout_seconds=0.5)
    a.close()
    assert timed_out.wait(WAIT)
    assert b.call_state(8) == CallState(TIMEOUT, ringing.version + 1)


def test_an_answered_ring_does_not_time_out(make_redis_hub, calls_context):
    a, b = make_redis_hub(poll_seconds=3600), make_redis_hub(poll_seconds=3600)
    a.subscribe(channel(4, "patient"), lambda m: None)
    # Due in a second, not at once: the listeners' first housekeeping (at their start)
    # must not find it due before the accept (the ring also records the board's progress).
    calls.ring(a, 4, timeout_seconds=1)
    accepted = calls.transition(b, 4, {RINGING}, "accepted")
    time.sleep(1.2)
    a.fire_due_ring_timeouts()
    b.fire_due_ring_timeouts()
    assert a.call_state(4) == accepted


# -- configuration --------------------------------------------------------------------------

def test_hub_url_selects_the_redis_hub(tmp_path):
    need_redis()
    from app.hub.redis_hub import RedisHub

    plain = create_app(make_config(tmp_path, "sqlite://"))
    assert isinstance(app_hub.get(plain), InProcessHub)
    prefix = new_prefix()
    shared = create_app(make_config(tmp_path, "sqlite://", HUB_URL=REDIS_URL, HUB_PREFIX=prefix))
    hub = app_hub.get(shared)
    try:
        assert isinstance(hub, RedisHub) and hub.prefix == prefix
        assert app_hub.get(shared) is hub
    finally:
        hub.close()
        delete_keys(prefix + "*")


# -- two real web processes -----------------------------------------------------------------

SERVER = """
import json, sys
from werkzeug.serving import make_server
from app import create_app
from config import TestConfig
app = create_app(type("TwoServersConfig", (TestConfig,), json.loads(sys.argv[1])))
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


class _Process:
    """The web process behind a LiveServer: shutdown and close end it."""

    def __init__(self, settings, log_path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(settings)], cwd=ROOT,
                                          stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.popen.stdout.readline()
        if not line.strip().isdigit():
            self.popen.kill()
            raise RuntimeError(f"web process did not start: {Path(log_path).read_text()[-2000:]}")
        self.server_port = int(line)

    def shutdown(self):
        self.popen.terminate()

    def server_close(self):
        self.popen.wait(WAIT)
        self.popen.stdout.close()


class WebProcess(LiveServer):
    """A LiveServer in its own process (own hub object, own threads): only Redis joins them."""

    def __init__(self, settings, log_path):
        self.server = _Process(settings, log_path)
        self.port = self.server.server_port
        self.sockets = []


@pytest.fixture
def two_processes(app, hub_kind, tmp_path):
    """Two web processes on the test app's SQLite file and Redis (hub and rate limits)."""
    assert hub_kind == "redis"
    prefix = app.config["HUB_PREFIX"]
    settings = {
        "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "OUTBOX_DIR": app.config["OUTBOX_DIR"],
        "HUB_URL": REDIS_URL,
        "HUB_PREFIX": prefix,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": prefix,
        "LOGIN_RATE_LIMIT": "2 per minute",
    }
    servers = []
    try:
        for n in (1, 2):
            servers.append(WebProcess(settings, tmp_path / f"web{n}.log"))
        yield servers
    finally:
        for server in servers:
            server.stop()
        delete_keys(f"*{prefix}*")  # Flask-Limiter puts its own namespace before the prefix


@pytest.mark.parametrize("hub_kind", ["redis"], indirect=True)
@sqlite_only
def test_staff_on_one_process_and_patient_on_another_hold_a_call(two_processes, make_call):
    """Only Redis joins the processes: the staff socket on the first, the patient's on the second."""
    first, second = two_processes
    call = make_call("premium")
    staff = call.staff(on=first)
    assert staff.welcome["peer_online"] is False
    patient = call.patient(on=second)
    assert patient.welcome["peer_online"] is True
    staff.expect("presence", peer_online=True)

    call.accept(staff, patient)
    relays(staff, patient, {"type": "signal", "description": {"type": "offer", "sdp": "v=0 offer"}})
    relays(patient, staff, {"type": "signal", "description": {"type": "answer", "sdp": "v=0 answer"}})

    patient.close()
    staff.expect("presence", peer_online=False)


@pytest.mark.parametrize("hub_kind", ["redis"], indirect=True)
@sqlite_only
def test_login_rate_limit_counts_across_processes(app, two_processes):
    """RATELIMIT_STORAGE_URI=redis://…: every process counts against the same limit (2 per minute)."""
    import requests

    client = app.test_client()
    token = csrf_token(client)
    cookie = client.get_cookie("session").value
    form = {"email": "niemand@praxis.example", "password": "falsch-falsch-1", "csrf_token": token}

    def attempt(server):
        return requests.post(f"http://127.0.0.1:{server.port}/login", data=form,
                             cookies={"session": cookie}, allow_redirects=False, timeout=WAIT).status_code

    first, second = two_processes
    assert [attempt(first), attempt(second)] == [401, 401]
    assert attempt(first) == 429
    assert attempt(second) == 429


def test_sockets_of_a_vanished_process_drop_out_of_presence(make_redis_hub, monkeypatch):
    from app.hub import redis_hub

    monkeypatch.setattr(redis_hub, "PRESENCE_TTL_SECONDS", 1)
    monkeypatch.setattr(redis_hub, "HEARTBEAT_SECONDS", 0.2)
    gone, alive, observer = make_redis_hub(poll_seconds=0.1), make_redis_hub(poll_seconds=0.1), make_redis_hub()
    gone.subscribe(channel(3, "patient"), lambda m: None)
    alive.subscribe(channel(3, "staff"), lambda m: None)
    # A crash: the listener stops renewing, nobody unsubscribes.
    gone._stopped.set()
    gone._listener.join()
    assert observer.subscribers(channel(3, "patient")) == 1
    for _ in range(WAIT * 10):
        if observer.subscribers(channel(3, "patient")) == 0:
            break
        threading.Event().wait(0.1)
    assert observer.subscribers(channel(3, "patient")) == 0
    threading.Event().wait(2)  # twice the TTL: only renewing keeps the living socket present
    assert observer.subscribers(channel(3, "staff")) == 1


def test_a_restarted_redis_gets_subscriptions_and_presence_back(tmp_path):
    """Its own Redis (unix socket, no data kept), restarted empty under two running hubs."""

    from app.hub.redis_hub import RedisHub

    need_redis_server()
    socket_path = tmp_path / "redis.sock"

    def start():
        process = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(socket_path),
                                    "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                                   stdout=subprocess.DEVNULL)
        for _ in range(WAIT * 20):
            if socket_path.exists():
                return process
            threading.Event().wait(0.05)
        process.kill()
        raise RuntimeError("redis-server did not start")

    servers = [start()]
    hubs = []
    try:
        url = f"unix://{socket_path}?db=0"
        a, b = hubs[:] = [RedisHub(url, poll_seconds=0.1), RedisHub(url, poll_seconds=0.1)]
        got = []
        a.subscribe("c", got.append)
        servers[0].terminate()
        servers[0].wait(WAIT)
        servers.append(start())
        for _ in range(WAIT * 10):
            try:
                if b.subscribers("c") == 1:
                    break
            except HubUnavailable:
                pass  # b connects again at its next command
            threading.Event().wait(0.1)
        assert b.subscribers("c") == 1
        assert b.publish("c", {"n": 1}) == 1
        settle(a, via=b)
        # The subscriber heard that messages may have been lost (its socket would close).
        assert got == [{"type": HUB_LOST}] * (len(got) - 1) + [{"n": 1}] and len(got) > 1
    finally:
        for hub in hubs:
            hub.close()
        for server in servers:
            server.terminate()
            server.wait(WAIT)
