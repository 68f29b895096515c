"""Packet forwarding on top of aiortc's internals.

Written against aiortc 1.16.0 and aioice 0.13.0 (pinned in requirements.txt): aiortc
has no public API to forward RTP without decoding, so every hook into its private
attributes lives in this module and nowhere else. tests/relay/ exercise each of them;
a new aiortc version must pass those tests before the pin moves.

Hooks used (all on aiortc 1.16.0):
- RTCRtpReceiver: `_handle_rtp_packet` and `_handle_rtcp_packet` replaced per
  instance; `receive()` wrapped to stop the decoder thread as soon as aiortc starts
  it, so no decoder can ever run; `_send_rtcp_nack`, `_send_rtcp_pli`, `_send_rtcp`
  and the private `__remote_streams` (receiver reports) reused.
- RTCRtpSender: `_handle_rtcp_packet` replaced per instance (NACK, PLI/FIR); `send()`
  wrapped to learn when it is ready; private SR fields (`__ntp_timestamp`,
  `__rtp_timestamp`, `__packet_count`, `__octet_count`) set from the publisher's SR.
- RTCRtpTransceiver `_codecs` / `_offerDirection`; RTCDtlsTransport `_state`,
  `_tx_srtp`; aioice Connection `_nominated` (send without a coroutine per packet).
- Receiving without a coroutine per packet: aioice Connection `data_received`
  replaced per instance; RTCDtlsTransport `_rx_srtp`, `_rtp_header_extensions_map`
  and `_rtp_router` used to decrypt, parse and route SRTP packets on the spot.
- aioice.ice.get_host_addresses and the event loop's create_datagram_endpoint
  (bind address, UDP port range, receive buffer); the datagram transport's `_sock`,
  `_buffer`, `_conn_lost` and the loop's `_add_reader` (batched reads, direct sends);
  aioice StunProtocol `receiver` / `local_candidate`.
- pylibsrtp 1.0.0 Session `_srtp`, `_cdata`, `_buffer` (protect without a per-packet
  allocation).
"""
import asyncio
import logging
import socket
import struct
from typing import Optional

import aioice.ice
import aiortc
import pylibsrtp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
    wrap_rtx,
)
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

AIORTC_VERSION = "1.16.0"
PYLIBSRTP_VERSION = "1.0.0"
for _module, _pinned in ((aiortc, AIORTC_VERSION), (pylibsrtp, PYLIBSRTP_VERSION)):
    if _module.__version__ != _pinned:  # pragma: no cover - guards the pins
        raise ImportError(
            f"media_relay.forwarding hooks {_module.__name__} {_pinned} internals, "
            f"found {_module.__version__}"
        )

logger = logging.getLogger("media_relay.forwarding")

VIDEO_MIME = "video/vp8"
AUDIO_MIME = "audio/opus"
UDP_RECEIVE_BUFFER = 2 * 1024 * 1024
# Datagrams read per wake-up of a media socket: under load several wait, and each
# wake-up of the event loop costs more than reading one.
READ_BATCH = 32
# The same Chrome ramps its encoder back up within a second; more PLIs than this
# only make it send keyframe after keyframe.
PLI_MIN_INTERVAL = 0.3
# A new publisher in a slot continues the subscriber's timeline one frame later.
_TS_STEP = {"video": 90000 // 15, "audio": 960}
# marker|payload type, sequence number, timestamp, SSRC: bytes 1-11 of the RTP header
_pack_header = struct.Struct("!BHLL").pack_into


class UnsupportedCodec(Exception):
    """The offer has an m-line without VP8 (video) or Opus (audio)."""


def peer_connection(ice_servers) -> RTCPeerConnection:
    """The only way the relay (and its tests and benchmark) makes a peer connection:
    explicit ICE servers, so aiortc never falls back to Google's STUN server, and
    MAX_BUNDLE (aiortc issue #1414)."""
    if ice_servers is None:
        raise ValueError("ICE servers must be given explicitly (may be empty)")
    return RTCPeerConnection(
        RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


# --- network: bind address, UDP port range, receive buffer -------------------------

def restrict_host_addresses(addresses):
    """aioice gathers on every non-loopback interface and never on 127.0.0.1; the
    relay binds only where configured (127.0.0.1 on a single machine)."""
    addresses = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)


def install_udp_port_range(loop, port_min, port_max):
    """aioice binds each candidate to port 0 through the running loop; this loop picks
    the ports from [port_min, port_max] instead and widens the receive buffer (the
    208 KB default overflowed under load). Other binds are left alone."""
    original = loop.create_datagram_endpoint
    ports = list(range(port_min, port_max + 1)) if port_min else []
    cursor = [0]

    async def create_datagram_endpoint(protocol_factory, local_addr=None, **kwargs):
        if not (ports and local_addr and local_addr[1] == 0):
            result = await original(protocol_factory, local_addr=local_addr, **kwargs)
            _widen_receive_buffer(result[0])
            return result
        for _ in range(len(ports)):
            port = ports[cursor[0]]
            cursor[0] = (cursor[0] + 1) % len(ports)
            try:
                result = await original(
                    protocol_factory, local_addr=(local_addr[0], port), **kwargs
                )
            except OSError:
                continue
            _widen_receive_buffer(result[0])
            _read_in_batches(loop, *result)
            return result
        raise OSError(f"no free UDP port in {port_min}-{port_max}")

    loop.create_datagram_endpoint = create_datagram_endpoint


def _read_in_batches(loop, transport, protocol):
    """asyncio reads one datagram per wake-up and aioice tries to parse each as STUN
    (raising ValueError for every media packet). For aioice's media sockets, read
    what is waiting, up to READ_BATCH, and hand RTP/RTCP (first byte 128-191, RFC
    7983) straight to the ICE connection. The reader was registered when the
    endpoint was made (before its waiter resolved); this replaces it."""
    if not isinstance(protocol, aioice.ice.StunProtocol):
        return
    sock = transport._sock
    recvfrom, max_size = sock.recvfrom, transport.max_size

    def read_ready():
        for _ in range(READ_BATCH):
            if transport._conn_lost:
                return
            try:
                data, addr = recvfrom(max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            if data and 127 < data[0] < 192 and hasattr(protocol, "local_candidate"):
                protocol.receiver.data_received(data, protocol.local_candidate.component)
            else:
                protocol.datagram_received(data, addr)

    loop._add_reader(sock.fileno(), read_ready)


def _widen_receive_buffer(transport):
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.type == socket.SOCK_DGRAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


# --- negotiation ---------------------------------------------------------------------

class _IdleTrack(MediaStreamTrack):
    """Gives a slot's sender a track that never yields: aiortc's send loop then waits
    instead of polling every 20 ms, and packets reach the wire through Slot.send."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    async def recv(self):
        await asyncio.get_running_loop().create_future()


def restrict_codecs(pc: RTCPeerConnection):
    """Keep only VP8 (+ its RTX) and Opus on every m-line of the remote offer, so
    every subscriber can take every publisher's packets as they are."""
    for t in pc.getTransceivers():
        wanted = VIDEO_MIME if t.kind == "video" else AUDIO_MIME
        media = [c for c in t._codecs if c.mimeType.lower() == wanted]
        if not media:
            raise UnsupportedCodec(t.kind)
        pts = {c.payloadType for c in media}
        t._codecs = media + [
            c for c in t._codecs
            if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") in pts
        ]


def split_transceivers(pc: RTCPeerConnection):
    """After setRemoteDescription(offer): the m-lines the browser sends on become
    publications, those it receives on become slots. Returns (publishing, slots)."""
    publishing, slots = [], []
    for t in pc.getTransceivers():
        browser_sends = t._offerDirection in ("recvonly", "sendrecv")
        browser_receives = t._offerDirection in ("sendonly", "sendrecv")
        if browser_receives:
            t.sender.replaceTrack(_IdleTrack(t.kind))
            t.direction = "sendrecv" if browser_sends else "sendonly"
            slots.append(t)
        if browser_sends:
            publishing.append(t)
    return publishing, slots


def announce_address(sdp: str, public_ip: Optional[str]) -> str:
    """Behind 1:1 NAT the browser must reach the relay at its public address: rewrite
    the host candidates (and c= lines) of the answer."""
    if not public_ip:
        return sdp
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:") and " typ host" in line:
            parts = line.split(" ")
            parts[4] = public_ip
            line = " ".join(parts)
        elif line.startswith("c=IN IP4 "):
            line = "c=IN IP4 " + public_ip
        lines.append(line)
    return "\r\n".join(lines)


# --- sending without a coroutine per packet ----------------------------------------

class _Route:
    """The way out of one DTLS transport: its nominated ICE pair's socket and address and
    its SRTP session's own buffer, so that a packet is written once into the buffer,
    protected in place and sent (pylibsrtp 1.0.0's Session.protect does the same with
    two more copies and an allocation per packet)."""

    __slots__ = ("pair", "session", "transport", "sendto", "addr", "srtp", "cdata", "buffer",
                 "length", "limit")

    def __init__(self, pair, session):
        self.pair, self.session = pair, session
        self.transport = pair.protocol.transport
        self.sendto = self.transport._sock.sendto
        self.addr = pair.remote_addr
        self.srtp, self.cdata, self.buffer = session._srtp[0], session._cdata, session._buffer
        self.length = _srtp_ffi.new("int *")
        self.limit = len(self.cdata) - pylibsrtp.SRTP_MAX_TRAILER_LEN

    def emit(self, n: int):
        """Protect and send the n bytes of plain RTP now in the buffer."""
        length = self.length
        length[0] = n
        if _srtp_protect(self.srtp, self.cdata, length):
            raise pylibsrtp.Error("srtp_protect failed")
        data = self.buffer[0:length[0]]
        transport = self.transport
        if transport._buffer:  # asyncio holds earlier packets: keep the order
            transport.sendto(data, self.addr)
            return
        try:
            self.sendto(data, self.addr)
        except (BlockingIOError, InterruptedError):
            transport.sendto(data, self.addr)  # asyncio queues it until writable
        except OSError:
            pass  # as asyncio's transport: a datagram that cannot go is lost


_srtp_protect = _srtp_lib.srtp_protect


def _route(dtls) -> Optional[_Route]:
    """What RTCDtlsTransport._send_rtp → RTCIceTransport._send → Connection.sendto use,
    looked up once per nominated pair; None while there is no way out."""
    if dtls._state is not DtlsState.CONNECTED:
        return None
    pair = dtls._transport._connection._nominated.get(1)
    if pair is None:
        return None
    route = dtls.__dict__.get("_relay_route")
    if route is None or route.pair is not pair or route.session is not dtls._tx_srtp:
        route = dtls._relay_route = _Route(pair, dtls._tx_srtp)
    return route


def _send_now(dtls, plain: bytes):
    """Send one plain RTP packet without a coroutine (retransmissions)."""
    route = _route(dtls)
    if route is None or len(plain) > route.limit:
        return
    route.buffer[0:len(plain)] = plain
    route.emit(len(plain))


# --- receiving without a coroutine per packet ---------------------------------------

def install_fast_receive(dtls):
    """aioice queues each datagram, a task takes it off the queue, and aiortc awaits
    three coroutines and a datetime call per RTP packet before the relay sees it.
    Here SRTP media packets of a connected transport are decrypted, parsed, routed
    and forwarded as the datagram arrives; DTLS, RTCP and anything before the
    handshake still take aiortc's path. Idempotent per transport."""
    if getattr(dtls, "_relay_fast_receive", False):
        return
    dtls._relay_fast_receive = True
    connection = dtls.transport._connection
    queue_datagram = connection.data_received
    queue = connection._queue

    def data_received(data: bytes, component: int) -> None:
        srtp = dtls._rx_srtp
        # RTP (not RTCP: rtcp-mux payload types 192-208) once SRTP keys exist, and
        # only once aiortc's task has emptied the queue, so packets keep their order
        if (srtp is None or len(data) < 12 or not (127 < data[0] < 192) or 191 < data[1] < 209
                or not queue.empty()):
            queue_datagram(data, component)
            return
        try:
            packet = RtpPacket.parse(srtp.unprotect(data), dtls._rtp_header_extensions_map)
        except (pylibsrtp.Error, ValueError):
            return
        receiver = dtls._rtp_router.route_rtp(packet)
        publication = getattr(receiver, "_relay_publication", None)
        if publication is not None:
            publication.forward(packet)

    connection.data_received = data_received


# --- publications and slots ---------------------------------------------------------

class Publication:
    """One track a participant sends to the relay; fans its packets out to slots."""

    def __init__(self, owner, transceiver):
        self.owner = owner
        self.kind = transceiver.kind
        self.mid = transceiver.mid
        self.receiver = receiver = transceiver.receiver
        self.slots = []
        # what the answer settles (restrict_codecs ran already), so slots can map
        # payload types before the connection is up
        self.codecs = {c.payloadType: c for c in transceiver._codecs}
        self.rtx_ssrc = {}
        self.media_ssrc = None
        self.sr = None
        self.forwarded = 0
        self._streams = receiver._RTCRtpReceiver__remote_streams  # feeds aiortc's RRs
        self._nack = NackGenerator() if self.kind == "video" else None
        self._last_pli = -PLI_MIN_INTERVAL
        self._tasks = set()

        original_receive = receiver.receive
        original_rtcp = receiver._handle_rtcp_packet

        async def receive(parameters):
            await original_receive(parameters)
            # aiortc has just started its decoder thread: stop it before any packet
            # could be queued, so nothing is ever decoded here.
            receiver._RTCRtpReceiver__stop_decoder()
            install_fast_receive(receiver.transport)
            self.codecs = {c.payloadType: c for c in parameters.codecs}
            for slot in self.slots:
                slot._map_payload_types()
            for encoding in parameters.encodings:
                if self.media_ssrc is None and encoding.ssrc:
                    self.media_ssrc = encoding.ssrc
                if encoding.rtx:
                    self.rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc

        async def handle_rtcp(packet):
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.media_ssrc:
                self.sr = packet.sender_info
                for slot in self.slots:
                    slot.take_sender_report(packet.sender_info)
            await original_rtcp(packet)

        receiver.receive = receive
        receiver._handle_rtp_packet = self.handle_rtp
        receiver._handle_rtcp_packet = handle_rtcp
        receiver._relay_publication = self

    async def handle_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """aiortc's path (packets that arrive before the fast path is installed)."""
        self.forward(packet)

    def forward(self, packet: RtpPacket) -> None:
        codec = self.codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            stream = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)

        if codec.mimeType.lower() == "video/rtx":
            original_ssrc = self.rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or apt not in self.codecs:
                return  # RTX padding (bandwidth probing) carries nothing to forward
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        elif self.media_ssrc is None:
            self.media_ssrc = packet.ssrc

        if self._nack is not None and self._nack.add(packet):
            self._spawn(self.receiver._send_rtcp_nack(packet.ssrc, sorted(self._nack.missing)))

        if not self.slots:
            return
        self.forwarded += 1
        packet.extensions.mid = None  # subscribers route by SSRC; their mids differ
        templates = {}
        for slot in self.slots:
            if slot.ext_key is None:
                continue
            template = templates.get(slot.ext_key)
            if template is None:
                template = templates[slot.ext_key] = packet.serialize(slot.ext_map)
            slot.send(template, packet)

    def request_keyframe(self):
        if self.kind != "video" or self.media_ssrc is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._last_pli < PLI_MIN_INTERVAL:
            return
        self._last_pli = now
        # to the media SSRC, never the RTX SSRC (that dropped Chrome to 5 fps)
        self._spawn(self.receiver._send_rtcp_pli(self.media_ssrc))

    def send_remb(self, bitrate: int):
        """Caps the publisher's video from the relay side too (REMB is all aiortc
        negotiates for congestion control)."""
        if self.kind == "video" and self.media_ssrc is not None:
            rtcp_ssrc = self.receiver._RTCRtpReceiver__rtcp_ssrc
            if rtcp_ssrc is not None:
                self._spawn(self.receiver._send_rtcp(RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                    fci=pack_remb_fci(bitrate, [self.media_ssrc]),
                )))

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def detach_all(self):
        for slot in list(self.slots):
            slot.detach()


class Slot:
    """One m-line a participant receives on; carries one publication at a time with
    its own SSRC, sequence numbers, timestamps and payload types."""

    def __init__(self, owner, transceiver, rng):
        self.owner = owner
        self.kind = transceiver.kind
        self.mid = transceiver.mid
        self.sender = sender = transceiver.sender
        self.ssrc = sender._ssrc
        self.dtls = sender.transport
        self.ext_map = sender._RTCRtpSender__rtp_header_extensions_map
        self.ext_key = None
        self.publication: Optional[Publication] = None
        self.payload_types = {}
        self.rtx_pt = None
        self._pt_map = {}
        self._seq_delta = None
        self._ts_delta = 0
        self.next_seq = rng.randrange(0, 32768)  # lower half: see aiortc's sender
        self.next_ts = rng.randrange(0, 1 << 32)
        self._rtx_seq = rng.randrange(0, 32768)
        self.packets = 0
        self.octets = 0
        self.history = {} if self.kind == "video" else None
        self._transceiver = transceiver

        original_send = sender.send
        self._original_rtcp = sender._handle_rtcp_packet

        async def send(parameters):
            await original_send(parameters)
            self.dtls = sender.transport
            self.payload_types = {
                c.mimeType.lower(): c.payloadType for c in parameters.codecs
                if c.mimeType.lower() != "video/rtx"
            }
            media_pt = self.payload_types.get(VIDEO_MIME if self.kind == "video" else AUDIO_MIME)
            for c in parameters.codecs:
                if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == media_pt:
                    self.rtx_pt = c.payloadType
            ids = self.ext_map._HeaderExtensionsMap__ids
            self.ext_key = (ids.abs_send_time, ids.audio_level, ids.mid)
            self._map_payload_types()
            if self.publication is not None:
                self.publication.request_keyframe()

        sender.send = send
        sender._handle_rtcp_packet = self.handle_rtcp

    def attach(self, publication: Publication):
        self.detach()
        self.publication = publication
        self._seq_delta = None
        self._map_payload_types()
        publication.slots.append(self)
        if publication.sr is not None:
            self.take_sender_report(publication.sr)
        publication.request_keyframe()

    def detach(self):
        if self.publication is not None:
            self.publication.slots.remove(self)
            self.publication = None

    def _map_payload_types(self):
        if self.publication is None:
            return
        self._pt_map = {
            pt: self.payload_types[c.mimeType.lower()]
            for pt, c in self.publication.codecs.items()
            if c.mimeType.lower() in self.payload_types
        }

    def send(self, template: bytes, packet: RtpPacket):
        pt = self._pt_map.get(packet.payload_type)
        if pt is None:
            return
        if self._seq_delta is None:
            self._seq_delta = (self.next_seq - packet.sequence_number) & 0xFFFF
            self._ts_delta = (self.next_ts - packet.timestamp) & 0xFFFFFFFF
        seq = (packet.sequence_number + self._seq_delta) & 0xFFFF
        ts = (packet.timestamp + self._ts_delta) & 0xFFFFFFFF
        self.next_seq = (seq + 1) & 0xFFFF
        self.next_ts = (ts + _TS_STEP[self.kind]) & 0xFFFFFFFF
        self.packets += 1
        self.octets += len(packet.payload)
        route = _route(self.dtls)
        n = len(template)
        if route is None or n > route.limit:
            return
        # written straight into the SRTP buffer: the template, then this slot's header
        buffer = route.buffer
        buffer[0:n] = template
        _pack_header(buffer, 1, (packet.marker << 7) | pt, seq, ts, self.ssrc)
        if self.history is not None:
            self.history[seq % RTP_HISTORY_SIZE] = buffer[0:n]
        route.emit(n)

    def take_sender_report(self, info):
        """Keep the subscriber's SR consistent with the rewritten timestamps, so lip
        sync and round-trip times hold."""
        if self._seq_delta is None:
            return
        s = self.sender
        s._RTCRtpSender__ntp_timestamp = info.ntp_timestamp
        s._RTCRtpSender__rtp_timestamp = (info.rtp_timestamp + self._ts_delta) & 0xFFFFFFFF
        s._RTCRtpSender__packet_count = self.packets & 0xFFFFFFFF
        s._RTCRtpSender__octet_count = self.octets & 0xFFFFFFFF

    async def handle_rtcp(self, packet):
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for seq in packet.lost:
                self.retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if self.publication is not None:
                self.publication.request_keyframe()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            pass  # the subscriber's REMB would retune aiortc's (unused) encoder
        else:
            await self._original_rtcp(packet)

    def retransmit(self, seq: int):
        plain = self.history.get(seq % RTP_HISTORY_SIZE) if self.history is not None else None
        if plain is None or struct.unpack_from("!H", plain, 2)[0] != seq:
            return
        if self.rtx_pt is not None:
            packet = wrap_rtx(
                RtpPacket.parse(plain, self.ext_map),
                payload_type=self.rtx_pt,
                sequence_number=self._rtx_seq,
                ssrc=self.sender._rtx_ssrc,
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            plain = packet.serialize(self.ext_map)
        _send_now(self.dtls, plain)
