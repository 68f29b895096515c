"""A small blocking STUN/TURN client for `flask doctor`: a Binding request, and an
Allocate with long-term credentials (RFC 5389, RFC 5766), over UDP, TCP or TLS.

Message encoding is aioice's (already a dependency of the media relay); the exchange
is synchronous because the doctor runs one check after another.
"""
import socket
import ssl
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from aioice import stun
from aioice.turn import UDP_TRANSPORT, make_integrity_key


class TurnError(Exception):
    """code: the STUN error code (401 wrong credentials, 486 quota, ...) or None."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TurnUrl:
    scheme: str  # stun, turn, turns
    host: str
    port: int
    transport: str  # udp, tcp

    @property
    def secure(self):
        return self.scheme in ("turns", "stuns")

    def __str__(self):
        return f"{self.scheme}:{self.host}:{self.port}?transport={self.transport}"


def parse_url(url):
    """turn:host[:port][?transport=udp|tcp] (RFC 7065), stun:host[:port]."""
    scheme, sep, rest = url.strip().partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("stun", "stuns", "turn", "turns"):
        raise ValueError(f"not a STUN/TURN URL: {url!r}")
    rest, _, query = rest.partition("?")
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    secure = scheme.endswith("s")
    transport = params.get("transport", "tcp" if secure else "udp").lower()
    if transport not in ("udp", "tcp") or (secure and transport == "udp"):
        raise ValueError(f"unsupported transport in {url!r}")
    if rest.startswith("["):  # [IPv6]:port
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.partition(":")
    return TurnUrl(scheme, unquote(host), int(port or (5349 if secure else 3478)), transport)


class _Channel:
    """One connection to the server: send a request, get the matching answer."""

    def __init__(self, url, timeout, ssl_context=None):
        self.url, self.timeout = url, timeout
        family, kind = socket.AF_INET, socket.SOCK_DGRAM if url.transport == "udp" else socket.SOCK_STREAM
        info = socket.getaddrinfo(url.host, url.port, type=kind)
        family, _, _, _, self.address = info[0]
        self.sock = socket.socket(family, kind)
        self.sock.settimeout(timeout)
        if kind == socket.SOCK_STREAM:
            self.sock.connect(self.address)
            if url.secure:
                context = ssl_context or ssl.create_default_context()
                self.sock = context.wrap_socket(self.sock, server_hostname=url.host)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def exchange(self, message):
        data = bytes(message)
        if self.url.transport == "udp":
            # RFC 5389 7.2.1: retransmit over UDP (500 ms, doubling), within the timeout.
            delay, waited = 0.5, 0.0
            while waited < self.timeout:
                self.sock.sendto(data, self.address)
                self.sock.settimeout(min(delay, self.timeout - waited))
                try:
                    while True:
                        answer = self._parse(self.sock.recvfrom(4096)[0])
                        if answer is not None and answer.transaction_id == message.transaction_id:
                            return answer
                except socket.timeout:
                    waited += delay
                    delay *= 2
            raise TurnError(f"no answer from {self.url.host}:{self.url.port}/udp within {self.timeout:g} s")
        self.sock.sendall(data)
        while True:
            answer = self._parse(self._read_stream_message())
            if answer is not None and answer.transaction_id == message.transaction_id:
                return answer

    def _read_stream_message(self):
        while True:
            if len(self.buffer) >= 20:
                length = struct.unpack("!H", self.buffer[2:4])[0]
                if len(self.buffer) >= 20 + length:
                    data, self.buffer = self.buffer[:20 + length], self.buffer[20 + length:]
                    return data
            chunk = self.sock.recv(4096)
            if not chunk:
                raise TurnError(f"{self.url.host}:{self.url.port} closed the connection")
            self.buffer += chunk

    @staticmethod
    def _parse(data):
        try:
            return stun.parse_message(data)
        except ValueError:
            return None


def binding(url, timeout=5, ssl_context=None):
    """A STUN Binding request; returns the address the server saw (XOR-MAPPED-ADDRESS)."""
    channel = _Channel(url, timeout, ssl_context)
    try:
        answer = channel.exchange(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    finally:
        channel.close()
    if answer.message_class != stun.Class.RESPONSE:
        raise TurnError(f"binding refused: {answer.attributes.get('ERROR-CODE')}", answer.error_code)
    mapped = answer.attributes.get("XOR-MAPPED-ADDRESS") or answer.attributes.get("MAPPED-ADDRESS")
    if not mapped:
        raise TurnError("binding answer without a mapped address")
    return mapped


def allocate(url, username, password, timeout=5, ssl_context=None):
    """A TURN allocation (UDP relay) with long-term credentials, released again at once.
    Returns the relayed address; raises TurnError (code 401: credentials refused)."""
    channel = _Channel(url, timeout, ssl_context)
    try:
        request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST,
                               attributes={"REQUESTED-TRANSPORT": UDP_TRANSPORT})
        answer = channel.exchange(request)
        if answer.message_class == stun.Class.RESPONSE:
            raise TurnError("the server allocates without credentials (no use-auth-secret?)")
        if answer.error_code != 401 or "NONCE" not in answer.attributes:
            raise TurnError(f"unexpected answer to an unauthenticated allocation: "
                            f"{answer.attributes.get('ERROR-CODE')}", answer.error_code)
        realm = answer.attributes["REALM"]
        key = make_integrity_key(username, realm, password)
        nonce = answer.attributes["NONCE"]
        for _ in range(2):  # a stale nonce (438) gets one retry with the new one
            request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST, attributes={
                "REQUESTED-TRANSPORT": UDP_TRANSPORT, "USERNAME": username, "REALM": realm, "NONCE": nonce})
            request.add_message_integrity(key)
            answer = channel.exchange(request)
            if answer.error_code == 438 and "NONCE" in answer.attributes:
                nonce = answer.attributes["NONCE"]
                continue
            break
        if answer.message_class != stun.Class.RESPONSE:
            code, reason = answer.attributes.get("ERROR-CODE", (None, ""))
            raise TurnError(f"allocation refused: {code} {reason}".strip(), code)
        relayed = answer.attributes.get("XOR-RELAYED-ADDRESS")
        if not relayed:
            raise TurnError("allocation answer without a relayed address")
        # Free the allocation again (Refresh with lifetime 0).
        release = stun.Message(stun.Method.REFRESH, stun.Class.REQUEST, attributes={
            "LIFETIME": 0, "USERNAME": username, "REALM": realm, "NONCE": nonce})
        release.add_message_integrity(key)
        try:
            channel.exchange(release)
        except (OSError, TurnError):
            pass  # it expires by itself
        return relayed
    finally:
        channel.close()
