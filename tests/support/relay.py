"""The media relay for the tests: one ``RelayProcess`` wherever `python -m media_relay`
runs (relay adapter, group calls, the e2e stack, bench/relay.py), the relay in this
process and loop for tests/relay, the control-API look-ups the tests make, async tests
without plugins, and the loopback guard."""
import asyncio
import contextlib
import functools
import http.client
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aioice.ice
import pytest

from media_relay.client import RelayClient, RelayRefused
from media_relay.config import RelayConfig
from media_relay.control import ControlApi, start_control_server
from media_relay.forwarding import install_udp_port_range, restrict_host_addresses
from media_relay.rooms import Relay
from tests.support.ports import free_port, free_udp_range
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"test-secret-0123456789abcdef"
TEST_TIMEOUT = 40
UP_TIMEOUT = 30  # a hang guard for process starts, not a speed check


class RelayProcess:
    """`python -m media_relay` on a free control port and a free UDP range, its output in
    ``log`` (one file for all its starts). It can crash (``kill``: SIGKILL, no room
    closed, no peer told) and start again on the same ports; as a context manager it
    must end cleanly on SIGTERM.

    ``command`` replaces ``-m media_relay`` (e.g. under cProfile), ``preexec_fn`` runs in
    the child (e.g. pinning it to a CPU); ``env`` adds RELAY_* settings.
    """

    def __init__(self, log, secret=SECRET, udp_range=None, udp_start=44000, udp_size=20,
                 command=("-m", "media_relay"), preexec_fn=None, **env):
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.udp_range = udp_range or free_udp_range(udp_size, udp_start)
        base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        self.env = {**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "RELAY_SECRET": secret.decode(),
                    "RELAY_CONTROL_PORT": str(self.port), "RELAY_UDP_PORT_MIN": str(self.udp_range[0]),
                    "RELAY_UDP_PORT_MAX": str(self.udp_range[1]), "RELAY_BIND_IP": "127.0.0.1", **env}
        self.log = Path(log)
        self.command = [sys.executable, *command]
        self.preexec_fn = preexec_fn
        self.process = None
        self._since = 0

    def client(self, timeout=15):
        return RelayClient("127.0.0.1", self.port, self.secret, timeout)

    def spawn(self):
        """Starts the process without waiting for it (see ``wait_up``)."""
        self._since = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn)
        return self

    def wait_up(self, timeout=UP_TIMEOUT):
        client = self.client(timeout=2)
        wait_until(lambda: answers(client), "the relay answers", timeout, process=self.process, log=self.log)
        return self

    def start(self, timeout=UP_TIMEOUT):
        return self.spawn().wait_up(timeout)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(15)

    def restart(self):
        """A crash and a start on the same control port and UDP range; the new process."""
        self.kill()
        return self.start().process

    def stop(self):
        """SIGTERM, as ./run sends it; the exit status (killed after 15 s)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self):
        """What the process wrote since its last start."""
        with open(self.log, "rb") as log:
            log.seek(self._since)
            return log.read().decode(errors="replace")

    def log_tail(self, lines=30):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        code = self.stop()
        if exc_type is None:
            assert code == 0, self.output()


def answers(client):
    """Whether the relay behind ``client`` answers a signed status request."""
    try:
        client.status()
        return True
    except (OSError, http.client.HTTPException):
        return False


def relay_client(url):
    return RelayClient("127.0.0.1", int(url.rsplit(":", 1)[1]), SECRET)


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


@contextlib.asynccontextmanager
async def running_relay(**overrides):
    """The relay in this process and loop, its control API on a free port."""
    settings = dict(secret=SECRET, control_port=free_port(), udp_port_min=42000,
                    udp_port_max=42999, bind_ips=("127.0.0.1",))
    settings.update(overrides)
    config = RelayConfig(**settings)
    install_udp_port_range(asyncio.get_running_loop(), config.udp_port_min, config.udp_port_max)
    relay = Relay(config)
    server = await start_control_server(ControlApi(relay, SECRET), "127.0.0.1", config.control_port)
    try:
        yield relay, RelayClient("127.0.0.1", config.control_port, SECRET)
    finally:
        server.close()
        await relay.close()
        await server.wait_closed()


def asynctest(coro):
    """Async tests without plugins, as aiortc's tests/utils.py does."""

    @functools.wraps(coro)
    def wrap(*args, **kwargs):
        asyncio.run(asyncio.wait_for(coro(*args, **kwargs), TEST_TIMEOUT))

    return wrap


def _is_loopback(host):
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


@pytest.fixture
def loopback_only(monkeypatch):
    """Records (and refuses) every name lookup and datagram/connection to anything but
    loopback: aiortc's Google STUN default or a host candidate on another interface
    would show up here. Every relay test uses it (``pytestmark``) and asserts the list
    stays empty."""
    violations = []
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_sendto = socket.socket.sendto
    real_connect = socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            violations.append(("resolve", host))
            raise socket.gaierror(f"test guard: no lookups of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not _is_loopback(host):
            violations.append(("resolve", host))
            raise socket.gaierror(f"test guard: no lookups of {host}")
        return real_gethostbyname(host)

    def sendto(sock, data, *args):
        address = args[-1]
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            violations.append(("sendto", address[0]))
            raise OSError("test guard: only loopback traffic")
        return real_sendto(sock, data, *args)

    def connect(sock, address):
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            violations.append(("connect", address[0]))
            raise OSError("test guard: only loopback traffic")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    restrict_host_addresses(["127.0.0.1"])
    yield violations
    assert violations == [], f"traffic beyond loopback: {violations}"
