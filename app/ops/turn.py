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
        family, kind = (
            socket.AF_INET,
            socket.SOCK_DGRAM if url.transport == "udp" else socket.SOCK_STREAM,
        )
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
            raise TurnError(
                f"no answer from {self.url.host}:{self.url.port}/udp within {self.timeout:g} s"
            )
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
                    data, self.buffer = self.buffer[: 20 + length], self.buffer[20 + length :]
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
        raise TurnError(
            f"binding refused: {answer.attributes.get('ERROR-CODE')}", answer.error_code
        )
    mapped = answer.attributes.get("XOR-MAPPED-ADDRESS") or answer.attributes.get("MAPPED-ADDRESS")
    if not mapped:
        raise TurnError("binding answer without a mapped address")
    return mapped


class Allocation:
    """A TURN allocation (UDP relay) with long-term credentials, as a context manager:
    made on entry (`relayed` is its address), released on exit. Raises TurnError
    (code 401: credentials refused)."""

    def __init__(self, url, username, password, timeout=5, ssl_context=None):
        self.url, self.username, self.password = url, username, password
        self.timeout, self.ssl_context = timeout, ssl_context
        self.channel = self.realm = self.key = self.nonce = self.relayed = None

    def __enter__(self):
        self.channel = _Channel(self.url, self.timeout, self.ssl_context)
        try:
            self._allocate()
        except BaseException:
            self.channel.close()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.request(stun.Method.REFRESH, {"LIFETIME": 0})  # free it now
        except (OSError, TurnError):
            pass  # it expires by itself
        finally:
            self.channel.close()

    def _allocate(self):
        answer = self.channel.exchange(
            stun.Message(
                stun.Method.ALLOCATE,
                stun.Class.REQUEST,
                attributes={"REQUESTED-TRANSPORT": UDP_TRANSPORT},
            )
        )
        if answer.message_class == stun.Class.RESPONSE:
            raise TurnError("the server allocates without credentials (no use-auth-secret?)")
        if answer.error_code != 401 or "NONCE" not in answer.attributes:
            raise TurnError(
                f"unexpected answer to an unauthenticated allocation: "
                f"{answer.attributes.get('ERROR-CODE')}",
                answer.error_code,
            )
        self.realm = answer.attributes["REALM"]
        self.key = make_integrity_key(self.username, self.realm, self.password)
        self.nonce = answer.attributes["NONCE"]
        answer = self.request(stun.Method.ALLOCATE, {"REQUESTED-TRANSPORT": UDP_TRANSPORT})
        self.relayed = answer.attributes.get("XOR-RELAYED-ADDRESS")
        if not self.relayed:
            raise TurnError("allocation answer without a relayed address")

    def request(self, method, attributes):
        """An authenticated request; the success answer, or TurnError with the code."""
        for _ in range(2):  # a stale nonce (438) gets one retry with the new one
            request = stun.Message(
                method,
                stun.Class.REQUEST,
                attributes={
                    **attributes,
                    "USERNAME": self.username,
                    "REALM": self.realm,
                    "NONCE": self.nonce,
                },
            )
            request.add_message_integrity(self.key)
            answer = self.channel.exchange(request)
            if answer.error_code == 438 and "NONCE" in answer.attributes:
                self.nonce = answer.attributes["NONCE"]
                continue
            break
        if answer.message_class != stun.Class.RESPONSE:
            code, reason = answer.attributes.get("ERROR-CODE", (None, ""))
            raise TurnError(f"{method.name.lower()} refused: {code} {reason}".strip(), code)
        return answer

    def permit(self, ip):
        """CreatePermission for a peer address (no packet goes to the peer); TurnError
        with code 403 when the server's denied-peer-ip forbids it."""
        self.request(stun.Method.CREATE_PERMISSION, {"XOR-PEER-ADDRESS": (ip, 0)})


def allocate(url, username, password, timeout=5, ssl_context=None):
    """Allocate a relay with the credentials and release it again; its address."""
    with Allocation(url, username, password, timeout, ssl_context) as allocation:
        return allocation.relayed
