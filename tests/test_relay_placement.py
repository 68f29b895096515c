"""Several media relays (RELAY_URLS, app/consultation/placement.py) with three real
`python -m media_relay` processes: new group calls spread over the relays by their
signed status (rooms, CPU); the placement lives in Redis, so two apps that stand for
two web processes agree on it; a relay that does not answer gets no new room; and when
the relay of a running call is killed, the members' fresh offers (what the pages send
when their connection fails) move the room to another relay, and media flows again.
"""
import random
import time

import pytest

from app import create_app
from app.consultation import placement, relay
from media_relay.config import RelayConfig
from media_relay.rooms import Relay
from tests.support.browsers import BrowserLoop, assert_media_follows_roster, expected_slots, join_in_turn
from tests.support.hubs import delete_keys, new_prefix
from tests.support.machine import REDIS_URL, need_redis
from tests.support.ports import free_port
from tests.support.relay import SECRET, RelayProcess, close_room_quietly, relay_client, room_members
from tests.support.waiting import wait_until
from tests.support.webapp import make_config, sqlite_only

pytestmark = [pytest.mark.usefixtures("loopback_only")]


def status(rooms, max_rooms=8, cpu=0.0):
    return {"rooms": rooms, "max_rooms": max_rooms, "participants": 0, "cpu": cpu, "cores": 2}


@pytest.mark.parametrize("statuses, chosen", [
    ({"a": status(3), "b": status(1), "c": status(2)}, "b"),
    # rooms are idle, but b's core is busy: the higher of the two counts
    ({"a": status(2), "b": status(1, cpu=0.6), "c": status(3)}, "a"),
    ({"a": None, "b": status(5), "c": status(6)}, "b"),               # a does not answer
    ({"a": status(8), "b": status(2, max_rooms=2), "c": None}, None),  # full or silent
    ({"a": None}, None),
    ({"a": status(4, max_rooms=4), "b": status(7, max_rooms=16)}, "b"),
])
def test_the_least_loaded_relay_that_answers_and_has_room_takes_the_call(statuses, chosen):
    assert placement.least_loaded(statuses) == chosen


def test_equal_relays_are_chosen_by_chance():
    statuses = {"a": status(1), "b": status(1), "c": status(2)}
    picked = {placement.least_loaded(statuses, random.Random(seed)) for seed in range(20)}
    assert picked == {"a", "b"}


def test_the_in_process_placement_is_compare_and_set():
    placements = placement.InProcessPlacements()
    assert placements.get("r") is None
    assert placements.move("r", None, "a") == "a"
    assert placements.move("r", None, "b") == "a"   # placed already: the first one holds
    assert placements.move("r", "b", "c") == "a"    # not where the mover thought
    assert placements.move("r", "a", "c") == "c"
    placements.drop("r")
    assert placements.get("r") is None


@pytest.fixture(scope="module")
def relays(tmp_path_factory):
    started = []
    try:
        for n in range(3):
            process = RelayProcess(tmp_path_factory.mktemp(f"relay{n}") / "relay.log", udp_start=46200 + 40 * n,
                                   udp_size=30, RELAY_MAX_ROOMS="8")
            started.append(process.start())
        yield started
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def redis_prefix():
    need_redis()
    prefix = new_prefix()
    yield prefix
    delete_keys(prefix + "*")


@pytest.fixture
def web_apps(relays, redis_prefix, tmp_path):
    """Two apps on the same Redis and relays, as two web processes have them."""
    urls = ",".join(r.url for r in relays)
    settings = dict(RELAY_URLS=urls, RELAY_SECRET=SECRET.decode(), HUB_URL=REDIS_URL, HUB_PREFIX=redis_prefix)
    apps = [create_app(make_config(tmp_path, "sqlite://", **settings)) for _ in range(2)]
    yield apps
    for app in apps:
        placement.store(app).close()


def rooms_of(relays):
    return [r.client().status()["rooms"] for r in relays]


def in_app(app, fn, *args):
    with app.app_context():
        return fn(*args)


def test_new_calls_spread_evenly_and_both_web_processes_agree(relays, web_apps):
    first, second = web_apps
    before = rooms_of(relays)
    appointments = range(9100, 9106)
    try:
        for n, appointment in enumerate(appointments):
            in_app(web_apps[n % 2], relay.create_room, appointment, 5)
        spread = [after - b for after, b in zip(rooms_of(relays), before, strict=True)]
        assert spread == [2, 2, 2], spread
        for appointment in appointments:
            room = relay.room_id(appointment)
            where = in_app(first, relay.relay_of, room)
            assert in_app(second, relay.relay_of, room) == where
            holders = [r.url for r in relays if room_members(r.url, room) is not None]
            assert holders == [where]
            # Creating it again (a member's offer) stays where it is.
            in_app(second, relay.create_room, appointment, 5)
            assert in_app(first, relay.relay_of, room) == where
        in_app(first, relay.close_room, appointments[0])
        assert in_app(second, relay.relay_of, relay.room_id(appointments[0])) is None
    finally:
        for appointment in appointments:
            for r in relays:
                close_room_quietly(r.url, relay.room_id(appointment))


def test_a_relay_that_does_not_answer_gets_no_new_rooms(tmp_path, relays, redis_prefix):
    silent = f"http://127.0.0.1:{free_port()}"
    urls = [silent, relays[0].url]
    app = create_app(make_config(tmp_path, "sqlite://", RELAY_URLS=",".join(urls), RELAY_SECRET=SECRET.decode(),
                                 HUB_URL=REDIS_URL, HUB_PREFIX=redis_prefix))
    try:
        for appointment in (9201, 9202, 9203):
            in_app(app, relay.create_room, appointment, 5)
            assert in_app(app, relay.relay_of, relay.room_id(appointment)) == relays[0].url
        # None answers: the practice gets the relay's "unreachable" message.
        lonely = create_app(make_config(tmp_path, "sqlite://", RELAY_URLS=f"{silent},{silent}/",
                                        RELAY_SECRET=SECRET.decode()))
        with pytest.raises(relay.RelayUnavailable) as unavailable:
            in_app(lonely, relay.create_room, 9204, 5)
        assert unavailable.value.reason == "unreachable"
    finally:
        for appointment in (9201, 9202, 9203):
            close_room_quietly(relays[0].url, relay.room_id(appointment))
        placement.store(app).close()


# -- a running call whose relay dies ------------------------------------------------------

@pytest.fixture
def config_overrides(relays):
    return {"RELAY_URLS": ",".join(r.url for r in relays), "RELAY_SECRET": SECRET.decode()}


@pytest.fixture
def aio():
    loop = BrowserLoop()
    yield loop
    loop.close()


@sqlite_only
@pytest.mark.parametrize("hub_kind", ["redis"], indirect=True)
def test_a_killed_relays_call_moves_to_another_relay_and_media_flows_again(make_call, live, relays, aio, app):
    call = make_call("premium", guests=1)
    staff, patient, (guest,) = call.grouped()
    guest_key = f"guest-{call.guest_ids[0]}"
    members = [(staff, aio.browser("staff")), (patient, aio.browser("patient")), (guest, aio.browser(guest_key))]
    before = join_in_turn(aio, members)[-1][0]
    with app.app_context():
        first = relay.relay_of(call.room)
    (dead,) = [r for r in relays if r.url == first]
    try:
        dead.kill()
        # The pages notice their connection failed and come back with fresh offers.
        fresh = [(member, aio.browser(browser.key)) for member, browser in members]
        roster = join_in_turn(aio, fresh)[-1][0]
        with app.app_context():
            now = relay.relay_of(call.room)
        assert now != first and now in [r.url for r in relays]
        assert room_members(now, call.room) == {"staff", "patient", guest_key}
        assert expected_slots(roster, ["staff", "patient", guest_key])
        # pages ignore rosters older than the last they saw: the new relay's count on
        assert roster["version"] > before["version"]
        wait_until(lambda: all(b.connected() for _, b in fresh), "browsers connected to the new relay")
        assert_media_follows_roster([b for _, b in fresh], roster)
    finally:
        live.stop()
        for r in relays:
            close_room_quietly(r.url, call.room)
        dead.start()
    assert relay_client(dead.url).status()["rooms"] == 0


def test_the_relays_status_reports_its_cpu_signed_like_every_answer(relays):
    answer = relays[0].client().status()
    assert set(answer) == {"rooms", "max_rooms", "participants", "cpu", "cores"}
    assert 0.0 <= answer["cpu"] < 1.5 and answer["cores"] >= 1


def test_the_cpu_share_follows_the_relays_work():
    relay_ = Relay(RelayConfig(secret=SECRET))
    started = time.process_time()
    while time.process_time() - started < 0.3:
        pass
    relay_.measure_cpu(window=0)
    busy = relay_.cpu
    time.sleep(0.3)
    relay_.measure_cpu(window=0)
    assert busy > 0.2 and relay_.cpu < 0.1, (busy, relay_.cpu)
