"""Faults of the signalling hub and the web processes, for real (issue 9).

Two gunicorn processes as ./run starts them share a Redis of the test's own
(tests/support/redis_stack.py, appendonly as README "Redis" asks); the staff page's socket
is on the first, the patient's on the second, so only Redis joins them. Redis is stopped
and started again at chosen moments (ringing, connected, during the hang-up), a web
process is killed with -9, sockets go silent. What the pages would do (reconnect with
backoff, say a hangup again until it is confirmed) the tests do with real sockets;
tests/e2e/test_hub_faults.py runs the real page once.
"""
import re
import subprocess
import time

import pytest
import requests
import websocket

from tests.support.calls import relays
from tests.support.sockets import Closed
from tests.support.webapp import csrf_token, sqlite_only

pytestmark = sqlite_only

WAIT = 20  # hang guard
RING_SECONDS = 4
HEARTBEAT = {"HEARTBEAT_SECONDS": 0.5, "HEARTBEAT_TIMEOUT_SECONDS": 2}


@pytest.fixture
def hub_kind():
    """The test's app (test clients, appointments) shares the hub of the web processes."""
    return "redis"


@pytest.fixture
def hub_config(own_redis):
    # Its own prefix: should the test's app build a hub, it must not time out the web
    # processes' rings (their keys are under "sprechzimmer:").
    return {"HUB_URL": own_redis.url, "HUB_PREFIX": "test-app:"}


def come_back(connect, seconds=WAIT):
    """A page's reconnect loop: attempts until one gets its welcome. Returns the socket
    and how the refused attempts ended (close codes; None: nothing listened)."""
    refused = []
    deadline = time.monotonic() + seconds
    while True:
        try:
            return connect(), refused
        except Closed as closed:
            refused.append(closed.code)
        except (OSError, websocket.WebSocketException):
            refused.append(None)
        if time.monotonic() > deadline:
            raise AssertionError(f"never welcomed again; refusals: {refused}")
        time.sleep(0.2)


def closed_code(socket):
    """The close code the server ends this socket with (it must end it)."""
    try:
        while True:
            socket.recv()
    except Closed as closed:
        return closed.code
    except (OSError, websocket.WebSocketException):
        return None


def timeouts_fired(call, *webs):
    """How often the web processes timed this appointment's ring out (their log lines)."""
    line = f"call state appointment={call.id} state=timeout"
    return sum(web.log_text().count(line) for web in webs)


def collapsed(got):
    """The states a page went through (the same state told twice in a row is one)."""
    return [s for i, s in enumerate(got) if i == 0 or got[i - 1] != s]


def no_errors_in(*webs):
    for web in webs:
        text = web.log_text()
        assert "Traceback" not in text and "Error handling request" not in text, web.log_tail()


def states(socket, seconds):
    """Every call-state the socket gets within `seconds` (it stays open)."""
    got = []
    socket.ws.settimeout(0.2)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                message = socket.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if message["type"] == "call-state":
                got.append(message["state"])
    finally:
        socket.ws.settimeout(10)
    return got


# -- Redis away ------------------------------------------------------------------------------

def test_a_socket_that_connects_while_redis_is_down_is_closed_with_1013_and_gets_in_when_it_is_back(
        make_call, own_redis, web_processes):
    web, = web_processes(1)
    call = make_call()
    staff = call.staff(on=web)
    own_redis.stop()
    assert closed_code(staff) == 1013  # the open socket: messages may have been lost
    for _ in range(3):
        with pytest.raises(Closed) as refused:
            call.staff(on=web)
        assert refused.value.code == 1013
    own_redis.start()
    staff, refused = come_back(lambda: call.staff(on=web))
    assert set(refused) <= {1013}
    assert staff.welcome["state"] == "idle"
    no_errors_in(web)


def test_no_page_answers_500_while_redis_is_down(app, make_call, own_redis, web_processes):
    web, = web_processes(1)
    call = make_call()
    staff_token = csrf_token(call.staff_client, "/patienten")
    patient_token = csrf_token(call.patient_client, "/sprechstunde")
    staff_http, patient_http, stranger = requests.Session(), requests.Session(), requests.Session()
    staff_http.cookies.set("session", call.staff_client.get_cookie("session").value)
    patient_http.cookies.set("session", call.patient_client.get_cookie("session").value)
    own_redis.stop()

    for session, path in ((staff_http, "/patienten"), (staff_http, f"/anruf/{call.id}"),
                          (staff_http, f"/chat/{call.id}"), (patient_http, "/sprechstunde"),
                          (patient_http, "/sprechstunde/geraetetest"), (stranger, "/login")):
        assert session.get(web.base_url + path, timeout=WAIT).status_code == 200, path
    # Anruf starten needs the hub: a German message, 503, nothing rung.
    started = staff_http.post(f"{web.base_url}/anruf/{call.id}/starten", headers={"X-CSRFToken": staff_token},
                              allow_redirects=False, timeout=WAIT)
    assert started.status_code == 503
    assert "Der Gesprächsdienst ist gerade nicht erreichbar" in started.text
    assert started.headers["Retry-After"] == "5"
    # A chat message is stored; the pages load it when their sockets are back.
    sent = patient_http.post(f"{web.base_url}/sprechstunde/chat/nachrichten", data={"text": "Bin da"},
                             headers={"X-CSRFToken": patient_token, "HX-Request": "true"}, timeout=WAIT)
    assert sent.status_code == 201
    # The login limit counts in memory meanwhile (RATELIMIT_STORAGE_URI is this Redis).
    login_token = re.search(r'name="csrf-token" content="([^"]+)"', stranger.get(web.base_url + "/login").text).group(1)
    form = {"email": "niemand@praxis.example", "password": "falsch-falsch-1", "csrf_token": login_token}
    assert stranger.post(web.base_url + "/login", data=form, timeout=WAIT).status_code == 401

    own_redis.start()
    history = patient_http.get(web.base_url + "/sprechstunde/chat/nachrichten", timeout=WAIT)
    assert history.status_code == 200 and "Bin da" in history.text
    assert staff_http.post(f"{web.base_url}/anruf/{call.id}/starten", headers={"X-CSRFToken": staff_token},
                           allow_redirects=False, timeout=WAIT).status_code == 303
    no_errors_in(web)


@pytest.mark.parametrize("down_seconds", [0.5, RING_SECONDS + 1], ids=["short", "past-the-deadline"])
def test_a_ring_survives_a_redis_restart_and_times_out_exactly_once(make_call, own_redis, web_processes,
                                                                    down_seconds):
    first, second = web_processes(2, RING_TIMEOUT_SECONDS=RING_SECONDS)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    staff.send({"type": "ring"})
    patient.take("call-state", state="ringing")
    rung = time.monotonic()

    own_redis.restart(down_seconds=down_seconds)
    assert closed_code(staff) == closed_code(patient) == 1013
    staff, refused_staff = come_back(lambda: call.staff(on=first))
    patient, refused_patient = come_back(lambda: call.patient(on=second))
    assert set(refused_staff + refused_patient) <= {1013}
    if time.monotonic() - rung < RING_SECONDS - 1:
        # Back in time: the ring goes on (the patient's dialog comes back).
        assert staff.welcome["state"] == patient.welcome["state"] == "ringing"
    seen = {"staff": [staff.welcome["state"]], "patient": [patient.welcome["state"]]}
    # Until well past the deadline: "timeout" exactly once on each page, never again.
    rest = max(0.0, rung + RING_SECONDS + 3 - time.monotonic())
    seen["staff"] += states(staff, rest)
    seen["patient"] += states(patient, 0.5)
    for who, got in seen.items():
        assert collapsed(got)[-2:] in (["ringing", "timeout"], ["timeout"]), (who, got)
    assert timeouts_fired(call, first, second) == 1
    assert own_redis.client().get("sprechzimmer:call:%d" % call.id).startswith("timeout:")
    no_errors_in(first, second)


def test_after_a_redis_restart_mid_call_auflegen_reaches_the_patient(make_call, own_redis, web_processes):
    first, second = web_processes(2)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    call.accept(staff, patient)

    own_redis.restart(down_seconds=1)
    assert closed_code(staff) == closed_code(patient) == 1013
    # Back only after the processes took the closed sockets out of presence (their
    # removal failed while Redis was away): neither side present, yet the call is not over.
    time.sleep(2)
    staff, _ = come_back(lambda: call.staff(on=first))
    patient, _ = come_back(lambda: call.patient(on=second))
    assert staff.welcome["state"] == patient.welcome["state"] == "accepted"
    relays(staff, patient, {"type": "signal", "description": {"type": "offer", "sdp": "v=0 repair"}})

    staff.send({"type": "hangup"})
    assert staff.first_of("call-state", "error") == {"type": "call-state", "state": "ended"}
    patient.take("call-state", state="ended")
    no_errors_in(first, second)


def test_a_hangup_as_redis_dies_reaches_the_patient_when_it_is_back(make_call, own_redis, web_processes):
    """Auflegen in the very moment Redis is killed (-9: its last second may be lost):
    whether the server got it done or closed the socket first, the page says it again
    after its welcome until it is confirmed (js/call/main.js, hangupPending), and the
    patient's page learns "ended"."""
    first, second = web_processes(2)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    call.accept(staff, patient)
    call.settle(staff, patient)

    staff.send({"type": "hangup"})
    own_redis.stop(kill=True)
    for socket in (staff, patient):
        socket.ws.settimeout(1)
        try:
            socket.expect("nothing-comes")
        except (Closed, OSError, websocket.WebSocketException):
            pass
    time.sleep(1)
    own_redis.start()

    patient_seen = []
    deadline = time.monotonic() + WAIT
    while "ended" not in patient_seen:
        assert time.monotonic() < deadline, patient_seen
        staff, _ = come_back(lambda: call.staff(on=first))
        if staff.welcome["state"] == "accepted":
            staff.send({"type": "hangup"})  # not confirmed: said again
        patient, _ = come_back(lambda: call.patient(on=second))
        patient_seen.append(patient.welcome["state"])
        try:
            patient_seen += states(patient, 1)
        except (Closed, OSError, websocket.WebSocketException):
            pass
    assert "accepted" not in patient_seen[patient_seen.index("ended"):]
    no_errors_in(first, second)


# -- a web process killed ----------------------------------------------------------------------

def test_kill_9_of_the_patients_web_process_mid_call_loses_nothing(make_call, web_processes):
    first, second = web_processes(2)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    call.accept(staff, patient)
    call.settle(staff, patient)

    second.kill()
    # Its page comes back through the process that is left (as behind a load balancer).
    patient, _ = come_back(lambda: call.patient(on=first))
    assert patient.welcome["state"] == "accepted" and patient.welcome["peer_online"] is True
    staff.take("presence", peer_online=True)  # the staff page repairs the connection (p2p.js)
    relays(staff, patient, {"type": "signal", "description": {"type": "offer", "sdp": "v=0 repair"}})
    relays(patient, staff, {"type": "signal", "description": {"type": "answer", "sdp": "v=0 answer"}})
    # And once the killed one is started again (systemd), through it too.
    second.start()
    patient.close()
    patient, _ = come_back(lambda: call.patient(on=second))
    assert patient.welcome["state"] == "accepted"
    patient.send({"type": "hangup"})
    staff.take("call-state", state="ended")
    no_errors_in(first)


def test_kill_9_of_the_ringing_web_process_the_ring_ends_once_by_the_other(make_call, web_processes):
    """The staff's process rang and dies: the other process times the ring out, once."""
    first, second = web_processes(2, RING_TIMEOUT_SECONDS=RING_SECONDS)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    staff.send({"type": "ring"})
    patient.take("call-state", state="ringing")
    first.kill()
    staff, _ = come_back(lambda: call.staff(on=second))
    assert staff.welcome["state"] == "ringing"  # the staff page rings on, as it should
    got = states(patient, RING_SECONDS + 2)
    assert collapsed(got) == ["timeout"], got
    assert staff.take("call-state")["state"] == "timeout"
    assert timeouts_fired(call, first, second) == 1
    no_errors_in(second)


def test_kill_9_while_ringing_the_patients_ring_comes_back_and_can_be_answered(make_call, web_processes):
    first, second = web_processes(2)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    staff.send({"type": "ring"})
    patient.take("call-state", state="ringing")
    second.kill()
    patient, _ = come_back(lambda: call.patient(on=first))
    assert patient.welcome["state"] == "ringing"
    patient.send({"type": "accept"})
    staff.take("call-state", state="accepted")
    no_errors_in(first)


# -- both sides away at once --------------------------------------------------------------------

def test_both_sides_on_a_killed_process_resume_the_call_when_they_are_back(make_call, web_processes):
    web, = web_processes(1)
    call = make_call()
    staff, patient = call.staff(on=web), call.patient(on=web)
    call.accept(staff, patient)
    web.kill()
    web.start()
    staff, _ = come_back(lambda: call.staff(on=web))
    patient, _ = come_back(lambda: call.patient(on=web))
    assert staff.welcome["state"] == patient.welcome["state"] == "accepted"
    staff.take("presence", peer_online=True)
    relays(staff, patient, {"type": "signal", "description": {"type": "offer", "sdp": "v=0 again"}})
    no_errors_in(web)


def test_both_sides_back_after_their_presence_ran_out_resume_the_call(make_call, own_redis, web_processes):
    """Killed with both sockets and back only after their presence ran out (here: taken
    out as the TTL would): nobody closed the call, so it goes on."""
    web, = web_processes(1)
    call = make_call()
    staff, patient = call.staff(on=web), call.patient(on=web)
    call.accept(staff, patient)
    web.kill()
    redis = own_redis.client()
    for key in redis.scan_iter(match=f"sprechzimmer:presence:appointment:{call.id}:*"):
        redis.delete(key)
    web.start()
    staff, _ = come_back(lambda: call.staff(on=web))
    assert staff.welcome["state"] == "accepted" and staff.welcome["peer_online"] is False
    patient, _ = come_back(lambda: call.patient(on=web))
    assert patient.welcome["state"] == "accepted"
    staff.take("presence", peer_online=True)
    relays(staff, patient, {"type": "signal", "description": {"type": "offer", "sdp": "v=0 again"}})
    no_errors_in(web)


def test_the_only_process_without_redis_killed_resets_the_call_for_both(app, make_call, web_processes):
    """One process, the hub in it (./run's default): its state goes with it; both pages
    come back to a clean start (the page says why, js/call/main.js)."""
    web, = web_processes(1, HUB_URL="")
    call = make_call()
    staff, patient = call.staff(on=web), call.patient(on=web)
    call.accept(staff, patient)
    web.kill()
    web.start()
    staff, _ = come_back(lambda: call.staff(on=web))
    patient, _ = come_back(lambda: call.patient(on=web))
    assert staff.welcome["state"] == patient.welcome["state"] == "idle"
    staff.send({"type": "ring"})
    patient.take("call-state", state="ringing")
    no_errors_in(web)


# -- heartbeat ----------------------------------------------------------------------------------

def _silent_within_bound(staff, patient, silence):
    """The patient's socket goes silent (``silence()``); the staff page must see it away
    within the heartbeat timeout and the server's receive poll."""
    patient.send({"type": "ping"})
    assert patient.take("pong") == {"type": "pong"}
    went = time.monotonic()
    silence()
    staff.take("presence", peer_online=False)
    return time.monotonic() - went


def test_a_socket_that_stops_answering_is_closed_and_the_peer_sees_it_away(make_call, web_processes):
    first, second = web_processes(2, **HEARTBEAT)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    assert staff.welcome["heartbeat"] == {"interval": 0.5, "timeout": 2.0}
    staff.take("presence", peer_online=True)
    took = _silent_within_bound(staff, patient, lambda: None)
    # 2 s of silence, checked every 0.5 s; room for a busy machine
    assert 2 <= took < 2 + 0.5 + 1.5, took
    assert closed_code(patient) == 4000


def test_a_socket_whose_packets_are_dropped_is_closed_and_the_peer_sees_it_away(make_call, web_processes):
    """A NAT that forgets the connection: every packet of the patient's TCP connection is
    dropped (nftables, only its port), no FIN ever comes."""
    from tests.support.faults import NFT, need_faults

    need_faults()
    first, second = web_processes(2, **HEARTBEAT)
    call = make_call()
    staff, patient = call.staff(on=first), call.patient(on=second)
    staff.take("presence", peer_online=True)
    port = patient.ws.sock.getsockname()[1]
    table = f"sprechzimmer_hub_drop_{port}"
    rules = f"tcp sport {port} drop\n    tcp dport {port} drop"
    script = (f"table inet {table} {{\n  chain input {{ type filter hook input priority -10; policy accept;\n    {rules}\n  }}\n"
              f"  chain output {{ type filter hook output priority -10; policy accept;\n    {rules}\n  }}\n}}\n")
    try:
        took = _silent_within_bound(staff, patient, lambda: subprocess.run(
            [NFT, "-f", "-"], input=script, text=True, check=True, capture_output=True))
        assert 2 <= took < 2 + 0.5 + 1.5, took
    finally:
        subprocess.run([NFT, "delete", "table", "inet", table], check=False, capture_output=True)
    patient.crash()
    # The path is back: the page connects again and is present again.
    patient, _ = come_back(lambda: call.patient(on=second))
    staff.take("presence", peer_online=True)
