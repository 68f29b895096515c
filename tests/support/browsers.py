"""One synthetic browser: an aiortc peer connection built as call.js builds its relay
offer (docs/signalling.md "Relay offer": one sendonly audio and one sendonly video
m-line, then ``slots`` recvonly audio and as many recvonly video m-lines). It publishes
a pre-encoded VP8 clip and Opus stream (no encoder runs anywhere) and records what
arrives on its receive m-lines without decoding it. The relay tests join it through
the control API (``join``); the group-call tests through a page's socket
(``Socket.relay_offer``), its loop in a thread of its own (``BrowserLoop``).
"""
import array
import asyncio
import fractions
import math
import threading
import time

import av
from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket, is_rtcp

from media_relay.forwarding import peer_connection
from tests.support.waiting import wait_until

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
AIO_TIMEOUT = 30  # a hang guard on a busy 2-core machine
_clips = {}


def vp8_clip(width=160, height=120, frames=30, fps=15, bitrate=150_000):
    """Encoded once per process: a moving pattern, a keyframe every second."""
    key = (width, height, frames, fps, bitrate)
    if key not in _clips:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.framerate = fractions.Fraction(fps)
        codec.time_base = fractions.Fraction(1, fps)
        codec.bit_rate = bitrate
        codec.gop_size = fps
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        ramp = bytes(range(256)) * (width * height // 256 + 2)
        packets = []
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                shift = (i * 5) % 256
                plane.update(ramp[shift:shift + plane.buffer_size])
            frame.pts = i
            packets += codec.encode(frame)
        packets += codec.encode(None)
        _clips[key] = [bytes(p) for p in packets]
    return _clips[key]


def opus_clip(frames=50):
    """One second of a 440 Hz tone as 20 ms Opus packets."""
    if "opus" not in _clips:
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate, codec.layout, codec.format = 48000, "stereo", "s16"
        codec.bit_rate = 32000
        packets = []
        for i in range(frames):
            samples = array.array("h", (
                int(6000 * math.sin(2 * math.pi * 440 * (i * 960 + k // 2) / 48000))
                for k in range(1920)
            ))
            frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
            frame.planes[0].update(samples.tobytes())
            frame.sample_rate, frame.pts = 48000, i * 960
            packets += codec.encode(frame)
        _clips["opus"] = [bytes(p) for p in packets]
    return _clips["opus"]


# Each page of a group call publishes its own picture size and its own audio payloads,
# so what arrives can be told apart without decoding.
LOOKS = {"staff": 0, "patient": 1, "guest": 2, "outsider": 3}
SIZES = [(160, 120), (176, 144), (192, 144), (208, 160)]


def own_media(key):
    """(VP8 clip, Opus payloads) of the page with this key: the Opus clip with one byte
    more in each frame is still a valid packet (a code 0 packet's frame is the rest of
    it), and another publisher's bytes."""
    look = LOOKS["guest" if key.startswith("guest-") else key.rstrip("-0123456789")]
    width, height = SIZES[look]
    return vp8_clip(width=width, height=height), [payload + bytes([look]) for payload in opus_clip()]


class PacketTrack(MediaStreamTrack):
    """Hands aiortc's sender pre-encoded av.Packets in real time; it packetizes them
    without encoding."""

    def __init__(self, kind, payloads, interval, step, time_base):
        super().__init__()
        self.kind = kind
        self._payloads, self._interval, self._step, self._time_base = payloads, interval, step, time_base
        self._n = 0
        self._start = None

    async def recv(self):
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._n * self._interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._payloads[self._n % len(self._payloads)])
        packet.pts = self._n * self._step
        packet.time_base = self._time_base
        self._n += 1
        return packet


class Received:
    __slots__ = ("ssrc", "seq", "ts", "pt", "marker", "payload", "abs_send_time", "at")

    def __init__(self, packet, at):
        self.ssrc, self.seq, self.ts = packet.ssrc, packet.sequence_number, packet.timestamp
        self.pt, self.marker, self.payload = packet.payload_type, packet.marker, packet.payload
        self.abs_send_time = packet.extensions.abs_send_time
        self.at = at


class SyntheticBrowser:
    """``key``: who it is to the relay; ``slots``: how many others it can receive;
    ``publish``: send audio and video (``clip`` and ``audio`` payloads, default the
    shared ones at ``fps``); ``on_packet(mid, packet)``: a lighter recorder (the
    benchmark counts instead of keeping every packet)."""

    def __init__(self, key, slots=4, publish=True, fps=15, clip=None, audio=None, on_packet=None):
        self.key = key
        self._on_packet = on_packet
        self.pc = peer_connection([])
        self.received = {}  # receive mid -> [Received]
        self.kind_of = {}  # receive mid -> kind
        self.sent = {"audio": [], "video": []}  # (seq, ts, payload) of our packets as they left
        self.plis = []  # media SSRCs of the PLIs reaching our video sender
        self.arrivals = []  # every RTP packet that reached us, decrypted
        self.slots = []  # from the control API: [{"mid", "participant", "kind"}]
        self.audio = self.video = None
        if publish:
            self.audio = self.pc.addTransceiver(
                PacketTrack("audio", audio or opus_clip(), 0.02, 960, AUDIO_TIME_BASE), "sendonly")
            self.video = self.pc.addTransceiver(
                PacketTrack("video", clip or vp8_clip(fps=fps), 1 / fps, 90000 // fps, VIDEO_TIME_BASE),
                "sendonly")
            self._spy_on_plis(self.video.sender)
        self.receiving = []
        for kind in ("audio", "video"):
            for _ in range(slots):
                transceiver = self.pc.addTransceiver(kind, "recvonly")
                self._record(transceiver)
                self.receiving.append(transceiver)

    async def offer(self):
        """aiortc gathers all candidates in setLocalDescription: the offer is complete."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        for transceiver in self.receiving:
            self.kind_of[transceiver.mid] = transceiver.kind
        return self.pc.localDescription.sdp

    async def answer(self, sdp, spy=True):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        if spy:
            self._spy_on_arrivals(self.pc.getTransceivers()[0].receiver.transport)
            if self.video is not None:
                self._spy_on_sent()

    async def join(self, client, room, spy=True):
        """Offer, the control API's join (through ``client``), answer; the join's reply."""
        sdp = await self.offer()
        data = await asyncio.to_thread(client.join, room, self.key, sdp)
        await self.answer(data["sdp"], spy)
        self.slots = data["slots"]
        return data

    def _record(self, transceiver):
        async def handle_rtp(packet, arrival_time_ms):
            if self._on_packet is not None:
                self._on_packet(transceiver.mid, packet)
            else:
                self.received.setdefault(transceiver.mid, []).append(Received(packet, time.time()))

        transceiver.receiver._handle_rtp_packet = handle_rtp

    def _spy_on_arrivals(self, dtls):
        """Everything arriving, also what aiortc's router would drop: with several
        video m-lines it cannot route RTX by payload type alone (Chrome uses the FID
        group of the answer)."""
        original = dtls._handle_rtp_data

        async def handle_rtp_data(data, arrival_time_ms):
            self.arrivals.append(RtpPacket.parse(data))
            await original(data, arrival_time_ms)

        dtls._handle_rtp_data = handle_rtp_data

    def _spy_on_plis(self, sender):
        original = sender._handle_rtcp_packet

        async def handle_rtcp(packet):
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                self.plis.append(packet.media_ssrc)
            await original(packet)

        sender._handle_rtcp_packet = handle_rtcp

    def _spy_on_sent(self):
        dtls = self.video.sender.transport  # MAX_BUNDLE: one transport for all m-lines
        kinds = {self.audio.sender._ssrc: "audio", self.video.sender._ssrc: "video"}
        original = dtls._send_rtp

        async def send_rtp(data):
            if not is_rtcp(data):
                packet = RtpPacket.parse(data)
                if packet.ssrc in kinds:
                    self.sent[kinds[packet.ssrc]].append((packet.sequence_number, packet.timestamp,
                                                          packet.payload))
            await original(data)

        dtls._send_rtp = send_rtp

    def mid_for(self, publisher, kind):
        """The mid on which the relay forwards the publisher's track to us."""
        for slot in self.slots:
            if slot["participant"] == publisher and slot["kind"] == kind:
                return slot["mid"]
        return None

    def count_from(self, mid, publisher):
        """Packets on one receive m-line that carry what ``publisher`` sent."""
        sent = {payload for _, _, payload in list(publisher.sent[self.kind_of[mid]])}
        return sum(1 for packet in list(self.received.get(mid, ())) if packet.payload in sent)

    def connected(self):
        return self.pc.connectionState == "connected"

    async def send_pli(self, mid, media_ssrc):
        receiver = next(t.receiver for t in self.receiving if t.mid == mid)
        await receiver._send_rtcp_pli(media_ssrc)

    async def close(self):
        await self.pc.close()


class BrowserLoop:
    """One asyncio loop in a thread for every synthetic browser of a synchronous test
    (the sockets stay in the test's thread), so a test reads like the pages' steps:
    send over the socket, apply in the browser."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.browsers = []

    def run(self, coro, timeout=AIO_TIMEOUT):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def browser(self, key, **kwargs):
        """A page's browser, publishing media of its own (``own_media``) unless told otherwise."""
        async def make():
            clip, audio = own_media(key)
            return SyntheticBrowser(key, **{"clip": clip, "audio": audio, **kwargs})

        browser = self.run(make())
        self.browsers.append(browser)
        return browser

    def close(self):
        async def close_all():
            for browser in self.browsers:
                await browser.close()

        try:
            self.run(close_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.loop.is_running():
                self.loop.close()


# -- a group call's pages on the relay ----------------------------------------------

def join_in_turn(loop, members):
    """members: [(Socket, SyntheticBrowser)]. Each sends its relay-offer after every
    page has the roster of the join before, as pages that come one by one: a roster
    computed for an earlier join can then not arrive after a later one. Returns, for
    each join, the roster of it as each page got it."""
    history = []
    for n, (member, browser) in enumerate(members, 1):
        member.relay_offer(loop, browser)
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

