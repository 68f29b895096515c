"""The control interface: a deliberately tiny HTTP/1.1 server on 127.0.0.1 (one request
per connection, JSON in and out) for the web app's signed requests. The web app is its
only client, so it needs no framework."""
import asyncio
import json
import logging
from http import HTTPStatus

from .rooms import Refused
from .signing import Verifier

logger = logging.getLogger("media_relay.control")
MAX_BODY = 256 * 1024  # an offer with ten m-lines is ~15 KB
READ_TIMEOUT = 10


class ControlApi:
    def __init__(self, relay, secret: bytes):
        self.relay = relay
        self.verifier = Verifier(secret)

    async def handle(self, method, path, headers, body):
        """Returns (status, payload)."""
        reason = self.verifier.check(method, path, headers, body)
        if reason is not None:
            logger.warning("refused request method=%s path=/%s reason=%s",
                           method, "/".join(path.split("/")[1:2]), reason)
            return 401, {"error": reason}
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return 400, {"error": "bad_json"}
        try:
            return await self._route(method, path.strip("/").split("/"), data)
        except Refused as exc:
            return exc.status, {"error": exc.code}

    async def _route(self, method, parts, data):
        relay = self.relay
        if parts == ["status"] and method == "GET":
            return 200, relay.status()
        if parts == ["rooms"] and method == "POST":
            room, created = relay.create_room(data.get("room"), data.get("max_participants"))
            return (201 if created else 200), room.status()
        if len(parts) == 2 and parts[0] == "rooms":
            if method == "GET":
                return 200, relay.room(parts[1]).status()
            if method == "DELETE":
                await relay.close_room(parts[1])
                return 200, {"room": parts[1], "closed": True}
        peers = len(parts) >= 3 and parts[0] == "rooms" and parts[2] == "participants"
        if peers and len(parts) == 3 and method == "POST":
            if data.get("type", "offer") != "offer":
                raise Refused(400, "bad_offer")
            sdp, status = await relay.join(parts[1], data.get("participant"), data.get("sdp"))
            return 200, {"type": "answer", "sdp": sdp, **status}
        if peers and len(parts) == 4 and method == "DELETE":
            await relay.leave(parts[1], parts[3])
            return 200, {"participant": parts[3], "left": True}
        return 404, {"error": "not_found"}


async def start_control_server(api: ControlApi, host, port):
    async def on_connection(reader, writer):
        status, payload = 400, {"error": "bad_request"}
        try:
            request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            method, path, headers, body = request
            status, payload = await api.handle(method, path, headers, body)
        except _BadRequest as exc:
            status, payload = exc.args
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except Exception:
            logger.exception("control request failed")
            status, payload = 500, {"error": "internal"}
        body = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(head + body)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except ConnectionError:
            pass

    return await asyncio.start_server(on_connection, host, port, reuse_address=True)


class _BadRequest(Exception):
    pass


async def _read_request(reader):
    request_line = (await reader.readline()).decode("latin-1").split()
    if len(request_line) != 3:
        raise _BadRequest(400, {"error": "bad_request"})
    method, path, _ = request_line
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        if len(headers) > 50:
            raise _BadRequest(431, {"error": "too_many_headers"})
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if not 0 <= length <= MAX_BODY:
        raise _BadRequest(413, {"error": "too_large"})
    body = await reader.readexactly(length) if length else b""
    return method.upper(), path, headers, body
