"""The hub, the call state machine and the message checks, without sockets.

The hub tests run on the in-process hub and on RedisHub (``hub`` takes ``hub_kind``).
"""
import threading

import pytest

from app.consultation import calls, ice, protocol
from app.hub import ACCEPTED, IDLE, OFFLINE, RINGING, TIMEOUT, CallState, channel, ring_timed_out
from tests.support.hubs import settle


def test_publish_reaches_only_the_channels_subscribers(hub):
    got_a, got_b = [], []
    sub_a = hub.subscribe("appointment:1:patient", got_a.append)
    hub.subscribe("appointment:2:patient", got_b.append)
    assert hub.publish("appointment:1:patient", {"type": "x"}) == 1
    settle(hub)
    assert got_a == [{"type": "x"}] and got_b == []
    sub_a.close()
    sub_a.close()
    assert hub.publish("appointment:1:patient", {"type": "y"}) == 0
    assert hub.subscribers("appointment:1:patient") == 0
    assert hub.subscribers("appointment:2:patient") == 1


def test_a_subscriber_may_unsubscribe_while_being_delivered_to(hub):
    got = []
    subscription = None

    def deliver(message):
        got.append(message)
        subscription.close()

    subscription = hub.subscribe("c", deliver)
    hub.subscribe("c", got.append)
    assert hub.publish("c", {"n": 1}) == 2
    settle(hub)
    assert got == [{"n": 1}, {"n": 1}]
    assert hub.subscribers("c") == 1


def test_compare_and_set_needs_the_current_version(hub):
    start = hub.call_state(7)
    assert start == CallState(IDLE, 0)
    ringing = hub.compare_and_set(7, start, RINGING)
    assert ringing == CallState(RINGING, 1)
    assert hub.compare_and_set(7, start, ACCEPTED) is None
    assert hub.call_state(7) == ringing
    with pytest.raises(ValueError):
        hub.compare_and_set(7, ringing, "party")


def test_exactly_one_of_many_racing_threads_wins(hub):
    start = hub.call_state(1)
    results = []
    barrier = threading.Barrier(16)

    def attempt():
        barrier.wait()
        results.append(hub.compare_and_set(1, start, RINGING))

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r is not None]) == 1


def test_a_late_timer_does_not_end_a_newer_ring(hub, calls_context):
    hub.subscribe(channel(3, "patient"), lambda m: None)
    first = calls.ring(hub, 3, timeout_seconds=3600)
    assert calls.transition(hub, 3, {RINGING}, IDLE) is not None
    second = calls.ring(hub, 3, timeout_seconds=3600)
    assert second.state == RINGING and second.version > first.version
    ring_timed_out(hub, 3, first)
    assert hub.call_state(3) == second
    ring_timed_out(hub, 3, second)
    assert hub.call_state(3).state == TIMEOUT


def test_ring_without_a_patient_is_offline_and_reset_keeps_versions_rising(hub, calls_context):
    states = []
    hub.subscribe(channel(4, "staff"), states.append)
    offline = calls.ring(hub, 4, timeout_seconds=3600)
    assert offline.state == OFFLINE
    settle(hub)
    assert states == [{"type": "call-state", "state": "offline"}]
    hub.reset(4)
    assert hub.call_state(4) == CallState(IDLE, offline.version + 1)


def test_turn_credentials_need_both_urls_and_secret():
    config = {"ICE_STUN_URLS": "", "TURN_URLS": "turn:127.0.0.1:3478", "TURN_SECRET": "",
              "TURN_TTL_SECONDS": 60}
    assert ice.ice_servers(config, 5) == []
    config["TURN_SECRET"] = "s"
    (turn,) = ice.ice_servers(config, 5, now=1000)
    assert turn["username"] == "1060:5"


# -- message checks ----------------------------------------------------------------------

@pytest.mark.parametrize("role, message", [
    ("staff", '{"type": "ring"}'),
    ("patient", '{"type": "accept"}'),
    ("patient", '{"type": "signal", "description": {"type": "rollback"}}'),
    ("staff", '{"type": "signal", "candidate": null}'),
    ("staff", '{"type": "signal", "candidate": {"candidate": "", "sdpMid": null, "sdpMLineIndex": null}}'),
    ("patient", '{"type": "screenshot-consent", "granted": false}'),
    ("staff", '{"type": "media-state", "camera": true, "mic": false, "screen": false}'),
])
def test_valid_messages_pass(role, message):
    assert protocol.parse(message, role)["type"]


@pytest.mark.parametrize("role, raw, code", [
    ("staff", "", 1003),
    ("staff", "null", 1003),
    ("staff", '{"type": 5}', 1003),
    ("staff", '{"type": "accept"}', 1003),
    ("patient", '{"type": "screenshot-request"}', 1003),
    ("staff", '{"type": "signal"}', 1003),
    ("staff", '{"type": "signal", "description": {"type": "offer", "sdp": 1}}', 1003),
    ("staff", '{"type": "signal", "candidate": {"candidate": "", "sdpMLineIndex": true}}', 1003),
    ("staff", '{"type": "screen-share", "active": 1}', 1003),
    ("staff", '{"type": "ring", "sdp": "' + "ü" * 40000 + '"}', 1009),
    ("staff", b"{}", 1003),
])
def test_invalid_messages_name_their_close_code(role, raw, code):
    with pytest.raises(protocol.ProtocolError) as error:
        protocol.parse(raw, role)
    assert error.value.close_code == code


def test_token_bucket_allows_bursts_then_the_rate():
    now = [0.0]
    bucket = protocol.TokenBucket(rate=30, burst=60, clock=lambda: now[0])
    assert all(bucket.take() for _ in range(60))
    assert not bucket.take()
    now[0] += 0.1
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 100
    assert sum(bucket.take() for _ in range(100)) == 60


def test_joined_guests_are_kept_per_call_until_it_ends(hub):
    """Guests who joined a group call and did not hang up (issue 9): on both hubs, per
    appointment, and gone with the call's end (forget_joined) or its reset."""
    assert hub.joined(7) == set()
    hub.set_joined(7, "guest-1", True)
    hub.set_joined(7, "guest-2", True)
    hub.set_joined(8, "guest-3", True)
    hub.set_joined(7, "guest-1", False)
    assert (hub.joined(7), hub.joined(8)) == ({"guest-2"}, {"guest-3"})
    hub.forget_joined(7)
    assert (hub.joined(7), hub.joined(8)) == (set(), {"guest-3"})
    hub.reset(8)
    assert hub.joined(8) == set()
