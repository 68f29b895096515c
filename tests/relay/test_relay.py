"""The media relay with real aiortc clients over loopback: signed control API,
forwarding with rewritten headers, PLI/NACK, faults, capacity and a restart."""
import asyncio
import json
import re
import time
from pathlib import Path

import aiortc.rtcrtpreceiver
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from media_relay.client import RelayRefused
from media_relay.signing import sign
from tests.support.browsers import SyntheticBrowser
from tests.support.relay import SECRET, RelayProcess, asynctest, running_relay
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("loopback_only")


async def call(fn, *args):
    return await asyncio.to_thread(fn, *args)


async def room_of(client, names, room="room1", **kwargs):
    await call(client.create_room, room)
    people = [SyntheticBrowser(name, **kwargs) for name in names]
    for person in people:
        await person.join(client, room)
    await until(lambda: all(p.pc.connectionState == "connected" for p in people),
                     "all clients connected")
    status = await call(client.room, room)
    for person in people:
        person.slots = next(p["slots"] for p in status["participants"] if p["participant"] == person.key)
    return people


def renumbered(sdp, old, new):
    """The offer with payload type ``old`` numbered ``new``: on the m-lines and the
    attributes that name a payload type, nowhere else (a certificate fingerprint ending
    in ":97" once made a blind replacement break DTLS)."""
    sdp = re.sub(rf"^(m=video \d+ \S+(?: \d+)*?) {old}(?=[ \r]|$)", rf"\g<1> {new}", sdp, flags=re.M)
    sdp = re.sub(rf"^a=(rtpmap|rtcp-fb|fmtp):{old} ", rf"a=\1:{new} ", sdp, flags=re.M)
    return re.sub(rf"\bapt={old}(?=\r?$)", f"apt={new}", sdp, flags=re.M)


def contiguous(seqs):
    return all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))


def answer_ssrc(pc, mid):
    """The SSRC the relay announced for one of our receive m-lines."""
    section = pc.remoteDescription.sdp.split(f"a=mid:{mid}\r\n")[1].split("m=")[0]
    return int(re.search(r"a=ssrc:(\d+) ", section).group(1))


@pytest.fixture
def decoder_spy(monkeypatch):
    """Every decoder aiortc would create, relay or client: the relay must never make
    one, and the test clients record packets instead of decoding them."""
    made = []
    real = aiortc.rtcrtpreceiver.get_decoder
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", lambda codec: made.append(codec) or real(codec))
    return made


@asynctest
async def test_three_participants_receive_each_other_with_rewritten_headers(decoder_spy):
    async with running_relay() as (relay, client):
        a, b, c = await room_of(client, ["a", "b", "c"])
        mids = {(s, p, k): s.mid_for(p.key, k) for s in (a, b, c) for p in (a, b, c) if s is not p
                for k in ("audio", "video")}
        assert all(mids.values()), mids
        await until(
            lambda: all(len(s.received.get(mid, [])) >= 40 for (s, p, k), mid in mids.items()
                        if k == "video")
            and all(len(s.received.get(mid, [])) >= 20 for (s, p, k), mid in mids.items()),
            "every participant receives the others' audio and video")

        publisher_ssrc = a.video.sender._ssrc
        seen = {}
        for subscriber in (b, c):
            mid = mids[(subscriber, a, "video")]
            packets = subscriber.received[mid]
            ssrcs = {p.ssrc for p in packets}
            assert ssrcs == {answer_ssrc(subscriber.pc, mid)}
            assert publisher_ssrc not in ssrcs
            seen[subscriber.key] = ssrcs.pop()
            assert contiguous([p.seq for p in packets])
            vp8_pt = next(t for t in subscriber.receiving if t.mid == mid)._codecs[0]
            assert vp8_pt.mimeType == "video/VP8"
            assert {p.pt for p in packets} == {vp8_pt.payloadType}
            # the same payloads in the same order as they left the publisher, and the
            # same timestamp steps on a shifted timeline
            sent = {seq: (ts, payload) for seq, ts, payload in a.sent["video"]}
            first_seq = next(seq for seq, ts, payload in a.sent["video"] if payload == packets[0].payload)
            for offset, packet in enumerate(packets):
                ts, payload = sent[(first_seq + offset) & 0xFFFF]
                assert payload == packet.payload
                assert (packet.ts - packets[0].ts) & 0xFFFFFFFF == (ts - sent[first_seq][0]) & 0xFFFFFFFF
            audio = subscriber.received[mids[(subscriber, a, "audio")]]
            opus = next(t for t in subscriber.receiving if t.mid == mids[(subscriber, a, "audio")])._codecs[0]
            assert {p.pt for p in audio} == {opus.payloadType} and contiguous([p.seq for p in audio])
        assert seen["b"] != seen["c"]

        for participant in relay.rooms["room1"].peers.values():
            for publication in participant.publications:
                assert publication.forwarded > 0
                assert publication.receiver._RTCRtpReceiver__decoder_thread is None
        assert decoder_spy == []
        for p in (a, b, c):
            await p.close()


@asynctest
async def test_payload_types_are_rewritten_per_subscriber():
    async with running_relay() as (relay, client):
        await call(client.create_room, "room1")
        a = SyntheticBrowser("a", slots=1)
        b = SyntheticBrowser("b", slots=1, publish=False)
        await a.join(client, "room1")
        offer = await b.offer()
        vp8 = int(re.search(r"a=rtpmap:(\d+) VP8/90000", offer).group(1))
        assert vp8 != 120
        # b's browser numbers VP8 differently from a's
        munged = renumbered(offer, vp8, 120)
        data = await call(client.join, "room1", "b", munged)
        from aiortc import RTCSessionDescription
        await b.pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
        mid = data["slots"][1]["mid"]
        assert data["slots"][1]["participant"] == "a"
        await until(lambda: len(b.received.get(mid, [])) >= 10, "b receives a's video")
        assert {p.pt for p in b.received[mid]} == {120}
        await until(lambda: len(a.sent["video"]) > 0, "a sends")
        assert a.video.sender._RTCRtpSender__rtp_history[a.sent["video"][0][0] % 128].payload_type == vp8
        await a.close()
        await b.close()


@asynctest
async def test_pli_from_a_subscriber_reaches_the_publishers_media_ssrc():
    async with running_relay() as (relay, client):
        a, b = await room_of(client, ["a", "b"])
        mid = b.mid_for("a", "video")
        await until(lambda: len(b.received.get(mid, [])) > 0, "b receives a's video")
        plis_before = len(a.plis)
        slot_ssrc = b.received[mid][0].ssrc
        while len(a.plis) == plis_before:  # the relay throttles PLIs to one per 0.3 s
            await b.send_pli(mid, slot_ssrc)
            await until(lambda: True, "")
            await asyncio.sleep(0.1)
        assert set(a.plis) == {a.video.sender._ssrc}
        assert a.video.sender._rtx_ssrc not in a.plis
        await a.close()
        await b.close()


@asynctest
async def test_nack_is_answered_from_the_subscribers_history():
    async with running_relay() as (relay, client):
        a, b = await room_of(client, ["a", "b"])
        mid = b.mid_for("a", "video")
        await until(lambda: len(b.received.get(mid, [])) >= 5, "b receives a's video")
        wanted = b.received[mid][2]
        receiver = next(t for t in b.receiving if t.mid == mid).receiver
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
                               media_ssrc=wanted.ssrc)
        nack.lost = [wanted.seq]
        await receiver._send_rtcp(nack)
        # answered as RTX on the slot's RTX SSRC (the answer's FID group): the
        # original sequence number, then the original payload
        section = b.pc.remoteDescription.sdp.split(f"a=mid:{mid}\r\n")[1].split("m=")[0]
        media_ssrc, rtx_ssrc = map(int, re.search(r"a=ssrc-group:FID (\d+) (\d+)", section).groups())
        assert media_ssrc == wanted.ssrc
        await until(lambda: any(p.ssrc == rtx_ssrc for p in b.arrivals),
                         "b receives a retransmission")
        rtx = next(p for p in b.arrivals if p.ssrc == rtx_ssrc)
        assert int.from_bytes(rtx.payload[:2], "big") == wanted.seq
        assert rtx.payload[2:] == wanted.payload
        await a.close()
        await b.close()


@asynctest
async def test_leaving_and_crashing_participants_do_not_disturb_the_others():
    async with running_relay() as (relay, client):
        a, b, c, d = await room_of(client, ["a", "b", "c", "d"])
        mid = b.mid_for("a", "video")
        await until(lambda: len(b.received.get(mid, [])) > 0, "b receives a's video")

        await call(client.leave, "room1", "c")
        await c.close()
        await d.close()  # d goes without telling the web app
        await until(lambda: set(relay.rooms["room1"].peers) == {"a", "b"},
                         "the relay drops c and d")
        count = len(b.received[mid])
        await until(lambda: len(b.received[mid]) > count + 30, "b still receives a's video")
        assert contiguous([p.seq for p in b.received[mid]])
        back = b.mid_for("a", "video")
        assert back == mid
        a_mid = a.mid_for("b", "video")
        count = len(a.received[a_mid])
        await until(lambda: len(a.received[a_mid]) > count + 30, "a still receives b's video")

        # the freed slot carries a newcomer on the same SSRC, the sequence going on
        c_slot = b.mid_for("c", "video")
        before = list(b.received.get(c_slot, []))
        e = SyntheticBrowser("e")
        await e.join(client, "room1")
        status = await call(client.room, "room1")
        b.slots = next(p["slots"] for p in status["participants"] if p["participant"] == "b")
        assert b.mid_for("e", "video") == c_slot and before
        await until(lambda: len(b.received[c_slot]) > len(before) + 10,
                         "b receives the newcomer")
        after = b.received[c_slot]
        assert {p.ssrc for p in after} == {before[0].ssrc}
        assert contiguous([p.seq for p in after])
        for p in (a, b, e):
            await p.close()


@asynctest
async def test_concurrent_joins_give_each_publication_one_slot():
    """A browser's page joins when the relay says a guest came: three at once is the
    normal case, and each must see each other once (not twice, filling the slots)."""
    async with running_relay() as (relay, client):
        await call(client.create_room, "room1")
        members = [SyntheticBrowser(name) for name in ("a", "b", "c")]
        offers = []
        for member in members:
            offers.append(await member.offer())
        await asyncio.gather(*(relay.join("room1", m.key, sdp) for m, sdp in zip(members, offers)))
        for status in relay.rooms["room1"].status()["participants"]:
            seen = [(s["participant"], s["kind"]) for s in status["slots"] if s["participant"]]
            others = {"a", "b", "c"} - {status["participant"]}
            assert sorted(seen) == sorted((o, k) for o in others for k in ("audio", "video")), status
        for member in members:
            await member.pc.close()


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "unsigned"),
    ("wrong secret", "bad_signature"),
    ("tampered body", "bad_signature"),
    ("other path", "bad_signature"),
    ("stale", "stale"),
    ("replayed", "replayed"),
])
@asynctest
async def test_requests_without_a_valid_signature_are_refused(case, reason):
    async with running_relay() as (relay, client):
        body = json.dumps({"room": "r1"}).encode()
        headers = sign(SECRET, "POST", "/rooms", body)
        path = "/rooms"
        if case == "unsigned":
            headers = {}
        elif case == "wrong secret":
            headers = sign(b"another-secret-0123456789", "POST", "/rooms", body)
        elif case == "tampered body":
            body = json.dumps({"room": "r2"}).encode()
        elif case == "other path":
            headers = sign(SECRET, "POST", "/rooms/r1/participants", body)
        elif case == "stale":
            headers = sign(SECRET, "POST", "/rooms", body, now=time.time() - 61)
        elif case == "replayed":
            assert (await call(client.send, "POST", path, body, headers))[0] == 201
        status, data = await call(client.send, "POST", path, body, headers)
        assert (status, data) == (401, {"error": reason})
        if case != "replayed":
            assert relay.rooms == {}


@asynctest
async def test_capacity_is_refused_clearly():
    async with running_relay(max_rooms=1, public_ip="198.51.100.7") as (relay, client):
        assert (await call(client.create_room, "r1", 2))["max_participants"] == 2
        assert (await call(client.create_room, "r1", 2))["room"] == "r1"  # repeat is fine
        with pytest.raises(RelayRefused) as refused:
            await call(client.create_room, "r2")
        assert (refused.value.status, refused.value.code) == (503, "relay_full")

        # the answers are only read: applying them would send checks to 198.51.100.7
        people = [SyntheticBrowser(n, slots=1) for n in "abc"]
        offers = []
        for p in people:
            offers.append(await p.offer())
        answers = [await call(client.join, "r1", p.key, offer) for p, offer in zip(people, offers[:2])]
        with pytest.raises(RelayRefused) as refused:
            await call(client.join, "r1", "c", offers[2])
        assert (refused.value.status, refused.value.code) == (503, "room_full")
        # candidates announce the public address on a port from the configured range
        candidates = re.findall(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", answers[0]["sdp"])
        assert candidates and all(ip == "198.51.100.7" and 42000 <= int(port) <= 42999
                                  for ip, port in candidates)
        for p in people:
            await p.close()


@pytest.mark.parametrize("sdp, reason", [
    ("not sdp", "bad_offer"),
    ("v=0\r\nthis is no offer\r\n", "bad_offer"),
    ("h264", "unsupported_codec"),
])
@asynctest
async def test_bad_offers_are_refused(sdp, reason):
    async with running_relay() as (relay, client):
        await call(client.create_room, "r1")
        if sdp == "h264":
            p = SyntheticBrowser("a", slots=1)
            sdp = re.sub(r"a=rtpmap:(\d+) VP8/90000", r"a=rtpmap:\1 AV1/90000", await p.offer())
            await p.close()
        with pytest.raises(RelayRefused) as refused:
            await call(client.join, "r1", "a", sdp)
        assert (refused.value.status, refused.value.code) == (400, reason)
        assert relay.rooms["r1"].peers == {}


@asynctest
async def test_guard_catches_a_peer_connection_without_explicit_ice_servers(loopback_only):
    """The loopback guard above is what would fail a relay test whose peer connection
    fell back to aiortc's default STUN server; make sure it does."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", "sendonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())
    except Exception:  # noqa: BLE001 - only the lookups it tried matter here
        pass
    await pc.close()
    assert ("resolve", "stun.l.google.com") in loopback_only
    loopback_only.clear()


def test_relay_makes_peer_connections_in_one_place_only():
    sources = {path.name: path.read_text() for path in (ROOT / "media_relay").glob("*.py")}
    makers = [name for name, text in sources.items() if "RTCPeerConnection(" in text]
    assert makers == ["forwarding.py"]
    assert sources["forwarding.py"].count("RTCPeerConnection(") == 1
    from media_relay.forwarding import peer_connection
    with pytest.raises(ValueError):
        peer_connection(None)


@asynctest
async def test_a_restarted_relay_on_the_same_port_accepts_new_joins(tmp_path):
    relay = RelayProcess(tmp_path / "relay.log", udp_range=(43000, 43099))
    client = relay.client()
    for attempt in ("first", "restarted"):
        await asyncio.to_thread(relay.start)
        try:
            await call(client.create_room, "room1")
            a = SyntheticBrowser("a", slots=1)
            answer = await a.join(client, "room1")
            assert answer["type"] == "answer"
            ports = re.findall(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", answer["sdp"])
            assert ports and all(43000 <= int(p) <= 43099 for p in ports)
            await until(lambda: a.pc.connectionState == "connected", f"{attempt} relay connects")
            await a.close()
        finally:
            rc = await asyncio.to_thread(relay.stop)
        assert rc == 0, relay.output()
    assert "shutting down" in relay.output()
