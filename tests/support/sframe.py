"""What an eavesdropper on the media relay gets (docs/encryption.md): the VP8 frames of a
forwarded stream, put together from the RTP packets a receiver of the relay recorded,
and an independent implementation of the frame format (SFrame, RFC 9605, cipher suite
AES_256_GCM_SHA512_128) to open them with keys a test took from a page."""
import av
from aiortc.codecs.vpx import vp8_depayload
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CIPHER_SUITE = 0x0004
TAG_BYTES = 16


def frames(received):
    """[(arrival time, VP8 frame bytes)] of the complete frames among the recorded
    packets (tests/support/browsers.Received) of one m-line."""
    received = list(received)
    if not received:
        return []
    # Only the media packets: retransmissions (RTX) have their own payload type.
    pts = [item.pt for item in received]
    media_pt = max(set(pts), key=pts.count)
    by_timestamp = {}
    for item in (i for i in received if i.pt == media_pt):
        by_timestamp.setdefault(item.ts, []).append(item)
    out = []
    for items in by_timestamp.values():
        items.sort(key=lambda i: i.seq)
        numbers = [i.seq for i in items]
        whole = items[-1].marker and all(b - a == 1 for a, b in zip(numbers, numbers[1:]))
        if not whole:
            continue
        try:
            data = b"".join(vp8_depayload(i.payload) for i in items)
        except ValueError:
            continue
        out.append((items[0].at, data))
    out.sort(key=lambda f: f[0])
    return out


def clear_bytes(frame):
    """The VP8 payload header left readable: 10 bytes of a key frame, 3 of a delta frame."""
    return 10 if frame and not frame[0] & 0x01 else 3


def _number(data, at, length):
    return int.from_bytes(data[at:at + length], "big"), at + length


def header(data, offset):
    """(kid, ctr, header length) of the SFrame header at offset, or None."""
    if offset >= len(data):
        return None
    config = data[offset]
    at = offset + 1
    kid, ctr = (config >> 4) & 0x07, config & 0x07
    if config & 0x80:
        kid, at = _number(data, at, kid + 1)
    if config & 0x08:
        ctr, at = _number(data, at, ctr + 1)
    return (kid, ctr, at - offset) if at <= len(data) else None


def _expand(base_key, text, kid, length):
    info = text + kid.to_bytes(8, "big") + CIPHER_SUITE.to_bytes(2, "big")
    return HKDF(algorithm=hashes.SHA512(), length=length, salt=None, info=info).derive(base_key)


def decrypt(frame, keys):
    """The clear VP8 frame, or None if none of ``keys`` ({kid: 32-byte base key}) opens it."""
    clear = clear_bytes(frame)
    parsed = header(frame, clear)
    if parsed is None or parsed[0] not in keys:
        return None
    kid, ctr, length = parsed
    base = keys[kid]
    key = _expand(base, b"SFrame 1.0 Secret key ", kid, 32)
    salt = _expand(base, b"SFrame 1.0 Secret salt ", kid, 12)
    nonce = bytes(a ^ b for a, b in zip(salt, ctr.to_bytes(12, "big")))
    aad = frame[clear:clear + length] + frame[:clear]
    try:
        plain = AESGCM(key).decrypt(nonce, frame[clear + length:], aad)
    except Exception:  # noqa: BLE001 - cryptography's InvalidTag: not this key
        return None
    return frame[:clear] + plain


def kid_of(frame):
    parsed = header(frame, clear_bytes(frame))
    return parsed[0] if parsed else None


def decodable(vp8_frames):
    """How many of the frames libvpx (PyAV) turns into a picture, fed in order as a
    receiver would; the pictures' mean luma."""
    codec = av.CodecContext.create("libvpx", "r")
    pictures = []
    for data in vp8_frames:
        try:
            for picture in codec.decode(av.Packet(data)):
                luma = bytes(picture.planes[0])
                pictures.append(sum(luma) / len(luma))
        except av.FFmpegError:
            continue
    return pictures
