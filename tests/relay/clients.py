"""Synthetic participants for the relay tests and bench/relay.py: aiortc clients that
publish a pre-encoded VP8 clip and Opus stream (so no encoder runs anywhere) and record
what arrives on their receive m-lines without decoding it."""
import array
import asyncio
import fractions
import math
import time

import av
from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket, is_rtcp

from media_relay.forwarding import peer_connection

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
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


class Participant:
    """publish: send audio + video; slots: how many other participants it can see."""

    def __init__(self, name, slots=4, publish=True, fps=15, clip=None, on_packet=None):
        """on_packet(mid, packet): a lighter recorder (the benchmark counts instead of
        keeping every packet)."""
        self.name = name
        self._on_packet = on_packet
        self.pc = peer_connection([])
        self.received = {}  # mid -> [Received]
        self.sent = []  # (seq, ts, payload) of our video packets as they left
        self.plis = []  # media SSRCs of the PLIs reaching our video sender
        self.arrivals = []  # every RTP packet that reached us, decrypted
        self.video = self.audio = None
        if publish:
            self.audio = self.pc.addTransceiver(
                PacketTrack("audio", opus_clip(), 0.02, 960, AUDIO_TIME_BASE), "sendonly")
            self.video = self.pc.addTransceiver(
                PacketTrack("video", clip or vp8_clip(fps=fps), 1 / fps, 90000 // fps,
                            VIDEO_TIME_BASE), "sendonly")
            self._spy_on_plis(self.video.sender)
        self.receiving = []
        for _ in range(slots):
            for kind in ("audio", "video"):
                transceiver = self.pc.addTransceiver(kind, "recvonly")
                self._record(transceiver)
                self.receiving.append(transceiver)
        self.slots = []

    async def join(self, client, room, spy=True):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        data = await asyncio.to_thread(client.join, room, self.name, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
        self.slots = data["slots"]
        if spy:
            self._spy_on_arrivals(self.pc.getTransceivers()[0].receiver.transport)
        if spy and self.video is not None:
            self._spy_on_sent(self.video.sender)
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

    def _spy_on_sent(self, sender):
        dtls = sender.transport
        original = dtls._send_rtp

        async def send_rtp(data):
            if not is_rtcp(data):
                packet = RtpPacket.parse(data)
                if packet.ssrc == sender._ssrc:
                    self.sent.append((packet.sequence_number, packet.timestamp, packet.payload))
            await original(data)

        dtls._send_rtp = send_rtp

    def mid_for(self, publisher, kind):
        """The mid on which the relay forwards the publisher's track to us."""
        for slot in self.slots:
            if slot["participant"] == publisher and slot["kind"] == kind:
                return slot["mid"]
        return None

    async def send_pli(self, mid, media_ssrc):
        receiver = next(t.receiver for t in self.receiving if t.mid == mid)
        await receiver._send_rtcp_pli(media_ssrc)

    async def close(self):
        await self.pc.close()
