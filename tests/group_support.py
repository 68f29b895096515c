"""Harness for the group-call tests (tests/test_group_calls.py): a Premium appointment
with guests, their websockets to the live app, aiortc "browsers" that build the relay
offer as docs/signalling.md describes, and a relay process that can be killed and
started again on the same control port.

Sockets stay synchronous (websocket-client in the test's thread, as in
test_signalling); the peer connections live on one asyncio loop in a thread of their
own, so a test reads like the pages' steps: send over the socket, apply in the browser.
"""
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiortc import RTCSessionDescription
from aiortc.rtp import RtpPacket, is_rtcp

from app.auth.services import create_practice
from app.extensions import db
from app.invitations import crypto
from app.invitations.models import OutboxMessage
from app.patients.models import Participant as ParticipantRow
from media_relay.client import RelayClient, RelayRefused
from media_relay.forwarding import peer_connection
from tests.conftest import PASSWORD, Auth, appointment_form
from tests.live import created_appointment_id, patient_client
from tests.relay.clients import AUDIO_TIME_BASE, VIDEO_TIME_BASE, PacketTrack, opus_clip, vp8_clip
from tests.relay.support import SECRET
from tests.servers import free_port, free_udp_range
from tests.test_relay_adapter import answers

ROOT = Path(__file__).resolve().parents[1]
# Hang guards, not speed checks: loopback on a busy 2-core machine.
HANG_GUARD = 20
AIO_TIMEOUT = 30

PRACTICE_NAME = "Hausarztpraxis Sonnenschein"
PATIENT_NAME = "Erika Mustermann"  # appointment_form's contact
GUESTS = [("Jonas", "Dolmetscher"), ("Mira", "Tochter"), ("Paul", "Kollege")]


def wait_until(predicate, what, timeout=HANG_GUARD):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


# -- the browsers' event loop -------------------------------------------------------

class Aio:
    """One asyncio loop in a thread for every peer connection of a test."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.browsers = []

    def run(self, coro, timeout=AIO_TIMEOUT):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def browser(self, key, **kwargs):
        async def make():
            return Browser(key, **kwargs)

        browser = self.run(make())
        self.browsers.append(browser)
        return browser

    def close(self):
        async def close_all():
            for browser in self.browsers:
                await browser.pc.close()

        try:
            self.run(close_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.loop.is_running():
                self.loop.close()


# -- a page's peer connection to the relay -------------------------------------------

# Each browser publishes its own picture size and its own audio payloads, so what
# arrives can be told apart without decoding.
LOOKS = {"staff": 0, "patient": 1, "guest": 2, "outsider": 3}
SIZES = [(160, 120), (176, 144), (192, 144), (208, 160)]


def own_audio(look):
    """The Opus clip with one byte more in each frame: still a valid packet (a code 0
    packet's frame is the rest of it), and another publisher's bytes."""
    return [payload + bytes([look]) for payload in opus_clip()]


def look_of(key):
    return LOOKS["guest" if key.startswith("guest-") else key.rstrip("-0123456789")]


class Browser:
    """What call.js builds for the relay (docs/signalling.md "Relay offer"): one sendonly
    audio and one sendonly video m-line, then max_participants - 1 recvonly audio and as
    many recvonly video m-lines. Publishes pre-encoded VP8/Opus (no encoder) and records
    the payloads it sends and what arrives on each receive m-line (no decoder)."""

    def __init__(self, key, max_participants=5, publish=True):
        self.key = key
        self.pc = peer_connection([])
        self.sent = {"audio": set(), "video": set()}
        self.received = {}  # receive mid -> [payload]
        self.kind_of = {}  # receive mid -> kind
        self.senders = []
        if publish:
            look = look_of(key)
            width, height = SIZES[look]
            audio = self.pc.addTransceiver(
                PacketTrack("audio", own_audio(look), 0.02, 960, AUDIO_TIME_BASE), "sendonly")
            video = self.pc.addTransceiver(
                PacketTrack("video", vp8_clip(width=width, height=height), 1 / 15, 6000, VIDEO_TIME_BASE),
                "sendonly")
            self.senders = [("audio", audio.sender), ("video", video.sender)]
        self.receiving = []
        for kind in ("audio", "video"):
            for _ in range(max_participants - 1):
                transceiver = self.pc.addTransceiver(kind, "recvonly")
                self._record(transceiver)
                self.receiving.append(transceiver)

    async def offer(self):
        """aiortc gathers all candidates in setLocalDescription: the offer is complete."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        for transceiver in self.receiving:
            self.kind_of[transceiver.mid] = transceiver.kind
        return self.pc.localDescription.sdp

    async def answer(self, sdp):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        if self.senders:
            self._spy_on_sent()

    def _record(self, transceiver):
        async def handle_rtp(packet, arrival_time_ms):
            self.received.setdefault(transceiver.mid, []).append(packet.payload)

        transceiver.receiver._handle_rtp_packet = handle_rtp

    def _spy_on_sent(self):
        dtls = self.senders[0][1].transport  # MAX_BUNDLE: one transport for all m-lines
        kinds = {sender._ssrc: kind for kind, sender in self.senders}
        original = dtls._send_rtp

        async def send_rtp(data):
            if not is_rtcp(data):
                packet = RtpPacket.parse(data)
                if packet.ssrc in kinds:
                    self.sent[kinds[packet.ssrc]].add(packet.payload)
            await original(data)

        dtls._send_rtp = send_rtp

    def count_from(self, mid, publisher):
        """Packets on one receive m-line that carry what ``publisher`` sent."""
        sent = publisher.sent[self.kind_of[mid]]
        return sum(1 for payload in list(self.received.get(mid, ())) if payload in sent)

    def connected(self):
        return self.pc.connectionState == "connected"


def join_in_turn(aio, members):
    """members: [(Member, Browser)]. Each sends its relay-offer after every page has
    the roster of the join before, as pages that come one by one: a roster computed
    for an earlier join can then not arrive after a later one. Returns, for each join,
    the roster of it as each page got it."""
    history = []
    for n, (member, browser) in enumerate(members, 1):
        member.offer(aio, browser)
        keys = {b.key for _, b in members[:n]}
        history.append([other.take("roster", where=lambda r: {p["key"] for p in r["participants"]} == keys)
                        for other, _ in members])
    return history


def expected_slots(roster, keys):
    """True when the roster names every key, each with slots for all the others' media."""
    present = {p["key"] for p in roster["participants"]}
    if present != set(keys):
        return False
    return all(sorted(roster["slots"].get(k, {}).values()) == sorted(o for o in keys if o != k for _ in "av")
               for k in keys)


def assert_media_follows_roster(browsers, roster, minimum=15):
    """Every browser receives both kinds of each other member's media, on exactly the
    receive m-lines the roster names for that publisher, and nothing of anyone else there."""
    by_key = {b.key: b for b in browsers}
    expectations = []
    for subscriber in browsers:
        slots = roster["slots"][subscriber.key]
        for mid, publisher in slots.items():
            assert mid in subscriber.kind_of, (subscriber.key, mid, "is not one of its receive m-lines")
            expectations.append((subscriber, mid, by_key[publisher]))
    kinds = {(s.key, p.key, s.kind_of[mid]) for s, mid, p in expectations}
    assert kinds == {(s.key, p.key, k) for s in browsers for p in browsers if s is not p
                     for k in ("audio", "video")}

    def arrived():
        return all(s.count_from(mid, p) >= minimum for s, mid, p in expectations)

    try:
        wait_until(arrived, "every browser receives the others' media on the roster's slots")
    except AssertionError:
        counts = {(s.key, mid, p.key): (s.count_from(mid, p), len(s.received.get(mid, ())))
                  for s, mid, p in expectations}
        raise AssertionError(f"media per (subscriber, mid, publisher): (matching, all) {counts}") from None
    for subscriber, mid, publisher in expectations:
        for other in browsers:
            if other is not publisher and other is not subscriber:
                assert subscriber.count_from(mid, other) == 0, (subscriber.key, mid, other.key)


# -- sockets ------------------------------------------------------------------------

class Member:
    """A page's socket. ``take`` returns the earliest not yet taken message of a type
    and keeps the others for later, so concurrent rosters, presence and call states
    can arrive in any order without being lost."""

    def __init__(self, socket, label):
        self.socket = socket
        self.label = label
        self.backlog = []
        self.welcome = self.take("welcome")

    @property
    def key(self):
        return self.welcome.get("key")

    def send(self, message):
        self.socket.send(message)

    def take(self, type_, where=None, **fields):
        def fits(message):
            return (message["type"] == type_ and all(message.get(k) == v for k, v in fields.items())
                    and (where is None or where(message)))

        for i, message in enumerate(self.backlog):
            if fits(message):
                return self.backlog.pop(i)
        while True:
            message = self.socket.recv()
            if fits(message):
                return message
            self.backlog.append(message)

    def forget(self, type_):
        """Drops what came of this type so far (e.g. call states before a settle())."""
        self.backlog = [m for m in self.backlog if m["type"] != type_]

    def first_of(self, *types):
        """The earliest not yet taken message of one of these types: tells whether
        something arrived before a later marker message."""
        for i, message in enumerate(self.backlog):
            if message["type"] in types:
                return self.backlog.pop(i)
        while True:
            message = self.socket.recv()
            if message["type"] in types:
                return message
            self.backlog.append(message)

    def offer(self, aio, browser):
        """relay-offer with the browser's complete offer; applies the relay-answer."""
        self.send({"type": "relay-offer", "sdp": aio.run(browser.offer())})
        reply = self.first_of("relay-answer", "error")
        assert reply["type"] == "relay-answer", (self.label, reply)
        aio.run(browser.answer(reply["sdp"]))
        return reply

    def crash(self):
        """The page goes away without a close handshake (tab killed, network gone)."""
        self.socket.ws.sock.shutdown(2)
        self.socket.ws.sock.close()


class GroupCall:
    """A practice's appointment for Erika with guests; each person has an own browser
    session (test client) whose cookie opens the websockets on the live server."""

    def __init__(self, app, live, tariff="premium", guests=1):
        self.app = app
        self.live = live
        email = f"praxis{free_port()}@sonnenschein.example"
        with app.app_context():
            practice, _ = create_practice(PRACTICE_NAME, tariff, email, "Dr. Sonnenschein", PASSWORD,
                                          "Europe/Berlin")
            self.practice_id = practice.id
        self.staff_auth = Auth(app.test_client())
        assert self.staff_auth.login(email).status_code == 302
        response = self.staff_auth.post("/patienten/termine", data=appointment_form())
        assert response.status_code == 201, response.get_data(as_text=True)
        self.id = created_appointment_id(response)
        self.room = f"appointment-{self.id}"
        self.patient_client = patient_client(app, self.id)
        self.guest_ids = [self._add_guest(first, last) for first, last in GUESTS[:guests]]
        self.guest_clients = {pid: self._guest_client(pid) for pid in self.guest_ids}
        self.guest_names = {pid: f"{first} {last}" for pid, (first, last) in zip(self.guest_ids, GUESTS)}

    def _add_guest(self, first, last):
        prefix = f"a{self.id}-"
        data = {"first_name": first, "last_name": last, "email": f"{first.lower()}@example.org",
                "mobile": "", "consent": "y"}
        response = self.staff_auth.post(f"/patienten/termine/{self.id}/teilnehmer",
                                        data={prefix + k: v for k, v in data.items()})
        assert response.status_code == 201, response.get_data(as_text=True)
        with self.app.app_context():
            return db.session.execute(
                db.select(ParticipantRow.id).filter_by(appointment_id=self.id, first_name=first)
            ).scalar_one()

    def _guest_client(self, participant_id):
        with self.app.app_context():
            message = db.session.execute(
                db.select(OutboxMessage).filter_by(participant_id=participant_id, kind="invitation")
            ).scalars().first()
            token = crypto.unseal(message.payload)["token"]
        client = self.app.test_client()
        assert client.get(f"/j/{token}").status_code == 302
        return client

    def set_tariff(self, tariff):
        from app.auth.services import set_tariff

        with self.app.app_context():
            set_tariff(self.practice_id, tariff)

    # the pages' sockets
    def staff(self):
        return Member(self.live.connect(f"/ws/anruf/{self.id}", self.staff_auth.client), "staff")

    def patient(self):
        return Member(self.live.connect("/ws/sprechstunde", self.patient_client), "patient")

    def guest(self, index=0):
        pid = self.guest_ids[index]
        return Member(self.live.connect("/ws/sprechstunde", self.guest_clients[pid]), f"guest-{pid}")

    def accepted(self):
        """Staff and patient pages open, rung and accepted (the 1:1 call runs)."""
        staff, patient = self.staff(), self.patient()
        staff.send({"type": "ring"})
        staff.take("call-state", state="ringing")
        patient.take("call-state", state="ringing")
        patient.send({"type": "accept"})
        staff.take("call-state", state="accepted")
        patient.take("call-state", state="accepted")
        self.settle(staff, patient)
        return staff, patient

    @staticmethod
    def settle(staff, patient):
        """A round trip between the two pages: what the server sent either of them
        before has arrived, so its old call states can be forgotten (the ringing page
        gets "ringing" twice: published, and as the answer to its ring)."""
        staff.send({"type": "restart-ice"})
        patient.take("restart-ice")
        patient.send({"type": "restart-ice"})
        staff.take("restart-ice")
        staff.forget("call-state")
        patient.forget("call-state")

    def grouped(self, guests=1):
        """accepted(), then the guests' pages open and accept: the call is on the relay."""
        staff, patient = self.accepted()
        joined = []
        for index in range(guests):
            guest = self.guest(index)
            guest.send({"type": "accept"})
            for member in (staff, patient, guest):
                member.take("relay", active=True)
            joined.append(guest)
        return staff, patient, joined


# -- the relay ----------------------------------------------------------------------

def relay_client(url):
    port = int(url.rsplit(":", 1)[1])
    return RelayClient("127.0.0.1", port, SECRET)


def room_members(url, room):
    """The keys the relay holds in a room, or None when it holds no such room."""
    try:
        return {p["participant"] for p in relay_client(url).room(room)["participants"]}
    except RelayRefused as refused:
        if refused.code == "no_room":
            return None
        raise


def close_room_quietly(url, room):
    try:
        relay_client(url).close_room(room)
    except (RelayRefused, OSError):
        pass


class RelayProcess:
    """`python -m media_relay` that a test can kill (a crash, no clean shutdown) and
    start again on the same control port."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        udp_min, udp_max = free_udp_range()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "RELAY_SECRET": SECRET.decode(),
                    "RELAY_CONTROL_PORT": str(self.port), "RELAY_UDP_PORT_MIN": str(udp_min),
                    "RELAY_UDP_PORT_MAX": str(udp_max), "RELAY_BIND_IP": "127.0.0.1", **env}
        self.tmp_path = tmp_path
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.log = self.tmp_path / f"relay-{self.port}-{self.starts}.log"
        with open(self.log, "w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "media_relay"], cwd=ROOT, env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT)
        client = RelayClient("127.0.0.1", self.port, SECRET)

        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"relay ended with {self.process.returncode}\n{self.log.read_text()}")
            return answers(client)

        wait_until(up, "the relay answers")
        return self

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(15)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
