"""Group calls through the media relay (docs/signalling.md, "Guests" and "Group calls
through the media relay"): a real `python -m media_relay` process, real websockets to
the live app and aiortc peer connections that stand in for the browsers and build
their relay offers as the contract says.

The database takes part in two things here: who connects (identity and tariff, in
every welcome) and the names in the roster. The two tests that check those run on
SQLite and PostgreSQL; the others do the same database work and run on SQLite only,
which keeps this file's run time in bounds (aiortc and the relay are the slow part).
"""
import re
import time

import pytest

from app.auth.models import MFA, Practice
from app.auth.services import add_staff
from app.consultation import relay
from app.extensions import db
from media_relay.client import RelayRefused
from tests.support.browsers import BrowserLoop, assert_media_follows_roster, expected_slots, join_in_turn
from tests.support.calls import PATIENT_NAME, PRACTICE_NAME
from tests.support.ports import free_port
from tests.support.relay import SECRET, RelayProcess, close_room_quietly, relay_client, room_members
from tests.support.waiting import wait_until
from tests.support.webapp import PASSWORD, logged_in, sqlite_only

FULL_MESSAGE = "An diesem Anruf nimmt bereits die größtmögliche Zahl von Personen teil."
# On the in-process hub only: a Redis run of each would double this file's time (aiortc
# and the relay are the slow part); the websocket tests run on both hubs.
pytestmark = [pytest.mark.usefixtures("loopback_only"),
              pytest.mark.parametrize("hub_kind", ["in-process"], indirect=True)]


@pytest.fixture(scope="module")
def shared_relay(tmp_path_factory):
    with RelayProcess(tmp_path_factory.mktemp("relay") / "relay.log", RELAY_MAX_ROOMS="8") as shared:
        yield shared.url


@pytest.fixture
def relay_url(request, shared_relay, tmp_path):
    """The shared relay; parametrise indirectly with "closed" (nothing listens there) or
    "own" (a RelayProcess of this test's own, as request.node.relay)."""
    mode = getattr(request, "param", "shared")
    if mode == "closed":
        yield f"http://127.0.0.1:{free_port()}"
    elif mode == "own":
        own = RelayProcess(tmp_path / "relay.log").start()
        request.node.relay = own
        try:
            yield own.url
        finally:
            own.stop()
    else:
        yield shared_relay


@pytest.fixture
def config_overrides(relay_url):
    return {"RELAY_URL": relay_url, "RELAY_SECRET": SECRET.decode()}


@pytest.fixture
def aio():
    loop = BrowserLoop()
    yield loop
    loop.close()


@pytest.fixture
def group(make_call, live, relay_url, aio):
    """group(tariff="premium", guests=1) -> Call on the live server. Afterwards the
    pages close first (the server then leaves and closes the room), then the browsers."""
    calls = []

    def factory(tariff="premium", guests=1):
        call = make_call(tariff, guests)
        calls.append(call)
        return call

    yield factory
    live.stop()
    for call in calls:
        try:
            # not asserted here (the tests about closing the room do): waits for the
            # server's cleanup before the database goes
            wait_until(lambda: room_members(relay_url, call.room) is None, "room closed", timeout=5)
        except (AssertionError, OSError):
            close_room_quietly(relay_url, call.room)


def keys_of(roster):
    return {p["key"] for p in roster["participants"]}


def joined(call, aio, guests=1):
    """grouped(), then every member's browser joins the relay, one after the other, and
    connects. Returns staff, patient, the guests' Members, the browsers by key and the
    last roster."""
    staff, patient, guest_members = call.grouped(guests)
    members = [(staff, aio.browser("staff")), (patient, aio.browser("patient"))] + [
        (g, aio.browser(f"guest-{pid}")) for g, pid in zip(guest_members, call.guest_ids)]
    roster = join_in_turn(aio, members)[-1][0]
    browsers = {b.key: b for _, b in members}
    wait_until(lambda: all(b.connected() for b in browsers.values()), "browsers connected to the relay")
    return staff, patient, guest_members, browsers, roster


# -- joining --------------------------------------------------------------------------

def test_guest_accept_moves_the_accepted_call_to_the_relay(group, relay_url):
    call = group()
    (guest_id,) = call.guest_ids
    staff, patient = call.staff(), call.patient()
    guest = call.guest()
    for member, key in ((staff, "staff"), (patient, "patient"), (guest, f"guest-{guest_id}")):
        welcome = member.welcome
        assert (welcome["key"], welcome["group"], welcome["maxParticipants"], welcome["relay"]) == (
            key, True, 5, False), (member.label, welcome)
    assert guest.welcome["role"] == "guest"
    assert guest.welcome["participant"] == {"id": guest_id, "name": "Jonas Dolmetscher"}

    # the call state reaches the guest channel too
    staff.send({"type": "ring"})
    guest.take("call-state", state="ringing")
    patient.take("call-state", state="ringing")
    patient.send({"type": "accept"})
    for member in (staff, patient, guest):
        member.take("call-state", state="accepted")
    assert room_members(relay_url, call.room) is None  # 1:1 until a guest joins

    guest.send({"type": "accept"})
    for member in (staff, patient, guest):
        assert member.take("relay") == {"type": "relay", "active": True}, member.label
    room = relay_client(relay_url).room(call.room)
    assert room["max_participants"] == 5 and room["participants"] == []

    # pages opened now (a reload) learn that the call runs through the relay
    for again in (call.guest(), call.staff()):
        assert (again.welcome["relay"], again.welcome["state"]) == (True, "accepted"), again.welcome


def test_members_send_and_receive_media_through_the_relay_on_the_rosters_slots(group, relay_url, aio):
    call = group()
    staff, patient, (guest,) = call.grouped()
    guest_key = f"guest-{call.guest_ids[0]}"
    members = [(staff, aio.browser("staff")), (patient, aio.browser("patient")), (guest, aio.browser(guest_key))]
    history = join_in_turn(aio, members)
    rosters = history[-1]
    keys = ["staff", "patient", guest_key]
    for _, browser in members:
        assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host",
                         browser.pc.remoteDescription.sdp), "an answer from the relay"
    assert room_members(relay_url, call.room) == set(keys)

    # one roster per join, the same on every channel, its version rising
    for rosters_of_join in history:
        assert all(r == rosters_of_join[0] for r in rosters_of_join), rosters_of_join
    versions = [rosters_of_join[0]["version"] for rosters_of_join in history]
    assert all(isinstance(v, int) for v in versions) and versions == sorted(set(versions)), versions
    roster = rosters[0]
    assert expected_slots(roster, keys), roster
    assert sorted(roster["participants"], key=lambda p: p["key"]) == sorted([
        {"key": "staff", "name": PRACTICE_NAME, "role": "staff"},
        {"key": "patient", "name": PATIENT_NAME, "role": "patient"},
        {"key": guest_key, "name": "Jonas Dolmetscher", "role": "guest", "call_role": "interpreter"},
    ], key=lambda p: p["key"])
    wait_until(lambda: all(b.connected() for _, b in members), "browsers connected to the relay")
    assert_media_follows_roster([b for _, b in members], roster)


@sqlite_only
def test_media_state_in_a_group_names_its_sender_and_is_not_echoed(group):
    call = group(guests=2)
    staff, patient, (first, second) = call.grouped(guests=2)
    first_key = f"guest-{call.guest_ids[0]}"
    state = {"type": "media-state", "camera": False, "mic": True, "screen": False}
    first.send(state)
    for member in (staff, patient, second):
        assert member.take("media-state") == {**state, "from": first_key}, member.label

    # what staff send after it reaches the first guest; its own message never came back
    answer = {"type": "media-state", "camera": True, "mic": False, "screen": False}
    staff.send(answer)
    assert first.first_of("media-state") == {**answer, "from": "staff"}
    assert patient.take("media-state") == {**answer, "from": "staff"}
    assert second.take("media-state") == {**answer, "from": "staff"}

    # screen sharing the same way; the sender is told to go ahead
    second.send({"type": "screen-share", "active": True})
    second.take("screen-share-ok")
    for member in (staff, patient, first):
        assert member.take("screen-share") == {"type": "screen-share", "active": True,
                                               "from": f"guest-{call.guest_ids[1]}"}, member.label
    staff.send({"type": "screen-share", "active": False})
    assert second.first_of("screen-share") == {"type": "screen-share", "active": False, "from": "staff"}


# -- refusals -------------------------------------------------------------------------

@sqlite_only
def test_guest_accept_needs_the_patient_to_have_accepted(group, relay_url):
    call = group()
    staff, patient = call.staff(), call.patient()
    guest = call.guest()
    guest.send({"type": "accept"})  # idle
    error = guest.take("error")
    assert error["code"] == "invalid" and error["message"], error

    staff.send({"type": "ring"})
    for member in (staff, patient, guest):
        member.take("call-state", state="ringing")
    guest.send({"type": "accept"})
    assert guest.take("error")["code"] == "invalid"
    assert room_members(relay_url, call.room) is None
    # the guest did not answer the patient's ringing: the patient still can
    patient.send({"type": "accept"})
    for member in (staff, patient, guest):
        member.take("call-state", state="accepted")
    call.settle(staff, patient)

    # a guest's decline changes nothing: what the pages see next is what came after it
    guest.send({"type": "decline"})
    patient.send({"type": "media-state", "camera": True, "mic": True, "screen": False})
    assert staff.first_of("media-state", "call-state", "relay", "error")["type"] == "media-state"
    guest.send({"type": "accept"})
    for member in (staff, patient):
        assert member.first_of("relay", "call-state", "error") == {"type": "relay", "active": True}, member.label
    guest.take("relay", active=True)


@sqlite_only
def test_a_refused_guest_accept_or_relay_offer_also_gets_the_current_call_state(group):
    """docs/signalling.md, "Call state": a message that does not fit the current state
    gets error/invalid *and the current call-state*."""
    call = group()
    staff, patient = call.staff(), call.patient()
    guest = call.guest()
    # Each page's first call-state is the one its refusal brought (the welcome carries
    # the state; nothing else changes it here). Waited for before the next step: another
    # page's message may overtake it on the way otherwise.
    guest.send({"type": "accept"})
    assert guest.take("error")["code"] == "invalid"
    assert guest.first_of("call-state") == {"type": "call-state", "state": "idle"}
    staff.send({"type": "relay-offer", "sdp": "v=0\r\n"})
    assert staff.take("error")["code"] == "invalid"
    assert staff.first_of("call-state") == {"type": "call-state", "state": "idle"}


@sqlite_only
def test_standard_practice_gets_no_group_call(group, relay_url):
    call = group()
    call.set_tariff("standard")  # the guest was added on Premium; the practice changed tariff since
    staff, patient = call.accepted()
    guest = call.guest()
    for member in (staff, patient, guest):
        assert (member.welcome["group"], member.welcome["maxParticipants"], member.welcome["relay"]) == (
            False, 2, False), member.label

    guest.send({"type": "accept"})
    error = guest.take("error")
    assert error["code"] == "tariff" and error["message"]
    assert staff.first_of("error", "relay") == error
    staff.send({"type": "relay-offer", "sdp": "v=0\r\n"})
    assert staff.first_of("error", "relay-answer", "relay")["code"] == "tariff"
    assert room_members(relay_url, call.room) is None

    # nobody moved to the relay: the 1:1 call goes on, then ends for all
    patient.send({"type": "signal", "candidate": None})
    assert staff.first_of("signal", "relay") == {"type": "signal", "candidate": None}
    staff.send({"type": "hangup"})
    for member in (staff, patient, guest):
        assert member.first_of("relay", "call-state") == {"type": "call-state", "state": "ended"}, member.label


@sqlite_only
def test_relay_offer_outside_an_accepted_call_is_refused(group, relay_url):
    call = group()
    staff, patient = call.staff(), call.patient()
    guest = call.guest()
    staff.send({"type": "relay-offer", "sdp": "v=0\r\n"})  # idle
    assert staff.first_of("error", "relay-answer")["code"] == "invalid"
    staff.send({"type": "ring"})
    guest.take("call-state", state="ringing")
    for member in (patient, guest):
        member.send({"type": "relay-offer", "sdp": "v=0\r\n"})
        assert member.first_of("error", "relay-answer")["code"] == "invalid", member.label
    assert room_members(relay_url, call.room) is None


E2EE_MESSAGE = ("Ihr Browser kann Gruppengespräche nicht Ende-zu-Ende verschlüsseln. Bitte verwenden "
                "Sie einen aktuellen Chrome, Edge, Firefox oder Safari.")


@sqlite_only
def test_relay_offer_without_frame_encryption(group, relay_url, aio, app):
    """Group calls are end-to-end encrypted (docs/encryption.md): a page that says its
    browser cannot encrypt frames is refused, and staff hear why, unless the practice
    lets such browsers in (all pages are then told to warn: welcome "e2ee")."""
    from app.auth.models import Practice
    from app.extensions import db

    call = group()
    staff, patient, (guest,) = call.grouped()
    guest_key = f"guest-{call.guest_ids[0]}"
    assert guest.welcome["e2ee"] == "required"
    guest.send({"type": "relay-offer", "sdp": aio.run(aio.browser(guest_key).offer())})
    error = guest.first_of("error", "relay-answer")
    assert error == {"type": "error", "code": "e2ee", "message": E2EE_MESSAGE}
    assert staff.first_of("error", "relay-answer") == error
    assert guest_key not in (room_members(relay_url, call.room) or [])

    with app.app_context():
        db.session.get(Practice, call.practice_id).allow_unencrypted_group_calls = True
        db.session.commit()
    again = call.guest()
    assert again.welcome["e2ee"] == "warn"
    again.send({"type": "relay-offer", "sdp": aio.run(aio.browser(guest_key).offer()), "e2ee": False})
    assert again.first_of("error", "relay-answer")["type"] == "relay-answer"
    assert guest_key in room_members(relay_url, call.room)


@sqlite_only
@pytest.mark.parametrize("relay_url", ["closed"], indirect=True)
def test_unreachable_relay_leaves_the_one_to_one_call_alone(group):
    call = group()
    staff, patient = call.accepted()
    guest = call.guest()
    guest.send({"type": "accept"})
    error = guest.take("error")
    assert error == {"type": "error", "code": "relay", "message": str(relay.RelayUnavailable.default)}
    assert error["message"].startswith("Der Medienserver ist nicht erreichbar.")
    assert staff.first_of("error", "relay", "call-state") == error

    # the patient never heard of it, and the pages still talk browser to browser
    staff.send({"type": "signal", "candidate": None})
    assert patient.first_of("signal", "relay", "call-state", "error") == {"type": "signal", "candidate": None}
    patient.send({"type": "signal", "candidate": None})
    assert staff.first_of("signal", "relay", "call-state") == {"type": "signal", "candidate": None}
    again = call.guest()
    assert (again.welcome["state"], again.welcome["relay"]) == ("accepted", False)


# -- leaving ---------------------------------------------------------------------------

@sqlite_only
def test_guest_hangup_leaves_the_relay_and_staff_hangup_closes_the_room(group, relay_url, aio):
    call = group()
    staff, patient, (guest,), browsers, before = joined(call, aio)
    guest_key = f"guest-{call.guest_ids[0]}"

    guest.send({"type": "hangup"})
    wait_until(lambda: room_members(relay_url, call.room) == {"staff", "patient"}, "the relay lets the guest go")
    for member in (staff, patient):
        roster = member.take("roster")
        assert keys_of(roster) == {"staff", "patient"}, (member.label, roster)
        assert roster["version"] > before["version"]
        assert set(roster["slots"]) == {"staff", "patient"}
        assert guest_key not in {publisher for slots in roster["slots"].values() for publisher in slots.values()}
    # the call goes on between the two
    patient.send({"type": "media-state", "camera": True, "mic": True, "screen": False})
    assert staff.first_of("media-state", "call-state")["from"] == "patient"

    staff.send({"type": "hangup"})
    for member in (staff, patient, guest):
        member.take("call-state", state="ended")
    wait_until(lambda: room_members(relay_url, call.room) is None, "the room is closed on the relay")
    with pytest.raises(RelayRefused) as gone:
        relay_client(relay_url).room(call.room)
    assert (gone.value.status, gone.value.code) == (404, "no_room")


@sqlite_only
def test_a_guest_page_that_goes_away_leaves_the_relay_and_stays_away_until_it_hangs_up(group, relay_url, aio):
    """A network cut is not a goodbye (issue 9): the guest's socket closes, the server
    takes the guest off the relay, and the others keep the guest's tile (away) until the
    guest is back or hangs up."""
    call = group()
    staff, patient, (guest,), browsers, _ = joined(call, aio)
    guest_key = f"guest-{call.guest_ids[0]}"
    away = [{"key": guest_key, "name": call.guest_names[call.guest_ids[0]], "role": "guest",
             "call_role": "interpreter"}]
    # the guest's peer connection stays up: only the server can take it out
    assert browsers[guest_key].connected()
    guest.crash()
    wait_until(lambda: room_members(relay_url, call.room) == {"staff", "patient"}, "the relay lets the guest go")
    roster = staff.take("roster")
    assert keys_of(roster) == {"staff", "patient"} and roster["away"] == away, roster

    # back on a new socket, the guest joins again: nobody is away
    back = call.guest()
    again = aio.browser(guest_key)
    back.relay_offer(aio, again)
    roster = staff.take("roster", where=lambda r: keys_of(r) == {"staff", "patient", guest_key})
    assert roster["away"] == [], roster
    # the guest hangs up: gone, not away
    back.send({"type": "hangup"})
    roster = staff.take("roster", where=lambda r: keys_of(r) == {"staff", "patient"})
    assert roster["away"] == [], roster


@sqlite_only
def test_a_patient_page_that_goes_away_stays_in_the_roster_as_away_until_it_joins_again(group, relay_url, aio):
    """A network cut: the patient's socket closes, the server takes the patient off the
    relay, but the patient is still in the call, so the others keep the tile (away)."""
    call = group()
    staff, patient, (guest,), browsers, _ = joined(call, aio)
    guest_key = f"guest-{call.guest_ids[0]}"
    patient.crash()
    wait_until(lambda: room_members(relay_url, call.room) == {"staff", guest_key}, "the relay lets the patient go")
    for member in (staff, guest):
        roster = member.take("roster", where=lambda r: keys_of(r) == {"staff", guest_key})
        assert roster["away"] == [{"key": "patient", "name": PATIENT_NAME, "role": "patient"}], roster
        assert "patient" not in {publisher for slots in roster["slots"].values() for publisher in slots.values()}
    # back on a new socket, the patient joins again: nobody is away any more
    back = call.patient()
    assert (back.welcome["state"], back.welcome["relay"]) == ("accepted", True)
    again = aio.browser("patient")
    back.relay_offer(aio, again)
    roster = staff.take("roster", where=lambda r: keys_of(r) == {"staff", "patient", guest_key})
    assert roster["away"] == [] and expected_slots(roster, ["staff", "patient", guest_key]), roster
    wait_until(lambda: again.connected() and browsers["staff"].connected(), "the patient's new connection is up")
    assert_media_follows_roster([browsers["staff"], browsers[guest_key], again], roster)


@sqlite_only
def test_a_guests_old_socket_closing_late_leaves_its_new_connection_alone(group, relay_url, aio):
    """A dropped network: the guest's page is back on a new socket and has joined again
    before the server notices the old socket is gone."""
    call = group()
    staff, patient, (old,), browsers, _ = joined(call, aio)
    guest_key = f"guest-{call.guest_ids[0]}"
    new = call.guest()
    again = aio.browser(guest_key)
    new.relay_offer(aio, again)
    wait_until(again.connected, "the guest's new connection is up")
    old.crash()
    staff.take("roster", where=lambda r: guest_key in {p["key"] for p in r["participants"]})
    time.sleep(1)  # the old socket's cleanup has run by now (a wrong leave would follow at once)
    assert room_members(relay_url, call.room) == {"staff", "patient", guest_key}
    assert again.connected()


@sqlite_only
def test_room_closes_when_the_practice_and_the_patient_pages_close(group, relay_url):
    call = group()
    staff, patient, (guest,) = call.grouped()
    assert room_members(relay_url, call.room) == set()
    staff.close()
    patient.close()
    wait_until(lambda: room_members(relay_url, call.room) is None, "the room is closed on the relay")


@sqlite_only
def test_deleting_the_appointment_closes_the_room(group, relay_url):
    call = group()
    staff, patient, (guest,) = call.grouped()
    assert call.staff_auth.delete(f"/patienten/termine/{call.id}").status_code == 200
    for member in (staff, patient, guest):
        member.take("appointment-deleted")
    wait_until(lambda: room_members(relay_url, call.room) is None, "the room is closed on the relay")


# -- the relay's limits ----------------------------------------------------------------

@sqlite_only
@pytest.mark.parametrize("relay_url", ["own"], indirect=True)
def test_a_restarted_relay_gets_the_room_back_with_fresh_offers(group, relay_url, aio, request):
    own = request.node.relay
    call = group()
    staff, patient, (guest,), browsers, before = joined(call, aio)
    guest_key = f"guest-{call.guest_ids[0]}"

    own.kill()
    own.start()  # same control port, nothing in it
    assert room_members(relay_url, call.room) is None

    fresh = [(staff, aio.browser("staff")), (guest, aio.browser(guest_key))]
    staff.relay_offer(aio, fresh[0][1])
    assert room_members(relay_url, call.room) == {"staff"}
    assert relay_client(relay_url).room(call.room)["max_participants"] == 5
    guest.relay_offer(aio, fresh[1][1])
    roster = staff.take("roster", where=lambda r: expected_slots(r, ["staff", guest_key]))
    # pages ignore rosters older than the last they saw: the new relay's count on
    assert roster["version"] > before["version"]
    wait_until(lambda: all(b.connected() for _, b in fresh), "fresh browsers connected to the new relay")
    assert_media_follows_roster([b for _, b in fresh], roster)


@sqlite_only
def test_a_full_room_refuses_a_further_member(group, relay_url, aio, app):
    call = group()
    staff, patient, (guest,) = call.grouped()
    # Four the relay holds already (a sixth member cannot be invited: the seat limit
    # stops a fourth guest), so staff are the tariff's fifth.
    client = relay_client(relay_url)
    for n in range(1, 5):
        outsider = aio.browser(f"outsider-{n}", publish=False)
        answer = client.join(call.room, f"outsider-{n}", aio.run(outsider.offer()))
        aio.run(outsider.answer(answer["sdp"]))
    staff.relay_offer(aio, aio.browser("staff"))

    patient_browser = aio.browser("patient")
    patient.send({"type": "relay-offer", "sdp": aio.run(patient_browser.offer()), "e2ee": True})
    assert patient.first_of("error", "relay-answer") == {"type": "error", "code": "full", "message": FULL_MESSAGE}
    assert "patient" not in room_members(relay_url, call.room)

    # the same key again replaces its connection: no sixth place needed
    staff.relay_offer(aio, aio.browser("staff"))
    assert len(room_members(relay_url, call.room)) == 5

    # the adapter says the same for anyone else
    sdp = aio.run(aio.browser("guest-0").offer())
    with app.app_context(), pytest.raises(relay.RelayFull) as full:
        relay.join(call.room, "guest-0", sdp)
    assert (full.value.reason, full.value.message) == ("room_full", FULL_MESSAGE)


# -- the staff's list of who is in the call and who waits (issue 11) -----------------------

PERSON = re.compile(r'data-key="([^"]+)" data-state="([^"]+)">.*?<span class="person-name">([^<]*)</span>\s*'
                    r'<span class="person-role">\(([^)]*)\)</span>\s*<span class="person-state">([^<]*)</span>', re.S)


def listed(auth, appointment_id):
    """The call page's list as it fetches itself: {key: (state, name, role, state's words)}."""
    response = auth.get(f"/anruf/{appointment_id}/personen")
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<ul id="call-people-list"')
    return {key: rest for key, *rest in (m.groups() for m in PERSON.finditer(html))}


def states(call):
    return {key: person[0] for key, person in listed(call.staff_auth, call.id).items()}


def hears_no_people_news(*pages):
    """The list's news goes to the staff's pages only: a patient's or guest's page gets
    its answer to a ping before any such news (there is none)."""
    for page in pages:
        page.send({"type": "ping"})
        assert page.first_of("people", "pong")["type"] == "pong", page.label


@sqlite_only
def test_staff_see_who_is_in_the_group_call_and_who_waits_with_their_roles(group, relay_url, aio):
    call = group(guests=2)
    first, second = (f"guest-{pid}" for pid in call.guest_ids)
    staff = call.staff()
    page = call.staff_auth.get(f"/anruf/{call.id}", htmx=False).get_data(as_text=True)
    assert 'id="call-people"' in page and f'hx-get="/anruf/{call.id}/personen"' in page
    assert listed(call.staff_auth, call.id) == {
        "patient": ["away", PATIENT_NAME, "Patient/in", "Nicht da"],
        first: ["away", "Jonas Dolmetscher", "Dolmetscher/in", "Nicht da"],
        second: ["away", "Mira Tochter", "Angehörige/r", "Nicht da"],
    }

    # Pages opening outside the call: they wait, and the staff page hears of each.
    patient = call.patient()
    staff.expect("presence", peer_online=True)
    guest = call.guest(0)
    staff.take("people")
    assert states(call) == {"patient": "waiting", first: "waiting", second: "away"}
    # Staff ring and the patient accepts: the patient is in the call, the guest still waits.
    call.accept(staff, patient)
    assert states(call) == {"patient": "in-call", first: "waiting", second: "away"}
    hears_no_people_news(patient, guest)
    guest.close()
    staff.take("people")
    assert states(call)[first] == "away"
    for page in (staff, patient):
        page.close()

    # A call on the relay with the first guest; the second opens the link meanwhile.
    staff, patient, (guest,), browsers, _ = joined(call, aio, guests=1)
    assert states(call) == {"patient": "in-call", first: "in-call", second: "away"}
    later = call.guest(1)
    staff.take("people")
    assert states(call) == {"patient": "in-call", first: "in-call", second: "waiting"}
    # The first guest hangs up but keeps the page open: back to waiting.
    guest.send({"type": "hangup"})
    staff.take("roster", where=lambda r: keys_of(r) == {"staff", "patient"})
    assert states(call) == {"patient": "in-call", first: "waiting", second: "waiting"}
    later.close()
    staff.take("people")
    assert states(call)[second] == "away"
    hears_no_people_news(patient, guest)

    # In the staff's language.
    client = call.staff_client
    client.post("/language", data={"lang": "en", "next": "/patienten", "csrf_token": call.staff_auth.token})
    english = listed(call.staff_auth, call.id)
    assert english["patient"][2:] == ["Patient", "In the call"]
    assert english[first][2:] == ["Interpreter", "Waiting"] and english[second][3] == "Not here"


def test_the_list_of_a_calls_people_is_for_the_practices_call_staff_only(group, make_call, app):
    call = group(guests=1)
    path = f"/anruf/{call.id}/personen"
    assert call.staff_auth.get(path).status_code == 200
    # Another practice's staff: as if there were no such appointment.
    other = make_call()
    response = other.staff_auth.get(path)
    assert response.status_code == 404 and PATIENT_NAME not in response.get_data(as_text=True)
    # The patient's and the guest's browsers hold no login.
    for client in (call.patient_client, call.guest_clients[call.guest_ids[0]]):
        response = client.get(path, headers={"HX-Request": "true"})
        assert response.status_code in (302, 401), response.status_code
        assert PATIENT_NAME not in response.get_data(as_text=True)
        assert "Jonas" not in response.get_data(as_text=True)
    # An MFA of the same practice conducts no call, so sees no call's people either.
    with app.app_context():
        add_staff(db.session.get(Practice, call.practice_id), "mfa@gruppe.example", "Mia MFA", PASSWORD, MFA)
    response = logged_in(app, "mfa@gruppe.example").get(path)
    assert response.status_code == 403 and "Jonas" not in response.get_data(as_text=True)
    # Without JavaScript the address leads to the call page, which has the list.
    assert call.staff_auth.get(path, htmx=False).headers["Location"].endswith(f"/anruf/{call.id}")


def test_a_practice_without_group_calls_shows_no_list(group):
    call = group(tariff="standard", guests=0)
    page = call.staff_auth.get(f"/anruf/{call.id}", htmx=False).get_data(as_text=True)
    assert 'id="call-people"' not in page
    response = call.staff_auth.get(f"/anruf/{call.id}/personen")
    assert response.status_code == 403 and "Tarif Premium" in response.get_data(as_text=True)
